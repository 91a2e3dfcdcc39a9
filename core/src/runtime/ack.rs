//! The acknowledger: every outcome written to Redis in batches, retried until Redis takes
//! it, never dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use gitfleet_queue::Queue;

use super::InFlight;
use super::backend::Ack;

/// Writes outcomes to Redis in batches; an outcome is never dropped, only retried until
/// Redis takes it. Ends when every sender is gone and everything is written, or when Redis
/// answers that this worker was declared dead (then nothing it reports counts: the jobs
/// went to others), cancelling `declared_dead`.
pub(super) async fn ack_loop(
    queue: Queue,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<Ack>,
    retries_scheduled: Arc<Notify>,
    in_flight: InFlight,
    declared_dead: CancellationToken,
) {
    let mut buf = Vec::with_capacity(1024);
    loop {
        if rx.recv_many(&mut buf, 1000).await == 0 {
            return;
        }
        let finished: Vec<_> = buf.drain(..).map(|a| a.finished).collect();
        let mut backoff = Duration::from_millis(50);
        let mut warned = false;
        loop {
            match queue.finish(&worker, &finished).await {
                Ok(_) => break,
                Err(e) if e.is_fenced() => {
                    tracing::debug!(error = %e, jobs = finished.len(), "outcomes refused: declared dead");
                    declared_dead.cancel();
                    return;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(error = %e, jobs = finished.len(), "cannot record outcomes yet; retrying");
                        warned = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        in_flight.remove(finished.iter().map(|f| f.id.clone()));
        if finished
            .iter()
            .any(|f| matches!(f.outcome, gitfleet_queue::Outcome::Retry { .. }))
        {
            retries_scheduled.notify_waiters();
        }
    }
}
