//! gitfleet-contract: the job contract as types, the product's public interface.
//!
//! What a producer sends ([`JobSpec`]), what it reads back ([`JobRecord`], [`JobStatus`],
//! [`JobError`] with its [`ErrorKind`]), and for every op its args and result ([`ops`]),
//! with the rules on every field ([`fields`], [`rules`], [`names`]), the one redaction
//! function every message passes ([`Redactor`]), and what an API key may do ([`Role`]).
//! No I/O: no Redis, Postgres, tokio or git, so every producer (the client, the CLI, the
//! gateway) and every worker builds on it, and the gateway's OpenAPI and MCP schemas are
//! generated from these same types.

pub mod auth;
pub mod config;
pub mod credentials;
pub mod egress;
pub mod envelope;
pub mod error;
pub mod fields;
pub mod job;
pub mod names;
pub mod ops;
pub mod record;
pub mod redact;
pub mod rules;
pub mod status;
pub mod steps;

pub use auth::Role;
pub use credentials::{Credential, Credentials, CredentialsError, PlainHttp, UrlPrefix};
pub use egress::EgressPolicy;
pub use envelope::{EnqueueOptions, Enqueued};
pub use error::{ErrorKind, JobError};
pub use job::JobSpec;
pub use names::{
    DEFAULT_QUEUE, own_queue, own_queue_worker, validate_org_id, validate_queue_name,
    validate_worker_id,
};
pub use ops::{OpArgs, OpName, Rules};
pub use record::{JobRecord, fmt_time, rfc3339_micros, time_from_micros};
pub use redact::Redactor;
pub use status::JobStatus;
pub use steps::{GitCommand, GitStep, GitSteps, StepOutcome, StepPhase};
