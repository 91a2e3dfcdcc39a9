//! The heartbeat: this worker's liveness in Redis, the recovery of jobs held by workers
//! that stopped beating, and the give-back of jobs whose fetch reply was lost. A beat is
//! also how a worker that was paused past the dead-after time learns that the fleet
//! declared it dead (fencing, see [`super`]), and of a request to drain it (or its undoing;
//! see [`super::drain`]). Each beat carries the state the worker is in.

use std::collections::HashSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use gitfleet_queue::{Queue, QueueError};
use gitfleet_store::Recorder;

use super::InFlight;
use super::drain::Drain;

/// Beats; recovers the jobs of workers that stopped beating (and hands the final rows of
/// the jobs that recovery answered to the record writer, without waiting on it); gives back
/// jobs of its own whose fetch reply was lost. Ends, cancelling `declared_dead`, when a
/// beat finds that this worker was declared dead. A change of `drain`'s state is beaten at
/// once.
#[allow(clippy::too_many_arguments)]
pub(super) async fn heartbeat_loop(
    queue: Queue,
    worker: String,
    info: Vec<(&'static str, String)>,
    every: Duration,
    dead_after: Duration,
    in_flight: InFlight,
    records: Recorder,
    drain: Drain,
    declared_dead: CancellationToken,
    stop: CancellationToken,
) {
    let mut suspects: HashSet<String> = HashSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
            _ = drain.beat_wanted() => {}
        }
        let mut said = info.clone();
        said.push(("state", drain.state().as_str().to_string()));
        match queue.beat(&worker, &said).await {
            Ok(beat) => drain.redis_says(beat.drain_requested),
            Err(e) if e.is_fenced() => {
                tracing::debug!(error = %e, "heartbeat: declared dead");
                declared_dead.cancel();
                return;
            }
            Err(e) => {
                // Not beaten: this worker may look silent itself by now, and must not be
                // the one that declares it dead. Recovery waits for a beat that went through.
                tracing::debug!(error = %e, "heartbeat failed");
                continue;
            }
        }
        match queue.reap_dead_workers(dead_after).await {
            Ok(r) => records.jobs_answered(&r.jobs),
            Err(e) => tracing::debug!(error = %e, "could not check for dead workers"),
        }
        suspects = match give_back_lost(&queue, &worker, &in_flight, &suspects).await {
            Ok(next) => next,
            Err(e) => {
                tracing::debug!(error = %e, "could not check the held list");
                suspects
            }
        };
    }
}

/// An id in the held list that this worker does not know of, on two checks a heartbeat
/// apart, was taken by a fetch whose reply never arrived (between a fetch's reply and its
/// registration here lie microseconds, not seconds). Gives those back; returns the new
/// suspects.
pub(super) async fn give_back_lost(
    queue: &Queue,
    worker: &str,
    in_flight: &InFlight,
    suspects: &HashSet<String>,
) -> Result<HashSet<String>, QueueError> {
    let unknown: HashSet<String> = queue
        .held(worker)
        .await?
        .into_iter()
        .filter(|id| !in_flight.contains(id))
        .collect();
    let lost: Vec<String> = unknown.intersection(suspects).cloned().collect();
    if !lost.is_empty() {
        let n = queue.give_back(worker, &lost).await?;
        tracing::warn!(jobs = n, "gave back jobs whose fetch reply was lost");
    }
    Ok(unknown
        .into_iter()
        .filter(|id| !lost.contains(id))
        .collect())
}
