//! The recorder workers call: what a job's start and end, an answered job or a stopping
//! worker mean for the record (a job row, a run, the sandbox registry), turned into
//! [`Record`]s and handed to the writer task without blocking. It keeps the live sandboxes'
//! use and error counts, so the registry's rows carry totals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Owner, WriterConfig, WriterHandle, spawn};
use crate::Store;
use crate::record::{
    JobEvent, Record, RepoStatsDelta, RepoStatsFlush, SandboxEvent, SandboxOrigin, SandboxSource,
    SandboxStatus, WorkerEvent,
};
use gitfleet_contract::Redactor;
use gitfleet_contract::steps::GitSteps;
use gitfleet_contract::{ErrorKind, JobError, JobSpec, JobStatus, time_from_micros};
use gitfleet_queue::{AnsweredJob, Delivery, Outcome};

/// A result larger than this (as JSON) is stored as `{"truncated": true, "bytes": n}`: a
/// diff can be megabytes, and the record is for history, not for the agent.
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Hands records to the writer. Cheap to clone; a disabled one does nothing.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    tx: mpsc::UnboundedSender<Record>,
    worker_id: String,
    redactor: Redactor,
    /// Uses and errors of this worker's live sandboxes (the registry stores totals, so a
    /// replayed record cannot count twice), and the organization each belongs to: a job of
    /// another organization naming one was answered as for no sandbox, and counts nothing.
    sandboxes: Mutex<HashMap<String, LiveSandbox>>,
    /// The last per-repository flush's sequence ([`Recorder::repo_stats`]).
    repo_stats_seq: AtomicU64,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// What the recorder keeps of a live sandbox.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    uses: u32,
    errors: u32,
}

#[derive(Debug, Clone)]
struct LiveSandbox {
    org: Option<String>,
    counts: Counts,
}

/// What a job's start left for its end.
#[derive(Debug, Clone)]
pub struct RunToken {
    base: JobEvent,
}

impl Recorder {
    /// A recorder that records nothing (no Postgres configured).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the writer for worker `worker_id` (whose row it keeps: `worker`) and returns
    /// the recorder that feeds it.
    pub fn start(
        store: Store,
        config: WriterConfig,
        worker: WorkerEvent,
        redactor: Redactor,
    ) -> (Recorder, WriterHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let recorder = Recorder {
            inner: Some(Arc::new(Inner {
                tx,
                worker_id: worker.worker_id.clone(),
                redactor,
                sandboxes: Mutex::new(HashMap::new()),
                repo_stats_seq: AtomicU64::new(0),
            })),
        };
        (recorder, spawn(store, config, Owner::Worker(worker), rx))
    }

    /// Starts a writer for a producer (a gateway replica): the rows of the jobs it enqueues
    /// are written off the request path. It keeps no row of its own; `name` (unique per
    /// process) names its spool files.
    pub fn start_producer(
        store: Store,
        config: WriterConfig,
        name: impl Into<String>,
        redactor: Redactor,
    ) -> (Recorder, WriterHandle) {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = name.into();
        let recorder = Recorder {
            inner: Some(Arc::new(Inner {
                tx,
                worker_id: name.clone(),
                redactor,
                sandboxes: Mutex::new(HashMap::new()),
                repo_stats_seq: AtomicU64::new(0),
            })),
        };
        (recorder, spawn(store, config, Owner::Producer(name), rx))
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a record. Never blocks, never fails.
    pub fn record(&self, record: Record) {
        if let Some(inner) = &self.inner
            && inner.tx.send(record).is_err()
        {
            tracing::error!("record writer stopped; a record was dropped");
        }
    }

    /// Records that a run of a job starts (and that its sandbox is in use).
    pub fn job_started(&self, d: &Delivery, spec: Option<&JobSpec>) -> Option<RunToken> {
        let inner = self.inner.as_ref()?;
        let now = Utc::now();
        let base = JobEvent {
            attempts: d.attempts,
            max_attempts: (d.max_attempts > 0).then_some(d.max_attempts),
            worker_id: Some(inner.worker_id.clone()),
            run_id: Some(ulid::Ulid::new().to_string()),
            enqueued_at: time_from_micros(d.enqueued_at_us).filter(|_| d.enqueued_at_us > 0),
            started_at: Some(now),
            org_id: d.org.clone(),
            ..JobEvent::new(
                &d.id,
                spec.map_or("?", |s| s.op.as_str()),
                &d.queue,
                JobStatus::Running,
                spec.map(|s| &s.args),
            )
        };
        self.record(Record::Job(base.clone()));
        if let Some(id) = &base.sandbox_id
            && base.op != "clone"
        {
            let counts = {
                let mut map = inner.sandboxes.lock().expect("not poisoned");
                map.get_mut(id).filter(|s| s.org == base.org_id).map(|s| {
                    s.counts.uses += 1;
                    s.counts
                })
            };
            if let Some(Counts { uses, errors }) = counts {
                self.record(Record::Sandbox(SandboxEvent {
                    sandbox_id: id.clone(),
                    worker_id: inner.worker_id.clone(),
                    status: SandboxStatus::InUse,
                    last_operation: Some(base.op.clone()),
                    use_count: uses,
                    error_count: errors,
                    last_error: None,
                    origin: None,
                    is_pooled: None,
                    ttl_tier: None,
                    expires_at: None,
                    at: now,
                }));
            }
        }
        Some(RunToken { base })
    }

    /// Records how a run ended, its git steps (what the worker recorded while it ran: they
    /// name commands only, so they need no redaction), and what it did to the registry.
    pub fn job_finished(
        &self,
        token: Option<RunToken>,
        spec: Option<&JobSpec>,
        outcome: &Outcome,
        git_steps: Option<GitSteps>,
    ) {
        let (Some(inner), Some(RunToken { base })) = (self.inner.as_ref(), token) else {
            return;
        };
        let now = Utc::now();
        let mut event = JobEvent {
            finished_at: Some(now),
            git_steps,
            ..base
        };
        match outcome {
            Outcome::Done(result) => {
                event.status = JobStatus::Done;
                event.result = Some(self.stored_result(result));
            }
            Outcome::Retry { error, delay } => {
                event.status = JobStatus::Delayed;
                event.error = Some(self.redacted(error));
                event.retry_at = chrono::Duration::from_std(*delay).ok().map(|d| now + d);
            }
            Outcome::Dead(error) => {
                event.status = JobStatus::Dead;
                event.error = Some(self.redacted(error));
            }
        }
        let sandbox = self.sandbox_after(inner, &event, spec, outcome, now);
        self.record(Record::Job(event));
        if let Some(s) = sandbox {
            self.record(Record::Sandbox(s));
        }
    }

    /// Records the final rows of jobs the queue answered `sandbox_not_found` when this
    /// worker reaped a worker that is gone (or left itself). Never blocks.
    pub fn jobs_answered(&self, jobs: &[AnsweredJob]) {
        if let Some(inner) = &self.inner {
            for job in jobs {
                self.record(Record::Job(JobEvent::answered(job, &inner.redactor)));
            }
        }
    }

    /// Records what the worker did with its repositories since the last call (deltas; see
    /// `RepoStatsFlush`). Never blocks; nothing when there is nothing to add.
    pub fn repo_stats(&self, rows: Vec<RepoStatsDelta>) {
        if let Some(inner) = &self.inner
            && !rows.is_empty()
        {
            let seq = inner.repo_stats_seq.fetch_add(1, Ordering::Relaxed) + 1;
            self.record(Record::RepoStats(RepoStatsFlush {
                worker_id: inner.worker_id.clone(),
                seq,
                rows,
                at: Utc::now(),
            }));
        }
    }

    /// Records that every sandbox of this worker is gone (it is stopping).
    pub fn worker_sandboxes_terminated(&self) {
        if let Some(inner) = &self.inner {
            inner.sandboxes.lock().expect("not poisoned").clear();
            self.record(Record::WorkerSandboxesTerminated {
                worker_id: inner.worker_id.clone(),
                at: Utc::now(),
            });
        }
    }

    fn redacted(&self, e: &JobError) -> JobError {
        match &self.inner {
            Some(inner) => JobError::new(e.kind, inner.redactor.redact(&e.message)),
            None => e.clone(),
        }
    }

    fn stored_result(&self, result: &Value) -> Value {
        let text = result.to_string();
        if text.len() > MAX_RESULT_BYTES {
            return serde_json::json!({"truncated": true, "bytes": text.len()});
        }
        let Some(inner) = &self.inner else {
            return result.clone();
        };
        let clean = inner.redactor.redact(&text);
        if clean == text {
            result.clone()
        } else {
            serde_json::from_str(&clean).unwrap_or(Value::String(clean))
        }
    }

    /// The registry's change for a finished job: a clone makes a sandbox, a release ends
    /// one, any other op on a sandbox leaves it ready (or in error).
    fn sandbox_after(
        &self,
        inner: &Inner,
        job: &JobEvent,
        spec: Option<&JobSpec>,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Option<SandboxEvent> {
        let mut event = SandboxEvent {
            sandbox_id: String::new(),
            worker_id: inner.worker_id.clone(),
            status: SandboxStatus::Ready,
            last_operation: Some(job.op.clone()),
            use_count: 0,
            error_count: 0,
            last_error: None,
            origin: None,
            is_pooled: None,
            ttl_tier: None,
            expires_at: None,
            at: now,
        };
        let mut map = inner.sandboxes.lock().expect("not poisoned");
        match (job.op.as_str(), outcome) {
            ("clone", Outcome::Done(result)) => {
                let id = result.get("sandbox_id")?.as_str()?.to_string();
                let args = &spec?.args;
                let text = |name: &str| args.get(name).and_then(Value::as_str);
                map.insert(
                    id.clone(),
                    LiveSandbox {
                        org: job.org_id.clone(),
                        counts: Counts { uses: 1, errors: 0 },
                    },
                );
                event.sandbox_id = id;
                event.use_count = 1;
                event.origin = Some(SandboxOrigin {
                    org_id: job.org_id.clone(),
                    agent_id: job.agent_id.clone(),
                    task_id: job.task_id.clone(),
                    repo_url: inner.redactor.redact(text("repo_url").unwrap_or_default()),
                    branch: text("branch").unwrap_or("main").to_string(),
                    agent_branch: result
                        .get("agent_branch")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    config: serde_json::json!({
                        "shallow": args.get("shallow").cloned().unwrap_or(Value::Bool(false)),
                        "sparse_paths": args.get("sparse_paths").cloned().unwrap_or(Value::Array(vec![])),
                    }),
                    source: result
                        .get("source")
                        .and_then(Value::as_str)
                        .and_then(SandboxSource::parse),
                });
                Some(event)
            }
            ("release", Outcome::Done(result)) => {
                let id = job.sandbox_id.clone()?;
                if map.get(&id)?.org != job.org_id {
                    return None;
                }
                let Counts { uses, errors } = map.remove(&id)?.counts;
                let cached = result.get("cached").and_then(Value::as_bool) == Some(true);
                event.sandbox_id = id;
                event.status = SandboxStatus::Terminated;
                event.use_count = uses;
                event.error_count = errors;
                event.is_pooled = Some(cached);
                if cached {
                    // Just used, so the copy is in the hot tier: kept two hours unless its
                    // repository is among the top ten (the scheduler re-tiers it).
                    event.ttl_tier = Some("hot".into());
                    event.expires_at = Some(now + chrono::Duration::hours(2));
                }
                Some(event)
            }
            (_, outcome) => {
                let id = job.sandbox_id.clone()?;
                // Not this job's sandbox (another organization's): its row is not touched.
                let live = map.get_mut(&id).filter(|s| s.org == job.org_id)?;
                let counts = &mut live.counts;
                if let Outcome::Retry { error, .. } | Outcome::Dead(error) = outcome {
                    counts.errors += 1;
                    event.last_error = Some(format!(
                        "{}: {}",
                        error.kind,
                        inner.redactor.redact(&error.message)
                    ));
                    if matches!(error.kind, ErrorKind::Internal | ErrorKind::SandboxNotFound) {
                        event.status = SandboxStatus::Error;
                    }
                }
                event.sandbox_id = id;
                event.use_count = counts.uses;
                event.error_count = counts.errors;
                Some(event)
            }
        }
    }
}
