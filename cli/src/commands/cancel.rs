//! `gitfleet cancel <id>`: takes a job that has not started out of its queue (it ends
//! `cancelled`), and prints its record. A running or finished job is refused: exit 2, kind
//! `conflict`.

use crate::Fail;
use crate::connect::connect;
use crate::output::print;

pub async fn cancel(id: &str) -> Result<u8, Fail> {
    let client = connect().await?;
    let Some(cancelled) = client.cancel(id).await? else {
        return Err(Fail::Invalid(format!(
            "no job {id}: it never existed or its record has expired"
        )));
    };
    let shown = match client.job(id).await? {
        Some(record) => record.to_cli_json(),
        // Expired in the instant since (a result TTL of a second): what the cancel saw.
        None => {
            let mut v = serde_json::to_value(&cancelled).expect("plain data");
            v["status"] = "cancelled".into();
            v
        }
    };
    print(&shown);
    Ok(0)
}
