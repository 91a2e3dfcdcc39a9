//! The run's figures beside issue 3's goals: one Markdown table (figure, value, goal,
//! verdict) followed by notes, or the same as JSON.

use serde::Serialize;

use crate::agents::{Agents, Mode};
use crate::breakdown;
use crate::cold_clone::ColdClone;
use crate::fixture::RepoInfo;
use crate::inspect::Inspect;
use crate::jail_cost::JailCost;
use crate::stats::Summary;
use crate::warm_clone::WarmClone;

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

    pub fn is_failed(&self) -> bool {
        matches!(self, Self::Failed { .. })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    pub workers: usize,
    pub concurrency: usize,
    pub quick: bool,
    /// How the workers ran git: `bwrap` (jailed) or `off`.
    pub jail: String,
    pub git_version: String,
    pub repo: RepoInfo,
    /// `git describe --always --dirty` of the workspace measured.
    pub commit: String,
    /// The 1-minute load average when the run began and when it ended (the machine is
    /// shared: anything above 0 is someone else's work competing with the run).
    pub load_start: f64,
    pub load_end: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub run: RunInfo,
    pub warm_clone: Measured<WarmClone>,
    pub cold_clone: Measured<ColdClone>,
    pub status_diff: Measured<Inspect>,
    pub agents_change: Measured<Agents>,
    pub agents_push: Measured<Agents>,
    pub jail_cost: Measured<JailCost>,
    pub rows: Vec<Row>,
    pub goals_missed: Vec<String>,
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Vec<breakdown::Row>>,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub figure: String,
    pub value: String,
    pub goal: String,
    /// `met`, `MISSED`, or empty where there is no goal.
    pub verdict: String,
}

/// Collects rows, and the goals missed.
#[derive(Default)]
struct Table {
    rows: Vec<Row>,
    missed: Vec<String>,
}

impl Table {
    fn info(&mut self, figure: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            figure: figure.into(),
            value: value.into(),
            goal: String::new(),
            verdict: String::new(),
        });
    }

    fn goal(&mut self, figure: impl Into<String>, value: String, goal: &str, met: bool) {
        let figure = figure.into();
        if !met {
            self.missed.push(format!("{figure}: {value}, goal {goal}"));
        }
        self.rows.push(Row {
            figure,
            value,
            goal: goal.to_string(),
            verdict: if met { "met" } else { "MISSED" }.to_string(),
        });
    }

    fn failed(&mut self, figure: &str, error: &str) {
        self.missed
            .push(format!("{figure}: not measured ({error})"));
        self.rows.push(Row {
            figure: figure.to_string(),
            value: format!("FAILED: {error}"),
            goal: String::new(),
            verdict: "MISSED".into(),
        });
    }
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn pair(s: &Summary) -> String {
    format!("{} / {}", ms(s.p50_ms), ms(s.p99_ms))
}

fn warm_rows(t: &mut Table, w: &WarmClone) {
    let n = w.runs;
    t.goal(
        format!("warm clone p50 (ms, n={n})"),
        ms(w.latency.p50_ms),
        "≤ 50",
        w.latency.p50_ms <= 50.0,
    );
    t.info("warm clone p99 (ms)", ms(w.latency.p99_ms));
    t.info("warm clone in worker p50 / p99 (ms)", pair(&w.in_worker));
    t.info("release after it p50 / p99 (ms)", pair(&w.release));
    t.info(
        "warm clone cache_hit=true",
        format!(
            "{}/{} ({:.0} %)",
            w.cache_hits,
            n,
            100.0 * w.cache_hits as f64 / n.max(1) as f64
        ),
    );
}

fn cold_rows(t: &mut Table, c: &ColdClone) {
    let all = |v: &[f64]| v.iter().map(|x| ms(*x)).collect::<Vec<_>>().join(" / ");
    t.info(
        format!(
            "cold clone, gitfleet median (ms, n={})",
            c.gitfleet_ms.len()
        ),
        format!("{} ({})", ms(c.gitfleet_median_ms), all(&c.gitfleet_ms)),
    );
    t.info(
        "cold clone, gitfleet in worker (ms)",
        all(&c.gitfleet_in_worker_ms),
    );
    t.info(
        format!(
            "cold clone, plain git clone median (ms, n={})",
            c.plain_ms.len()
        ),
        format!("{} ({})", ms(c.plain_median_ms), all(&c.plain_ms)),
    );
    t.goal(
        "cold clone, gitfleet / plain",
        format!("{:.2}×", c.ratio),
        "≤ 1.2×",
        c.ratio <= 1.2,
    );
    t.info(
        "cold clone, gitfleet / plain, median of pairs",
        format!("{:.2}×", c.pair_ratio_median),
    );
}

fn inspect_rows(t: &mut Table, i: &Inspect) {
    let n = i.status.n;
    t.goal(
        format!("status p50 (ms, n={n})"),
        ms(i.status.p50_ms),
        "≤ 10",
        i.status.p50_ms <= 10.0,
    );
    t.goal(
        "status p99 (ms)",
        ms(i.status.p99_ms),
        "≤ 50",
        i.status.p99_ms <= 50.0,
    );
    t.info("status in worker p50 / p99 (ms)", pair(&i.status_in_worker));
    t.info(
        format!("diff p50 / p99 (ms, n={})", i.diff.n),
        pair(&i.diff),
    );
    t.info("diff in worker p50 / p99 (ms)", pair(&i.diff_in_worker));
}

fn agents_rows(t: &mut Table, a: &Agents) {
    let name = match a.mode {
        Mode::Change => format!("{} agents, change", a.agents),
        Mode::Push => format!("{} agents, push only", a.agents),
    };
    t.goal(
        format!("{name}: landed / lost"),
        format!("{} / {}", a.landed, a.lost),
        "all / 0",
        a.lost == 0,
    );
    t.info(
        format!("{name}: enqueue → result p50 (ms)"),
        ms(a.latency.p50_ms),
    );
    t.goal(
        format!("{name}: enqueue → result p90 (ms)"),
        ms(a.latency.p90_ms),
        "≤ 3000",
        a.latency.p90_ms <= 3000.0,
    );
    t.info(
        format!("{name}: wall (s)"),
        format!("{:.2}", a.wall_ms / 1000.0),
    );
    t.info(
        format!("{name}: last attempt started after / ran, p50 (ms)"),
        format!("{} / {}", ms(a.queued.p50_ms), ms(a.in_worker.p50_ms)),
    );
    t.info(
        format!("{name}: push lock held (share of time / holds / hold p50 / gap p50, ms)"),
        match &a.lock {
            Some(l) => format!(
                "{:.0} % / {} / {} / {}",
                100.0 * l.busy_share,
                l.holds,
                ms(l.held.p50_ms),
                ms(l.gaps.p50_ms)
            ),
            None => "n/a".into(),
        },
    );
    let failed = if a.failed.is_empty() {
        "0".to_string()
    } else {
        a.failed
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    t.info(
        format!("{name}: failed / retried / commits added / duplicated"),
        format!(
            "{failed} / {} / {} / {}",
            a.retried, a.commits_added, a.duplicated
        ),
    );
}

fn jail_rows(t: &mut Table, j: &JailCost) {
    t.info(
        format!(
            "one git process (rev-parse) unjailed p50 / p99 (ms, n={})",
            j.unjailed.n
        ),
        pair(&j.unjailed),
    );
    t.info(
        "one git process (rev-parse) in the bwrap jail p50 / p99 (ms)",
        pair(&j.jailed),
    );
    t.info(
        "jail cost per git process, median of pairs (ms)",
        format!("{:.2}", j.pair_difference_median_ms),
    );
}

fn section<T>(t: &mut Table, figure: &str, m: &Measured<T>, rows: impl FnOnce(&mut Table, &T)) {
    match m {
        Measured::Ok(v) => rows(t, v),
        Measured::Failed { error } => t.failed(figure, error),
    }
}

impl Report {
    /// Builds the rows and the list of missed goals from the figures.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run: RunInfo,
        warm_clone: Measured<WarmClone>,
        cold_clone: Measured<ColdClone>,
        status_diff: Measured<Inspect>,
        agents_change: Measured<Agents>,
        agents_push: Measured<Agents>,
        jail_cost: Measured<JailCost>,
        notes: Vec<String>,
        breakdown: Option<Vec<breakdown::Row>>,
    ) -> Self {
        let mut t = Table::default();
        section(&mut t, "warm clone", &warm_clone, warm_rows);
        section(&mut t, "cold clone", &cold_clone, cold_rows);
        section(&mut t, "status and diff", &status_diff, inspect_rows);
        section(&mut t, "agents (change)", &agents_change, agents_rows);
        section(&mut t, "agents (push only)", &agents_push, agents_rows);
        section(&mut t, "jail cost", &jail_cost, jail_rows);
        Self {
            run,
            warm_clone,
            cold_clone,
            status_diff,
            agents_change,
            agents_push,
            jail_cost,
            rows: t.rows,
            goals_missed: t.missed,
            notes,
            breakdown,
        }
    }

    pub fn any_failed(&self) -> bool {
        self.warm_clone.is_failed()
            || self.cold_clone.is_failed()
            || self.status_diff.is_failed()
            || self.agents_change.is_failed()
            || self.agents_push.is_failed()
    }

    pub fn render_table(&self) -> String {
        let r = &self.run;
        let mut out = format!(
            "git-bench{}: {} workers, concurrency {}, git jail {}; repository of {} files, {} \
             commits (packs {:.1} MiB, checkout {:.1} MiB), served by git daemon on loopback; \
             {}; workspace {}; load average {:.2} at the start, {:.2} at the end\n\n",
            if r.quick { " --quick" } else { "" },
            r.workers,
            r.concurrency,
            r.jail,
            r.repo.files,
            r.repo.commits,
            r.repo.pack_mib,
            r.repo.checkout_mib,
            r.git_version,
            r.commit,
            r.load_start,
            r.load_end,
        );
        out.push_str("| figure | value | goal | verdict |\n|---|---|---|---|\n");
        for row in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.figure, row.value, row.goal, row.verdict
            ));
        }
        out.push('\n');
        if self.goals_missed.is_empty() {
            out.push_str("All goals met.\n");
        } else {
            out.push_str("Goals missed:\n");
            for m in &self.goals_missed {
                out.push_str(&format!("- {m}\n"));
            }
        }
        if !self.notes.is_empty() {
            out.push_str("\nNotes:\n");
            for n in &self.notes {
                out.push_str(&format!("- {n}\n"));
            }
        }
        if let Some(rows) = &self.breakdown {
            out.push_str(
                "\nGit processes run by the workers, per phase (spawn to exit, ms; \
                 concurrent in the agents phases):\n\n\
                 | phase | command | count | p50 | p90 | total |\n|---|---|---|---|---|---|\n",
            );
            for b in rows {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {:.0} |\n",
                    b.phase,
                    b.command,
                    b.count,
                    ms(b.p50_ms),
                    ms(b.p90_ms),
                    b.total_ms
                ));
            }
        }
        out
    }
}
