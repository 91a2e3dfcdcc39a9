//! The envelope of a job, as far as a producer sets it and reads it back: how it is enqueued
//! beyond its op and args ([`EnqueueOptions`]) and what the queue answered ([`Enqueued`]).
//! The rest of the envelope (attempts, times, the worker) is in [`crate::JobRecord`].

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::JobError;
use crate::status::JobStatus;

/// How a job is enqueued, beyond its op and args.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueOptions {
    /// The organization the job runs for: the producer's identity, set by the producer
    /// (the client from its configuration, the CLI from `--org`/`GITFLEET_ORG`, the gateway
    /// from the API key), never taken from the args. Workers authorize and meter by it, and
    /// idempotency keys are scoped by it. `None`: a trusted internal producer's job.
    pub org: Option<String>,
    /// Run no earlier than this long from now.
    pub delay: Option<Duration>,
    /// A second enqueue of the same job (op and args) with the same key for the same
    /// organization, within the idempotency TTL, returns the first job's id and enqueues
    /// nothing; the same key with a different job is refused (`conflict`).
    pub idempotency_key: Option<String>,
    /// What the request that used `idempotency_key` looked like beyond the job itself (the
    /// gateway passes a hash of the whole request body): a second use of the key with the
    /// same job but another fingerprint is refused (`conflict`) too. `None`: only the op and
    /// args are compared.
    pub idempotency_fingerprint: Option<String>,
    /// Runs allowed before the job is dead; `None`: the op's default (5).
    pub max_attempts: Option<u32>,
    /// Time allowed for one run; `None`: the op's default.
    pub timeout: Option<Duration>,
}

/// What the queue answered to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Enqueued {
    pub job_id: String,
    pub status: JobStatus,
    /// False when an idempotency key matched an earlier job (whose id this is).
    pub created: bool,
    /// When the job was enqueued, by Redis's clock (the record's `enqueued_at`): what a
    /// producer needs to answer with the job's record without reading it back. Not part of
    /// the wire form; `None` when the queue did not say (a record gone).
    #[serde(skip)]
    #[schemars(skip)]
    pub enqueued_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Checks an idempotency key: 1-200 characters, none of them control characters.
pub fn validate_idempotency_key(key: &str) -> Result<(), JobError> {
    if key.is_empty() || key.len() > 200 || key.chars().any(|c| c.is_control()) {
        return Err(JobError::invalid_input(
            "idempotency_key: must be 1-200 characters, none of them control characters",
        ));
    }
    Ok(())
}
