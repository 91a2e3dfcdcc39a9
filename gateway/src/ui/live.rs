//! Live pages: one task per gateway process computes an update every
//! `GITFLEET_GATEWAY_UI_LIVE_MS` and hands the same update to every open page (a tokio
//! broadcast channel), so the database sees one set of queries per interval however many
//! pages are open: the job rows written since the last look (Postgres, `jobs_updated_idx`),
//! the queues' counts and the workers (Redis). The task runs only while some page
//! listens: the first subscriber starts it, and it ends at the first interval with none.
//!
//! Each page's stream (`GET <base>/live`, server-sent events) sends an update filtered to
//! what its session may see: another organization's jobs are left out. `GET
//! <base>/live/stats` says how many query sets the process has run and how many pages
//! listen, so a test or a bench can count them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::session::Session;
use super::show_time;
use super::views::{attempts, shown_json};
use crate::state::AppState;
use gitfleet_client::QueueStats;
use gitfleet_client::store::JobRow;

/// Rows read per interval at most; more are read at the next.
const ROWS_PER_TICK: i64 = 500;
/// How far back each look reaches again, for rows whose write committed late (another
/// process's clock, a slow transaction): rows seen already are not sent twice.
const OVERLAP: Duration = Duration::from_secs(3);

/// One interval's update, for every page.
pub struct Tick {
    pub seq: u64,
    /// Job rows written since the last update.
    pub jobs: Vec<JobRow>,
    /// The queues' counts, when Redis answered.
    pub queues: Option<Vec<QueueStats>>,
    /// Live workers, busy slots, slots, when Redis answered.
    pub workers: Option<(u64, u64, u64)>,
}

/// The shared live feed of one gateway process.
pub struct Live {
    tx: broadcast::Sender<Arc<Tick>>,
    /// Whether the task runs; taken to start it and by the task to end.
    running: Mutex<bool>,
    query_sets: AtomicU64,
    interval: Duration,
}

/// What `GET <base>/live/stats` answers.
#[derive(Debug, Serialize)]
pub struct LiveStats {
    /// Sets of queries run since the process started (one per interval while pages listen).
    pub query_sets: u64,
    /// Pages listening now.
    pub subscribers: usize,
    pub interval_ms: u64,
    pub running: bool,
}

impl Live {
    pub fn new(interval: Duration) -> Self {
        let (tx, _) = broadcast::channel(16);
        Self {
            tx,
            running: Mutex::new(false),
            query_sets: AtomicU64::new(0),
            interval,
        }
    }

    pub fn stats(&self) -> LiveStats {
        LiveStats {
            query_sets: self.query_sets.load(Ordering::Relaxed),
            subscribers: self.tx.receiver_count(),
            interval_ms: self.interval.as_millis() as u64,
            running: *self.running.lock().expect("not poisoned"),
        }
    }

    /// A page's subscription; starts the task if it is not running.
    pub fn subscribe(&self, state: &AppState) -> broadcast::Receiver<Arc<Tick>> {
        let mut running = self.running.lock().expect("not poisoned");
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(run(state.clone()));
        }
        rx
    }
}

/// The task: an update per interval while anyone listens.
async fn run(state: AppState) {
    let live = state.live.clone();
    let mut ticker = tokio::time::interval(live.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The last row read: its write time and id.
    let mut since = Utc::now() - chrono::Duration::seconds(1);
    let mut last_id = String::new();
    let mut sent: HashMap<String, DateTime<Utc>> = HashMap::new();
    let mut caught_up = true;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = state.shutdown.cancelled() => {
                *live.running.lock().expect("not poisoned") = false;
                return;
            }
        }
        {
            let mut running = live.running.lock().expect("not poisoned");
            if live.tx.receiver_count() == 0 {
                *running = false;
                return;
            }
        }
        seq += 1;
        live.query_sets.fetch_add(1, Ordering::Relaxed);
        // Caught up: look back over the overlap again. Not: go on from the last row read.
        let (from, after) = if caught_up {
            (
                since - chrono::Duration::from_std(OVERLAP).expect("small"),
                "",
            )
        } else {
            (since, last_id.as_str())
        };
        let (changes, queues, workers) = tokio::join!(
            state.store.jobs_changed_since(from, after, ROWS_PER_TICK),
            state.client.queues(),
            state.client.workers(),
        );
        let mut jobs = Vec::new();
        match changes {
            Ok(changes) => {
                caught_up = (changes.len() as i64) < ROWS_PER_TICK;
                for c in changes {
                    if (c.updated_at, c.row.job_id.as_str()) > (since, last_id.as_str()) {
                        since = c.updated_at;
                        last_id = c.row.job_id.clone();
                    }
                    if sent.get(&c.row.job_id) == Some(&c.updated_at) {
                        continue;
                    }
                    sent.insert(c.row.job_id.clone(), c.updated_at);
                    jobs.push(c.row);
                }
                let horizon = since - chrono::Duration::from_std(OVERLAP).expect("small");
                sent.retain(|_, at| *at >= horizon);
            }
            Err(e) => tracing::debug!(error = %e, "live: cannot read the job rows"),
        }
        let workers = workers.ok().map(|ws| {
            let live: Vec<_> = ws.iter().filter(|w| !w.declared_dead).collect();
            (
                live.len() as u64,
                live.iter().map(|w| w.held.len() as u64).sum(),
                live.iter()
                    .map(|w| u64::from(w.concurrency.unwrap_or(0)))
                    .sum(),
            )
        });
        let _ = live.tx.send(Arc::new(Tick {
            seq,
            jobs,
            queues: queues.ok(),
            workers,
        }));
    }
}

/// A job row as a live update carries it: what its row on a page and its page show.
fn job_json(r: &JobRow) -> Value {
    json!({
        "job_id": r.job_id,
        "status": r.status,
        "attempts": attempts(r.attempts, r.max_attempts),
        "worker": r.worker_id.clone().unwrap_or_default(),
        "error_kind": r.error_kind.clone().unwrap_or_default(),
        "error_message": r.error_message.as_deref().map(|m| gitfleet_contract::Redactor::default().redact(m)).unwrap_or_default(),
        "result": r.result.as_ref().map(shown_json).unwrap_or_default(),
        "started": show_time(r.started_at),
        "finished": show_time(r.finished_at),
    })
}

/// `GET <base>/live`: the page's stream of updates (`event: tick`), each with the jobs the
/// session may see whose rows changed, the queues' counts and the workers.
pub async fn stream(
    State(state): State<AppState>,
    session: Session,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let rx = state.live.subscribe(&state);
    let caller = session.caller;
    let ticks = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(t) => return Some((t, rx)),
                // A slow page skips what it missed; the next update has the newest counts.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let stop = state.shutdown.clone().cancelled_owned();
    let events = ticks
        .map(move |t| {
            let jobs: Vec<Value> = t
                .jobs
                .iter()
                .filter(|r| caller.sees(r.org_id.as_deref()))
                .map(job_json)
                .collect();
            let data = json!({
                "seq": t.seq,
                "jobs": jobs,
                "queues": t.queues,
                "workers": t.workers.map(|(n, busy, slots)| json!({"live": n, "busy": busy, "slots": slots})),
            });
            Ok(Event::default()
                .event("tick")
                .id(t.seq.to_string())
                .data(data.to_string()))
        })
        .take_until(stop);
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// `GET <base>/live/stats`: the process's live feed, counted.
pub async fn stats(State(state): State<AppState>, _session: Session) -> Json<LiveStats> {
    Json(state.live.stats())
}
