//! `maintain`: upkeep of a worker's own sandboxes, sent by the scheduler to the worker's own
//! queue (`worker:<worker_id>`); an operator's op rather than an agent's, but checked like
//! every other. Args: `task`, `worker_id` (the worker it is for), and per task:
//! - `evict`, `sandbox_ids`: removes the released copies that were those sandboxes (ids the
//!   worker no longer keeps are reported as `missing`).
//! - `health_check`: checks every sandbox and released copy, removes broken ones, refills
//!   the pool.
//! - `rebuild_template`: refreshes every mirror and rebuilds the sandbox template (new
//!   sandboxes use the new one; sandboxes in use are not disturbed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;
use crate::names::validate_worker_id;

/// Sandbox ids one `evict` job may name, at most.
const MAX_IDS: usize = 10_000;

/// `maintain`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum MaintainArgs {
    Evict {
        worker_id: String,
        /// Sandboxes of that worker, at most 10,000.
        sandbox_ids: Vec<String>,
    },
    HealthCheck {
        worker_id: String,
    },
    RebuildTemplate {
        worker_id: String,
    },
}

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
    validate_worker_id(worker).map_err(|e| bad("worker_id", e.message))?;
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

impl OpArgs for MaintainArgs {
    const OP: OpName = OpName::Maintain;
    type Result = MaintainResult;

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        request(args).map(|_| ())
    }
}

/// What `maintain` answers, by task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "task", rename_all = "snake_case")]
pub enum MaintainResult {
    Evict {
        /// The released copies removed.
        evicted: Vec<String>,
        /// Ids the worker no longer keeps.
        missing: Vec<String>,
    },
    HealthCheck(HealthReport),
    RebuildTemplate {
        /// The new current template version.
        template_id: String,
        /// Released copies made from older versions, removed.
        copies_removed: usize,
        /// Older template versions removed now (those still in use go once they are not).
        versions_removed: usize,
        mirrors_refreshed: usize,
        mirrors_failed: Vec<MirrorFailure>,
    },
}

/// What a health check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HealthReport {
    /// Sandboxes and released copies checked.
    pub checked: usize,
    /// Sandboxes skipped because an op was running in them.
    pub busy: usize,
    pub broken: Vec<BrokenSandbox>,
    /// Empty sandboxes in the pool after refilling it.
    pub pooled: usize,
    /// Why the pool could not be refilled, if it could not.
    pub pool_error: Option<String>,
}

/// A sandbox (or released copy) that failed its health check and was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BrokenSandbox {
    pub sandbox_id: String,
    /// A released copy (its row is already `terminated`), not a live sandbox.
    pub cached: bool,
    /// What git said (redacted).
    pub error: String,
}

/// A mirror whose refresh failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MirrorFailure {
    /// The mirror's key (never a URL with credentials).
    pub repo: String,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: &str = "host-01J00000000000000000000000";

    fn sid(worker: &str) -> String {
        format!("{worker}.01J00000000000000000000001")
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
            crate::job::JobSpec::new("maintain", json!({"task": "health_check", "worker_id": W}));
        assert_eq!(super::super::route(&spec), Some(format!("worker:{W}")));
    }
}
