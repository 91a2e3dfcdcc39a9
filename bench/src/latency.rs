//! Pickup-latency recording (worker side) and summarising (harness side).
//!
//! A worker handling a job with `record: true` computes `now_us - sent_us`
//! and RPUSHes it (µs, decimal) to the Redis list `gfbench:<NS>:lat` over a
//! connection of its own. The harness reads that list back and reduces it to
//! percentiles.

use anyhow::Context as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde::Serialize;

use crate::side::{BenchJob, now_us};

/// The Redis list a side's workers record latencies into.
pub fn latency_key(namespace: &str) -> String {
    format!("gfbench:{namespace}:lat")
}

/// Worker-side recorder: one Redis connection, one list.
#[derive(Clone)]
pub struct LatencyRecorder {
    conn: ConnectionManager,
    key: String,
}

impl LatencyRecorder {
    /// Open a dedicated connection for recording latencies of `namespace`.
    pub async fn connect(redis_url: &str, namespace: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(redis_url).context("parsing redis url")?;
        let conn = client
            .get_connection_manager()
            .await
            .context("connecting latency recorder to redis")?;
        Ok(Self {
            conn,
            key: latency_key(namespace),
        })
    }

    /// Handle one benchmark job: a no-op unless `job.record`, in which case
    /// the latency is computed first and then pushed to the list.
    pub async fn observe(&self, job: &BenchJob) -> redis::RedisResult<()> {
        if !job.record {
            return Ok(());
        }
        let latency_us = now_us().saturating_sub(job.sent_us);
        let mut conn = self.conn.clone();
        conn.rpush::<_, _, ()>(&self.key, latency_us).await
    }
}

/// Percentiles of one pickup-latency measurement.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    /// Jobs sent with `record: true`.
    pub sent: usize,
    /// Latencies recorded before the wait bound expired.
    pub recorded: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarise recorded latencies (µs). Percentiles are nearest-rank over
    /// the recorded values only; `recorded < sent` means some jobs were not
    /// picked up within the bound and the figures are optimistic.
    pub fn from_micros(sent: usize, mut samples_us: Vec<u64>) -> Self {
        samples_us.sort_unstable();
        let pct = |p: f64| -> f64 {
            if samples_us.is_empty() {
                return f64::NAN;
            }
            let rank = (p / 100.0 * samples_us.len() as f64).ceil() as usize;
            let idx = rank.clamp(1, samples_us.len()) - 1;
            samples_us[idx] as f64 / 1000.0
        };
        Self {
            sent,
            recorded: samples_us.len(),
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            max_ms: pct(100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = LatencySummary::from_micros(100, (1..=100).map(|v| v * 1000).collect());
        assert_eq!(s.recorded, 100);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p90_ms, 90.0);
        assert_eq!(s.p99_ms, 99.0);
        assert_eq!(s.max_ms, 100.0);
    }

    #[test]
    fn empty_is_nan() {
        let s = LatencySummary::from_micros(5, vec![]);
        assert_eq!(s.recorded, 0);
        assert!(s.p50_ms.is_nan());
    }
}
