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
//! each by locking (`flock`) and renaming it first, so a file is replayed by one writer at a
//! time; a line that cannot be read is moved to a quarantine file beside it and the rest is
//! replayed. Replaying a record twice is harmless: every write is an idempotent upsert that
//! never goes back in time (`record.rs`).
//! The one loss left: a worker killed outright (SIGKILL, OOM) loses the records it had in
//! memory; its overflow file stays on disk for an operator.
//!
//! Here: the writer task and its batching. [`Recorder`] (in `recorder.rs`) is what workers
//! call; the overflow and spool files are `spool.rs`.

mod recorder;
mod spool;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::spool::Spool;
use super::record::{Record, WorkerEvent};
use super::{Store, StoreError};

pub use recorder::{Recorder, RunToken};

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

/// Whose records a writer writes: a worker's (whose row it keeps, with a heartbeat) or a
/// producer's, such as a gateway replica (no row of its own; `name` names its spool files).
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    Worker(WorkerEvent),
    Producer(String),
}

impl Owner {
    fn name(&self) -> &str {
        match self {
            Owner::Worker(w) => &w.worker_id,
            Owner::Producer(name) => name,
        }
    }
}

/// Starts the writer task for `owner`, fed by `rx`.
fn spawn(
    store: Store,
    config: WriterConfig,
    owner: Owner,
    rx: mpsc::UnboundedReceiver<Record>,
) -> WriterHandle {
    let stop = CancellationToken::new();
    let writer = Writer::new(store, config, owner, rx, stop.clone());
    let task = tokio::spawn(writer.run());
    WriterHandle { stop, task }
}

struct Writer {
    store: Store,
    config: WriterConfig,
    owner: Owner,
    rx: mpsc::UnboundedReceiver<Record>,
    stop: CancellationToken,
    pending: VecDeque<Record>,
    /// The overflow file and the spool files: records kept on disk.
    spool: Spool,
    /// The batch read back from a file of the spool that is not written yet.
    replay_batch: Vec<Record>,
    migrated: bool,
    report: WriterReport,
}

impl Writer {
    fn new(
        store: Store,
        config: WriterConfig,
        owner: Owner,
        rx: mpsc::UnboundedReceiver<Record>,
        stop: CancellationToken,
    ) -> Self {
        let spool = Spool::new(config.spool_dir.clone(), owner.name().to_string());
        Self {
            store,
            config,
            owner,
            rx,
            stop,
            pending: VecDeque::new(),
            spool,
            replay_batch: Vec::new(),
            migrated: false,
            report: WriterReport::default(),
        }
    }

    fn has_work(&self) -> bool {
        !self.pending.is_empty() || !self.replay_batch.is_empty() || self.spool.has_records()
    }

    /// Keeps the worker's row (a producer has none).
    fn heartbeat(&mut self, state: &str) {
        let Owner::Worker(worker) = &mut self.owner else {
            return;
        };
        worker.state = state.to_string();
        worker.at = Utc::now();
        let beat = Record::Worker(worker.clone());
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
        while (!self.pending.is_empty()
            || !self.replay_batch.is_empty()
            || self.spool.overflowing())
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
        if !self.spool.overflowing() && self.pending.len() >= self.config.memory_limit {
            self.spool.open_overflow(self.config.memory_limit);
        }
        if self.spool.overflow(&record) {
            return;
        }
        self.pending.push_back(record);
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
            self.spool
                .read_batch(&mut self.replay_batch, self.config.batch);
        }
        if !self.replay_batch.is_empty() {
            let batch = std::mem::take(&mut self.replay_batch);
            if let Err(e) = self.apply(&batch).await {
                self.replay_batch = batch;
                return Err(e);
            }
            self.spool.batch_written();
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

    /// Saves whatever could not be written, for the next writer to start here.
    fn spool_rest(&mut self) {
        let mut rest: Vec<Record> = self.pending.drain(..).collect();
        rest.append(&mut self.replay_batch);
        self.report.spooled = self.spool.save(rest);
    }
}
