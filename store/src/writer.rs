//! The background writer: records go to Postgres in batches, off the job path, and none is
//! lost while Postgres is away.
//!
//! A [`Recorder`] (cheap to clone, never blocks) hands records to one writer task over a
//! channel. The writer drains the channel all the time, Postgres up or down, into a queue in
//! memory of at most `memory_limit` records; past that, records go to an overflow file in
//! the spool directory (and keep going there until it is written, so order holds). It
//! writes batches of up to `batch` records, one transaction each, retrying with backoff
//! (up to 5 s apart) while Postgres is away.
//!
//! When the worker stops, the writer tries for `flush_timeout` to write what it holds, then
//! saves the rest in `<spool>/<worker id>.jsonl`. A writer replays every such file it finds
//! when it starts (its own worker id is new each process, so the files are others'), claiming
//! each by renaming it first. Replaying a record twice is harmless (see [`super::record`]).
//! The one loss left: a worker killed outright (SIGKILL, OOM) loses the records it had in
//! memory; its overflow file stays on disk for an operator.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::record::{JobEvent, Record, SandboxEvent, SandboxOrigin, SandboxStatus, WorkerEvent};
use super::{Store, StoreError};
use gitfleet_contract::Redactor;
use gitfleet_contract::{ErrorKind, JobError, JobSpec, JobStatus, time_from_micros};
use gitfleet_queue::{AnsweredJob, Delivery, Outcome};

/// A result larger than this (as JSON) is stored as `{"truncated": true, "bytes": n}`: a
/// diff can be megabytes, and the record is for history, not for the agent.
const MAX_RESULT_BYTES: usize = 64 * 1024;

/// How the writer buffers and flushes.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Where records that could not be written are kept on disk (`<sandbox root>/spool` in a
    /// worker); `None` keeps everything in memory.
    pub spool_dir: Option<PathBuf>,
    /// Records kept in memory before new ones go to the overflow file (default 50,000).
    pub memory_limit: usize,
    /// Records per transaction, at most (default 500).
    pub batch: usize,
    /// On stop, how long to keep trying to write before spooling the rest (default 3 s).
    pub flush_timeout: Duration,
    /// How often the worker's row gets a heartbeat (default 10 s).
    pub beat_every: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            spool_dir: None,
            memory_limit: 50_000,
            batch: 500,
            flush_timeout: Duration::from_secs(3),
            beat_every: Duration::from_secs(10),
        }
    }
}

/// What a stopped writer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterReport {
    pub written: u64,
    /// Records left in the spool file for the next start.
    pub spooled: u64,
}

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
    /// replayed record cannot count twice).
    sandboxes: Mutex<HashMap<String, (u32, u32)>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

/// What a job's start left for its end.
#[derive(Debug, Clone)]
pub struct RunToken {
    base: JobEvent,
}

/// The running writer.
pub struct WriterHandle {
    stop: CancellationToken,
    task: JoinHandle<WriterReport>,
}

impl WriterHandle {
    /// Writes what it can within the flush timeout, spools the rest, and ends. Records sent
    /// after this are dropped.
    pub async fn close(self) -> WriterReport {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
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
        let stop = CancellationToken::new();
        let recorder = Recorder {
            inner: Some(Arc::new(Inner {
                tx,
                worker_id: worker.worker_id.clone(),
                redactor,
                sandboxes: Mutex::new(HashMap::new()),
            })),
        };
        let writer = Writer::new(store, config, worker, rx, stop.clone());
        let task = tokio::spawn(writer.run());
        (recorder, WriterHandle { stop, task })
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
                map.get_mut(id).map(|c| {
                    c.0 += 1;
                    *c
                })
            };
            if let Some((uses, errors)) = counts {
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

    /// Records how a run ended, and what it did to the registry.
    pub fn job_finished(&self, token: Option<RunToken>, spec: Option<&JobSpec>, outcome: &Outcome) {
        let (Some(inner), Some(RunToken { base })) = (self.inner.as_ref(), token) else {
            return;
        };
        let now = Utc::now();
        let mut event = JobEvent {
            finished_at: Some(now),
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
                map.insert(id.clone(), (1, 0));
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
                });
                Some(event)
            }
            ("release", Outcome::Done(result)) => {
                let id = job.sandbox_id.clone()?;
                let (uses, errors) = map.remove(&id)?;
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
                let counts = map.get_mut(&id)?;
                if let Outcome::Retry { error, .. } | Outcome::Dead(error) = outcome {
                    counts.1 += 1;
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
                event.use_count = counts.0;
                event.error_count = counts.1;
                Some(event)
            }
        }
    }
}

/// Reads a spool or overflow file a batch of lines at a time.
struct Replay {
    path: PathBuf,
    reader: BufReader<File>,
}

struct Writer {
    store: Store,
    config: WriterConfig,
    worker: WorkerEvent,
    rx: mpsc::UnboundedReceiver<Record>,
    stop: CancellationToken,
    pending: VecDeque<Record>,
    /// Records that did not fit in memory, oldest first; while it exists every new record
    /// goes there too.
    overflow: Option<(PathBuf, BufWriter<File>)>,
    /// The file being written back (the overflow file, or another process's spool file),
    /// and the batch read from it that is not written yet.
    replay: Option<Replay>,
    replay_batch: Vec<Record>,
    /// Spool files of other processes, to replay once memory is empty.
    claimable: Vec<PathBuf>,
    migrated: bool,
    report: WriterReport,
    warned_unspooled: bool,
}

impl Writer {
    fn new(
        store: Store,
        config: WriterConfig,
        worker: WorkerEvent,
        rx: mpsc::UnboundedReceiver<Record>,
        stop: CancellationToken,
    ) -> Self {
        let claimable = config
            .spool_dir
            .as_deref()
            .map(|dir| spool_files(dir, &worker.worker_id))
            .unwrap_or_default();
        if !claimable.is_empty() {
            tracing::info!(
                files = claimable.len(),
                "records: replaying spool files left by earlier workers"
            );
        }
        Self {
            store,
            config,
            worker,
            rx,
            stop,
            pending: VecDeque::new(),
            overflow: None,
            replay: None,
            replay_batch: Vec::new(),
            claimable,
            migrated: false,
            report: WriterReport::default(),
            warned_unspooled: false,
        }
    }

    fn has_work(&self) -> bool {
        !self.pending.is_empty()
            || !self.replay_batch.is_empty()
            || self.replay.is_some()
            || self.overflow.is_some()
            || !self.claimable.is_empty()
    }

    fn heartbeat(&mut self, state: &str) {
        self.worker.state = state.to_string();
        self.worker.at = Utc::now();
        let beat = Record::Worker(self.worker.clone());
        self.push(beat);
    }

    async fn run(mut self) -> WriterReport {
        self.heartbeat("running");
        let mut next_beat = Instant::now() + self.config.beat_every;
        let mut backoff = Duration::from_millis(100);
        let mut down_since: Option<Instant> = None;
        loop {
            if !self.has_work() {
                tokio::select! {
                    r = self.rx.recv() => match r {
                        Some(r) => self.push(r),
                        None => break,
                    },
                    _ = self.stop.cancelled() => break,
                    _ = tokio::time::sleep_until(next_beat.into()) => {}
                }
            }
            while let Ok(r) = self.rx.try_recv() {
                self.push(r);
            }
            if Instant::now() >= next_beat {
                self.heartbeat("running");
                next_beat = Instant::now() + self.config.beat_every;
            }
            if self.stop.is_cancelled() {
                break;
            }
            match self.write_some().await {
                Ok(()) => {
                    if let Some(since) = down_since.take() {
                        tracing::info!(
                            down_ms = since.elapsed().as_millis() as u64,
                            "records: postgres is back; writing what was kept"
                        );
                    }
                    backoff = Duration::from_millis(100);
                }
                Err(e) => {
                    if down_since.is_none() {
                        down_since = Some(Instant::now());
                        tracing::warn!(error = %e, url = %self.store.redacted_url(), "records: cannot write to postgres; keeping them until it is back (jobs go on)");
                    }
                    let wake = tokio::time::sleep(backoff);
                    tokio::pin!(wake);
                    loop {
                        tokio::select! {
                            r = self.rx.recv() => match r {
                                Some(r) => self.push(r),
                                None => break,
                            },
                            _ = self.stop.cancelled() => break,
                            _ = &mut wake => break,
                        }
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.finish().await
    }

    /// After stop: take what is left in the channel, try to write it for a while, spool
    /// the rest.
    async fn finish(mut self) -> WriterReport {
        self.rx.close();
        while let Ok(r) = self.rx.try_recv() {
            self.push(r);
        }
        self.heartbeat("stopped");
        let deadline = Instant::now() + self.config.flush_timeout;
        while (!self.pending.is_empty() || !self.replay_batch.is_empty() || self.overflow.is_some())
            && Instant::now() < deadline
        {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.write_some()).await {
                Ok(Ok(())) => {}
                _ => tokio::time::sleep(left.min(Duration::from_millis(200))).await,
            }
        }
        self.spool_rest();
        self.report
    }

    /// Keeps a record, in memory or, past the limit, in the overflow file.
    fn push(&mut self, record: Record) {
        if self.overflow.is_none() && self.pending.len() >= self.config.memory_limit {
            self.open_overflow();
        }
        if let Some((_, file)) = &mut self.overflow {
            let line = serde_json::to_string(&record).expect("records serialize");
            if writeln!(file, "{line}").is_ok() {
                return;
            }
            tracing::error!("records: cannot write the overflow file; keeping records in memory");
        }
        self.pending.push_back(record);
    }

    fn open_overflow(&mut self) {
        let Some(dir) = &self.config.spool_dir else {
            if !self.warned_unspooled {
                self.warned_unspooled = true;
                tracing::warn!(
                    limit = self.config.memory_limit,
                    "records: memory limit reached and no spool directory; keeping them in memory"
                );
            }
            return;
        };
        let path = dir.join(format!("{}.overflow", self.worker.worker_id));
        let opened = std::fs::create_dir_all(dir)
            .and_then(|_| OpenOptions::new().create(true).append(true).open(&path));
        match opened {
            Ok(f) => {
                tracing::warn!(path = %path.display(), "records: memory limit reached; new records go to the overflow file");
                self.overflow = Some((path, BufWriter::new(f)));
            }
            Err(e) => tracing::error!(error = %e, "records: cannot open the overflow file"),
        }
    }

    /// Writes one batch: from memory first, then from the file being replayed (the overflow
    /// file, then other processes' spool files).
    async fn write_some(&mut self) -> Result<(), StoreError> {
        if !self.migrated {
            self.store.migrate().await?;
            self.migrated = true;
        }
        if !self.pending.is_empty() {
            let n = self.pending.len().min(self.config.batch);
            let batch: Vec<Record> = self.pending.range(..n).cloned().collect();
            self.apply(&batch).await?;
            self.pending.drain(..n);
            return Ok(());
        }
        if self.replay_batch.is_empty() {
            self.fill_replay_batch();
        }
        if !self.replay_batch.is_empty() {
            let batch = std::mem::take(&mut self.replay_batch);
            if let Err(e) = self.apply(&batch).await {
                self.replay_batch = batch;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn apply(&mut self, batch: &[Record]) -> Result<(), StoreError> {
        match tokio::time::timeout(Duration::from_secs(15), self.store.apply(batch)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(StoreError::Db(sqlx::Error::PoolTimedOut));
            }
        }
        self.report.written += batch.len() as u64;
        Ok(())
    }

    /// Reads the next batch to replay, opening the next file when one is done.
    fn fill_replay_batch(&mut self) {
        loop {
            if self.replay.is_none() && !self.open_next_replay() {
                return;
            }
            let replay = self.replay.as_mut().expect("just opened");
            let mut line = String::new();
            while self.replay_batch.len() < self.config.batch {
                line.clear();
                match replay.reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if line.trim().is_empty() => {}
                    Ok(_) => match serde_json::from_str::<Record>(line.trim()) {
                        Ok(r) => self.replay_batch.push(r),
                        Err(e) => {
                            tracing::error!(error = %e, path = %replay.path.display(), "records: skipping a line of a spool file that does not parse")
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, path = %replay.path.display(), "records: cannot read a spool file");
                        break;
                    }
                }
            }
            if !self.replay_batch.is_empty() {
                return;
            }
            // This file is done: everything in it is written.
            let done = self.replay.take().expect("open");
            let _ = std::fs::remove_file(&done.path);
        }
    }

    /// Opens the overflow file (once memory is empty) or a spool file to replay.
    fn open_next_replay(&mut self) -> bool {
        if let Some((path, mut file)) = self.overflow.take() {
            // From here new records go to memory again; the file is read back in order.
            let _ = file.flush();
            drop(file);
            let claimed = path.with_extension(format!("{}.replaying", ulid::Ulid::new()));
            if std::fs::rename(&path, &claimed).is_ok()
                && let Ok(f) = File::open(&claimed)
            {
                self.replay = Some(Replay {
                    path: claimed,
                    reader: BufReader::new(f),
                });
                return true;
            }
        }
        while let Some(path) = self.claimable.pop() {
            let claimed = path.with_extension(format!(
                "{}.{}.replaying",
                self.worker.worker_id,
                ulid::Ulid::new()
            ));
            // Another process may have claimed it first: then it is theirs.
            if std::fs::rename(&path, &claimed).is_ok()
                && let Ok(f) = File::open(&claimed)
            {
                self.replay = Some(Replay {
                    path: claimed,
                    reader: BufReader::new(f),
                });
                return true;
            }
        }
        false
    }

    /// Saves whatever could not be written to `<spool>/<worker id>.jsonl`.
    fn spool_rest(&mut self) {
        let mut rest: Vec<Record> = self.pending.drain(..).collect();
        rest.append(&mut self.replay_batch);
        let overflow = self.overflow.take();
        if rest.is_empty() && overflow.is_none() {
            return;
        }
        let Some(dir) = self.config.spool_dir.clone() else {
            tracing::error!(
                records = rest.len(),
                "records: postgres unreachable at exit and no spool directory; records lost"
            );
            return;
        };
        let path = dir.join(format!("{}.jsonl", self.worker.worker_id));
        let mut spooled = rest.len() as u64;
        let written = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut out = BufWriter::new(OpenOptions::new().create(true).append(true).open(&path)?);
            for r in &rest {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(r).expect("records serialize")
                )?;
            }
            out.flush()
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, path = %path.display(), records = rest.len(), "records: cannot save records for later; lost");
            spooled = 0;
        }
        if let Some((opath, mut file)) = overflow {
            let _ = file.flush();
            drop(file);
            // Becomes a spool file of its own, replayed in full by the next writer.
            let target = dir.join(format!("{}-overflow.jsonl", self.worker.worker_id));
            if std::fs::rename(&opath, &target).is_ok() {
                spooled += count_lines(&target);
            }
        }
        // A file half replayed stays as it is (`*.replaying`): the next writer replays it
        // whole, which is harmless.
        self.report.spooled = spooled;
        tracing::warn!(records = spooled, path = %path.display(), "records: postgres unreachable; saved for the next worker to start here");
    }
}

fn count_lines(path: &Path) -> u64 {
    File::open(path)
        .map(|f| BufReader::new(f).lines().count() as u64)
        .unwrap_or(0)
}

/// Spool files to replay: every `*.jsonl` and `*.replaying` file of another process.
fn spool_files(dir: &Path, own_worker: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.ends_with(".jsonl") || name.ends_with(".replaying"))
                && !name.starts_with(own_worker)
        })
        .collect();
    // Any order will do (every write is order-independent); sorted, for a stable one.
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_a_spool_line() {
        let r = Record::WorkerSandboxesTerminated {
            worker_id: "w-1".into(),
            at: Utc::now(),
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
