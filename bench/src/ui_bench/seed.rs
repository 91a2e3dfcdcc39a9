//! The data the pages are measured over: the history in Postgres (`seed.sql`, made by
//! Postgres itself from `generate_series`), and dead jobs in Redis made the queue's own way
//! (enqueued, taken by a worker of the bench's, finished dead), each with its history row.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use gitfleet_client::{EnqueueOptions, JobSpec};
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_queue::{Finished, Outcome, Queue};
use sqlx::PgPool;

const SEED_SQL: &str = include_str!("seed.sql");

/// The queue the dead jobs were on.
pub const DEAD_QUEUE: &str = "default";
/// Jobs per enqueue and per take (the queue's own batch size).
const BATCH: usize = 1000;

/// Writes `jobs` job rows (and a sandbox per 10 of them, runs for a fifth) into the
/// database of `pool`, then `VACUUM ANALYZE`: what autovacuum does to a history whose rows
/// are written once and updated for a few minutes, so the planner has statistics and the
/// visibility map is set, as in a database that has run for a while.
pub async fn history(pool: &PgPool, jobs: u64) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let sandboxes = (jobs / 10).max(300);
    let sql = SEED_SQL
        .replace(":jobs", &jobs.to_string())
        .replace(":sandboxes", &sandboxes.to_string());
    sqlx::raw_sql(&sql)
        .execute(pool)
        .await
        .context("seeding the history (seed.sql)")?;
    let history = started.elapsed();
    let started = Instant::now();
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(pool)
        .await
        .context("VACUUM ANALYZE")?;
    Ok((history, started.elapsed()))
}

/// A dead job's history row, as the record writer would have written it (its times are
/// its record's: the jobs of one enqueue call share one).
struct DeadRow {
    id: String,
    org: String,
    op: &'static str,
    agent: String,
    task: String,
    sandbox: String,
    kind: &'static str,
    message: String,
    /// When the queue enqueued it (µs since the epoch, its record's).
    enqueued_us: i64,
}

/// `n` dead jobs on [`DEAD_QUEUE`] of `queue`, over ten organizations, each enqueued,
/// taken by the bench's own worker and finished dead with an error (the queue's scripts,
/// a thousand per round trip), and its row in the history. Their ids, newest last.
pub async fn dead_jobs(queue: &Queue, pool: &PgPool, n: usize) -> anyhow::Result<Vec<String>> {
    let worker = "ui-bench-seeder";
    queue
        .heartbeat(worker, &[("host", "ui-bench".to_string())])
        .await
        .context("registering the seeding worker")?;
    let ops = ["push", "commit", "status", "diff"];
    let errors = [
        (
            ErrorKind::Conflict,
            "git push rejected: non-fast-forward on",
        ),
        (ErrorKind::Network, "fatal: unable to access remote for"),
        (ErrorKind::Timeout, "the op ran past its time limit on"),
        (
            ErrorKind::SandboxNotFound,
            "sandbox_not_found: no sandbox for",
        ),
    ];
    let mut rows = Vec::with_capacity(n);
    let mut made = 0;
    while made < n {
        let chunk = BATCH.min(n - made);
        let org = format!("org-{:02}", (made / BATCH) % 10);
        let mut specs = Vec::with_capacity(chunk);
        let mut meta = Vec::with_capacity(chunk);
        for i in made..made + chunk {
            let (agent, task, sandbox) = (
                format!("agent-{}", i % 2000),
                format!("task-{}", i % 50000),
                format!("sb-d{i:06}"),
            );
            let op = ops[i % ops.len()];
            specs.push(JobSpec::new(
                op,
                serde_json::json!({"agent_id": agent, "task_id": task, "sandbox_id": sandbox}),
            ));
            meta.push((op, agent, task, sandbox));
        }
        let options = EnqueueOptions {
            org: Some(org.clone()),
            ..Default::default()
        };
        let enqueued = queue
            .enqueue_many(DEAD_QUEUE, &specs, &options)
            .await
            .context("enqueueing the dead jobs")?;
        let mut ids = Vec::with_capacity(chunk);
        for e in enqueued {
            ids.push(e.context("a dead job to be")?.job_id);
        }
        let place: HashMap<&str, usize> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| (id.as_str(), k))
            .collect();
        let taken = queue
            .start(DEAD_QUEUE, worker, None, chunk)
            .await
            .context("taking the dead jobs")?;
        anyhow::ensure!(
            taken.len() == chunk,
            "took {} of {chunk} jobs (is another worker on the bench's prefix?)",
            taken.len()
        );
        let finished: Vec<Finished> = taken
            .iter()
            .enumerate()
            .map(|(k, d)| {
                let (kind, text) = errors[k % errors.len()];
                Finished {
                    id: d.id.clone(),
                    outcome: Outcome::Dead(JobError::new(kind, format!("{text} {}", d.id))),
                }
            })
            .collect();
        queue
            .finish(worker, &finished)
            .await
            .context("finishing the dead jobs")?;
        for (f, d) in finished.iter().zip(&taken) {
            let k = *place
                .get(d.id.as_str())
                .context("a taken job that was not enqueued here")?;
            let (op, agent, task, sandbox) = meta[k].clone();
            let Outcome::Dead(e) = &f.outcome else {
                unreachable!("finished dead")
            };
            rows.push(DeadRow {
                id: d.id.clone(),
                org: org.clone(),
                op,
                agent,
                task,
                sandbox,
                kind: e.kind.as_str(),
                message: e.message.clone(),
                enqueued_us: d.enqueued_at_us,
            });
        }
        made += chunk;
    }
    queue
        .leave(worker)
        .await
        .context("the seeding worker leaving")?;
    sqlx::query(
        r#"
INSERT INTO jobs (job_id, op, queue, org_id, agent_id, task_id, sandbox_id, status, attempts,
                  phase, max_attempts, worker_id, error_kind, error_message, enqueued_at,
                  started_at, finished_at, updated_at)
SELECT id, op, $9, org, agent, task, sandbox, 'dead', 1, 2, 3, 'ui-bench-seeder', kind, message,
       t, t + interval '5 milliseconds', t + interval '20 milliseconds',
       t + interval '20 milliseconds'
  FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
              $7::text[], $8::text[], $10::bigint[])
           AS d (id, org, op, agent, task, sandbox, kind, message, us),
       LATERAL (SELECT to_timestamp(us / 1e6) AS t) AS times
"#,
    )
    .bind(rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.org.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.op.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.agent.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.task.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.sandbox.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.kind.to_string()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.message.clone()).collect::<Vec<_>>())
    .bind(DEAD_QUEUE)
    .bind(rows.iter().map(|r| r.enqueued_us).collect::<Vec<_>>())
    .execute(pool)
    .await
    .context("the dead jobs' history rows")?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
