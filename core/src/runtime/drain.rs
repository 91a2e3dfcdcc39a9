//! Draining, as the worker's loops share it: whether Redis says this worker is asked to
//! drain (learnt from every beat, and from a fetch that Redis refused), and the state this
//! worker reports at every beat (`running`, `draining`, `drained`). A change of state is
//! beaten at once, not at the next interval, so `GET /v1/workers` shows it within a round
//! trip.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use gitfleet_queue::WorkerState;

#[derive(Clone)]
pub(super) struct Drain {
    /// What Redis last said: asked to drain, or not.
    requested: watch::Sender<bool>,
    state: Arc<Mutex<WorkerState>>,
    beat_now: Arc<Notify>,
}

impl Default for Drain {
    fn default() -> Self {
        Self {
            requested: watch::Sender::new(false),
            state: Arc::new(Mutex::new(WorkerState::Running)),
            beat_now: Arc::new(Notify::new()),
        }
    }
}

impl Drain {
    /// Records what Redis said of a drain request.
    pub(super) fn redis_says(&self, requested: bool) {
        self.requested
            .send_if_modified(|r| std::mem::replace(r, requested) != requested);
    }

    /// Resolves once Redis has said that this worker is asked to drain (at once if it has).
    pub(super) async fn requested(&self) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Resolves once Redis has said that the request is withdrawn (at once if it has).
    pub(super) async fn withdrawn(&self) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|r| !*r).await;
    }

    pub(super) fn state(&self) -> WorkerState {
        *self.state.lock().expect("not poisoned")
    }

    /// Moves to `state`, and has the heartbeat say so now.
    pub(super) fn set_state(&self, state: WorkerState) {
        *self.state.lock().expect("not poisoned") = state;
        self.beat_now.notify_one();
    }

    /// Resolves when a change of state wants a beat now.
    pub(super) async fn beat_wanted(&self) {
        self.beat_now.notified().await;
    }
}
