//! `gitfleet queues`: counts for every queue, as JSON.

use crate::Fail;
use crate::connect::connect;
use crate::output::print;

pub async fn show() -> Result<u8, Fail> {
    let client = connect().await?;
    let stats = client.queues().await?;
    print(&serde_json::to_value(stats).expect("plain data"));
    Ok(0)
}
