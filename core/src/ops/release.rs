//! `release`: gives a sandbox up. Result: `cached` (its working copy is kept for the next
//! clone of the same repository on this worker).

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Op, RunContext, fields};
use crate::job::JobError;

pub struct ReleaseOp;

impl Op for ReleaseOp {
    fn name(&self) -> &'static str {
        "release"
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        fields::sandbox_id(args).map(|_| ())
    }

    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(60)
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (id, _) = fields::sandbox_id(&args)?;
            let cached = ctx.sandboxes()?.release(id).await?;
            Ok(json!({ "cached": cached }))
        }
        .boxed()
    }
}
