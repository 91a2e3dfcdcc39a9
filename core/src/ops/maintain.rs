//! `maintain`: upkeep of a worker's own sandboxes, sent by the scheduler to the worker's own
//! queue (`worker:<worker_id>`); not part of the job contract producers use, but a real op,
//! checked like every other. Args: `task`, `worker_id` (the worker it is for), and per task:
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
use serde_json::{Value, json};

use super::{Op, RunContext, fields};
use crate::job::JobError;

/// The op's name.
pub const MAINTAIN: &str = "maintain";

/// Sandbox ids one `evict` job may name, at most.
const MAX_IDS: usize = 10_000;

pub struct MaintainOp;

/// What a `maintain` job asks for (checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    Evict(Vec<String>),
    HealthCheck,
    RebuildTemplate,
}

fn bad(field: &str, reason: impl std::fmt::Display) -> JobError {
    JobError::invalid_input(format!("{field}: {reason}"))
}

/// Checks the args; returns the worker the job is for and what to do.
pub fn request(args: &Value) -> Result<(&str, Maintenance), JobError> {
    let worker = fields::string(args, "worker_id")?;
    crate::queue::validate_worker_id(worker).map_err(|e| bad("worker_id", e.message))?;
    let task = match fields::string(args, "task")? {
        "evict" => {
            let items = match args.get("sandbox_ids") {
                Some(Value::Array(items)) => items,
                None | Some(Value::Null) => return Err(bad("sandbox_ids", "required")),
                Some(_) => return Err(bad("sandbox_ids", "must be a list of sandbox ids")),
            };
            if items.len() > MAX_IDS {
                return Err(bad("sandbox_ids", format!("at most {MAX_IDS} ids")));
            }
            let mut ids = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let name = format!("sandbox_ids[{i}]");
                let one = json!({ "sandbox_id": item });
                let (id, owner) = fields::sandbox_id(&one).map_err(|e| bad(&name, e.message))?;
                if owner != worker {
                    return Err(bad(&name, format!("is not a sandbox of worker {worker}")));
                }
                ids.push(id.to_string());
            }
            Maintenance::Evict(ids)
        }
        "health_check" => Maintenance::HealthCheck,
        "rebuild_template" => Maintenance::RebuildTemplate,
        other => {
            return Err(bad(
                "task",
                format!("unknown task {other:?} (known: evict, health_check, rebuild_template)"),
            ));
        }
    };
    Ok((worker, task))
}

impl Op for MaintainOp {
    fn name(&self) -> &'static str {
        MAINTAIN
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        request(args).map(|_| ())
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
                    let missing: Vec<&String> =
                        ids.iter().filter(|id| !evicted.contains(id)).collect();
                    Ok(json!({"task": "evict", "evicted": evicted, "missing": missing}))
                }
                Maintenance::HealthCheck => {
                    let mut report = manager.health_check().await;
                    let redactor = manager.git().redactor();
                    for b in &mut report.broken {
                        b.error = redactor.redact(&b.error);
                    }
                    let mut out = serde_json::to_value(&report)
                        .map_err(|e| JobError::internal(e.to_string()))?;
                    out["task"] = json!("health_check");
                    Ok(out)
                }
                Maintenance::RebuildTemplate => {
                    // Mirrors first: the new template is seeded from fresh mirrors.
                    let mirrors = manager.mirrors().refresh_all().await;
                    let failed: Vec<Value> = mirrors
                        .failed
                        .iter()
                        .map(|(repo, e)| json!({"repo": repo, "error": e.to_string()}))
                        .collect();
                    let rebuilt = manager.rebuild_template().await?;
                    Ok(json!({
                        "task": "rebuild_template",
                        "template_id": rebuilt.template_id,
                        "copies_removed": rebuilt.copies_removed,
                        "versions_removed": rebuilt.versions_removed,
                        "mirrors_refreshed": mirrors.refreshed,
                        "mirrors_failed": failed,
                    }))
                }
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "host-01J00000000000000000000000";

    fn sid(worker: &str) -> String {
        format!("{worker}.{}", ulid::Ulid::new())
    }

    #[test]
    fn maintenance_args_are_checked_like_any_op() {
        let ok = json!({"task": "evict", "worker_id": W, "sandbox_ids": [sid(W)]});
        assert!(matches!(request(&ok), Ok((_, Maintenance::Evict(ids))) if ids.len() == 1));
        assert_eq!(
            request(&json!({"task": "health_check", "worker_id": W}))
                .unwrap()
                .1,
            Maintenance::HealthCheck
        );
        let cases = [
            (
                json!({"task": "evict", "worker_id": W}),
                "sandbox_ids: required",
            ),
            (
                json!({"task": "evict", "worker_id": W, "sandbox_ids": [sid("other-1")]}),
                "is not a sandbox of worker",
            ),
            (
                json!({"task": "evict", "worker_id": W, "sandbox_ids": ["../x"]}),
                "sandbox_ids[0]",
            ),
            (
                json!({"task": "format_disk", "worker_id": W}),
                "unknown task",
            ),
            (json!({"task": "health_check"}), "worker_id: required"),
            (
                json!({"task": "health_check", "worker_id": "-x"}),
                "worker_id",
            ),
        ];
        for (args, want) in cases {
            let err = request(&args).unwrap_err();
            assert!(err.message.contains(want), "{args}: {err}");
        }
    }

    #[test]
    fn a_maintenance_job_goes_to_its_worker_queue() {
        let spec =
            crate::job::JobSpec::new(MAINTAIN, json!({"task": "health_check", "worker_id": W}));
        assert_eq!(super::super::Ops::route(&spec), Some(format!("worker:{W}")));
    }
}
