//! Plain-text tables of the durable record, as `gitfleet jobs`, `sandboxes`, `orgs`,
//! `schedule` and `keys list` print them for people (`--json` prints the rows themselves, for scripts).

use chrono::{DateTime, Utc};

use gitfleet_store::{ApiKey, JobRow, OrgSpend, SandboxRow, SchedulerRun};

/// Columns padded to their widest cell, two spaces apart; a cell over 60 characters is cut.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let cut = |s: &str| -> String {
        if s.chars().count() > 60 {
            let mut t: String = s.chars().take(59).collect();
            t.push('…');
            t
        } else {
            s.to_string()
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cut(c)).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

fn millis(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(a), Some(b)) => format!("{}", (b - a).num_milliseconds()),
        _ => "-".into(),
    }
}

pub fn jobs(rows: &[JobRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|j| {
            vec![
                j.job_id.clone(),
                j.op.clone(),
                j.status.clone(),
                j.attempts.to_string(),
                opt(&j.org_id),
                time(j.enqueued_at),
                millis(j.started_at, j.finished_at),
                opt(&j.error_kind),
            ]
        })
        .collect();
    render(
        &[
            "JOB", "OP", "STATUS", "ATTEMPTS", "ORG", "ENQUEUED", "RUN MS", "ERROR",
        ],
        &body,
    )
}

pub fn sandboxes(rows: &[SandboxRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|s| {
            vec![
                s.sandbox_id.clone(),
                s.status.clone(),
                opt(&s.org_id),
                s.agent_branch.clone(),
                s.repo_url.clone(),
                opt(&s.last_operation),
                s.use_count.to_string(),
                s.error_count.to_string(),
                time(s.last_used_at),
            ]
        })
        .collect();
    render(
        &[
            "SANDBOX",
            "STATUS",
            "ORG",
            "BRANCH",
            "REPO",
            "LAST OP",
            "USES",
            "ERRORS",
            "LAST USED",
        ],
        &body,
    )
}

pub fn orgs(rows: &[OrgSpend]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|o| {
            vec![
                o.org_id.clone(),
                o.monthly_budget_usd
                    .map(|b| format!("{b:.4}"))
                    .unwrap_or_else(|| "unlimited".into()),
                format!("{:.4}", o.spend_usd),
                o.live_sandboxes.to_string(),
                if o.over_budget() { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    render(
        &[
            "ORG",
            "BUDGET USD/MONTH",
            "SPENT USD",
            "LIVE SANDBOXES",
            "OVER",
        ],
        &body,
    )
}

pub fn schedule(rows: &[SchedulerRun]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.task.clone(),
                time(r.tick),
                r.replica.clone(),
                r.outcome.clone(),
                r.duration_ms.to_string(),
                time(r.started_at),
            ]
        })
        .collect();
    render(
        &["TASK", "TICK", "REPLICA", "OUTCOME", "MS", "STARTED"],
        &body,
    )
}

/// API keys, with whether each may be used at `now` (`active`, `revoked` or `expired`).
pub fn keys(rows: &[ApiKey], now: DateTime<Utc>) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|k| {
            let state = if k.revoked_at.is_some() {
                "revoked"
            } else if k.is_active(now) {
                "active"
            } else {
                "expired"
            };
            vec![
                k.id.clone(),
                k.org.clone(),
                k.role.to_string(),
                state.into(),
                opt(&k.name),
                time(Some(k.created_at)),
                time(k.expires_at),
                time(k.last_used_at),
            ]
        })
        .collect();
    render(
        &[
            "ID",
            "ORG",
            "ROLE",
            "STATE",
            "NAME",
            "CREATED",
            "EXPIRES",
            "LAST USED",
        ],
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_and_long_cells_are_cut() {
        let long = "x".repeat(80);
        let out = render(
            &["A", "LONGER"],
            &[vec!["1".into(), "two".into()], vec![long, "3".into()]],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        // Columns in characters (the cut mark is one character, three bytes).
        let at = |line: &str, pat: &str| line[..line.find(pat).unwrap()].chars().count();
        let col = at(lines[0], "LONGER");
        assert_eq!(at(lines[1], "two"), col);
        assert_eq!(at(lines[2], "3"), col);
        assert!(lines[2].contains('…'));
    }
}
