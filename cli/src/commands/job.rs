//! `gitfleet job <id>`: a job's record (optionally after waiting for it to finish), with
//! its history from the durable record when there is one.

use gitfleet_client::JobStatus;
use serde_json::{Value, json};

use crate::connect::connect;
use crate::output::{exit_code, print};
use crate::{Fail, Wait, secs};

/// A job's record from Redis, with its history from Postgres when there is one; from
/// Postgres alone once Redis has let the record expire.
pub async fn show(id: &str, wait: Wait) -> Result<u8, Fail> {
    let client = connect().await?;
    let record = if wait.wait {
        client.wait(id, secs("--timeout", wait.timeout)?).await?
    } else {
        client.job(id).await?
    };
    let history = match client.store() {
        Some(store) => match store.job_history(id).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!(
                    "gitfleet: no history: cannot read the record at {}: {e}",
                    store.redacted_url()
                );
                None
            }
        },
        None => None,
    };
    let (mut out, status) = match (&record, &history) {
        (Some(r), _) => (r.to_cli_json(), r.status),
        (None, Some(h)) => {
            let j = &h.job;
            let mut v = json!({
                "job_id": j.job_id,
                "op": j.op,
                "status": j.status,
                "attempts": j.attempts,
                "enqueued_at": gitfleet_contract::fmt_time(j.enqueued_at),
                "started_at": gitfleet_contract::fmt_time(j.started_at),
                "finished_at": gitfleet_contract::fmt_time(j.finished_at),
            });
            let map = v.as_object_mut().expect("object literal");
            match &j.error_kind {
                Some(kind) => map.insert(
                    "error".into(),
                    json!({"kind": kind, "message": j.error_message}),
                ),
                None => map.insert("result".into(), j.result.clone().unwrap_or(Value::Null)),
            };
            // As the Redis record shows it (`JobRecord::to_cli_json`).
            if let Some(org) = &j.org_id {
                map.insert("org".into(), org.clone().into());
            }
            (v, j.status.parse().unwrap_or(JobStatus::Waiting))
        }
        (None, None) => {
            return Err(Fail::Invalid(format!(
                "no job {id}: it never existed or its record has expired"
            )));
        }
    };
    if let Some(h) = history {
        out.as_object_mut().expect("an object").insert(
            "history".into(),
            serde_json::to_value(h).expect("plain data"),
        );
    }
    print(&out);
    Ok(exit_code(status, wait.wait))
}
