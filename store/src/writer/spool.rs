//! The writer's records on disk: the overflow file that takes new records while memory is
//! full (read back in order once memory is empty), and the spool files a stopping writer
//! leaves for the next one to replay. One JSON [`Record`] per line.
//!
//! A file is replayed by one writer at a time: the writer holds an exclusive `flock` on it
//! from before it renames the file to a name of its own until the file is gone, so a second
//! writer starting at once (or one that finds a `*.replaying` file) takes only files whose
//! replayer is gone (the kernel drops a dead process's lock). A line that cannot be read
//! costs only itself: the rest of the file is replayed and the line is kept in a quarantine
//! file (`<file>.bad-<ulid>`) beside it, never deleted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::record::Record;

/// Reads a spool or overflow file a batch of lines at a time, holding its lock.
struct Replay {
    path: PathBuf,
    /// The file, on which this writer holds an exclusive `flock` until it is closed (after
    /// the file is removed or kept).
    reader: BufReader<File>,
    /// Where lines that do not parse go (opened at the first one), and how many went.
    quarantine: Option<(PathBuf, BufWriter<File>)>,
    quarantined: u64,
    /// Reading failed: nothing more is read from the file.
    unreadable: bool,
    /// The whole file is read: once the last batch is written, the file is done.
    ended: bool,
    /// Reading failed, or a bad line could not be quarantined: the whole file is kept (as
    /// `<file>.bad-<ulid>`) instead of removed. Replaying its records twice is harmless.
    keep: bool,
}

impl Replay {
    /// Opens and locks `path`, then renames it to `claimed`. `None` when it is gone or
    /// another writer holds it (it is theirs).
    fn claim(path: &Path, claimed: PathBuf) -> Option<Replay> {
        let file = File::open(path).ok()?;
        flock(&file, FlockOperation::NonBlockingLockExclusive).ok()?;
        // Locked, but a writer that held it before may have finished with it since this
        // writer opened it: then the name is gone and so is the claim. Names are never
        // reused (each has a ulid or a worker id of its own), so a rename that succeeds
        // moved the file this writer locked.
        std::fs::rename(path, &claimed).ok()?;
        Some(Replay {
            path: claimed,
            reader: BufReader::new(file),
            quarantine: None,
            quarantined: 0,
            unreadable: false,
            ended: false,
            keep: false,
        })
    }

    /// Reads records into `batch` until it holds `max` or the file ends. Lines are read as
    /// bytes: one that is not UTF-8 is a bad line like any other, not the end of the file.
    fn read_into(&mut self, batch: &mut Vec<Record>, max: usize) {
        let mut line = Vec::new();
        while batch.len() < max && !self.unreadable {
            line.clear();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => {
                    self.ended = true;
                    return;
                }
                Ok(_) if line.trim_ascii().is_empty() => {}
                Ok(_) => match serde_json::from_slice::<Record>(line.trim_ascii()) {
                    Ok(r) => batch.push(r),
                    Err(e) => {
                        tracing::error!(error = %e, path = %self.path.display(), "records: a line of a spool file does not parse; quarantined, the rest replayed");
                        self.quarantine_line(&line);
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, path = %self.path.display(), "records: cannot read a spool file; keeping it whole");
                    self.unreadable = true;
                    self.ended = true;
                    self.keep = true;
                }
            }
        }
        // A full batch may have taken the last line: then the file is read to its end too.
        if !self.ended && matches!(self.reader.fill_buf(), Ok([])) {
            self.ended = true;
        }
    }

    /// Appends `line` (as read, newline and all) to the quarantine file.
    fn quarantine_line(&mut self, line: &[u8]) {
        if self.quarantine.is_none() {
            let path = bad_name(&self.path);
            match OpenOptions::new().create_new(true).append(true).open(&path) {
                Ok(f) => self.quarantine = Some((path, BufWriter::new(f))),
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "records: cannot open a quarantine file; keeping the spool file whole");
                    self.keep = true;
                    return;
                }
            }
        }
        let (_, out) = self.quarantine.as_mut().expect("just opened");
        let written = out.write_all(line).and_then(|()| {
            if line.ends_with(b"\n") {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        });
        match written {
            Ok(()) => self.quarantined += 1,
            Err(e) => {
                tracing::error!(error = %e, "records: cannot write a quarantine file; keeping the spool file whole");
                self.keep = true;
            }
        }
    }

    /// Every record of the file is written: removes it, or keeps it whole (renamed out of
    /// the replay's way) when a line could be neither read nor quarantined. The lock is
    /// held until then.
    fn finish(self) {
        let Replay {
            path,
            reader,
            quarantine,
            quarantined,
            keep,
            ..
        } = self;
        if let Some((qpath, mut out)) = quarantine {
            let flushed = out.flush();
            if flushed.is_ok() && !keep {
                tracing::warn!(lines = quarantined, path = %qpath.display(), "records: spool lines that do not parse are kept here; every other record was written");
            }
        }
        if keep {
            let kept = bad_name(&path);
            let _ = std::fs::rename(&path, &kept);
            tracing::error!(path = %kept.display(), "records: a spool file that could not be read whole is kept for an operator");
        } else {
            let _ = std::fs::remove_file(&path);
        }
        // Closing the file lets go of the lock, now that its name is gone.
        drop(reader);
    }
}

/// `<path>.bad-<ulid>`: not a name any writer replays.
fn bad_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".bad-{}", ulid::Ulid::new()));
    PathBuf::from(name)
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
    /// file when one is done. A file is finished (removed) once its last batch is written
    /// (see [`Spool::batch_written`]).
    pub(super) fn read_batch(&mut self, batch: &mut Vec<Record>, max: usize) {
        loop {
            if self.replay.is_none() && !self.open_next_replay() {
                return;
            }
            let replay = self.replay.as_mut().expect("just opened");
            replay.read_into(batch, max);
            if !batch.is_empty() {
                return;
            }
            // This file is done: everything in it is written (or quarantined).
            self.replay.take().expect("open").finish();
        }
    }

    /// The batch last read is written: a file read to its end is done now, not on the next
    /// read, so a writer that stops right after leaves nothing to replay twice.
    pub(super) fn batch_written(&mut self) {
        if self.replay.as_ref().is_some_and(|r| r.ended) {
            self.replay.take().expect("open").finish();
        }
    }

    /// Opens the overflow file (once memory is empty) or a spool file to replay.
    fn open_next_replay(&mut self) -> bool {
        if let Some((path, mut file)) = self.overflow.take() {
            // From here new records go to memory again; the file is read back in order.
            let _ = file.flush();
            drop(file);
            let claimed = path.with_extension(format!("{}.replaying", ulid::Ulid::new()));
            if let Some(replay) = Replay::claim(&path, claimed) {
                self.replay = Some(replay);
                return true;
            }
        }
        while let Some(path) = self.claimable.pop() {
            let claimed = path.with_extension(format!(
                "{}.{}.replaying",
                self.worker_id,
                ulid::Ulid::new()
            ));
            // Another writer may hold it or have claimed it first: then it is theirs.
            if let Some(replay) = Replay::claim(&path, claimed) {
                self.replay = Some(replay);
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
        // A file half replayed stays as it is (`*.replaying`, its lock let go when this
        // writer is dropped): the next writer replays it whole, which is harmless.
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

    fn record(i: usize) -> Record {
        Record::WorkerSandboxesTerminated {
            worker_id: format!("old-{i}"),
            at: Utc::now(),
        }
    }

    fn line(i: usize) -> Vec<u8> {
        let mut l = serde_json::to_vec(&record(i)).unwrap();
        l.push(b'\n');
        l
    }

    fn worker_of(r: &Record) -> String {
        match r {
            Record::WorkerSandboxesTerminated { worker_id, .. } => worker_id.clone(),
            other => panic!("{other:?}"),
        }
    }

    /// Every record `spool` replays, `max` at a time, until it has none left.
    fn drain(spool: &mut Spool, max: usize) -> Vec<String> {
        let mut all = Vec::new();
        loop {
            let mut batch = Vec::new();
            spool.read_batch(&mut batch, max);
            if batch.is_empty() {
                return all;
            }
            all.extend(batch.iter().map(worker_of));
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_line_that_cannot_be_read_costs_only_itself_and_is_kept_in_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let bad_json = b"{\"record\": \"worker_sandb\n".to_vec();
        let not_utf8 = b"\xff\xfe not text\n".to_vec();
        let mut file = Vec::new();
        for part in [
            line(0),
            line(1),
            bad_json.clone(),
            line(2),
            not_utf8.clone(),
        ] {
            file.extend(part);
        }
        // The last line torn: no newline, and its record is whole all the same.
        let mut last = line(3);
        last.pop();
        file.extend(last);
        std::fs::write(dir.path().join("gone.jsonl"), &file).unwrap();

        let mut spool = Spool::new(Some(dir.path().to_path_buf()), "me".into());
        assert_eq!(drain(&mut spool, 2), ["old-0", "old-1", "old-2", "old-3"]);
        let left = names(dir.path());
        assert_eq!(left.len(), 1, "{left:?}");
        assert!(left[0].contains(".bad-"), "{left:?}");
        let quarantined = std::fs::read(dir.path().join(&left[0])).unwrap();
        assert_eq!(quarantined, [bad_json, not_utf8].concat());
        // Not replayed again by the next writer.
        let mut next = Spool::new(Some(dir.path().to_path_buf()), "next".into());
        assert!(drain(&mut next, 10).is_empty());
        assert_eq!(names(dir.path()), left);
    }

    #[test]
    fn a_spool_file_is_replayed_by_one_writer_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let file: Vec<u8> = (0..10).flat_map(line).collect();
        std::fs::write(dir.path().join("gone.jsonl"), &file).unwrap();
        let at = || Some(dir.path().to_path_buf());

        // Two writers start at once: both find the file; the first to read claims it.
        let mut a = Spool::new(at(), "a".into());
        let mut b = Spool::new(at(), "b".into());
        assert!(a.has_records() && b.has_records());
        let mut batch = Vec::new();
        a.read_batch(&mut batch, 3);
        assert_eq!(batch.len(), 3);
        let mut none = Vec::new();
        b.read_batch(&mut none, 3);
        assert!(none.is_empty(), "the second writer replays nothing");

        // A writer that starts while `a` replays finds the file under `a`'s name, and
        // leaves it: `a` holds it.
        let claimed = names(dir.path());
        assert_eq!(claimed.len(), 1);
        assert!(claimed[0].ends_with(".replaying"), "{claimed:?}");
        let mut c = Spool::new(at(), "c".into());
        assert!(c.has_records());
        c.read_batch(&mut none, 3);
        assert!(
            none.is_empty(),
            "a file being replayed is not replayed twice"
        );
        let rest = drain(&mut a, 3);
        assert_eq!(batch.len() + rest.len(), 10);
        assert!(names(dir.path()).is_empty());

        // A writer gone mid-file lets go of it: the next one replays it whole.
        std::fs::write(dir.path().join("gone2.jsonl"), &file).unwrap();
        let mut dies = Spool::new(at(), "dies".into());
        dies.read_batch(&mut Vec::new(), 3);
        drop(dies);
        let mut next = Spool::new(at(), "next".into());
        assert_eq!(drain(&mut next, 4).len(), 10);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_file_is_gone_as_soon_as_its_last_batch_is_written() {
        // Batches that end exactly at the file's end, and one that ends short of it.
        for (lines, max) in [(6, 3), (7, 3)] {
            let dir = tempfile::tempdir().unwrap();
            let file: Vec<u8> = (0..lines).flat_map(line).collect();
            std::fs::write(dir.path().join("gone.jsonl"), &file).unwrap();
            let mut spool = Spool::new(Some(dir.path().to_path_buf()), "me".into());
            let mut read = 0;
            loop {
                let mut batch = Vec::new();
                spool.read_batch(&mut batch, max);
                assert!(!batch.is_empty(), "{lines} lines: the file ended early");
                read += batch.len();
                spool.batch_written();
                if read == lines {
                    break;
                }
                assert_eq!(names(dir.path()).len(), 1, "kept while lines are left");
            }
            assert!(
                names(dir.path()).is_empty(),
                "{lines} lines by {max}: {:?}",
                names(dir.path())
            );
            assert!(!spool.has_records());
        }
    }

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
