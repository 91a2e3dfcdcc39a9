//! `gitfleet retry <id>`: sends a dead job back to its queue with a fresh set of attempts,
//! and prints its record.

use crate::Fail;
use crate::connect::connect;
use crate::output::report;

pub async fn retry(id: &str) -> Result<u8, Fail> {
    let client = connect().await?;
    client.retry(id).await?;
    match client.job(id).await? {
        Some(r) => Ok(report(&r, false)),
        None => Ok(0),
    }
}
