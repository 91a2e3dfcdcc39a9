//! The job ops: one module per op, one registry that dispatches.
//!
//! An op checks its args (at enqueue time in the client, and again in the worker: a job
//! pushed by another language's producer is not trusted) and runs. Until the git ops land,
//! `echo` and `sleep` exercise the queue end to end; they stay, for smoke tests and benches.

mod clone;
mod diff;
mod echo;
pub mod fields;
pub mod maintain;
mod pull;
mod push;
mod release;
mod sleep;
mod status;
mod write_files;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::job::{JobError, JobSpec};

pub use clone::CloneOp;
pub use diff::DiffOp;
pub use echo::Echo;
pub use maintain::{MAINTAIN, MaintainOp};
pub use pull::PullOp;
pub use push::{ChangeOp, PushGroups, PushOp};
pub use release::ReleaseOp;
pub use sleep::Sleep;
pub use status::StatusOp;
pub use write_files::WriteFilesOp;

use crate::queue::Queue;
use crate::sandbox::{Sandbox, SandboxManager};

/// Runs allowed for a job whose op sets no other limit.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// What an op knows about the run it is part of, and the worker's services.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub job_id: String,
    pub attempt: u32,
    pub worker_id: String,
    /// The worker's sandboxes (absent on a worker without git support).
    pub sandboxes: Option<Arc<SandboxManager>>,
    /// The queue the job came from (its Redis also holds the push locks).
    pub queue: Option<Queue>,
}

impl RunContext {
    pub fn sandboxes(&self) -> Result<&Arc<SandboxManager>, JobError> {
        self.sandboxes
            .as_ref()
            .ok_or_else(|| JobError::internal("this worker runs no git ops (no sandbox root)"))
    }

    /// The sandbox a job names, on this worker.
    pub fn sandbox(&self, args: &Value) -> Result<(Arc<SandboxManager>, Arc<Sandbox>), JobError> {
        let (id, _) = fields::sandbox_id(args)?;
        let manager = self.sandboxes()?.clone();
        let sandbox = manager.get(id)?;
        Ok((manager, sandbox))
    }
}

/// One kind of job.
pub trait Op: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Checks `args`, naming the field and the reason when they are wrong.
    fn validate(&self, args: &Value) -> Result<(), JobError>;

    /// Runs allowed before the job is dead (each run after a retryable failure counts).
    fn max_attempts(&self) -> u32 {
        DEFAULT_MAX_ATTEMPTS
    }

    /// Time one run may take (the job's own `timeout_ms` overrides it).
    fn timeout(&self, args: &Value) -> Duration;

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>>;
}

/// The ops a worker serves, by name.
#[derive(Clone)]
pub struct Ops {
    ops: BTreeMap<&'static str, Arc<dyn Op>>,
}

impl Ops {
    /// No ops at all.
    pub fn empty() -> Self {
        Self {
            ops: BTreeMap::new(),
        }
    }

    /// The ops every worker serves: the git ops of the job contract, and `echo` and
    /// `sleep`; `file://` repositories refused.
    pub fn builtin() -> Self {
        Self::with_file_repos(false)
    }

    /// As [`Ops::builtin`], with `file://` repositories accepted or not (a worker's
    /// `GITFLEET_GIT_ALLOW_FILE`).
    pub fn with_file_repos(allow_file: bool) -> Self {
        Self::empty()
            .with(Echo)
            .with(Sleep)
            .with(CloneOp { allow_file })
            .with(StatusOp)
            .with(DiffOp)
            .with(WriteFilesOp)
            .with(PullOp)
            .with(PushOp)
            .with(ReleaseOp)
            .with(ChangeOp { allow_file })
            .with(MaintainOp)
    }

    /// The queue a job should go to when the producer named none: the own queue of the
    /// worker holding the sandbox it names (or, for `maintain`, of the worker it is for),
    /// else the shared queue.
    pub fn route(spec: &JobSpec) -> Option<String> {
        if spec.op == MAINTAIN {
            return maintain::request(&spec.args)
                .ok()
                .map(|(worker, _)| format!("worker:{worker}"));
        }
        fields::sandbox_id(&spec.args)
            .ok()
            .map(|(_, worker)| format!("worker:{worker}"))
    }

    /// Adds (or replaces) an op.
    pub fn with(mut self, op: impl Op) -> Self {
        self.ops.insert(op.name(), Arc::new(op));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Op>> {
        self.ops.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.ops.keys().copied()
    }

    /// Finds the op of `spec` and checks its args.
    pub fn resolve(&self, spec: &JobSpec) -> Result<&Arc<dyn Op>, JobError> {
        spec.check_shape()?;
        let op = self.get(&spec.op).ok_or_else(|| {
            JobError::invalid_input(format!(
                "op: unknown op {:?} (known: {})",
                spec.op,
                self.names().collect::<Vec<_>>().join(", ")
            ))
        })?;
        op.validate(&spec.args)?;
        Ok(op)
    }
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ops.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_ops_and_bad_args_are_named() {
        let ops = Ops::builtin();
        let err = ops
            .resolve(&JobSpec::new("frobnicate", json!({})))
            .err()
            .unwrap();
        assert_eq!(err.kind, crate::job::ErrorKind::InvalidInput);
        assert!(err.message.contains("unknown op \"frobnicate\""), "{err}");
        assert!(err.message.contains("echo"), "{err}");
        let err = ops
            .resolve(&JobSpec::new("sleep", json!({"ms": "soon"})))
            .err()
            .unwrap();
        assert!(err.message.starts_with("ms:"), "{err}");
        assert!(
            ops.resolve(&JobSpec::new("sleep", json!({"ms": 5})))
                .is_ok()
        );
    }
}
