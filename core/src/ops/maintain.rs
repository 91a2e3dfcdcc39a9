//! `maintain`: upkeep of a worker's own sandboxes, sent by the scheduler to the worker's own
//! queue (`worker:<worker_id>`); an operator's op, checked like every other (its args are
//! the contract's [`MaintainArgs`]). Per task:
//! - `evict`, `sandbox_ids`: removes the released copies that were those sandboxes (ids the
//!   worker no longer keeps are reported as `missing`). Result: `evicted`, `missing`.
//! - `health_check`: checks every sandbox and released copy, removes broken ones, refills
//!   the pool. Result: `checked`, `busy`, `broken: [{sandbox_id, cached, error}]`, `pooled`.
//! - `rebuild_template`: refreshes every mirror and rebuilds the sandbox template (new
//!   sandboxes use the new one; sandboxes in use are not disturbed). Result: `template_id`,
//!   `copies_removed`, `versions_removed`, `mirrors_refreshed`, `mirrors_failed`.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::ops::maintain::{MirrorFailure, request};
use gitfleet_contract::ops::{MaintainArgs, MaintainResult, Maintenance, Rules};
use gitfleet_contract::{JobError, OpArgs};
use serde_json::Value;

use super::{Op, RunContext, result};

pub struct MaintainOp;

fn bad(field: &str, reason: impl std::fmt::Display) -> JobError {
    JobError::invalid_input(format!("{field}: {reason}"))
}

impl Op for MaintainOp {
    fn name(&self) -> &'static str {
        MaintainArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        MaintainArgs::check(args, &Rules::default())
    }

    /// One run: the scheduler sends the next one on its next tick.
    fn max_attempts(&self) -> u32 {
        1
    }

    fn timeout(&self, args: &Value) -> Duration {
        match request(args) {
            Ok((_, Maintenance::RebuildTemplate)) => Duration::from_secs(1800),
            _ => Duration::from_secs(300),
        }
    }

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        async move {
            let (worker, task) = request(&args)?;
            if worker != ctx.worker_id {
                return Err(bad(
                    "worker_id",
                    format!("this is worker {}, not {worker}", ctx.worker_id),
                ));
            }
            let manager = ctx.sandboxes()?.clone();
            match task {
                Maintenance::Evict(ids) => {
                    let evicted = manager.evict_ids(&ids).await;
                    let missing: Vec<String> = ids
                        .iter()
                        .filter(|id| !evicted.contains(id))
                        .cloned()
                        .collect();
                    result(MaintainResult::Evict { evicted, missing })
                }
                Maintenance::HealthCheck => {
                    let mut report = manager.health_check().await;
                    let redactor = manager.git().redactor();
                    for b in &mut report.broken {
                        b.error = redactor.redact(&b.error);
                    }
                    result(MaintainResult::HealthCheck(report))
                }
                Maintenance::RebuildTemplate => {
                    // Mirrors first: the new template is seeded from fresh mirrors.
                    let mirrors = manager.mirrors().refresh_all().await;
                    let mirrors_failed: Vec<MirrorFailure> = mirrors
                        .failed
                        .iter()
                        .map(|(repo, e)| MirrorFailure {
                            repo: repo.clone(),
                            error: e.to_string(),
                        })
                        .collect();
                    let rebuilt = manager.rebuild_template().await?;
                    result(MaintainResult::RebuildTemplate {
                        template_id: rebuilt.template_id,
                        copies_removed: rebuilt.copies_removed,
                        versions_removed: rebuilt.versions_removed,
                        mirrors_refreshed: mirrors.refreshed,
                        mirrors_failed,
                    })
                }
            }
        }
        .boxed()
    }
}
