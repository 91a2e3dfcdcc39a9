//! Watches the push lock of one branch while agents push to it: polls the lock's Redis key
//! every 2 ms and records each holding (a value set, until it changes or goes). It reads
//! gitfleet_core's key layout (`<prefix>lock:push:<repo cache key>:<branch>`); if that
//! layout changes, no holding is seen and the figures say n/a.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use serde::Serialize;
use tokio::sync::oneshot;

use crate::stats::Summary;

const EVERY: Duration = Duration::from_millis(2);

/// What the lock did while it was watched.
#[derive(Debug, Clone, Serialize)]
pub struct LockStats {
    /// Times the lock was taken.
    pub holds: usize,
    /// How long each holding lasted.
    pub held: Summary,
    /// From one holding's end to the next one's start.
    pub gaps: Summary,
    /// Time held / time watched.
    pub busy_share: f64,
}

pub struct LockWatch {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<LockStats>,
}

/// Starts watching `key`.
pub fn start(mut conn: ConnectionManager, key: String) -> LockWatch {
    let (stop, mut stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        let began = Instant::now();
        let mut holding: Option<(String, Instant)> = None;
        let (mut held, mut gaps) = (Vec::new(), Vec::new());
        let mut last_end: Option<Instant> = None;
        loop {
            let value: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap_or(None);
            let now = Instant::now();
            let changed = holding.as_ref().map(|(t, _)| t) != value.as_ref();
            if changed {
                if let Some((_, since)) = holding.take() {
                    held.push(ms(now - since));
                    last_end = Some(now);
                }
                if let Some(token) = value {
                    if let Some(end) = last_end {
                        gaps.push(ms(now - end));
                    }
                    holding = Some((token, now));
                }
            }
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
        let now = Instant::now();
        if let Some((_, since)) = holding {
            held.push(ms(now - since));
        }
        LockStats {
            holds: held.len(),
            busy_share: held.iter().sum::<f64>() / ms(now - began),
            held: Summary::of(&held),
            gaps: Summary::of(&gaps),
        }
    });
    LockWatch { stop, task }
}

impl LockWatch {
    pub async fn finish(self) -> Option<LockStats> {
        let _ = self.stop.send(());
        self.task.await.ok()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
