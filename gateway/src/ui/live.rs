//! Live pages: one task per gateway process computes an update every
//! `GITFLEET_GATEWAY_UI_LIVE_MS` and hands the same update to every open page (a tokio
//! broadcast channel), so the database sees one set of queries per interval however many
//! pages are open: the job rows written since the last look (Postgres, `jobs_updated_idx`),
//! the queues' counts and the workers with the jobs each runs (Redis), and, only while a
//! Sandboxes page listens, the live sandboxes and those live at the last look (Postgres,
//! one bounded query on the registry's partial index of live sandboxes). The task runs
//! only while some page listens: the first subscriber starts it, and it ends at the first
//! interval with none.
//!
//! Each page's stream (`GET <base>/live`, server-sent events) sends an update filtered to
//! what its session may see: another organization's jobs, and sandboxes, are left out; a
//! Workers page (`?page=workers`) also gets each worker's row, a Sandboxes page
//! (`?page=sandboxes`) the sandboxes whose row changed. `GET <base>/live/stats` says how
//! many query sets the process has run and how many pages listen, so a test or a bench can
//! count them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::fleet::{sandbox_json, worker_json};
use super::session::Session;
use super::show_time;
use super::views::{attempts, shown_json};
use crate::problem::Problem;
use crate::routes::fleet::workers_seen_by;
use crate::state::AppState;
use gitfleet_client::store::{JobRow, SandboxRow};
use gitfleet_client::{QueueStats, WorkerInfo};

/// Rows read per interval at most; more are read at the next.
const ROWS_PER_TICK: i64 = 500;
/// How far back each look reaches again, for rows whose write committed late (another
/// process's clock, a slow transaction): rows seen already are not sent twice.
const OVERLAP: Duration = Duration::from_secs(3);
/// Sandboxes read per interval at most while a Sandboxes page listens (live ones are few:
/// a worker's slots).
const SANDBOXES_PER_TICK: i64 = 500;

/// One interval's update, for every page.
pub struct Tick {
    pub seq: u64,
    /// Job rows written since the last update.
    pub jobs: Vec<JobRow>,
    /// The queues' counts, when Redis answered.
    pub queues: Option<Vec<QueueStats>>,
    /// Live workers, busy slots, slots, when Redis answered.
    pub workers: Option<(u64, u64, u64)>,
    /// Every registered worker (unfiltered: each page's stream filters), when Redis
    /// answered.
    pub fleet: Option<Vec<WorkerInfo>>,
    /// The sandboxes whose row changed since the last look (a live one's first look
    /// included), when a Sandboxes page listens and Postgres answered.
    pub sandboxes: Option<Vec<SandboxRow>>,
}

/// Which page a stream is for: the pages whose rows the feed carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Other,
    Workers,
    Sandboxes,
}

/// The shared live feed of one gateway process.
pub struct Live {
    tx: broadcast::Sender<Arc<Tick>>,
    /// Whether the task runs; taken to start it and by the task to end.
    running: Mutex<bool>,
    query_sets: AtomicU64,
    interval: Duration,
    /// Streams of Workers pages, and of Sandboxes pages, open now.
    workers_pages: AtomicUsize,
    sandboxes_pages: AtomicUsize,
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
    /// Of them, Workers pages, and Sandboxes pages (the registry is read only while one
    /// listens).
    pub workers_pages: usize,
    pub sandboxes_pages: usize,
}

/// An open stream, counted among its page's streams until it ends.
struct Listening {
    live: Arc<Live>,
    page: Page,
}

impl Listening {
    fn new(live: Arc<Live>, page: Page) -> Self {
        if let Some(n) = live.pages(page) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Self { live, page }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        if let Some(n) = self.live.pages(self.page) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Live {
    pub fn new(interval: Duration) -> Self {
        let (tx, _) = broadcast::channel(16);
        Self {
            tx,
            running: Mutex::new(false),
            query_sets: AtomicU64::new(0),
            interval,
            workers_pages: AtomicUsize::new(0),
            sandboxes_pages: AtomicUsize::new(0),
        }
    }

    fn pages(&self, page: Page) -> Option<&AtomicUsize> {
        match page {
            Page::Workers => Some(&self.workers_pages),
            Page::Sandboxes => Some(&self.sandboxes_pages),
            Page::Other => None,
        }
    }

    pub fn stats(&self) -> LiveStats {
        LiveStats {
            query_sets: self.query_sets.load(Ordering::Relaxed),
            subscribers: self.tx.receiver_count(),
            interval_ms: self.interval.as_millis() as u64,
            running: *self.running.lock().expect("not poisoned"),
            workers_pages: self.workers_pages.load(Ordering::Relaxed),
            sandboxes_pages: self.sandboxes_pages.load(Ordering::Relaxed),
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
    // The sandboxes live at the last look, and what their rows said then.
    let mut boxes: HashMap<String, BoxMark> = HashMap::new();
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
        let watched: Option<Vec<String>> = if live.sandboxes_pages.load(Ordering::Relaxed) > 0 {
            Some(boxes.keys().cloned().collect())
        } else {
            // Nobody looks: the next look starts afresh.
            boxes.clear();
            None
        };
        let (changes, queues, workers, registry) = tokio::join!(
            state.store.jobs_changed_since(from, after, ROWS_PER_TICK),
            state.client.queues(),
            state.client.workers(),
            async {
                match &watched {
                    Some(ids) => Some(state.store.sandboxes_live_or(ids, SANDBOXES_PER_TICK).await),
                    None => None,
                }
            },
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
        let sandboxes = match registry {
            Some(Ok(rows)) => Some(changed_sandboxes(&mut boxes, rows)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "live: cannot read the sandbox registry");
                None
            }
            None => None,
        };
        let fleet = workers.ok();
        let workers = fleet.as_ref().map(|ws| {
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
            fleet,
            sandboxes,
        }));
    }
}

/// What a sandbox's row said at a look: its state, uses, failures, tier, expiry, last use.
type BoxMark = (
    String,
    i32,
    i32,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn box_mark(s: &SandboxRow) -> BoxMark {
    (
        s.status.clone(),
        s.use_count,
        s.error_count,
        s.ttl_tier.clone(),
        s.expires_at,
        s.last_used_at,
    )
}

/// Of a look's `rows` (the live sandboxes and those live at the last look), the ones whose
/// row is not as `seen` had it; `seen` becomes the live ones now (a sandbox that ended is
/// sent once, then no longer looked at).
fn changed_sandboxes(
    seen: &mut HashMap<String, BoxMark>,
    rows: Vec<SandboxRow>,
) -> Vec<SandboxRow> {
    let mut now = HashMap::new();
    let mut changed = Vec::new();
    for r in rows {
        let mark = box_mark(&r);
        let same = seen.get(&r.sandbox_id) == Some(&mark);
        if r.status != "terminated" {
            now.insert(r.sandbox_id.clone(), mark);
        }
        if !same {
            changed.push(r);
        }
    }
    *seen = now;
    changed
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

/// `GET <base>/live` parameters.
#[derive(Debug, Deserialize)]
pub struct LiveParams {
    /// `workers` or `sandboxes`: that page's rows too. Empty: the jobs, queues and counts.
    #[serde(default)]
    page: String,
}

/// `GET <base>/live`: the page's stream of updates (`event: tick`), each with the jobs the
/// session may see whose rows changed, the queues' counts and the workers; for a Workers
/// page each worker's row (its jobs as the session may see them), for a Sandboxes page
/// the session's sandboxes whose row changed.
pub async fn stream(
    State(state): State<AppState>,
    session: Session,
    Query(params): Query<LiveParams>,
) -> Result<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>, Problem> {
    let page = match params.page.as_str() {
        "" => Page::Other,
        "workers" => Page::Workers,
        "sandboxes" => Page::Sandboxes,
        other => {
            return Err(Problem::bad_param(
                "page",
                format!("unknown live page {other:?}; known: workers, sandboxes"),
            ));
        }
    };
    let listening = Listening::new(state.live.clone(), page);
    let rx = state.live.subscribe(&state);
    let base = state.config.ui.base.clone();
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
            let _still = &listening;
            let mut data = json!({
                "seq": t.seq,
                "jobs": jobs,
                "queues": t.queues,
                "workers": t.workers.map(|(n, busy, slots)| json!({"live": n, "busy": busy, "slots": slots})),
            });
            if page == Page::Workers
                && let Some(fleet) = &t.fleet
            {
                let now = Utc::now();
                let rows: Vec<Value> = workers_seen_by(&caller, fleet.clone())
                    .iter()
                    .map(|w| worker_json(&base, w, now))
                    .collect();
                data["worker_rows"] = Value::Array(rows);
            }
            if page == Page::Sandboxes
                && let Some(boxes) = &t.sandboxes
            {
                let rows: Vec<Value> = boxes
                    .iter()
                    .filter(|s| caller.sees(s.org_id.as_deref()))
                    .map(|s| sandbox_json(&base, s.clone()))
                    .collect();
                data["sandbox_rows"] = Value::Array(rows);
            }
            Ok(Event::default()
                .event("tick")
                .id(t.seq.to_string())
                .data(data.to_string()))
        })
        .take_until(stop);
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET <base>/live/stats`: the process's live feed, counted.
pub async fn stats(State(state): State<AppState>, _session: Session) -> Json<LiveStats> {
    Json(state.live.stats())
}
