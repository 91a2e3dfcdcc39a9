//! The notes printed under the table: how the figures were taken, and for each goal missed,
//! how much of the time was spent inside the worker (git) and how much around it (queue,
//! waiting for the lock or a slot).

use crate::agents::{Agents, Mode};
use crate::cold_clone::ColdClone;
use crate::inspect::Inspect;
use crate::report::Measured;
use crate::stats::median;
use crate::warm_clone::WarmClone;

pub struct Figures<'a> {
    pub warm: &'a Measured<WarmClone>,
    pub cold: &'a Measured<ColdClone>,
    pub inspect: &'a Measured<Inspect>,
    pub agents: [&'a Measured<Agents>; 2],
}

pub fn write(f: &Figures<'_>, breakdown: bool) -> Vec<String> {
    let mut notes = vec![
        "Latencies are enqueue → result as a producer sees them (Client::submit, then \
         Client::wait on the job); 'in worker' is the job record's finished_at - started_at. \
         Jobs run one at a time except in the agents rows."
            .to_string(),
    ];
    if let Measured::Ok(w) = f.warm {
        if w.latency.p50_ms > 50.0 {
            notes.push(format!(
                "warm clone misses its goal: {:.0} ms of the {:.0} ms p50 is spent in the \
                 worker running git{}.",
                w.in_worker.p50_ms,
                w.latency.p50_ms,
                if breakdown {
                    " (each command's share: the breakdown below)"
                } else {
                    "; rerun with --breakdown for each git command's share"
                }
            ));
        }
        if w.cache_hits < w.runs {
            notes.push(format!(
                "{} of {} warm clones missed the cache (a worker without a released copy of the \
                 repository took the job).",
                w.runs - w.cache_hits,
                w.runs
            ));
        }
    }
    if let Measured::Ok(c) = f.cold {
        notes.push(format!(
            "cold clone: gitfleet clones the remote into a bare mirror, then `clone --shared \
             --no-checkout` from it and checks out; plain git does one `git clone`. Inside the \
             worker the gitfleet clone took {:.0} ms at the median, against {:.0} ms for the \
             producer.",
            median(&c.gitfleet_in_worker_ms),
            c.gitfleet_median_ms
        ));
    }
    if let Measured::Ok(i) = f.inspect
        && (i.status.p50_ms > 10.0 || i.status.p99_ms > 50.0)
    {
        notes.push(format!(
            "status misses its goal: in the worker, p50 {:.1} ms and p99 {:.1} ms of the \
             {:.1} / {:.1} ms (one `git status --porcelain=v2 --untracked-files=all` over \
             3,000 files); the rest is the queue round trip.",
            i.status_in_worker.p50_ms, i.status_in_worker.p99_ms, i.status.p50_ms, i.status.p99_ms
        ));
    }
    for a in f.agents.into_iter().filter_map(|m| match m {
        Measured::Ok(a) => Some(a),
        Measured::Failed { .. } => None,
    }) {
        if a.duplicated > 0 {
            notes.push(format!(
                "agents ({:?}): {} commits are on the branch more than once (their job's \
                 trailer appears twice): a push was repeated.",
                a.mode, a.duplicated
            ));
        }
        if a.latency.p90_ms > 3000.0 || a.lost > 0 {
            notes.push(format!(
                "agents ({}): p90 {:.0} ms. Pushes to one branch take its push lock one at a \
                 time (a job waits up to 5 s for it, then fails as a retryable timeout and is \
                 retried after a backoff); {} of {} jobs needed more than one attempt. The \
                 last attempt started {:.0} ms after the enqueue at the median (p90 {:.0}) and \
                 ran {:.0} ms (p90 {:.0}).",
                match a.mode {
                    Mode::Change => "change",
                    Mode::Push => "push only",
                },
                a.latency.p90_ms,
                a.retried,
                a.agents,
                a.queued.p50_ms,
                a.queued.p90_ms,
                a.in_worker.p50_ms,
                a.in_worker.p90_ms,
            ));
        }
    }
    notes
}
