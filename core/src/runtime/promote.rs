//! The promoter of one queue: delayed jobs and retries that fell due, moved into the ready
//! list in bounded chunks; woken at once by a retry this worker schedules.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use gitfleet_queue::Queue;

/// The longest a promoter sleeps when no delayed job is due sooner. Retries this worker
/// schedules wake it at once; a delayed job from a producer may start up to this late.
const PROMOTE_EVERY: Duration = Duration::from_millis(250);

/// Moves delayed jobs of one queue that fell due into its ready list.
pub(super) async fn promote_loop(
    queue: Queue,
    name: String,
    retries_scheduled: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        // Armed before looking, so a retry scheduled meanwhile still wakes this loop.
        let woken = retries_scheduled.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let wait = match queue.promote_due(&name).await {
            Ok(Some(next)) => next.min(PROMOTE_EVERY),
            Ok(None) => PROMOTE_EVERY,
            Err(e) => {
                tracing::debug!(queue = %name, error = %e, "cannot promote delayed jobs yet");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut woken => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(1))) => {}
        }
    }
}
