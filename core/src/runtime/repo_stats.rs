//! The flush of the per-repository counters ([`crate::sandbox::stats`]): every few seconds
//! (and once more when the worker stops) the deltas go to the record writer, with the size
//! of each mirror used since the last flush measured here, off the job path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::sandbox::SandboxManager;
use crate::sandbox::stats::mirror_bytes;
use gitfleet_store::Recorder;

/// How often the counters are flushed. A flush with nothing counted writes nothing.
pub(super) const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Flushes every `every` until `stop`, then once more (the jobs have drained by then).
pub(super) async fn flush_loop(
    sandboxes: Arc<SandboxManager>,
    records: Recorder,
    every: Duration,
    stop: CancellationToken,
) {
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(every) => false,
        };
        flush(&sandboxes, &records).await;
        if stopping {
            return;
        }
    }
}

/// Hands what was counted since the last flush to the writer.
async fn flush(sandboxes: &SandboxManager, records: &Recorder) {
    let taken = sandboxes.stats().take();
    if taken.dropped > 0 {
        tracing::warn!(
            dropped = taken.dropped,
            "repository figures: too many repositories between two flushes; some events were not counted"
        );
    }
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    let mut rows = Vec::with_capacity(taken.rows.len());
    for (mut delta, mirror) in taken.rows {
        if let Some(path) = mirror {
            let bytes = match sizes.get(&path) {
                Some(b) => *b,
                None => {
                    let b = mirror_bytes(path.clone()).await;
                    sizes.insert(path, b);
                    b
                }
            };
            delta.mirror_bytes = Some(bytes);
        }
        rows.push(delta);
    }
    records.repo_stats(rows);
}
