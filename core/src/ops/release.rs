//! `release`: gives a sandbox up. Result: `cached` (its working copy is kept for the next
//! clone of the same repository on this worker).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::{ReleaseArgs, ReleaseResult, Rules};
use gitfleet_contract::{JobError, OpArgs, fields};
use serde_json::Value;

use super::{Op, RunContext, result};

pub struct ReleaseOp;

impl Op for ReleaseOp {
    fn name(&self) -> &'static str {
        ReleaseArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        ReleaseArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (id, _) = fields::sandbox_id(&args)?;
            let cached = ctx.sandboxes()?.release(id, ctx.org.as_deref()).await?;
            if let Some(queue) = &ctx.queue
                && let Err(e) = queue.drop_sandbox(id, &ctx.worker_id).await
            {
                // Released all the same; the registry forgets it when this worker leaves.
                tracing::warn!(sandbox_id = %id, error = %e, "registry: a released sandbox stays listed");
            }
            result(ReleaseResult { cached })
        }
        .boxed()
    }
}
