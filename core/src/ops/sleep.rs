//! `sleep` (`{"ms": N}`): waits N milliseconds, then returns `{"slept_ms": N}`. Stands in
//! for a long job in tests of shutdown and crash recovery.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{JobLimits, Rules, SleepArgs, SleepResult};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};

/// `limits`: the longest sleep (`GITFLEET_JOB_MAX_SLEEP_MS`).
pub struct Sleep {
    pub limits: JobLimits,
}

impl Op for Sleep {
    fn name(&self) -> &'static str {
        SleepArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        SleepArgs::check(
            args,
            &Rules {
                limits: self.limits,
                ..Default::default()
            },
        )
    }

    fn timeout(&self, args: &Value) -> Duration {
        Duration::from_millis(SleepArgs::ms(args, &self.limits).unwrap_or(0))
            + Duration::from_secs(30)
    }

    fn run(&self, args: Value, _ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let limits = self.limits;
        async move {
            let ms = SleepArgs::ms(&args, &limits)?;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            result(SleepResult { slept_ms: ms })
        }
        .boxed()
    }
}
