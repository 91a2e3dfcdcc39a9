//! The run's figures beside issue 10's goals: one Markdown table (figure, median, every run,
//! goal, verdict), or the same as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::Plan;
use crate::load::LoadRun;
use crate::mcp::{StatusRound, ToolList};
use crate::round_trip::Round;
use crate::stats::median;

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub plan: Plan,
    /// `git describe --always --dirty` of the workspace measured.
    pub commit: String,
    /// The 1-minute load average when the run began and when it ended.
    pub load_start: f64,
    pub load_end: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub round_trips: Vec<Round>,
    /// Through the gateway (wrk) and the same through the Rust client.
    pub single: Vec<LoadRun>,
    pub bulk: Vec<LoadRun>,
    pub client_single: Vec<LoadRun>,
    pub client_bulk: Vec<LoadRun>,
    /// `GET /healthz` under the same load: HTTP alone.
    pub healthz: Vec<LoadRun>,
    pub tools_list: ToolList,
    pub mcp_status: Vec<StatusRound>,
}

/// Issue 10's goals.
const ADDED_P50_MS: f64 = 1.0;
const SINGLE_JOBS_PER_SEC: f64 = 15_000.0;
const SINGLE_P99_MS: f64 = 10.0;
const BULK_JOBS_PER_SEC: f64 = 80_000.0;
const TOOLS_LIST_BYTES: f64 = 3_000.0;
const MCP_ADDED_P50_MS: f64 = 2.0;

impl Report {
    pub fn new(
        run: RunInfo,
        round_trips: Vec<Round>,
        loads: Vec<LoadRun>,
        tools_list: ToolList,
        mcp_status: Vec<StatusRound>,
    ) -> Self {
        let pick = |via: &str, single: bool| -> Vec<LoadRun> {
            loads
                .iter()
                .filter(|l| l.via == via && (l.per_request == 1) == single)
                .cloned()
                .collect()
        };
        Self {
            single: pick("gateway", true),
            bulk: pick("gateway", false),
            client_single: pick("client", true),
            client_bulk: pick("client", false),
            healthz: pick("healthz", true),
            run,
            round_trips,
            tools_list,
            mcp_status,
        }
    }

    pub fn render_table(&self) -> String {
        let mut t = String::new();
        let r = &self.run;
        let _ = writeln!(
            t,
            "gateway-bench at {}: {} rounds of {} echo pairs (after {} unmeasured); {} load runs \
             of each kind ({} s single, {} s bulk), wrk -t2 -c64; load average {:.1} → {:.1}\n",
            r.commit,
            r.plan.rounds,
            r.plan.pairs,
            r.plan.warmup,
            r.plan.load_runs,
            r.plan.single_secs,
            r.plan.bulk_secs,
            r.load_start,
            r.load_end
        );
        let _ = writeln!(t, "| figure | median | runs | goal | verdict |");
        let _ = writeln!(t, "|---|---|---|---|---|");
        let rt = |f: fn(&Round) -> f64| -> Vec<f64> { self.round_trips.iter().map(f).collect() };
        row(
            &mut t,
            "echo via gateway p50 ms",
            &rt(|r| r.gateway_p50),
            None,
        );
        row(
            &mut t,
            "echo via Rust client p50 ms",
            &rt(|r| r.client_p50),
            None,
        );
        row(
            &mut t,
            "gateway adds at p50 ms",
            &rt(|r| r.added_p50),
            Some(Goal::AtMost(ADDED_P50_MS)),
        );
        row(
            &mut t,
            "echo via gateway p99 ms",
            &rt(|r| r.gateway_p99),
            None,
        );
        row(
            &mut t,
            "echo via Rust client p99 ms",
            &rt(|r| r.client_p99),
            None,
        );
        row(
            &mut t,
            "… gateway POST /v1/jobs p50 ms",
            &rt(|r| r.post_p50),
            None,
        );
        row(
            &mut t,
            "… gateway GET ?wait p50 ms",
            &rt(|r| r.get_p50),
            None,
        );
        row(
            &mut t,
            "… client submit p50 ms",
            &rt(|r| r.submit_p50),
            None,
        );
        row(&mut t, "… client wait p50 ms", &rt(|r| r.wait_p50), None);
        let load =
            |runs: &[LoadRun], f: fn(&LoadRun) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
        row(
            &mut t,
            "single POSTs, 64 connections: jobs/s",
            &load(&self.single, |l| l.jobs_per_sec),
            Some(Goal::AtLeast(SINGLE_JOBS_PER_SEC)),
        );
        row(
            &mut t,
            "… request p50 ms",
            &load(&self.single, |l| l.p50_ms),
            None,
        );
        row(
            &mut t,
            "… request p99 ms",
            &load(&self.single, |l| l.p99_ms),
            Some(Goal::AtMost(SINGLE_P99_MS)),
        );
        row(
            &mut t,
            "… last history row written, s after the run",
            &load(&self.single, behind),
            None,
        );
        row(
            &mut t,
            "… history rows written per s (run start → last row)",
            &load(&self.single, writer_rate),
            None,
        );
        row(
            &mut t,
            "… the same through the Rust client, 64 tasks: jobs/s",
            &load(&self.client_single, |l| l.jobs_per_sec),
            None,
        );
        row(
            &mut t,
            "… … call p50 ms",
            &load(&self.client_single, |l| l.p50_ms),
            None,
        );
        row(
            &mut t,
            "… … call p99 ms",
            &load(&self.client_single, |l| l.p99_ms),
            None,
        );
        row(
            &mut t,
            "bulk POSTs of 1,000, 64 connections: jobs/s",
            &load(&self.bulk, |l| l.jobs_per_sec),
            Some(Goal::AtLeast(BULK_JOBS_PER_SEC)),
        );
        row(
            &mut t,
            "… request p50 ms",
            &load(&self.bulk, |l| l.p50_ms),
            None,
        );
        row(
            &mut t,
            "… request p99 ms",
            &load(&self.bulk, |l| l.p99_ms),
            None,
        );
        row(
            &mut t,
            "… last history row written, s after the run",
            &load(&self.bulk, behind),
            None,
        );
        row(
            &mut t,
            "… history rows written per s (run start → last row)",
            &load(&self.bulk, writer_rate),
            None,
        );
        row(
            &mut t,
            "… the same through the Rust client (submit_batch), 64 tasks: jobs/s",
            &load(&self.client_bulk, |l| l.jobs_per_sec),
            None,
        );
        row(
            &mut t,
            "… … call p50 ms",
            &load(&self.client_bulk, |l| l.p50_ms),
            None,
        );
        row(
            &mut t,
            "GET /healthz (HTTP alone: no key, no Redis), 64 connections: requests/s",
            &load(&self.healthz, |l| l.requests_per_sec),
            None,
        );
        row(
            &mut t,
            "… request p99 ms",
            &load(&self.healthz, |l| l.p99_ms),
            None,
        );
        row(
            &mut t,
            &format!(
                "MCP tools/list answer, bytes ({} tools)",
                self.tools_list.tools
            ),
            &[self.tools_list.bytes as f64],
            Some(Goal::AtMost(TOOLS_LIST_BYTES)),
        );
        let st =
            |f: fn(&StatusRound) -> f64| -> Vec<f64> { self.mcp_status.iter().map(f).collect() };
        row(
            &mut t,
            "git_status over MCP p50 ms",
            &st(|r| r.mcp_p50),
            None,
        );
        row(
            &mut t,
            "status job via Rust client p50 ms",
            &st(|r| r.client_p50),
            None,
        );
        row(
            &mut t,
            "MCP adds at p50 ms",
            &st(|r| r.added_p50),
            Some(Goal::AtMost(MCP_ADDED_P50_MS)),
        );
        t
    }
}

/// NaN when the writer did not catch up within the bound.
fn behind(l: &LoadRun) -> f64 {
    l.rows_behind_secs.unwrap_or(f64::NAN)
}

fn writer_rate(l: &LoadRun) -> f64 {
    l.writer_rows_per_sec.unwrap_or(f64::NAN)
}

enum Goal {
    AtMost(f64),
    AtLeast(f64),
}

fn row(t: &mut String, name: &str, runs: &[f64], goal: Option<Goal>) {
    let m = median(runs);
    let all: Vec<String> = runs.iter().map(|v| fmt(*v)).collect();
    let (goal, verdict) = match goal {
        None => (String::new(), ""),
        Some(Goal::AtMost(g)) => (
            format!("≤ {}", fmt(g)),
            if m <= g { "met" } else { "MISSED" },
        ),
        Some(Goal::AtLeast(g)) => (
            format!("≥ {}", fmt(g)),
            if m >= g { "met" } else { "MISSED" },
        ),
    };
    let _ = writeln!(
        t,
        "| {name} | {} | {} | {goal} | {verdict} |",
        fmt(m),
        all.join(" / ")
    );
}

/// Three significant figures, thousands grouped.
fn fmt(v: f64) -> String {
    if v.is_nan() {
        return "—".into();
    }
    if v.abs() >= 1000.0 {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
