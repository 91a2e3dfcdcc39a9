//! The measurements run against each side, in order:
//!
//! 1. pickup latency of an idle worker,
//! 2. idle CPU,
//! 3. drain throughput at several concurrencies,
//! 4. a large drain,
//! 5. pickup latency with many far-future jobs waiting,
//! 6. enqueue throughput (single and batched).
//!
//! Every phase starts from and ends with `Side::reset`, owns its worker
//! processes through [`WorkerProcess`] guards, and every wait is bounded.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;

use crate::latency::{LatencySummary, latency_key};
use crate::report::{Drain, DrainRow, Enqueue, IdleCpu, Measured, SideReport};
use crate::side::{BenchJob, Side};
use crate::worker_process::{WorkerProcess, clock_ticks_per_sec};

/// Counts, spacings and bounds for one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pickup_jobs: usize,
    pub pickup_spacing: Duration,
    /// Max wait for latency records after the last pickup job is enqueued.
    pub pickup_wait: Duration,
    /// Max wait for a fresh worker to process its warm-up job.
    pub warmup_timeout: Duration,
    pub idle_cpu_window: Duration,
    /// (jobs waiting, worker concurrency) per drain measurement, in order.
    pub drains: Vec<(usize, usize)>,
    pub drain_timeout: Duration,
    /// A drain with no completion progress for this long is declared stalled.
    pub drain_stall_window: Duration,
    pub far_future_jobs: usize,
    pub far_future_pickup_jobs: usize,
    pub enqueue_single_jobs: usize,
    pub enqueue_batch_jobs: usize,
    pub batch_size: usize,
}

impl Plan {
    pub fn full(drain_timeout: Duration) -> Self {
        Self {
            pickup_jobs: 500,
            pickup_spacing: Duration::from_millis(5),
            pickup_wait: Duration::from_secs(60),
            warmup_timeout: Duration::from_secs(60),
            idle_cpu_window: Duration::from_secs(10),
            drains: vec![
                (20_000, 1),
                (20_000, 10),
                (20_000, 50),
                (50_000, 10),
                // Extra: below the ~8,000 Lua `unpack` limit that stops a
                // bare apalis-redis worker, so both sides get a rate.
                (5_000, 1),
                (5_000, 10),
                (5_000, 50),
            ],
            drain_timeout,
            drain_stall_window: Duration::from_secs(45),
            far_future_jobs: 50_000,
            far_future_pickup_jobs: 100,
            enqueue_single_jobs: 5_000,
            enqueue_batch_jobs: 50_000,
            batch_size: 1_000,
        }
    }

    /// ~10x smaller counts for a smoke run (bounds unchanged).
    pub fn quick(drain_timeout: Duration) -> Self {
        Self {
            pickup_jobs: 50,
            idle_cpu_window: Duration::from_secs(3),
            drains: vec![(2_000, 1), (2_000, 10), (2_000, 50), (5_000, 10)],
            far_future_jobs: 5_000,
            far_future_pickup_jobs: 10,
            enqueue_single_jobs: 500,
            enqueue_batch_jobs: 5_000,
            ..Self::full(drain_timeout)
        }
    }
}

/// How often bounded waits re-check their condition.
const POLL: Duration = Duration::from_millis(20);

/// Run every phase against `side`, collecting figures; a failing phase is
/// recorded and the run goes on. Keys are reset before and after each phase.
pub async fn run_side<S: Side>(side: &S, conn: &ConnectionManager, plan: &Plan) -> SideReport {
    let mut report = SideReport::new(side.name(), side.namespace());
    let mut notes = Vec::new();
    let b = Bench { side, conn, plan };

    report.idle_pickup = Some(Measured::from_result(
        b.pickup(plan.pickup_jobs, 0, &mut notes)
            .await
            .context("idle pickup"),
    ));
    report.idle_cpu = Some(Measured::from_result(
        b.idle_cpu().await.context("idle CPU"),
    ));
    for &(jobs, concurrency) in &plan.drains {
        let result = b
            .drain(jobs, concurrency, &mut notes)
            .await
            .with_context(|| format!("drain {jobs} c={concurrency}"));
        report.drains.push(DrainRow {
            jobs,
            concurrency,
            result: Measured::from_result(result),
        });
    }
    report.far_future_jobs = plan.far_future_jobs;
    report.pickup_with_far_future = Some(Measured::from_result(
        b.pickup(
            plan.far_future_pickup_jobs,
            plan.far_future_jobs,
            &mut notes,
        )
        .await
        .context("pickup with far-future jobs"),
    ));
    report.enqueue_single = Some(Measured::from_result(
        b.enqueue_single().await.context("enqueue single"),
    ));
    report.enqueue_batch_size = plan.batch_size;
    report.enqueue_batch = Some(Measured::from_result(
        b.enqueue_batched().await.context("enqueue batched"),
    ));
    if let Err(e) = side.reset().await {
        notes.push(format!("final reset failed: {e:#}"));
    }

    for m in [&report.idle_pickup, &report.pickup_with_far_future]
        .into_iter()
        .flatten()
    {
        if let Measured::Failed { error } = m {
            notes.push(error.clone());
        }
    }
    if let Some(Measured::Failed { error }) = &report.idle_cpu {
        notes.push(error.clone());
    }
    for d in &report.drains {
        if let Measured::Failed { error } = &d.result {
            notes.push(error.clone());
        }
    }
    for m in [&report.enqueue_single, &report.enqueue_batch]
        .into_iter()
        .flatten()
    {
        if let Measured::Failed { error } = m {
            notes.push(error.clone());
        }
    }
    report.notes = notes;
    report
}

struct Bench<'a, S> {
    side: &'a S,
    conn: &'a ConnectionManager,
    plan: &'a Plan,
}

impl<S: Side> Bench<'_, S> {
    fn lat_key(&self) -> String {
        latency_key(self.side.namespace())
    }

    async fn lat_len(&self) -> anyhow::Result<usize> {
        let mut conn = self.conn.clone();
        Ok(conn.llen(self.lat_key()).await?)
    }

    /// Enqueue a warm-up job, THEN spawn a worker (so even a side that only
    /// polls on a long timer sees the job on its first fetch), and wait —
    /// bounded — for its latency record. Clears the latency list afterwards.
    async fn start_warm_worker(
        &self,
        concurrency: usize,
    ) -> anyhow::Result<(WorkerProcess, Duration)> {
        self.side.enqueue_one(&BenchJob::now(true)).await?;
        let started = Instant::now();
        let mut worker = WorkerProcess::spawn(&self.side.worker_args(concurrency))?;
        loop {
            if self.lat_len().await? >= 1 {
                break;
            }
            if let Some(why) = worker.exited() {
                anyhow::bail!("worker died before its warm-up job ran: {why}");
            }
            if started.elapsed() > self.plan.warmup_timeout {
                anyhow::bail!(
                    "warm-up job not processed within {:?}; last worker log line: {:?}",
                    self.plan.warmup_timeout,
                    worker.log_tail()
                );
            }
            tokio::time::sleep(POLL).await;
        }
        let up_after = started.elapsed();
        let mut conn = self.conn.clone();
        conn.del::<_, ()>(self.lat_key()).await?;
        Ok((worker, up_after))
    }

    /// Pickup latency: `jobs` record-jobs enqueued one at a time,
    /// `pickup_spacing` apart, to a warmed-up idle worker (concurrency 1),
    /// optionally with `far_future` not-yet-due jobs waiting in the queue.
    async fn pickup(
        &self,
        jobs: usize,
        far_future: usize,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<LatencySummary> {
        self.side.reset().await?;
        let result = self.pickup_inner(jobs, far_future, notes).await;
        self.side.reset().await?;
        result
    }

    async fn pickup_inner(
        &self,
        jobs: usize,
        far_future: usize,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<LatencySummary> {
        let what = if far_future > 0 {
            format!("pickup w/ {far_future} far-future")
        } else {
            "idle pickup".to_owned()
        };
        if far_future > 0 {
            self.side.enqueue_far_future(far_future).await?;
        }
        let (mut worker, up_after) = self.start_warm_worker(1).await?;
        notes.push(format!(
            "{what}: worker spawn -> warm-up job recorded in {:.0} ms",
            up_after.as_secs_f64() * 1e3
        ));
        // Let the worker finish acking the warm-up job and go idle.
        tokio::time::sleep(Duration::from_millis(
            std::env::var("GF_SETTLE")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(500),
        ))
        .await;

        let mut tick = tokio::time::interval(self.plan.pickup_spacing);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for _ in 0..jobs {
            tick.tick().await;
            self.side.enqueue_one(&BenchJob::now(true)).await?;
        }
        let last_enqueue = Instant::now();
        let mut died = None;
        while self.lat_len().await? < jobs && last_enqueue.elapsed() < self.plan.pickup_wait {
            if let Some(why) = worker.exited() {
                died = Some(why);
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let waited = last_enqueue.elapsed();
        let mut conn = self.conn.clone();
        let samples: Vec<u64> = conn.lrange(self.lat_key(), 0, -1).await?;
        drop(worker);
        let summary = LatencySummary::from_micros(jobs, samples);
        if summary.recorded < jobs {
            let why = died.unwrap_or_else(|| {
                format!(
                    "bound of {:?} after the last enqueue",
                    self.plan.pickup_wait
                )
            });
            notes.push(format!(
                "{what}: only {}/{jobs} jobs recorded ({why}); percentiles cover recorded jobs only",
                summary.recorded
            ));
        } else {
            notes.push(format!(
                "{what}: all {jobs} recorded {:.1} s after the last enqueue",
                waited.as_secs_f64()
            ));
        }
        Ok(summary)
    }

    /// CPU of a warmed-up worker (concurrency 1) sitting idle.
    async fn idle_cpu(&self) -> anyhow::Result<IdleCpu> {
        self.side.reset().await?;
        let result = async {
            let (mut worker, _) = self.start_warm_worker(1).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let cpu0 = worker.cpu_time()?;
            let t0 = Instant::now();
            tokio::time::sleep(self.plan.idle_cpu_window).await;
            let cpu1 = worker.cpu_time()?;
            let wall = t0.elapsed();
            if let Some(why) = worker.exited() {
                anyhow::bail!("worker died while idle: {why}");
            }
            Ok(IdleCpu {
                percent_of_one_core: (cpu1 - cpu0).as_secs_f64() / wall.as_secs_f64() * 100.0,
                secs: wall.as_secs_f64(),
                clock_ticks_per_sec: clock_ticks_per_sec(),
            })
        }
        .await;
        self.side.reset().await?;
        result
    }

    /// Enqueue `jobs` no-op jobs with no worker running, then start one
    /// worker and time it until the side reports them all completed.
    async fn drain(
        &self,
        jobs: usize,
        concurrency: usize,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Drain> {
        self.side.reset().await?;
        let result = self.drain_inner(jobs, concurrency, notes).await;
        self.side.reset().await?;
        result
    }

    async fn drain_inner(
        &self,
        jobs: usize,
        concurrency: usize,
        notes: &mut Vec<String>,
    ) -> anyhow::Result<Drain> {
        let job = BenchJob::now(false);
        let mut left = jobs;
        while left > 0 {
            let n = left.min(self.plan.batch_size);
            self.side.enqueue_batch(&vec![job; n]).await?;
            left -= n;
        }
        let target = jobs as u64;
        let start = Instant::now();
        let mut worker = WorkerProcess::spawn(&self.side.worker_args(concurrency))?;
        let (mut last_done, mut last_progress) = (0u64, Instant::now());
        let stalled = |completed: u64, reason: String| Drain::Stalled {
            completed,
            jobs: target,
            secs: start.elapsed().as_secs_f64(),
            reason,
        };
        let outcome = loop {
            let done = self.side.completed().await?;
            if done >= target {
                let secs = start.elapsed().as_secs_f64();
                break Drain::Done {
                    jobs: target,
                    secs,
                    jobs_per_sec: target as f64 / secs,
                };
            }
            if done > last_done {
                (last_done, last_progress) = (done, Instant::now());
            }
            if let Some(why) = worker.exited() {
                break stalled(done, why);
            }
            if start.elapsed() > self.plan.drain_timeout {
                break stalled(done, format!("timeout {:?}", self.plan.drain_timeout));
            }
            if last_progress.elapsed() > self.plan.drain_stall_window {
                break stalled(
                    done,
                    format!(
                        "no progress for {:?}; last worker log line: {:?}",
                        self.plan.drain_stall_window,
                        worker.log_tail()
                    ),
                );
            }
            tokio::time::sleep(POLL).await;
        };
        drop(worker);
        if let Drain::Stalled {
            completed,
            jobs,
            secs,
            reason,
        } = &outcome
        {
            notes.push(format!(
                "drain {jobs} c={concurrency}: stalled at {completed}/{jobs} after {secs:.1} s: {reason}"
            ));
        }
        Ok(outcome)
    }

    /// `enqueue_single_jobs` sequential `enqueue_one` calls, no worker.
    async fn enqueue_single(&self) -> anyhow::Result<Enqueue> {
        self.side.reset().await?;
        let n = self.plan.enqueue_single_jobs;
        let result = async {
            let start = Instant::now();
            for _ in 0..n {
                self.side.enqueue_one(&BenchJob::now(false)).await?;
            }
            Ok(enqueue_rate(n, start.elapsed()))
        }
        .await;
        self.side.reset().await?;
        result
    }

    /// `enqueue_batch_jobs` in `enqueue_batch` calls of `batch_size`, no worker.
    async fn enqueue_batched(&self) -> anyhow::Result<Enqueue> {
        self.side.reset().await?;
        let n = self.plan.enqueue_batch_jobs;
        let result = async {
            let batch = vec![BenchJob::now(false); self.plan.batch_size];
            let start = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(batch.len());
                self.side.enqueue_batch(&batch[..k]).await?;
                left -= k;
            }
            Ok(enqueue_rate(n, start.elapsed()))
        }
        .await;
        self.side.reset().await?;
        result
    }
}

fn enqueue_rate(jobs: usize, took: Duration) -> Enqueue {
    let secs = took.as_secs_f64();
    Enqueue {
        jobs,
        secs,
        jobs_per_sec: jobs as f64 / secs,
    }
}
