//! Benchmark results: per-side figures, rendered as one table (rows =
//! figures, columns = sides) or as JSON.

use serde::Serialize;

use crate::latency::LatencySummary;

/// Outcome of one drain measurement.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Drain {
    /// All jobs completed.
    Done {
        jobs: u64,
        secs: f64,
        jobs_per_sec: f64,
    },
    /// Gave up: the timeout expired, progress stopped, or the worker died.
    Stalled {
        completed: u64,
        jobs: u64,
        secs: f64,
        reason: String,
    },
}

/// Outcome of one enqueue-throughput measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Enqueue {
    pub jobs: usize,
    pub secs: f64,
    pub jobs_per_sec: f64,
}

/// Idle CPU of a worker process.
#[derive(Debug, Clone, Serialize)]
pub struct IdleCpu {
    /// CPU time over wall time, in % of one core.
    pub percent_of_one_core: f64,
    pub secs: f64,
    pub clock_ticks_per_sec: u64,
}

/// A figure that may have failed to be measured.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Measured<T> {
    Ok(T),
    Failed { error: String },
}

impl<T> Measured<T> {
    pub fn from_result(r: anyhow::Result<T>) -> Self {
        match r {
            Ok(v) => Self::Ok(v),
            Err(e) => Self::Failed {
                error: format!("{e:#}"),
            },
        }
    }
}

/// One labelled drain result (the label carries job count and concurrency).
#[derive(Debug, Clone, Serialize)]
pub struct DrainRow {
    pub jobs: usize,
    pub concurrency: usize,
    pub result: Measured<Drain>,
}

/// Everything measured for one side.
#[derive(Debug, Clone, Serialize)]
pub struct SideReport {
    pub side: String,
    pub namespace: String,
    pub idle_pickup: Option<Measured<LatencySummary>>,
    pub idle_cpu: Option<Measured<IdleCpu>>,
    pub drains: Vec<DrainRow>,
    pub far_future_jobs: usize,
    pub pickup_with_far_future: Option<Measured<LatencySummary>>,
    pub enqueue_single: Option<Measured<Enqueue>>,
    pub enqueue_batch: Option<Measured<Enqueue>>,
    pub enqueue_batch_size: usize,
    /// Free-form remarks (deviations from the plan, stalls, errors).
    pub notes: Vec<String>,
}

impl SideReport {
    pub fn new(side: &str, namespace: &str) -> Self {
        Self {
            side: side.to_owned(),
            namespace: namespace.to_owned(),
            idle_pickup: None,
            idle_cpu: None,
            drains: Vec::new(),
            far_future_jobs: 0,
            pickup_with_far_future: None,
            enqueue_single: None,
            enqueue_batch: None,
            enqueue_batch_size: 0,
            notes: Vec::new(),
        }
    }

    /// (row label, cell) pairs in display order.
    fn rows(&self) -> Vec<(String, String)> {
        let mut rows = Vec::new();
        latency_rows(&mut rows, "idle pickup", self.idle_pickup.as_ref());
        rows.push((
            "idle CPU, % of one core".to_owned(),
            cell(self.idle_cpu.as_ref(), |c| {
                format!("{:.2} % ({:.0} s)", c.percent_of_one_core, c.secs)
            }),
        ));
        for d in &self.drains {
            rows.push((
                format!("drain {} jobs, c={} (jobs/s)", d.jobs, d.concurrency),
                cell(Some(&d.result), |r| match r {
                    Drain::Done {
                        jobs_per_sec, secs, ..
                    } => format!("{jobs_per_sec:.0} ({secs:.2} s)"),
                    Drain::Stalled {
                        completed, jobs, ..
                    } => format!("stalled {completed}/{jobs}"),
                }),
            ));
        }
        latency_rows(
            &mut rows,
            &format!("pickup w/ {} far-future", self.far_future_jobs),
            self.pickup_with_far_future.as_ref(),
        );
        rows.push((
            "enqueue single (jobs/s)".to_owned(),
            cell(self.enqueue_single.as_ref(), |e| {
                format!("{:.0} (n={})", e.jobs_per_sec, e.jobs)
            }),
        ));
        rows.push((
            format!("enqueue batched x{} (jobs/s)", self.enqueue_batch_size),
            cell(self.enqueue_batch.as_ref(), |e| {
                format!("{:.0} (n={})", e.jobs_per_sec, e.jobs)
            }),
        ));
        rows
    }
}

fn latency_rows(
    rows: &mut Vec<(String, String)>,
    what: &str,
    m: Option<&Measured<LatencySummary>>,
) {
    rows.push((
        format!("{what} p50/p90/p99 (ms)"),
        cell(m, |l| {
            format!("{} / {} / {}", ms(l.p50_ms), ms(l.p90_ms), ms(l.p99_ms))
        }),
    ));
    rows.push((
        format!("{what} n recorded/sent"),
        cell(m, |l| {
            let mark = if l.recorded < l.sent {
                " (INCOMPLETE)"
            } else {
                ""
            };
            format!("{}/{}{mark}", l.recorded, l.sent)
        }),
    ));
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "-".to_owned()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn cell<T>(m: Option<&Measured<T>>, f: impl Fn(&T) -> String) -> String {
    match m {
        None => "not run".to_owned(),
        Some(Measured::Ok(v)) => f(v),
        Some(Measured::Failed { .. }) => "FAILED (see notes)".to_owned(),
    }
}

/// Render the side-by-side table followed by each side's notes.
pub fn render_table(reports: &[SideReport]) -> String {
    let per_side: Vec<Vec<(String, String)>> = reports.iter().map(SideReport::rows).collect();
    // Row labels in first-seen order across sides.
    let mut labels: Vec<String> = Vec::new();
    for rows in &per_side {
        for (label, _) in rows {
            if !labels.contains(label) {
                labels.push(label.clone());
            }
        }
    }
    let header: Vec<String> = std::iter::once("figure".to_owned())
        .chain(reports.iter().map(|r| r.side.clone()))
        .collect();
    let body: Vec<Vec<String>> = labels
        .iter()
        .map(|label| {
            std::iter::once(label.clone())
                .chain(per_side.iter().map(|rows| {
                    rows.iter()
                        .find(|(l, _)| l == label)
                        .map_or_else(|| "-".to_owned(), |(_, c)| c.clone())
                }))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(body.iter())
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String]| -> String {
        r.iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_owned()
    };
    let mut out = String::new();
    out.push_str(&line(&header));
    out.push('\n');
    out.push_str(
        &widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    out.push('\n');
    for r in &body {
        out.push_str(&line(r));
        out.push('\n');
    }
    for r in reports {
        if !r.notes.is_empty() {
            out.push_str(&format!(
                "\nnotes for {} (namespace {}):\n",
                r.side, r.namespace
            ));
            for n in &r.notes {
                out.push_str(&format!("  - {n}\n"));
            }
        }
    }
    out
}

/// Render all figures as pretty JSON.
pub fn render_json(reports: &[SideReport]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(reports)?)
}
