//! The writer's records on disk: the overflow file that takes new records while memory is
//! full (read back in order once memory is empty), and the spool files a stopping writer
//! leaves for the next one to replay (each claimed by renaming it first).
//! One JSON [`Record`] per line.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::record::Record;

/// Reads a spool or overflow file a batch of lines at a time.
struct Replay {
    path: PathBuf,
    reader: BufReader<File>,
}

/// The files of one writer.
pub(super) struct Spool {
    /// `None`: no spool directory, everything stays in memory.
    dir: Option<PathBuf>,
    /// The writer's own worker id, which names its files.
    worker_id: String,
    /// Records that did not fit in memory, oldest first; while it exists every new record
    /// goes there too.
    overflow: Option<(PathBuf, BufWriter<File>)>,
    /// The file being written back (the overflow file, or another process's spool file).
    replay: Option<Replay>,
    /// Spool files of other processes, to replay once memory is empty.
    claimable: Vec<PathBuf>,
    warned_unspooled: bool,
}

impl Spool {
    /// The spool of worker `worker_id` in `dir`, with the spool files other processes left
    /// there to replay.
    pub(super) fn new(dir: Option<PathBuf>, worker_id: String) -> Self {
        let claimable = dir
            .as_deref()
            .map(|dir| spool_files(dir, &worker_id))
            .unwrap_or_default();
        if !claimable.is_empty() {
            tracing::info!(
                files = claimable.len(),
                "records: replaying spool files left by earlier workers"
            );
        }
        Self {
            dir,
            worker_id,
            overflow: None,
            replay: None,
            claimable,
            warned_unspooled: false,
        }
    }

    /// Whether new records go to the overflow file.
    pub(super) fn overflowing(&self) -> bool {
        self.overflow.is_some()
    }

    /// Whether records wait on disk: in the overflow file, the file being replayed, or
    /// spool files not claimed yet.
    pub(super) fn has_records(&self) -> bool {
        self.replay.is_some() || self.overflow.is_some() || !self.claimable.is_empty()
    }

    /// Appends `record` to the overflow file, if one is open. `false`: the caller keeps it
    /// in memory.
    pub(super) fn overflow(&mut self, record: &Record) -> bool {
        let Some((_, file)) = &mut self.overflow else {
            return false;
        };
        let line = serde_json::to_string(record).expect("records serialize");
        if writeln!(file, "{line}").is_ok() {
            return true;
        }
        tracing::error!("records: cannot write the overflow file; keeping records in memory");
        false
    }

    /// Opens the overflow file; from here on every record goes there (see [`Spool::overflow`])
    /// until it is read back. Without a spool directory, warns once and does nothing.
    pub(super) fn open_overflow(&mut self, memory_limit: usize) {
        let Some(dir) = &self.dir else {
            if !self.warned_unspooled {
                self.warned_unspooled = true;
                tracing::warn!(
                    limit = memory_limit,
                    "records: memory limit reached and no spool directory; keeping them in memory"
                );
            }
            return;
        };
        let path = dir.join(format!("{}.overflow", self.worker_id));
        let opened = std::fs::create_dir_all(dir)
            .and_then(|_| OpenOptions::new().create(true).append(true).open(&path));
        match opened {
            Ok(f) => {
                tracing::warn!(path = %path.display(), "records: memory limit reached; new records go to the overflow file");
                self.overflow = Some((path, BufWriter::new(f)));
            }
            Err(e) => tracing::error!(error = %e, "records: cannot open the overflow file"),
        }
    }

    /// Reads the next batch to replay (at most `max` records) into `batch`, opening the next
    /// file when one is done.
    pub(super) fn read_batch(&mut self, batch: &mut Vec<Record>, max: usize) {
        loop {
            if self.replay.is_none() && !self.open_next_replay() {
                return;
            }
            let replay = self.replay.as_mut().expect("just opened");
            let mut line = String::new();
            while batch.len() < max {
                line.clear();
                match replay.reader.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) if line.trim().is_empty() => {}
                    Ok(_) => match serde_json::from_str::<Record>(line.trim()) {
                        Ok(r) => batch.push(r),
                        Err(e) => {
                            tracing::error!(error = %e, path = %replay.path.display(), "records: skipping a line of a spool file that does not parse")
                        }
                    },
                    Err(e) => {
                        tracing::error!(error = %e, path = %replay.path.display(), "records: cannot read a spool file");
                        break;
                    }
                }
            }
            if !batch.is_empty() {
                return;
            }
            // This file is done: everything in it is written.
            let done = self.replay.take().expect("open");
            let _ = std::fs::remove_file(&done.path);
        }
    }

    /// Opens the overflow file (once memory is empty) or a spool file to replay.
    fn open_next_replay(&mut self) -> bool {
        if let Some((path, mut file)) = self.overflow.take() {
            // From here new records go to memory again; the file is read back in order.
            let _ = file.flush();
            drop(file);
            let claimed = path.with_extension(format!("{}.replaying", ulid::Ulid::new()));
            if std::fs::rename(&path, &claimed).is_ok()
                && let Ok(f) = File::open(&claimed)
            {
                self.replay = Some(Replay {
                    path: claimed,
                    reader: BufReader::new(f),
                });
                return true;
            }
        }
        while let Some(path) = self.claimable.pop() {
            let claimed = path.with_extension(format!(
                "{}.{}.replaying",
                self.worker_id,
                ulid::Ulid::new()
            ));
            // Another process may have claimed it first: then it is theirs.
            if std::fs::rename(&path, &claimed).is_ok()
                && let Ok(f) = File::open(&claimed)
            {
                self.replay = Some(Replay {
                    path: claimed,
                    reader: BufReader::new(f),
                });
                return true;
            }
        }
        false
    }

    /// Saves `rest` (what could not be written) to `<spool>/<worker id>.jsonl`, and the
    /// overflow file as a spool file of its own. Returns how many records were saved.
    pub(super) fn save(&mut self, rest: Vec<Record>) -> u64 {
        let overflow = self.overflow.take();
        if rest.is_empty() && overflow.is_none() {
            return 0;
        }
        let Some(dir) = self.dir.clone() else {
            tracing::error!(
                records = rest.len(),
                "records: postgres unreachable at exit and no spool directory; records lost"
            );
            return 0;
        };
        let path = dir.join(format!("{}.jsonl", self.worker_id));
        let mut spooled = rest.len() as u64;
        let written = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let mut out = BufWriter::new(OpenOptions::new().create(true).append(true).open(&path)?);
            for r in &rest {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string(r).expect("records serialize")
                )?;
            }
            out.flush()
        })();
        if let Err(e) = written {
            tracing::error!(error = %e, path = %path.display(), records = rest.len(), "records: cannot save records for later; lost");
            spooled = 0;
        }
        if let Some((opath, mut file)) = overflow {
            let _ = file.flush();
            drop(file);
            // Becomes a spool file of its own, replayed in full by the next writer.
            let target = dir.join(format!("{}-overflow.jsonl", self.worker_id));
            if std::fs::rename(&opath, &target).is_ok() {
                spooled += count_lines(&target);
            }
        }
        // A file half replayed stays as it is (`*.replaying`): the next writer replays it
        // whole, which is harmless.
        tracing::warn!(records = spooled, path = %path.display(), "records: postgres unreachable; saved for the next worker to start here");
        spooled
    }
}

fn count_lines(path: &Path) -> u64 {
    File::open(path)
        .map(|f| BufReader::new(f).lines().count() as u64)
        .unwrap_or(0)
}

/// Spool files to replay: every `*.jsonl` and `*.replaying` file of another process.
fn spool_files(dir: &Path, own_worker: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            (name.ends_with(".jsonl") || name.ends_with(".replaying"))
                && !name.starts_with(own_worker)
        })
        .collect();
    // Any order will do (every write is order-independent); sorted, for a stable one.
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn records_round_trip_through_a_spool_line() {
        let r = Record::WorkerSandboxesTerminated {
            worker_id: "w-1".into(),
            at: Utc::now(),
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<Record>(&line).unwrap(), r);
    }
}
