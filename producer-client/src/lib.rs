//! gitfleet-client: how a Rust program puts git jobs into the fleet and reads their
//! results. A thin layer over [`gitfleet_queue::Queue`] that also checks each job against
//! the contract's rules for its op ([`gitfleet_contract::ops`]) before it is enqueued, so a
//! bad job is refused at once with an error naming the field, instead of failing later in a
//! worker. It builds on the contract, the queue and the record only: none of the worker side
//! (git, sandboxes, op handlers) comes with it.
//!
//! A client acts for one organization, its configured identity ([`Client::with_org`]):
//! every job it enqueues carries it in its envelope, and workers reach sandboxes, charge
//! budgets and scope idempotency keys by it. A client without one is a trusted internal
//! producer: it may name each job's organization ([`EnqueueOptions::org`], as the gateway
//! does from each request's API key), or none (a fleet with `GITFLEET_REQUIRE_ORG` refuses
//! such jobs).
//!
//! ```no_run
//! # async fn demo() -> Result<(), gitfleet_client::QueueError> {
//! use gitfleet_client::{Client, EnqueueOptions, JobSpec};
//! let client = Client::connect(Default::default()).await?;
//! let job = client
//!     .submit("jobs", &JobSpec::new("echo", serde_json::json!({"hi": 1})), &EnqueueOptions::default())
//!     .await?;
//! let record = client.wait(&job.job_id, std::time::Duration::from_secs(5)).await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

pub use gitfleet_contract::{
    DEFAULT_QUEUE, EnqueueOptions, Enqueued, ErrorKind, JobError, JobRecord, JobSpec, JobStatus,
    OpArgs, OpName, ops,
};
pub use gitfleet_queue::{
    ActReport, Acted, BulkAction, BulkFilter, Cancelled, JobChange, JobWatch, Matched, QueueConfig,
    QueueError, QueueStats, RunningJob, WorkerInfo, WorkerState,
};
pub use gitfleet_store::{self as store, Store, StoreConfig};

use gitfleet_contract::Redactor;
use gitfleet_contract::ops::{JobLimits, Rules, check_identity};
use gitfleet_queue::Queue;

/// One job of [`Client::submit_batch`]: where it goes and how it is enqueued.
#[derive(Debug, Clone)]
pub struct BatchJob {
    pub queue: String,
    pub spec: JobSpec,
    pub options: EnqueueOptions,
}

/// A producer's handle on the fleet. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Client {
    queue: Queue,
    store: Option<Store>,
    /// Set by [`Client::with_recorder`]: rows go through the background writer and budgets
    /// are read from memory, so nothing in `submit` waits on Postgres.
    background: Option<(store::Recorder, store::Budgets)>,
    org: Option<String>,
    rules: Rules,
}

impl Client {
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        Ok(Self {
            queue: Queue::connect(config).await?,
            store: None,
            background: None,
            org: None,
            rules: Rules::default(),
        })
    }

    /// Acts for organization `org` (1-64 of letters, digits, `_`, `-`, `.`): its jobs carry
    /// it, and the fleet's internal ops (`maintain`) are refused.
    pub fn with_org(mut self, org: impl Into<String>) -> Result<Self, QueueError> {
        let org = org.into();
        gitfleet_contract::validate_org_id(&org).map_err(QueueError::Invalid)?;
        self.org = Some(org);
        Ok(self)
    }

    /// The organization this client acts for, if any.
    pub fn org(&self) -> Option<&str> {
        self.org.as_deref()
    }

    /// `options` as this client enqueues them: with its organization. A client with one
    /// acts for it only (naming another is refused); one without names each job's, or none.
    fn envelope(&self, options: &EnqueueOptions) -> Result<EnqueueOptions, QueueError> {
        let org = match (&options.org, &self.org) {
            (Some(asked), Some(mine)) if asked != mine => {
                return Err(QueueError::Invalid(JobError::invalid_input(format!(
                    "org: this client acts for organization {mine}, not for {asked}"
                ))));
            }
            (asked, mine) => mine.clone().or_else(|| asked.clone()),
        };
        if let Some(org) = &org {
            gitfleet_contract::validate_org_id(org).map_err(QueueError::Invalid)?;
        }
        Ok(EnqueueOptions {
            org,
            ..options.clone()
        })
    }

    /// Checks jobs by these per-job limits (what the fleet's workers are configured with:
    /// [`JobLimits::from_env`] reads the same variables) instead of the defaults.
    pub fn with_limits(mut self, limits: JobLimits) -> Self {
        self.rules.limits = limits;
        self
    }

    /// Uses the durable record: jobs of an organization over its budget are refused at
    /// submit (`budget_exceeded`), and each job enqueued gets its row (`waiting` or
    /// `delayed`). Should Postgres be unreachable, jobs are enqueued all the same: the
    /// worker checks the budget again and writes the row when it starts the job.
    pub fn with_store(mut self, store: Store) -> Self {
        self.store = Some(store);
        self
    }

    /// Records without waiting: the rows of enqueued jobs go to `recorder` (a background
    /// writer, [`store::Recorder::start_producer`]) and budgets are checked against
    /// `budgets` (the list of organizations over budget, kept fresh by the caller with
    /// [`store::Budgets::keep_fresh`]). What a server that enqueues in its request path
    /// (the gateway) uses instead of [`Client::with_store`]'s direct writes.
    pub fn with_recorder(mut self, recorder: store::Recorder, budgets: store::Budgets) -> Self {
        self.background = Some((recorder, budgets));
        self
    }

    /// The durable record, if the client uses one.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    /// Refuses a job when its organization has spent its budget.
    async fn check_budget(&self, spec: &JobSpec, org: Option<&str>) -> Result<(), QueueError> {
        if let Some((_, budgets)) = &self.background {
            return budgets.check(org, &spec.op).map_err(QueueError::Invalid);
        }
        let (Some(store), Some(org)) = (&self.store, org) else {
            return Ok(());
        };
        match store.check_budget(org, &spec.op).await {
            Ok(()) => Ok(()),
            Err(store::CheckError::Exceeded(e)) => Err(QueueError::Invalid(e)),
            // Fail open: the worker checks again before running it.
            Err(store::CheckError::Store(_)) => Ok(()),
        }
    }

    /// Writes the rows of jobs just enqueued (best effort: a worker writes them anyway). A
    /// job the queue answered at once (its queue is that of a worker that is gone) gets its
    /// final row here: no worker will see it.
    async fn record_enqueued(
        &self,
        queue: &str,
        org: &Option<String>,
        jobs: &[(&JobSpec, &Enqueued)],
    ) {
        if self.store.is_none() && self.background.is_none() {
            return;
        }
        let now = chrono::Utc::now();
        let mut answered = gitfleet_contract::own_queue_worker(queue).map(|worker| {
            let e = gitfleet_queue::worker_not_running(worker);
            JobError::new(e.kind, Redactor::default().redact(&e.message))
        });
        // The queue says why it answered at once (the worker is gone, or draining): read it
        // back from the first such job's record, one round trip in this rare case.
        if answered.is_some()
            && let Some((_, e)) = jobs
                .iter()
                .find(|(_, e)| e.created && e.status == JobStatus::Dead)
            && let Ok(Some(record)) = self.queue.job(&e.job_id).await
            && let Some(error) = record.error
        {
            answered = Some(JobError::new(
                error.kind,
                Redactor::default().redact(&error.message),
            ));
        }
        let records: Vec<store::Record> = jobs
            .iter()
            .filter(|(_, e)| e.created)
            .map(|(spec, e)| {
                store::Record::Job(store::JobEvent {
                    error: answered.clone().filter(|_| e.status == JobStatus::Dead),
                    enqueued_at: Some(now),
                    finished_at: (e.status == JobStatus::Dead).then_some(now),
                    org_id: org.clone(),
                    ..store::JobEvent::new(&e.job_id, &spec.op, queue, e.status, Some(&spec.args))
                })
            })
            .collect();
        if let Some((recorder, _)) = &self.background {
            for record in records {
                recorder.record(record);
            }
        } else if let Some(store) = &self.store
            && !records.is_empty()
        {
            let _ = store.apply(&records).await;
        }
    }

    /// The queue handle underneath, for what the client does not wrap.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Checks a job against its op without enqueueing it, as a default worker would (with
    /// the client's limits, [`Client::with_limits`]), for this client's organization (an
    /// internal op is refused from one), and its size as the queue would
    /// (`GITFLEET_MAX_PAYLOAD_BYTES`).
    pub fn check(&self, spec: &JobSpec) -> Result<(), QueueError> {
        self.check_for(spec, self.org.as_deref())
    }

    /// Checks a job as [`Client::check`] does, for organization `org` (what a client
    /// without an organization of its own enqueues for, [`EnqueueOptions::org`]).
    pub fn check_as(&self, spec: &JobSpec, org: Option<&str>) -> Result<(), QueueError> {
        self.check_for(spec, org)
    }

    fn check_for(&self, spec: &JobSpec, org: Option<&str>) -> Result<(), QueueError> {
        self.check_contract(spec, org)?;
        // The queue would refuse it job by job, after the rest of a batch was enqueued.
        self.queue.check_payload(spec)
    }

    /// The job against its op and the organization, not its size: what [`Client::submit`]
    /// checks, since the queue refuses one job over the size before anything is enqueued.
    fn check_contract(&self, spec: &JobSpec, org: Option<&str>) -> Result<(), QueueError> {
        gitfleet_contract::ops::validate(spec, &self.rules)
            .and_then(|_| check_identity(&spec.op, org, false))
            .map_err(QueueError::Invalid)
    }

    /// Checks how a job is to be enqueued: a `timeout` over the limit is refused.
    pub fn check_options(&self, options: &EnqueueOptions) -> Result<(), QueueError> {
        self.rules
            .limits
            .check_timeout(options.timeout)
            .map_err(QueueError::Invalid)
    }

    /// The queue a job goes to when the producer names none: ops on a sandbox go to the
    /// own queue of the worker that holds it (`worker:<id>`), the rest to [`DEFAULT_QUEUE`].
    pub fn route(spec: &JobSpec) -> String {
        gitfleet_contract::ops::route(spec).unwrap_or_else(|| DEFAULT_QUEUE.to_string())
    }

    /// Enqueues one job on `queue` (usually [`Client::route`] of the job).
    pub async fn submit(
        &self,
        queue: &str,
        spec: &JobSpec,
        options: &EnqueueOptions,
    ) -> Result<Enqueued, QueueError> {
        let options = self.envelope(options)?;
        self.check_contract(spec, options.org.as_deref())?;
        self.check_options(&options)?;
        self.check_budget(spec, options.org.as_deref()).await?;
        let enqueued = self.queue.enqueue(queue, spec, &options).await?;
        self.record_enqueued(queue, &options.org, &[(spec, &enqueued)])
            .await;
        Ok(enqueued)
    }

    /// Enqueues many jobs, a thousand per round trip. Nothing is enqueued when any job is
    /// invalid; the error names the first bad one by its position.
    pub async fn submit_many(
        &self,
        queue: &str,
        specs: &[JobSpec],
        options: &EnqueueOptions,
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        let options = &self.envelope(options)?;
        self.check_options(options)?;
        for (i, spec) in specs.iter().enumerate() {
            self.check_for(spec, options.org.as_deref())
                .map_err(|e| match e {
                    QueueError::Invalid(err) => QueueError::Invalid(JobError::invalid_input(
                        format!("job {}: {}", i + 1, err.message),
                    )),
                    other => other,
                })?;
        }
        // One organization for the batch: its budget is read once per op, not per job.
        let mut checked = std::collections::BTreeSet::new();
        for (i, spec) in specs.iter().enumerate() {
            if !checked.insert(spec.op.as_str()) {
                continue;
            }
            self.check_budget(spec, options.org.as_deref())
                .await
                .map_err(|e| match e {
                    QueueError::Invalid(err) => QueueError::Invalid(JobError::new(
                        err.kind,
                        format!("job {}: {}", i + 1, err.message),
                    )),
                    other => other,
                })?;
        }
        let results = self.queue.enqueue_many(queue, specs, options).await?;
        let done: Vec<(&JobSpec, &Enqueued)> = specs
            .iter()
            .zip(&results)
            .filter_map(|(s, r)| r.as_ref().ok().map(|e| (s, e)))
            .collect();
        self.record_enqueued(queue, &options.org, &done).await;
        Ok(results)
    }

    /// Enqueues jobs each with its own queue and options (an idempotency key each, say),
    /// in as few round trips as [`Client::submit_many`]. Nothing is enqueued when any job
    /// is invalid; the error names the first bad one by its position. Each job that was
    /// tried gets its own answer.
    pub async fn submit_batch(
        &self,
        jobs: &[BatchJob],
    ) -> Result<Vec<Result<Enqueued, QueueError>>, QueueError> {
        let numbered = |i: usize, e: QueueError| match e {
            QueueError::Invalid(err) => QueueError::Invalid(JobError::new(
                err.kind,
                format!("job {}: {}", i + 1, err.message),
            )),
            other => other,
        };
        let mut envelopes = Vec::with_capacity(jobs.len());
        for (i, job) in jobs.iter().enumerate() {
            let options = self.envelope(&job.options).map_err(|e| numbered(i, e))?;
            self.check_for(&job.spec, options.org.as_deref())
                .and_then(|_| self.check_options(&options))
                .map_err(|e| numbered(i, e))?;
            envelopes.push(options);
        }
        let mut checked = std::collections::BTreeSet::new();
        for (i, (job, options)) in jobs.iter().zip(&envelopes).enumerate() {
            if checked.insert((options.org.as_deref(), job.spec.op.as_str())) {
                self.check_budget(&job.spec, options.org.as_deref())
                    .await
                    .map_err(|e| numbered(i, e))?;
            }
        }
        let batch: Vec<(&str, &JobSpec, &EnqueueOptions)> = jobs
            .iter()
            .zip(&envelopes)
            .map(|(job, options)| (job.queue.as_str(), &job.spec, options))
            .collect();
        let results = self.queue.enqueue_batch(&batch).await?;
        // One write of rows per queue and organization, not one per job.
        let mut groups: std::collections::BTreeMap<_, Vec<(&JobSpec, &Enqueued)>> =
            Default::default();
        for ((job, options), result) in jobs.iter().zip(&envelopes).zip(&results) {
            if let Ok(e) = result {
                groups
                    .entry((job.queue.as_str(), &options.org))
                    .or_default()
                    .push((&job.spec, e));
            }
        }
        for ((queue, org), done) in groups {
            self.record_enqueued(queue, org, &done).await;
        }
        Ok(results)
    }

    /// The record of job `id`; `None` if there is none (never was, or expired).
    pub async fn job(&self, id: &str) -> Result<Option<JobRecord>, QueueError> {
        self.queue.job(id).await
    }

    /// Job `id` as it was enqueued (op and args), while the queue keeps its record.
    pub async fn job_spec(&self, id: &str) -> Result<Option<JobSpec>, QueueError> {
        self.queue.job_spec(id).await
    }

    /// Waits up to `timeout` for job `id` to be done, dead or cancelled; returns its record
    /// as it is then (check [`JobStatus::is_final`]).
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<Option<JobRecord>, QueueError> {
        self.queue.wait(id, timeout).await
    }

    /// Watches job `id`'s changes of state ([`gitfleet_queue::Queue::watch`]): its record
    /// now, and a watch that gives every change after it.
    pub async fn watch(&self, id: &str) -> Result<Option<(JobRecord, JobWatch)>, QueueError> {
        self.queue.watch(id).await
    }

    /// Counts for every queue.
    pub async fn queues(&self) -> Result<Vec<QueueStats>, QueueError> {
        self.queue.stats().await
    }

    /// Cancels job `id` if it has not started ([`Queue::cancel`]): it leaves its queue and
    /// ends `cancelled`, and its row in the record says so (best effort, as at submit:
    /// should Postgres be unreachable, the row stays as it was). A client acting for an
    /// organization finds only that organization's jobs: another's answers `None`, as a
    /// job that does not exist does. A running job is refused (`conflict`, naming its
    /// worker), and so is a finished one.
    ///
    /// Its idempotency key, if it had one, keeps naming it until the key expires
    /// (`GITFLEET_IDEMPOTENCY_TTL_SECS`), as a dead job's does: submitting the same job
    /// with the key again answers with the cancelled job, not a new one.
    pub async fn cancel(&self, id: &str) -> Result<Option<Cancelled>, QueueError> {
        self.cancel_for(id, None).await
    }

    /// [`Client::cancel`] on behalf of organization `org` (the gateway: each request's API
    /// key), with the rules of [`EnqueueOptions::org`]: a client acting for an
    /// organization of its own cannot name another; `None` leaves it to the client's.
    pub async fn cancel_for(
        &self,
        id: &str,
        org: Option<&str>,
    ) -> Result<Option<Cancelled>, QueueError> {
        let scope = self.envelope(&EnqueueOptions {
            org: org.map(str::to_string),
            ..Default::default()
        })?;
        let Some(cancelled) = self.queue.cancel(id, scope.org.as_deref()).await? else {
            return Ok(None);
        };
        self.record(store::Record::Job(store::JobEvent::cancelled(&cancelled)))
            .await;
        Ok(Some(cancelled))
    }

    /// Every worker registered in the queue, most recent heartbeat first: what it says
    /// about itself and the jobs it holds.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        self.queue.workers().await
    }

    /// Sends a dead job back to its queue with a fresh set of attempts.
    pub async fn retry(&self, id: &str) -> Result<(), QueueError> {
        self.queue.retry_dead(id).await?;
        // Its row starts over too (attempts from 0), whatever it said before.
        if self.store.is_none() && self.background.is_none() {
            return Ok(());
        }
        if let Some(job) = self.queue.job(id).await? {
            let record = store::Record::Job(store::JobEvent {
                reset: true,
                ..store::JobEvent::new(job.job_id, job.op, job.queue, JobStatus::Waiting, None)
            });
            self.record(record).await;
        }
        Ok(())
    }

    /// Does `action` to `jobs` (found by [`Queue::matching`] with `filter`), each only if
    /// it still matches then ([`Queue::act`]), and writes what happened to their rows: a
    /// retried job's row starts over, a deleted one's is marked `deleted_at` (a deleted
    /// delayed job ends `cancelled`), a job run now is `waiting`.
    pub async fn act(
        &self,
        action: BulkAction,
        filter: &BulkFilter,
        jobs: &[Matched],
    ) -> Result<ActReport, QueueError> {
        let report = self.queue.act(action, filter, jobs).await?;
        for a in &report.acted {
            self.record(acted_record(action, filter.state, a)).await;
        }
        Ok(report)
    }

    /// [`Client::act`] on one job, for organization `org` (`None`: any), as
    /// [`Queue::act_on`]: `Ok(None)` for no such job (or another organization's), a
    /// `conflict` for a job in a state the action does not take.
    pub async fn act_on(
        &self,
        action: BulkAction,
        id: &str,
        org: Option<&str>,
    ) -> Result<Option<Acted>, QueueError> {
        let state = self.queue.job(id).await?.map(|r| r.status);
        let Some(acted) = self.queue.act_on(action, id, org).await? else {
            return Ok(None);
        };
        let state = match (action, state) {
            (BulkAction::Delete, Some(JobStatus::Dead)) => JobStatus::Dead,
            (BulkAction::Retry, _) => JobStatus::Dead,
            _ => JobStatus::Delayed,
        };
        self.record(acted_record(action, state, &acted)).await;
        Ok(Some(acted))
    }

    /// The background writer this client records through, if any (the gateway's audit
    /// log goes through it too).
    pub fn recorder(&self) -> Option<&store::Recorder> {
        self.background.as_ref().map(|(r, _)| r)
    }

    /// Hands `record` to the background writer, or writes it (best effort).
    pub async fn record(&self, record: store::Record) {
        if let Some((recorder, _)) = &self.background {
            recorder.record(record);
        } else if let Some(store) = &self.store {
            let _ = store.apply(&[record]).await;
        }
    }
}

/// The record of what a by-hand action did to one job.
fn acted_record(action: BulkAction, state: JobStatus, a: &Acted) -> store::Record {
    let base = store::JobEvent {
        org_id: a.org.clone(),
        enqueued_at: a.enqueued_at,
        ..store::JobEvent::new(&a.job_id, &a.op, &a.queue, JobStatus::Waiting, None)
    };
    match action {
        // Its row starts over (attempts from 0), whatever it said before.
        BulkAction::Retry => store::Record::Job(store::JobEvent {
            reset: true,
            ..base
        }),
        BulkAction::Delete => store::Record::JobDeleted(store::DeletedJob {
            job_id: a.job_id.clone(),
            op: a.op.clone(),
            queue: a.queue.clone(),
            org_id: a.org.clone(),
            was: state,
            attempts: a.attempts.saturating_add(a.given_back),
            enqueued_at: a.enqueued_at,
            at: chrono::Utc::now(),
        }),
        // Waiting at the runs it had (with those given back, as a cancel counts them, so
        // it passes the row of a run given back), its last error kept.
        BulkAction::RunNow => store::Record::Job(store::JobEvent {
            attempts: a.attempts.saturating_add(a.given_back),
            error: a.error.clone(),
            ..base
        }),
    }
}
