//! Live pages and the database: `n` open `GET /ui/live` streams (server-sent events), and
//! the transactions the bench's database ran meanwhile, from `pg_stat_database` (each of
//! the gateway's queries is a transaction of its own). Read over a connection to another
//! database, so reading it adds nothing to what is counted. Compared for 0, 1 and 50
//! streams: the gateway computes each update once per interval for every open page, so 50
//! pages should cost what one does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use sqlx::PgPool;

use crate::pages::{Visitor, Who};

/// What one window with `streams` open pages counted.
#[derive(Debug, Clone)]
pub struct Window {
    pub streams: usize,
    pub secs: f64,
    /// Intervals in the window (`secs` / the live interval).
    pub intervals: f64,
    /// Query sets the gateway says it ran (`GET /ui/live/stats`).
    pub query_sets: u64,
    /// Transactions of the bench's database (`xact_commit + xact_rollback`).
    pub transactions: i64,
    /// Updates each page received: the fewest and the most.
    pub events_min: u64,
    pub events_max: u64,
}

impl Window {
    /// Transactions per interval.
    pub fn per_interval(&self) -> f64 {
        self.transactions as f64 / self.intervals
    }
}

async fn transactions(admin: &PgPool, db: &str) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database WHERE datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await
    .context("pg_stat_database")?;
    Ok(n)
}

async fn query_sets(v: &Visitor) -> anyhow::Result<(u64, u64)> {
    let a = v.get(Who::Admin, "/ui/live/stats").await?;
    anyhow::ensure!(a.status == 200, "GET /ui/live/stats: {}", a.status);
    let s: serde_json::Value = serde_json::from_str(&a.body)?;
    Ok((
        s["query_sets"].as_u64().unwrap_or(0),
        s["subscribers"].as_u64().unwrap_or(0),
    ))
}

/// Opens `streams` live pages (half admin, half the organization's), waits `settle`, then
/// counts over `secs`; closes them and waits until the gateway sees none.
pub async fn window(
    v: &Visitor,
    admin: &PgPool,
    db: &str,
    streams: usize,
    interval: Duration,
    settle: Duration,
    secs: Duration,
) -> anyhow::Result<Window> {
    let mut tasks = Vec::new();
    let counters: Vec<Arc<AtomicU64>> = (0..streams).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for (i, counter) in counters.iter().enumerate() {
        let who = if i % 2 == 0 { Who::Admin } else { Who::Org };
        let res = v
            .request(who, "/ui/live")
            .send()
            .await
            .context("GET /ui/live")?;
        anyhow::ensure!(res.status() == 200, "GET /ui/live: {}", res.status());
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            let mut body = res.bytes_stream();
            while let Some(Ok(chunk)) = body.next().await {
                let n = chunk.windows(11).filter(|w| w == b"event: tick").count();
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(settle).await;
    let (sets_before, listening) = query_sets(v).await?;
    anyhow::ensure!(
        listening as usize == streams,
        "{listening} pages listening, not {streams}"
    );
    let events_before: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let tx_before = transactions(admin, db).await?;
    let started = Instant::now();
    tokio::time::sleep(secs).await;
    let tx_after = transactions(admin, db).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let events: Vec<u64> = counters
        .iter()
        .zip(&events_before)
        .map(|(c, b)| c.load(Ordering::Relaxed) - b)
        .collect();
    let (sets_after, _) = query_sets(v).await?;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    // The feed stops at the first interval nobody listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while query_sets(v).await?.1 > 0 && Instant::now() < deadline {
        tokio::time::sleep(interval).await;
    }
    tokio::time::sleep(interval * 2).await;
    Ok(Window {
        streams,
        secs: elapsed,
        intervals: elapsed / interval.as_secs_f64(),
        query_sets: sets_after - sets_before,
        transactions: tx_after - tx_before,
        events_min: events.iter().copied().min().unwrap_or(0),
        events_max: events.iter().copied().max().unwrap_or(0),
    })
}
