//! Where the time goes. With `--breakdown`, a tracing layer records every git process the
//! workers run (the runner's `git finished` debug event: subcommand and ms, spawn to exit)
//! and every mirror refresh (`mirror refreshed`: the fetch, or first clone, over `git://`),
//! under the phase running at the time, and reduces them per phase and command.
//!
//! Logs for people go to stderr at `warn` (or `$GITFLEET_LOG`), whether or not the
//! breakdown is on; the breakdown's debug events never reach that output.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

static PHASE: Mutex<String> = Mutex::new(String::new());
/// (phase, command, ms)
static SAMPLES: Mutex<Vec<(String, String, f64)>> = Mutex::new(Vec::new());

/// Installs the stderr log and, when `breakdown`, the recording layer.
pub fn init(breakdown: bool) {
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_env("GITFLEET_LOG").unwrap_or_else(|_| "warn".into()));
    let recorder = breakdown.then(|| {
        Recorder.with_filter(
            Targets::new()
                .with_target("gitfleet_core::git::runner", tracing::Level::DEBUG)
                .with_target("gitfleet_core::sandbox::mirror", tracing::Level::DEBUG),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(recorder)
        .try_init();
}

/// Names the phase that later git processes belong to.
pub fn phase(name: &str) {
    *PHASE.lock().unwrap_or_else(|e| e.into_inner()) = name.to_string();
}

struct Recorder;

#[derive(Default)]
struct Fields {
    message: Option<String>,
    command: Option<String>,
    ms: Option<u64>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = Some(format!("{value:?}")),
            "command" => self.command = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "ms" {
            self.ms = Some(value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "ms" {
            self.ms = u64::try_from(value).ok();
        }
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let command = match f.message.as_deref() {
            Some("git finished") => f.command,
            Some("mirror refreshed") => Some("(mirror refresh over git://)".to_string()),
            _ => None,
        };
        if let (Some(command), Some(ms)) = (command, f.ms) {
            let phase = PHASE.lock().unwrap_or_else(|e| e.into_inner()).clone();
            SAMPLES
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((phase, command, ms as f64));
        }
    }
}

/// One command in one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub phase: String,
    pub command: String,
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub total_ms: f64,
}

/// Everything recorded so far, per phase (in the order phases ran) and command (most total
/// time first).
pub fn rows() -> Vec<Row> {
    let samples = SAMPLES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for (phase, command, ms) in samples {
        if !order.contains(&phase) {
            order.push(phase.clone());
        }
        by.entry((phase, command)).or_default().push(ms);
    }
    let mut rows: Vec<Row> = by
        .into_iter()
        .map(|((phase, command), ms)| Row {
            count: ms.len(),
            p50_ms: crate::stats::percentile(&ms, 50.0),
            p90_ms: crate::stats::percentile(&ms, 90.0),
            total_ms: ms.iter().sum(),
            phase,
            command,
        })
        .collect();
    rows.sort_by(|a, b| {
        let pos = |p: &str| order.iter().position(|o| o == p);
        pos(&a.phase)
            .cmp(&pos(&b.phase))
            .then(b.total_ms.total_cmp(&a.total_ms))
    });
    rows
}
