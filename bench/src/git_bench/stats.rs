//! Percentiles (nearest rank, as `queue-bench` reports them) and medians over samples in
//! milliseconds.

use serde::Serialize;

/// The nearest-rank `p`-th percentile of `samples` (any order); NaN when there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median (the nearest-rank 50th percentile: a sample, never an average of two).
pub fn median(samples: &[f64]) -> f64 {
    percentile(samples, 50.0)
}

/// A set of latencies, reduced.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub n: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Self {
        Self {
            n: samples.len(),
            p50_ms: percentile(samples, 50.0),
            p90_ms: percentile(samples, 90.0),
            p99_ms: percentile(samples, 99.0),
            max_ms: percentile(samples, 100.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!(
            (s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms),
            (50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(median(&[5.0, 1.0, 3.0, 2.0, 4.0]), 3.0);
        assert!(median(&[]).is_nan());
    }
}
