//! The worker runtime: one process, one worker id, one apalis worker per queue it serves.
//!
//! Beside the apalis workers run a few small loops: per queue a fetcher (blocking `BLMOVE`,
//! then batches) and a promoter (delayed jobs that fell due), one acknowledger (outcomes to
//! Redis in batches) and one heartbeat (which also recovers jobs of dead workers).
//!
//! With a store ([`Worker::with_store`]), a record writer keeps the durable record in
//! Postgres off the job path, and jobs of organizations over budget are refused.
//!
//! Shutdown, in order: stop fetching; let apalis finish the jobs in flight (up to the grace
//! period); flush the acknowledger; give back whatever is still held; answer the jobs left
//! in this worker's own queue (`sandbox_not_found`: its sandboxes die with it); deregister;
//! mark its sandboxes terminated in the record and flush the record writer (what Postgres
//! does not take in time is spooled to disk for the next worker to replay).
//!
//! Draining (asked through Redis: `Queue::drain_worker`, the gateway's
//! `POST /v1/workers/{id}/drain`; see [`drain`]). From the request on, Redis starts no job
//! for the worker and answers a job enqueued for its own queue at once (`sandbox_not_found`).
//! The worker learns of it at its next beat or fetch, says `draining`, stops its fetchers
//! (every queue, its own included), answers the jobs waiting in its own queue, and lets the
//! jobs it holds run to their end (no grace period: a drain waits for them). Then, drained,
//! it lets go of its own queue, locks and live sandboxes ([`Worker::retire`]), says
//! `drained`, and idles, beating, until the request is withdrawn (it serves again, with
//! fresh fetchers) or it is stopped (the shutdown below, with nothing left to finish). A
//! SIGTERM while draining is the shutdown below, its grace period counted from the signal.
//!
//! Fencing. A worker silent for longer than the dead-after time (paused, starved, cut off)
//! is declared dead by a survivor: its held jobs go to others, its own queue is answered
//! `sandbox_not_found`, its locks are freed. If it wakes up, the first of its beat, fetch
//! or acknowledgement to reach Redis is refused (`fenced`), and it stops serving at once:
//! no new job, the running ones cut off (their work is another's now; a push under a lock
//! is stopped by the lock's own check, [`gitfleet_queue::Lock::confirm`]), nothing
//! acknowledged, nothing given back (recovery did that), its sandboxes, copies and mirrors
//! deleted (they were declared gone; none is reused), its sandboxes marked terminated in the
//! record. Then [`Worker::run`] returns with [`ShutdownReport::declared_dead`] set, and the
//! binary exits with status 2: a new process, with a new id and an empty root, takes its
//! place (its supervisor restarts it: Kubernetes, compose, systemd). It does not rejoin
//! under a new id in the same process: everything here (sandbox root, own queue, locks,
//! records) is keyed by the id, and a fresh process is the one state known to be clean.

mod ack;
mod backend;
mod config;
mod drain;
mod fetch;
mod heartbeat;
mod in_flight;
mod promote;
mod repo_stats;
mod retry;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::layers::WorkerBuilderExt;
use apalis_core::worker::builder::WorkerBuilder;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use backend::{JobService, QueueBackend, Run};
pub use config::WorkerConfig;
pub use retry::RetryPolicy;

use gitfleet_contract::{JobError, validate_worker_id};
use gitfleet_queue::{Queue, QueueError, WorkerState};
use gitfleet_store::writer::WriterConfig;
use gitfleet_store::{Budgets, Recorder, Store, WorkerEvent};

use crate::ops::Ops;
use crate::sandbox::{GitSettings, SandboxManager};
use backend::Ack;
use drain::Drain;
use in_flight::InFlight;

/// How long a starting worker waits for its first list of organizations over budget
/// before it serves without one (see `Worker::start_records`).
const FIRST_BUDGETS_WITHIN: Duration = Duration::from_secs(2);

/// Why a worker could not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What a stopped worker did on its way out.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// Every job in flight finished within the grace period.
    pub drained: bool,
    /// Jobs given back to their queues (unstarted, or cut off by the grace period).
    pub requeued: u64,
    /// Jobs in this worker's own queue answered `sandbox_not_found`.
    pub answered: u64,
    /// The fleet had declared this worker dead (it was silent past the dead-after time):
    /// it stopped serving on its own, dropping its jobs, sandboxes and locks (see the
    /// module docs). Its process should exit and be replaced.
    pub declared_dead: bool,
}

/// A worker, configured but not yet running.
pub struct Worker {
    id: String,
    queue: Queue,
    config: WorkerConfig,
    ops: Arc<Ops>,
    sandboxes: Option<Arc<SandboxManager>>,
    store: Option<StoreSettings>,
}

/// The durable record a worker keeps (see [`gitfleet_store`]).
struct StoreSettings {
    store: Store,
    writer: WriterConfig,
    budget_refresh: Duration,
}

/// Makes a worker id unique per process: `<stem>-<ulid>`, the stem reduced to letters,
/// digits and `-` (a pod or host name usually is already).
pub fn new_worker_id(stem: &str) -> String {
    let mut clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(60)
        .collect();
    clean = clean.trim_matches('-').to_string();
    if clean.is_empty() {
        clean = "worker".into();
    }
    format!("{clean}-{}", ulid::Ulid::new())
}

impl Worker {
    pub fn new(queue: Queue, config: WorkerConfig, ops: Ops) -> Self {
        Self {
            id: new_worker_id(&config.name_stem),
            queue,
            config,
            ops: Arc::new(ops),
            sandboxes: None,
            store: None,
        }
    }

    /// Gives the worker sandboxes, so it can run git ops. Make them with this worker's
    /// [`Worker::id`] (or let [`Worker::with_git`] do it).
    pub fn with_sandboxes(mut self, sandboxes: Arc<SandboxManager>) -> Self {
        self.sandboxes = Some(sandboxes);
        self
    }

    /// Sets up git and this worker's sandboxes as `settings` say (under
    /// `<root>/<worker id>`), so it can run git ops.
    pub async fn with_git(self, settings: &GitSettings) -> Result<Self, JobError> {
        let sandboxes = settings.sandboxes(&self.id).await?;
        Ok(self.with_sandboxes(sandboxes))
    }

    /// Keeps the durable record in `store`: job history, the sandbox registry, this
    /// worker's row, written in the background by a writer configured by `writer` (which
    /// keeps what it cannot write; see [`gitfleet_store::writer`]); and refuses jobs of
    /// organizations over budget, re-reading the list every `budget_refresh`. Without it
    /// the worker records nothing and enforces no budget.
    pub fn with_store(
        mut self,
        store: Store,
        writer: WriterConfig,
        budget_refresh: Duration,
    ) -> Self {
        self.store = Some(StoreSettings {
            store,
            writer,
            budget_refresh,
        });
        self
    }

    /// This process's worker id; its own queue is `worker:<id>`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this worker's git runs in the bubblewrap jail (false without sandboxes).
    pub fn git_jailed(&self) -> bool {
        self.sandboxes.as_ref().is_some_and(|s| s.git().jailed())
    }

    /// Starts the worker in the background and returns a handle to stop it.
    pub async fn start(self) -> Result<RunningWorker, WorkerError> {
        let stop = CancellationToken::new();
        let id = self.id.clone();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let signal = stop.clone();
        let task = tokio::spawn(async move {
            self.run_inner(signal.cancelled_owned(), Some(ready_tx))
                .await
        });
        match ready_rx.await {
            Ok(Ok(())) => Ok(RunningWorker { id, stop, task }),
            Ok(Err(e)) => Err(e),
            Err(_) => match task.await {
                Ok(Err(e)) => Err(e),
                _ => Err(WorkerError::Config("worker task ended during start".into())),
            },
        }
    }

    /// Runs until `shutdown` resolves, then stops as described in the module docs.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<ShutdownReport, WorkerError> {
        self.run_inner(shutdown, None).await
    }

    async fn run_inner(
        self,
        shutdown: impl Future<Output = ()>,
        ready: Option<tokio::sync::oneshot::Sender<Result<(), WorkerError>>>,
    ) -> Result<ShutdownReport, WorkerError> {
        let started = self.start_loops().await;
        let loops = match started {
            Ok(v) => {
                if let Some(tx) = ready {
                    let _ = tx.send(Ok(()));
                }
                v
            }
            Err(e) => {
                if let Some(tx) = ready {
                    let _ = tx.send(Err(WorkerError::Config(e.to_string())));
                }
                return Err(e);
            }
        };
        tracing::info!(worker = %self.id, queues = ?self.config.queues, "worker started");
        tokio::pin!(shutdown);
        let declared_dead = loops.declared_dead.clone();
        let drain = loops.drain.clone();
        let mut serving = Some(self.serve(&loops));
        // Serving, then (asked to drain) draining, then drained and idle until undrained:
        // round again; until a stop, or being declared dead.
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                () = declared_dead.cancelled() => return Ok(self.stop_declared_dead(loops, serving).await),
                () = drain.requested() => {}
            }
            let mut s = serving.take().expect("serving until drained");
            drain.set_state(WorkerState::Draining);
            tracing::info!(worker = %self.id, "draining: no new jobs from any queue, finishing the ones running");
            s.stop_fetching.cancel();
            match self.queue.answer_own_queue(&self.id).await {
                Ok(r) => loops.records.jobs_answered(&r.jobs),
                // Answered when it has drained, then.
                Err(e) => {
                    tracing::warn!(error = %e, "could not answer the jobs waiting in the own queue yet")
                }
            }
            tokio::select! {
                () = s.jobs_done() => {}
                () = &mut shutdown => {
                    serving = Some(s);
                    break;
                }
                () = declared_dead.cancelled() => return Ok(self.stop_declared_dead(loops, Some(s)).await),
            }
            s.finish(None).await;
            self.retire(&loops).await;
            drain.set_state(WorkerState::Drained);
            tracing::info!(worker = %self.id, "drained: every job it held is finished; idle until undrained or stopped");
            tokio::select! {
                () = &mut shutdown => break,
                () = declared_dead.cancelled() => return Ok(self.stop_declared_dead(loops, None).await),
                () = drain.withdrawn() => {}
            }
            drain.set_state(WorkerState::Running);
            serving = Some(self.serve(&loops));
            tracing::info!(worker = %self.id, "undrained: taking jobs again");
        }
        let deadline = Instant::now() + self.config.grace_period;
        tracing::info!(worker = %self.id, grace_ms = self.config.grace_period.as_millis() as u64, "stopping: no new jobs, finishing the ones running");
        let drained = match serving {
            Some(s) => s.finish(Some(deadline)).await,
            None => true,
        };
        loops.stop_background.cancel();
        let mut report = ShutdownReport {
            drained,
            ..Default::default()
        };
        match self.queue.leave(&self.id).await {
            Ok(r) => {
                report.requeued = r.requeued;
                report.answered = r.answered;
                // The writer is still running: their final rows go out before it closes.
                loops.records.jobs_answered(&r.jobs);
            }
            Err(e) => {
                tracing::error!(error = %e, "could not deregister; the survivors will recover this worker's jobs")
            }
        }
        for h in loops.background {
            let _ = h.await;
        }
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.remove_all().await;
        }
        if let Some(writer) = loops.writer {
            loops.records.worker_sandboxes_terminated();
            let r = writer.close().await;
            tracing::debug!(
                written = r.written,
                spooled = r.spooled,
                "records writer stopped"
            );
        }
        tracing::info!(worker = %self.id, drained, requeued = report.requeued, "worker stopped");
        Ok(report)
    }

    /// A drained worker lets go of what it still has in the fleet: anything left in its
    /// held list goes back, its own queue is answered (a retry of one of its last jobs may
    /// have landed there), its locks are freed, and its live sandboxes are removed, from
    /// disk, the registry and the record. Its released copies, pool and mirrors stay, for
    /// when it takes jobs again. A failure here is logged: what Redis did not take is done
    /// by `leave` when the worker stops, or by recovery.
    async fn retire(&self, loops: &Loops) {
        match self.queue.retire(&self.id).await {
            Ok(r) => loops.records.jobs_answered(&r.jobs),
            Err(e) => {
                tracing::warn!(error = %e, "drained, but could not give up its own queue and sandboxes in Redis")
            }
        }
        if let Some(sandboxes) = &self.sandboxes {
            let removed = sandboxes.remove_live().await;
            if removed > 0 {
                tracing::info!(
                    sandboxes = removed,
                    "drained: its live sandboxes are removed"
                );
            }
        }
        loops.records.worker_sandboxes_terminated();
    }

    /// Stops at once, as a worker the fleet declared dead (see the module docs).
    async fn stop_declared_dead(&self, loops: Loops, serving: Option<Serving>) -> ShutdownReport {
        tracing::error!(
            worker = %self.id,
            dead_after_s = self.config.dead_after.as_secs(),
            "this worker was declared dead by the fleet (silent for longer than \
             GITFLEET_DEAD_AFTER_SECS: paused, starved or cut off from Redis); its jobs went \
             to other workers and its locks were freed. It stops serving now: running jobs \
             cut off, sandboxes deleted, nothing acknowledged; exiting for a new worker to \
             take its place"
        );
        if let Some(s) = serving {
            s.abort().await;
        }
        loops.stop_background.cancel();
        for h in loops.background {
            let _ = h.await;
        }
        if let Some(sandboxes) = &self.sandboxes {
            sandboxes.remove_all().await;
        }
        if let Some(writer) = loops.writer {
            loops.records.worker_sandboxes_terminated();
            let _ = writer.close().await;
        }
        ShutdownReport {
            declared_dead: true,
            ..Default::default()
        }
    }

    /// Registers the worker and starts what runs for its whole life: the heartbeat, the
    /// record, the promoters, the sandboxes' upkeep. What takes and runs jobs is
    /// [`Worker::serve`].
    async fn start_loops(&self) -> Result<Loops, WorkerError> {
        validate_worker_id(&self.id).map_err(|e| WorkerError::Config(e.message))?;
        if self.config.concurrency == 0 || self.config.own_queue_concurrency == 0 {
            return Err(WorkerError::Config("concurrency must be at least 1".into()));
        }
        let queue = &self.queue;
        let drain = Drain::default();
        let mut info = self.info();
        info.push(("state", drain.state().as_str().to_string()));
        queue.heartbeat(&self.id, &info).await?;

        let stop_background = CancellationToken::new();
        // Cancelled by whichever loop Redis first tells that this worker was declared dead.
        let declared_dead = CancellationToken::new();
        let retries_scheduled = Arc::new(Notify::new());
        let in_flight = InFlight::default();
        let mut background = Vec::new();
        let (records, writer, budgets) =
            self.start_records(&stop_background, &mut background).await;
        background.push(tokio::spawn(heartbeat::heartbeat_loop(
            queue.clone(),
            self.id.clone(),
            self.info(),
            self.config.heartbeat_interval,
            self.config.dead_after,
            in_flight.clone(),
            records.clone(),
            drain.clone(),
            declared_dead.clone(),
            stop_background.clone(),
        )));
        if let Some(sandboxes) = &self.sandboxes
            && writer.is_some()
        {
            background.push(tokio::spawn(repo_stats::flush_loop(
                sandboxes.clone(),
                records.clone(),
                repo_stats::FLUSH_EVERY,
                stop_background.clone(),
            )));
        }
        if let Some(sandboxes) = &self.sandboxes {
            background.push(tokio::spawn(sandboxes.clone().maintain(
                Duration::from_secs(60),
                // With a record, the scheduler evicts (fleet-wide tiers).
                self.store.is_none(),
                stop_background.clone(),
            )));
        }
        for (name, _) in self.served() {
            background.push(tokio::spawn(promote::promote_loop(
                queue.clone(),
                name,
                retries_scheduled.clone(),
                stop_background.clone(),
            )));
        }
        Ok(Loops {
            stop_background,
            declared_dead,
            retries_scheduled,
            in_flight,
            drain,
            background,
            records,
            writer,
            budgets,
        })
    }

    /// The queues this worker takes jobs from, each with its concurrency: its shared ones,
    /// then its own.
    fn served(&self) -> Vec<(String, usize)> {
        let mut served: Vec<(String, usize)> = self
            .config
            .queues
            .iter()
            .map(|q| (q.clone(), self.config.concurrency))
            .collect();
        served.push((
            gitfleet_contract::own_queue(&self.id),
            self.config.own_queue_concurrency,
        ));
        served
    }

    /// Starts taking and running jobs: per queue a fetcher and an apalis worker, and the
    /// acknowledger they share.
    fn serve(&self, loops: &Loops) -> Serving {
        let queue = &self.queue;
        let stop_fetching = CancellationToken::new();
        let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
        let acker = tokio::spawn(ack::ack_loop(
            queue.clone(),
            self.id.clone(),
            ack_rx,
            loops.retries_scheduled.clone(),
            loops.in_flight.clone(),
            loops.declared_dead.clone(),
        ));
        let service = JobService {
            ops: self.ops.clone(),
            retry: RetryPolicy {
                base: self.config.retry_base,
                max: self.config.retry_max,
            },
            worker_id: self.id.as_str().into(),
            max_payload_bytes: queue.config().max_payload_bytes,
            acks: ack_tx,
            sandboxes: self.sandboxes.clone(),
            queue: queue.clone(),
            records: loops.records.clone(),
            budgets: loops.budgets.clone(),
            require_org: self.config.require_org,
            org_max_sandboxes: self.config.org_max_sandboxes,
        };
        let mut apalis = JoinSet::new();
        let mut fetchers = Vec::new();
        for (name, concurrency) in self.served() {
            let (tx, rx) = mpsc::channel::<Run>(concurrency);
            let permits = Arc::new(Semaphore::new(concurrency));
            fetchers.push(tokio::spawn(fetch::fetch_loop(
                queue.clone(),
                name.clone(),
                self.id.clone(),
                permits,
                tx,
                loops.in_flight.clone(),
                loops.drain.clone(),
                loops.declared_dead.clone(),
                stop_fetching.clone(),
            )));
            let worker = WorkerBuilder::new(format!("{}/{name}", self.id))
                .backend(QueueBackend::new(rx))
                .concurrency(concurrency)
                .build(service.clone());
            apalis.spawn(async move {
                if let Err(e) = worker.run().await {
                    tracing::error!(queue = %name, error = %e, "apalis worker failed");
                }
            });
        }
        Serving {
            stop_fetching,
            apalis,
            acker,
            fetchers,
        }
    }

    /// Starts the record writer and the budget refresher, when the worker keeps a record.
    /// The list of organizations over budget is read once before the worker takes its first
    /// job (this runs before any fetcher starts), so jobs already waiting are checked against
    /// it too.
    ///
    /// Postgres away (or slower than [`FIRST_BUDGETS_WITHIN`]) at start: the worker starts
    /// all the same, with an empty list, so no organization is refused until the list can be
    /// read; the refresher tries again every `budget_refresh` and logs when Postgres is
    /// back. Workers run without Postgres by design (jobs go on, the record is written
    /// later); refusing every organization's jobs instead would make an outage of the
    /// record an outage of the fleet. The client checks budgets at submit as well, whenever
    /// Postgres answers it.
    async fn start_records(
        &self,
        stop: &CancellationToken,
        background: &mut Vec<tokio::task::JoinHandle<()>>,
    ) -> (Recorder, Option<gitfleet_store::WriterHandle>, Budgets) {
        let budgets = Budgets::default();
        let Some(settings) = &self.store else {
            return (Recorder::disabled(), None, budgets);
        };
        let now = chrono::Utc::now();
        let row = WorkerEvent {
            worker_id: self.id.clone(),
            host: self.config.name_stem.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            queues: self.config.queues.join(","),
            state: "running".into(),
            started_at: now,
            at: now,
        };
        let redactor = self
            .sandboxes
            .as_ref()
            .map(|s| s.git().redactor().clone())
            .unwrap_or_default();
        let (records, writer) = Recorder::start(
            settings.store.clone(),
            settings.writer.clone(),
            row,
            redactor,
        );
        let failing = match tokio::time::timeout(
            FIRST_BUDGETS_WITHIN,
            budgets.refresh(&settings.store),
        )
        .await
        {
            Ok(Ok(())) => false,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "budgets: cannot read; keeping the last list");
                true
            }
            Err(_) => {
                tracing::warn!("budgets: postgres is slow to answer; serving all the same");
                true
            }
        };
        background.push(tokio::spawn(budgets.clone().keep_fresh(
            settings.store.clone(),
            settings.budget_refresh,
            stop.clone(),
            failing,
        )));
        (records, Some(writer), budgets)
    }

    /// What this worker tells the fleet about itself at every beat (the hash
    /// `worker-info:<id>`, read back by [`Queue::workers`]).
    fn info(&self) -> Vec<(&'static str, String)> {
        vec![
            ("host", self.config.name_stem.clone()),
            ("pid", std::process::id().to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("queues", self.config.queues.join(",")),
            ("concurrency", self.config.concurrency.to_string()),
            (
                "own_queue_concurrency",
                self.config.own_queue_concurrency.to_string(),
            ),
        ]
    }
}

/// What runs for the worker's whole life.
struct Loops {
    stop_background: CancellationToken,
    declared_dead: CancellationToken,
    retries_scheduled: Arc<Notify>,
    in_flight: InFlight,
    drain: Drain,
    background: Vec<tokio::task::JoinHandle<()>>,
    records: Recorder,
    writer: Option<gitfleet_store::WriterHandle>,
    budgets: Budgets,
}

/// What takes and runs jobs, from [`Worker::serve`] until it is stopped (for a drain or a
/// shutdown).
struct Serving {
    stop_fetching: CancellationToken,
    apalis: JoinSet<()>,
    acker: tokio::task::JoinHandle<()>,
    fetchers: Vec<tokio::task::JoinHandle<()>>,
}

impl Serving {
    /// Resolves once every job in flight has finished (after `stop_fetching`: each apalis
    /// worker ends when its fetcher does, once its jobs are done). Cancel-safe.
    async fn jobs_done(&mut self) {
        while self.apalis.join_next().await.is_some() {}
    }

    /// Stops fetching; lets the jobs in flight finish, up to `deadline` (none: as long as
    /// they take), then cuts off the rest (their held ids are given back by `leave`);
    /// writes every outcome. Returns whether every job finished.
    async fn finish(mut self, deadline: Option<Instant>) -> bool {
        self.stop_fetching.cancel();
        let mut drained = true;
        match deadline {
            None => self.jobs_done().await,
            Some(deadline) => {
                while !self.apalis.is_empty() {
                    match tokio::time::timeout_at(deadline.into(), self.apalis.join_next()).await {
                        Ok(_) => {}
                        Err(_) => {
                            drained = false;
                            tracing::warn!("grace period over: giving back the jobs still running");
                            self.apalis.abort_all();
                            while self.apalis.join_next().await.is_some() {}
                        }
                    }
                }
            }
        }
        // Every service (and so every sender) is gone: the acknowledger ends once it has
        // written what it has. Give it what is left of the grace period, and a little more
        // for a Redis that is just coming back.
        let flush_by =
            deadline.unwrap_or_else(Instant::now).max(Instant::now()) + Duration::from_secs(2);
        if tokio::time::timeout_at(flush_by.into(), self.acker)
            .await
            .is_err()
        {
            tracing::error!("could not record every outcome in time; those jobs will run again");
        }
        for h in self.fetchers {
            let _ = h.await;
        }
        drained
    }

    /// Stops at once: running jobs cut off, nothing more acknowledged (a worker declared
    /// dead: what it would report would be refused, the jobs are others' now).
    async fn abort(mut self) {
        self.stop_fetching.cancel();
        self.apalis.abort_all();
        while self.apalis.join_next().await.is_some() {}
        self.acker.abort();
        for h in self.fetchers {
            let _ = h.await;
        }
    }
}

/// A worker running in the background of this process (tests, embedding).
pub struct RunningWorker {
    id: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<ShutdownReport, WorkerError>>,
}

impl RunningWorker {
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops the worker gracefully and waits for it.
    pub async fn shutdown(self) -> Result<ShutdownReport, WorkerError> {
        self.stop.cancel();
        self.task
            .await
            .map_err(|e| WorkerError::Config(format!("worker task failed: {e}")))?
    }
}
