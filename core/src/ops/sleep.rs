//! `sleep` (`{"ms": N}`): waits N milliseconds, then returns `{"slept_ms": N}`. Stands in
//! for a long job in tests of shutdown and crash recovery.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Op, RunContext};
use crate::job::JobError;

/// The longest sleep accepted: an hour.
const MAX_MS: u64 = 3_600_000;

pub struct Sleep;

fn ms(args: &Value) -> Result<u64, JobError> {
    match args.get("ms") {
        None => Err(JobError::invalid_input("ms: required")),
        Some(v) => match v.as_u64() {
            Some(ms) if ms <= MAX_MS => Ok(ms),
            Some(_) => Err(JobError::invalid_input(format!("ms: at most {MAX_MS}"))),
            None => Err(JobError::invalid_input(
                "ms: must be a whole number of milliseconds >= 0",
            )),
        },
    }
}

impl Op for Sleep {
    fn name(&self) -> &'static str {
        "sleep"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        ms(args).map(|_| ())
    }

    fn timeout(&self, args: &Value) -> Duration {
        Duration::from_millis(ms(args).unwrap_or(0)) + Duration::from_secs(30)
    }

    fn run(&self, args: Value, _ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let ms = ms(&args)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(json!({ "slept_ms": ms }))
        }
        .boxed()
    }
}
