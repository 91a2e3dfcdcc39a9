//! The job ops: one module per op, one registry that dispatches.
//!
//! What an op's args may be is the contract's ([`gitfleet_contract::ops`]): the client
//! checks a job with it at enqueue time, and the worker again here (a job pushed by another
//! language's producer is not trusted); an op here only runs. `echo` and `sleep` exercise
//! the queue end to end, for smoke tests and benches.

mod clone;
mod diff;
mod echo;
mod maintain;
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

use gitfleet_contract::ops::Rules;
use gitfleet_contract::{JobError, JobSpec, fields};

pub use clone::CloneOp;
pub use diff::DiffOp;
pub use echo::Echo;
pub use maintain::MaintainOp;
pub use pull::PullOp;
pub use push::{ChangeOp, PushGroups, PushOp, PushSettings};
pub use release::ReleaseOp;
pub use sleep::Sleep;
pub use status::StatusOp;
pub use write_files::WriteFilesOp;

use gitfleet_queue::Queue;

use crate::sandbox::{Sandbox, SandboxManager};

/// Runs allowed for a job whose op sets no other limit.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// What an op knows about the run it is part of, and the worker's services.
#[derive(Debug, Clone)]
pub struct RunContext {
    pub job_id: String,
    /// Runs started so far, this one included.
    pub attempt: u32,
    /// Earlier runs given back unfinished (see [`RunContext::may_have_run_before`]).
    pub given_back: u32,
    pub worker_id: String,
    /// The organization the job runs for: its envelope's (the producer's identity), never
    /// its args'. Sandboxes are reached, and budgets charged, by it.
    pub org: Option<String>,
    /// Live sandboxes one organization may have at once, fleet-wide (0: no limit).
    pub org_max_sandboxes: u32,
    /// The worker's sandboxes (absent on a worker without git support).
    pub sandboxes: Option<Arc<SandboxManager>>,
    /// The queue the job came from (its Redis also holds the push locks).
    pub queue: Option<Queue>,
}

impl RunContext {
    /// Whether an earlier run of this job may have done its work: a later attempt, or a run
    /// after one that was given back unfinished (which does not count as an attempt). A
    /// push or change looks for its commit on the branch first then, whatever the attempt.
    pub fn may_have_run_before(&self) -> bool {
        self.attempt > 1 || self.given_back > 0
    }

    pub fn sandboxes(&self) -> Result<&Arc<SandboxManager>, JobError> {
        self.sandboxes
            .as_ref()
            .ok_or_else(|| JobError::internal("this worker runs no git ops (no sandbox root)"))
    }

    /// The sandbox a job names, on this worker, if it belongs to the job's organization.
    pub fn sandbox(&self, args: &Value) -> Result<(Arc<SandboxManager>, Arc<Sandbox>), JobError> {
        let (id, _) = fields::sandbox_id(args)?;
        let manager = self.sandboxes()?.clone();
        let sandbox = manager.get(id, self.org.as_deref())?;
        Ok((manager, sandbox))
    }
}

/// A queue call an op made, as the job's error: the queue's refusal as it is (a limit, a
/// bad request), Redis failing as `network` (retried).
pub(crate) fn queue_error(e: gitfleet_queue::QueueError) -> JobError {
    match e {
        gitfleet_queue::QueueError::Invalid(e) => e,
        other => JobError::new(
            gitfleet_contract::ErrorKind::Network,
            format!("queue: {other}"),
        ),
    }
}

/// An op's typed result, as the JSON the job answers with.
pub(crate) fn result(r: impl serde::Serialize) -> Result<Value, JobError> {
    serde_json::to_value(r).map_err(|e| JobError::internal(format!("result: {e}")))
}

/// One kind of job.
pub trait Op: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Checks `args`, naming the field and the reason when they are wrong: the contract's
    /// check of the op (see [`gitfleet_contract::OpArgs::check`]), by the worker's rules.
    fn validate(&self, args: &Value) -> Result<(), JobError>;

    /// Runs allowed before the job is dead (each run after a retryable failure counts).
    fn max_attempts(&self) -> u32 {
        DEFAULT_MAX_ATTEMPTS
    }

    /// Time one run may take (the job's own `timeout_ms` overrides it).
    fn timeout(&self, args: &Value) -> Duration;

    fn run(&self, args: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>>;
}

/// The ops a worker serves, by name, and the rules they check jobs by.
#[derive(Clone)]
pub struct Ops {
    ops: BTreeMap<&'static str, Arc<dyn Op>>,
    rules: Rules,
}

impl Ops {
    /// No ops at all.
    pub fn empty() -> Self {
        Self {
            ops: BTreeMap::new(),
            rules: Rules::default(),
        }
    }

    /// The ops every worker serves: the git ops of the job contract, and `echo` and
    /// `sleep`; `file://` repositories refused, the default job limits.
    pub fn builtin() -> Self {
        Self::with_rules(Rules::default())
    }

    /// As [`Ops::builtin`], with `file://` repositories accepted or not (a worker's
    /// `GITFLEET_GIT_ALLOW_FILE`).
    pub fn with_file_repos(allow_file: bool) -> Self {
        Self::with_rules(Rules {
            allow_file_repos: allow_file,
            ..Default::default()
        })
    }

    /// As [`Ops::builtin`], checking jobs by `rules`: `file://` repositories, and the job
    /// limits (the write caps of `write_files` and `change`, the longest `sleep`; the
    /// runtime applies the `timeout_ms` and result caps, see [`Ops::rules`]).
    pub fn with_rules(rules: Rules) -> Self {
        // `push` and `change` group their pushes together (see `push::group`).
        let groups = Arc::new(PushGroups::default());
        let limits = rules.limits;
        let mut ops = Self::empty()
            .with(Echo)
            .with(Sleep { limits })
            .with(CloneOp {
                allow_file: rules.allow_file_repos,
            })
            .with(StatusOp)
            .with(DiffOp)
            .with(WriteFilesOp { limits })
            .with(PullOp)
            .with(PushOp::new(groups.clone()))
            .with(ReleaseOp)
            .with(ChangeOp::new(rules, groups))
            .with(MaintainOp);
        ops.rules = rules;
        ops
    }

    /// The same ops, with `push` and `change` locking branches and grouping pushes as
    /// `settings` say (in a push group of their own).
    pub fn with_push_settings(self, settings: PushSettings) -> Self {
        let groups = Arc::new(PushGroups::new(settings));
        let rules = self.rules;
        self.with(PushOp::new(groups.clone()))
            .with(ChangeOp::new(rules, groups))
    }

    /// The rules the ops check jobs by.
    pub fn rules(&self) -> &Rules {
        &self.rules
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
        gitfleet_contract::ops::no_org_arg(&spec.args)?;
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
    use gitfleet_contract::OpName;

    use super::*;

    #[test]
    fn a_worker_serves_every_op_of_the_contract_and_no_other() {
        let served: Vec<&str> = Ops::builtin().names().collect();
        let contract: Vec<&str> = OpName::ALL.iter().map(|op| op.as_str()).collect();
        assert_eq!(served, contract);
    }

    #[test]
    fn the_worker_checks_a_job_as_the_contract_does() {
        let ops = Ops::builtin();
        let bad = JobSpec::new("sleep", serde_json::json!({"ms": "soon"}));
        let err = ops.resolve(&bad).err().expect("refused");
        let want = gitfleet_contract::ops::validate(&bad, &Default::default()).unwrap_err();
        assert_eq!(err, want);
        let unknown = JobSpec::new("frobnicate", serde_json::json!({}));
        let err = ops.resolve(&unknown).err().expect("refused");
        assert!(err.message.contains("unknown op \"frobnicate\""), "{err}");
    }
}
