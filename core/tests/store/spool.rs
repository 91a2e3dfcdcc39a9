//! The writer's records on disk, against a real Postgres: past its memory cap, new records
//! go to an overflow file, in order, read back once Postgres is there; spool files left by
//! earlier writers are replayed: a line that cannot be read loses no other record, and a
//! file is replayed by one writer at a time.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use gitfleet_contract::Redactor;
use gitfleet_store::writer::{WriterConfig, WriterHandle};
use gitfleet_store::{Record, Recorder, Store, WorkerEvent};
use gitfleet_testkit::postgres::PgServer;
use gitfleet_testkit::{TestStore, eventually};

/// The row of a worker that stopped long ago, as a spool line.
fn line(i: usize) -> String {
    let now = Utc::now();
    let record = Record::Worker(WorkerEvent {
        worker_id: format!("old-{i}"),
        host: "gone".into(),
        version: "0".into(),
        pid: 1,
        queues: "jobs".into(),
        state: "stopped".into(),
        started_at: now,
        at: now,
    });
    serde_json::to_string(&record).unwrap() + "\n"
}

/// A writer for worker `id` replaying `spool`, `batch` records per transaction, beating
/// only at its start and stop.
fn writer(store: &Store, spool: &Path, id: &str, batch: usize) -> WriterHandle {
    let config = WriterConfig {
        spool_dir: Some(spool.to_path_buf()),
        batch,
        beat_every: Duration::from_secs(3600),
        ..WriterConfig::default()
    };
    let now = Utc::now();
    let row = WorkerEvent {
        worker_id: id.into(),
        host: "test".into(),
        version: "0".into(),
        pid: std::process::id(),
        queues: "jobs".into(),
        state: "running".into(),
        started_at: now,
        at: now,
    };
    let (_recorder, handle) = Recorder::start(store.clone(), config, row, Redactor::default());
    handle
}

async fn old_rows(store: &Store) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM workers WHERE worker_id LIKE 'old-%'")
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_spool_line_that_cannot_be_read_loses_no_other_record_and_is_quarantined() {
    let t = TestStore::new().await;
    let spool = tempfile::tempdir().unwrap();
    let mut file = Vec::new();
    for i in 0..20 {
        file.extend(line(i).into_bytes());
        if i == 9 {
            file.extend(b"{\"record\": \"wor\xffker\"\n");
        }
    }
    std::fs::write(spool.path().join("gone-worker.jsonl"), &file).unwrap();

    let w = writer(&t.store, spool.path(), "replayer", 3);
    eventually(
        "every good record written",
        Duration::from_secs(30),
        || async {
            let n = old_rows(&t.store).await;
            (n == 20).then_some(()).ok_or(format!("{n} rows"))
        },
    )
    .await;
    let report = w.close().await;
    assert_eq!(
        report.written,
        20 + 2,
        "the 20 rows and the writer's own two"
    );
    let left = names(spool.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with("gone-worker.") && left[0].contains(".bad-"));
    assert_eq!(
        std::fs::read(spool.path().join(&left[0])).unwrap(),
        b"{\"record\": \"wor\xffker\"\n"
    );
}

#[tokio::test]
async fn a_writer_starting_while_another_replays_a_spool_file_does_not_replay_it_too() {
    let t = TestStore::new().await;
    let spool = tempfile::tempdir().unwrap();
    let n = 1500;
    let file: String = (0..n).map(line).collect();
    std::fs::write(spool.path().join("gone-worker.jsonl"), file).unwrap();

    // One record per transaction: the first writer is still replaying when the second
    // starts and finds the file under the first's name.
    let first = writer(&t.store, spool.path(), "first", 1);
    eventually(
        "the first writer claims the file",
        Duration::from_secs(30),
        || async {
            let left = names(spool.path());
            left.iter()
                .any(|n| n.ends_with(".replaying"))
                .then_some(())
                .ok_or(format!("{left:?}"))
        },
    )
    .await;
    let second = writer(&t.store, spool.path(), "second", 500);
    eventually("every record written", Duration::from_secs(60), || async {
        let rows = old_rows(&t.store).await;
        (rows == n as i64)
            .then_some(())
            .ok_or(format!("{rows} rows"))
    })
    .await;
    eventually(
        "the file replayed and removed",
        Duration::from_secs(30),
        || async {
            let left = names(spool.path());
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        },
    )
    .await;
    let (a, b) = (first.close().await, second.close().await);
    assert_eq!(
        a.written + b.written,
        n as u64 + 4,
        "each record once, and each writer's own two: {a:?} {b:?}"
    );
    assert_eq!(b.written, 2, "the second writer replayed nothing: {b:?}");
}

/// What a spool file holds, line by line: each record's worker id and state.
fn rows_in(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| match serde_json::from_str::<Record>(l).unwrap() {
            Record::Worker(w) => (w.worker_id, w.state),
            other => panic!("not a worker row: {other:?}"),
        })
        .collect()
}

/// The old workers' rows `range`, as spool lines hold them.
fn old(range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|i| (format!("old-{i}"), "stopped".to_string()))
        .collect()
}

fn worker_row(id: &str) -> WorkerEvent {
    let now = Utc::now();
    WorkerEvent {
        worker_id: id.into(),
        host: "test".into(),
        version: "0".into(),
        pid: std::process::id(),
        queues: "jobs".into(),
        state: "running".into(),
        started_at: now,
        at: now,
    }
}

fn record(i: usize) -> Record {
    serde_json::from_str(line(i).trim_end()).unwrap()
}

/// A writer whose memory holds 5 records, with Postgres away (a closed loopback port): the
/// sixth record on and every later one go to the overflow file while it runs; at its stop,
/// the 5 in memory are saved as `<id>.jsonl` and the overflow file becomes
/// `<id>-overflow.jsonl`, in order, nothing lost and nothing twice; the next writer, with
/// Postgres there, writes every one of them and removes both files.
#[tokio::test]
async fn past_its_memory_cap_a_writer_keeps_records_in_order_in_an_overflow_file() {
    let spool = tempfile::tempdir().unwrap();
    let down = gitfleet_testkit::store::store_on("postgres://postgres@127.0.0.1:1/gitfleet");
    let config = WriterConfig {
        spool_dir: Some(spool.path().to_path_buf()),
        memory_limit: 5,
        flush_timeout: Duration::from_millis(200),
        beat_every: Duration::from_secs(3600),
        ..WriterConfig::default()
    };
    let (recorder, handle) =
        Recorder::start(down, config, worker_row("capped"), Redactor::default());
    for i in 0..20 {
        recorder.record(record(i));
    }
    eventually(
        "the overflow file, while the writer runs",
        Duration::from_secs(20),
        || async {
            let left = names(spool.path());
            (left == ["capped.overflow"])
                .then_some(())
                .ok_or(format!("{left:?}"))
        },
    )
    .await;
    let report = handle.close().await;
    // The writer's own row ("running" at its start, "stopped" at its end) and the 20.
    assert_eq!((report.written, report.spooled), (0, 22), "{report:?}");
    assert_eq!(
        names(spool.path()),
        ["capped-overflow.jsonl", "capped.jsonl"]
    );
    let mut memory = vec![("capped".to_string(), "running".to_string())];
    memory.extend(old(0..4));
    assert_eq!(rows_in(&spool.path().join("capped.jsonl")), memory);
    let mut overflow = old(4..20);
    overflow.push(("capped".into(), "stopped".into()));
    assert_eq!(
        rows_in(&spool.path().join("capped-overflow.jsonl")),
        overflow
    );

    let t = TestStore::new().await;
    let next = writer(&t.store, spool.path(), "next", 500);
    eventually("every record written", Duration::from_secs(30), || async {
        let n = old_rows(&t.store).await;
        (n == 20).then_some(()).ok_or(format!("{n} rows"))
    })
    .await;
    eventually(
        "both files replayed and removed",
        Duration::from_secs(30),
        || async {
            let left = names(spool.path());
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        },
    )
    .await;
    let report = next.close().await;
    assert_eq!(report.written, 22 + 2, "each record once: {report:?}");
    let state: String = sqlx::query_scalar("SELECT state FROM workers WHERE worker_id = 'capped'")
        .fetch_one(t.store.pool())
        .await
        .unwrap();
    assert_eq!(
        state, "stopped",
        "the later row wins, whatever the files' order"
    );
}

/// A writer whose memory holds 5 records, while Postgres (a private server) is stopped:
/// the rest go to the overflow file; once Postgres is back, the same writer writes memory
/// first, then the overflow file, in order, removes the file and keeps writing new records
/// from memory; every record is written once and nothing is left on disk.
#[tokio::test]
async fn a_writer_reads_its_overflow_file_back_once_postgres_is_back() {
    let pg = PgServer::start().unwrap();
    let store = gitfleet_testkit::store::store_on(&pg.url());
    store.migrate().await.unwrap();
    pg.stop().unwrap();
    let spool = tempfile::tempdir().unwrap();
    let config = WriterConfig {
        spool_dir: Some(spool.path().to_path_buf()),
        memory_limit: 5,
        flush_timeout: Duration::from_secs(1),
        beat_every: Duration::from_secs(3600),
        ..WriterConfig::default()
    };
    let (recorder, handle) = Recorder::start(
        store.clone(),
        config,
        worker_row("capped"),
        Redactor::default(),
    );
    for i in 0..20 {
        recorder.record(record(i));
    }
    eventually("the overflow file", Duration::from_secs(20), || async {
        let left = names(spool.path());
        (left == ["capped.overflow"])
            .then_some(())
            .ok_or(format!("{left:?}"))
    })
    .await;

    pg.start_again().unwrap();
    eventually("every record written", Duration::from_secs(60), || async {
        let n = old_rows(&store).await;
        (n == 20).then_some(()).ok_or(format!("{n} rows"))
    })
    .await;
    eventually(
        "the overflow file read back and removed",
        Duration::from_secs(30),
        || async {
            let left = names(spool.path());
            left.is_empty().then_some(()).ok_or(format!("{left:?}"))
        },
    )
    .await;
    // Memory again: a record sent now is written without touching the disk.
    recorder.record(record(20));
    eventually(
        "the new record written",
        Duration::from_secs(30),
        || async {
            let n = old_rows(&store).await;
            (n == 21).then_some(()).ok_or(format!("{n} rows"))
        },
    )
    .await;
    assert_eq!(names(spool.path()), Vec::<String>::new());
    let report = handle.close().await;
    assert_eq!((report.written, report.spooled), (21 + 2, 0), "{report:?}");
}
