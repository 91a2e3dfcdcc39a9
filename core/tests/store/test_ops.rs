//! The op these tests run besides the builtin ones: one that fails on purpose, so a job's
//! record shows retries and errors.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::JobError;
use gitfleet_core::ops::{Op, Ops, RunContext};
use serde_json::{Value, json};

/// Fails (retryably, `internal`) while the run is at most `fail_times`, with `message` if
/// given; then returns `{"attempt": n}`.
pub struct Flaky;

impl Op for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(10)
    }
    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let fail_times = args["fail_times"].as_u64().unwrap_or(0) as u32;
            if ctx.attempt <= fail_times {
                let message = args["message"].as_str().unwrap_or("flaky failure");
                return Err(JobError::internal(format!(
                    "{message} (run {})",
                    ctx.attempt
                )));
            }
            Ok(json!({"attempt": ctx.attempt}))
        }
        .boxed()
    }
}

pub fn ops() -> Ops {
    Ops::builtin().with(Flaky)
}
