//! The fetcher of one queue: blocking `BLMOVE` into this worker's held list, then batches,
//! never more jobs taken than the queue's permits allow; each job goes to its apalis worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use gitfleet_queue::{Delivery, Queue, QueueError};

use super::InFlight;
use super::backend::Run;
use super::drain::Drain;

/// Jobs taken from Redis in one round trip, at most.
const FETCH_BATCH: usize = 100;

/// How long one blocking take waits before the fetcher looks around (shutdown, errors).
const BLOCK_FOR: Duration = Duration::from_secs(2);

/// How soon a fetch refused for a drain is tried again, in case the drain was withdrawn
/// before the runtime stopped this fetcher.
const DRAIN_RECHECK: Duration = Duration::from_millis(200);

/// Takes jobs from one queue and hands them to its apalis worker, never holding more than
/// the queue's permits allow. Ends, cancelling `declared_dead`, when Redis answers that
/// this worker was declared dead. When Redis refuses a fetch because the worker is asked to
/// drain, it tells `drain` (the runtime then stops it) and asks again a moment later (the
/// request may be withdrawn before the runtime acts on it).
#[allow(clippy::too_many_arguments)]
pub(super) async fn fetch_loop(
    queue: Queue,
    name: String,
    worker: String,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Run>,
    in_flight: InFlight,
    drain: Drain,
    declared_dead: CancellationToken,
    stop: CancellationToken,
) {
    let mut conn = None;
    // An id BLMOVE handed us that is not started yet: it must be, even after an error.
    let mut pending: Option<String> = None;
    let mut failing_since: Option<Instant> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        // `biased`: once the worker stops, it takes nothing more, even when a permit is free
        // in the same instant (an unbiased select picks a ready branch at random).
        let first = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        if stop.is_cancelled() {
            // Stopped meanwhile (from another thread): a job BLMOVE handed over and not yet
            // started stays in the held list, and is given back at exit.
            break;
        }
        let mut held = vec![first];
        while held.len() < FETCH_BATCH {
            match permits.clone().try_acquire_owned() {
                Ok(p) => held.push(p),
                Err(_) => break,
            }
        }
        let taken = take(
            &queue,
            &name,
            &worker,
            held.len(),
            &mut conn,
            &mut pending,
            &stop,
        )
        .await;
        match taken {
            Ok(batch) => {
                if let Some(since) = failing_since.take() {
                    tracing::info!(queue = %name, down_ms = since.elapsed().as_millis() as u64, "redis is back; fetching again");
                }
                backoff = Duration::from_millis(50);
                for delivery in batch {
                    in_flight.insert(&delivery.id);
                    let permit = held.pop().expect("never more jobs than permits");
                    if tx.send(Run { delivery, permit }).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.is_draining() => {
                // Nothing was started (and what BLMOVE took went back).
                tracing::debug!(queue = %name, error = %e, "fetch: asked to drain");
                drain.redis_says(true);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(DRAIN_RECHECK) => {}
                }
            }
            Err(e) if e.is_fenced() => {
                // Declared dead: the fetch started nothing (and put back what BLMOVE took).
                tracing::debug!(queue = %name, error = %e, "fetch: declared dead");
                declared_dead.cancel();
                return;
            }
            Err(e) => {
                conn = None;
                if failing_since.is_none() {
                    failing_since = Some(Instant::now());
                    tracing::warn!(queue = %name, error = %e, "cannot fetch jobs; retrying");
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

pub(super) async fn take(
    queue: &Queue,
    name: &str,
    worker: &str,
    n: usize,
    conn: &mut Option<redis::aio::MultiplexedConnection>,
    pending: &mut Option<String>,
    stop: &CancellationToken,
) -> Result<Vec<Delivery>, QueueError> {
    if let Some(id) = pending.as_deref() {
        let batch = started(queue.start(name, worker, Some(id), n - 1).await, pending)?;
        *pending = None;
        return Ok(batch);
    }
    let batch = queue.start(name, worker, None, n).await?;
    if !batch.is_empty() {
        return Ok(batch);
    }
    let c = match conn {
        Some(c) => c,
        None => conn.insert(queue.take_connection().await?),
    };
    let id = tokio::select! {
        biased;
        _ = stop.cancelled() => {
            // The BLMOVE may still land; whatever it moves is given back at exit.
            *conn = None;
            return Ok(Vec::new());
        }
        r = queue.take_blocking(c, name, worker, BLOCK_FOR) => r?,
    };
    if stop.is_cancelled() {
        // It landed as the worker stopped: the job stays in this worker's held list, not
        // started, and is given back at exit with the rest.
        return Ok(Vec::new());
    }
    match id {
        None => Ok(Vec::new()),
        Some(id) => {
            *pending = Some(id);
            let batch = started(
                queue.start(name, worker, pending.as_deref(), n - 1).await,
                pending,
            )?;
            *pending = None;
            Ok(batch)
        }
    }
}

/// A start's answer. Refused for a drain (or fencing), the id BLMOVE handed over is no
/// longer this worker's to start: the script put it back in its queue.
fn started(
    r: Result<Vec<Delivery>, QueueError>,
    pending: &mut Option<String>,
) -> Result<Vec<Delivery>, QueueError> {
    if let Err(e) = &r
        && (e.is_draining() || e.is_fenced())
    {
        *pending = None;
    }
    r
}
