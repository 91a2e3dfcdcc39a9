//! Every op of the job contract: its name, its args and its result as types, and the one
//! check of its args.
//!
//! The types derive [`JsonSchema`], so the gateway's OpenAPI document and its MCP tools take
//! their schemas from here, and [`OpArgs::check`] is the only place a field's rule is
//! written: producers (the client, the CLI, the gateway) and workers all call it, and a job
//! pushed by a producer in another language is checked again by the worker. Checking walks
//! the JSON itself, field by field, so every error names the field and the reason
//! (`<field>: <reason>`); once the args pass, they deserialize into the op's type (a test
//! holds the two to the same fields).

pub mod change;
pub mod clone;
pub mod diff;
pub mod echo;
pub mod limits;
pub mod maintain;
pub mod pull;
pub mod push;
pub mod release;
pub mod sleep;
pub mod status;
pub mod write_files;

use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::JobError;
use crate::fields;
use crate::job::JobSpec;
use crate::names::own_queue;

pub use change::{ChangeArgs, ChangeResult};
pub use clone::{CloneArgs, CloneResult, SandboxSource};
pub use diff::{DiffArgs, DiffResult};
pub use echo::EchoArgs;
pub use limits::JobLimits;
pub use maintain::{MaintainArgs, MaintainResult, Maintenance};
pub use pull::{PullArgs, PullResult};
pub use push::{CommitArgs, PushArgs, PushResult};
pub use release::{ReleaseArgs, ReleaseResult};
pub use sleep::{SleepArgs, SleepResult};
pub use status::{StatusArgs, StatusResult};
pub use write_files::{FileChange, FileEntry, WriteFilesArgs, WriteFilesResult};

/// What a worker accepts beyond the contract's fixed rules. A producer checks as a default
/// worker would ([`Rules::default`]), or with the limits it is configured with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// `file://` repositories and local paths (a worker's `GITFLEET_GIT_ALLOW_FILE`; off by
    /// default).
    pub allow_file_repos: bool,
    /// What one job may ask for ([`JobLimits`]).
    pub limits: JobLimits,
}

/// The args of one op, and the result it answers with.
pub trait OpArgs: Serialize + DeserializeOwned + JsonSchema + Sized {
    /// The op's name in `{"op": ...}`.
    const OP: OpName;
    /// What a run of the op answers with.
    type Result: Serialize + DeserializeOwned + JsonSchema;

    /// Checks `args` field by field, naming the field and the reason of the first that is
    /// wrong.
    fn check(args: &Value, rules: &Rules) -> Result<(), JobError>;

    /// Checks `args`, then reads them into the op's type.
    fn parse(args: &Value, rules: &Rules) -> Result<Self, JobError> {
        Self::check(args, rules)?;
        Self::deserialize(args).map_err(|e| JobError::invalid_input(format!("args: {e}")))
    }

    /// The job that runs the op with these args.
    fn to_spec(&self) -> JobSpec {
        JobSpec::new(
            Self::OP.as_str(),
            serde_json::to_value(self).expect("op args are plain data"),
        )
    }
}

macro_rules! op_names {
    ($($variant:ident => $name:literal, $args:ty;)*) => {
        /// The ops of the contract.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum OpName {
            $($variant,)*
        }

        impl OpName {
            /// Every op, in the order of their names.
            pub const ALL: &[OpName] = &[$(OpName::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(OpName::$variant => $name,)*
                }
            }

            /// Checks `args` by the rules of this op.
            pub fn check(self, args: &Value, rules: &Rules) -> Result<(), JobError> {
                match self {
                    $(OpName::$variant => <$args as OpArgs>::check(args, rules),)*
                }
            }

            /// The JSON Schema of this op's args.
            pub fn args_schema(self) -> Schema {
                match self {
                    $(OpName::$variant => schemars::schema_for!($args),)*
                }
            }

            /// The JSON Schema of this op's result.
            pub fn result_schema(self) -> Schema {
                match self {
                    $(OpName::$variant => schemars::schema_for!(<$args as OpArgs>::Result),)*
                }
            }

            /// This op's args as a subschema of `generator` (a `$ref` to its definitions),
            /// for a document that holds many schemas (the gateway's OpenAPI document).
            pub fn args_subschema(self, generator: &mut SchemaGenerator) -> Schema {
                match self {
                    $(OpName::$variant => generator.subschema_for::<$args>(),)*
                }
            }

            /// This op's result as a subschema of `generator`.
            pub fn result_subschema(self, generator: &mut SchemaGenerator) -> Schema {
                match self {
                    $(OpName::$variant => generator.subschema_for::<<$args as OpArgs>::Result>(),)*
                }
            }
        }
    };
}

// Kept in the order of the names, so "known: ..." lists read alphabetically.
op_names! {
    Change => "change", ChangeArgs;
    Clone => "clone", CloneArgs;
    Diff => "diff", DiffArgs;
    Echo => "echo", EchoArgs;
    Maintain => "maintain", MaintainArgs;
    Pull => "pull", PullArgs;
    Push => "push", PushArgs;
    Release => "release", ReleaseArgs;
    Sleep => "sleep", SleepArgs;
    Status => "status", StatusArgs;
    WriteFiles => "write_files", WriteFilesArgs;
}

impl OpName {
    /// The op called `name`, if the contract has one.
    pub fn from_name(name: &str) -> Option<OpName> {
        OpName::ALL.iter().copied().find(|op| op.as_str() == name)
    }

    /// An op of the fleet's own (`maintain`: a template rebuild refetches every mirror),
    /// accepted from the scheduler and an operator's `gitfleet admin maintain`, never from a
    /// producer acting for an organization.
    pub fn is_internal(self) -> bool {
        matches!(self, OpName::Maintain)
    }
}

/// Checks who a job runs for, by its envelope's organization (`org`: the producer's
/// identity, never the args). An internal op ([`OpName::is_internal`]) is refused from any
/// organization; any other op is refused without one when the fleet requires it
/// (`require_org`, a worker's `GITFLEET_REQUIRE_ORG`). Unknown ops pass: they are refused
/// by name elsewhere.
pub fn check_identity(op: &str, org: Option<&str>, require_org: bool) -> Result<(), JobError> {
    let op = OpName::from_name(op);
    match (op, org) {
        (Some(op), Some(org)) if op.is_internal() => Err(JobError::invalid_input(format!(
            "op: {op} is internal to the fleet (the scheduler, `gitfleet admin maintain`); \
             it is not accepted from a producer acting for organization {org}"
        ))),
        (Some(op), None) if require_org && !op.is_internal() => Err(JobError::invalid_input(
            "org: this fleet requires every job to name its organization (the producer's \
             identity: the client's configured org, the CLI's --org or GITFLEET_ORG, the \
             gateway's API key); this job has none",
        )),
        _ => Ok(()),
    }
}

impl fmt::Display for OpName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a job as a producer must before enqueueing it: its shape, its op, its args.
pub fn validate(spec: &JobSpec, rules: &Rules) -> Result<OpName, JobError> {
    spec.check_shape()?;
    let op = OpName::from_name(&spec.op).ok_or_else(|| {
        JobError::invalid_input(format!(
            "op: unknown op {:?} (known: {})",
            spec.op,
            OpName::ALL
                .iter()
                .map(|op| op.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    no_org_arg(&spec.args)?;
    op.check(&spec.args, rules)?;
    Ok(op)
}

/// Refuses args that name an organization (`org_id`): who a job runs for is its envelope's
/// organization, the producer's identity, and a job that believes otherwise is told so
/// rather than run for someone it did not mean.
pub fn no_org_arg(args: &Value) -> Result<(), JobError> {
    if args.get("org_id").is_some() {
        return Err(JobError::invalid_input(
            "args.org_id: the organization a job runs for is the producer's identity (the \
             client's configured org, the CLI's --org or GITFLEET_ORG, the gateway's API key), \
             never an argument; remove it",
        ));
    }
    Ok(())
}

/// The queue a job goes to when the producer named none: the own queue of the worker that
/// holds the sandbox it names (or, for `maintain`, of the worker it is for), else `None`
/// (the shared queue).
pub fn route(spec: &JobSpec) -> Option<String> {
    if spec.op == OpName::Maintain.as_str() {
        return maintain::request(&spec.args)
            .ok()
            .map(|(worker, _)| own_queue(worker));
    }
    fields::sandbox_id(&spec.args)
        .ok()
        .map(|(_, worker)| own_queue(worker))
}

#[cfg(test)]
mod tests;
