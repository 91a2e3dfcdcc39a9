//! Spool files left by earlier writers, replayed into a real Postgres: a line that cannot be
//! read loses no other record, and a file is replayed by one writer at a time.

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use gitfleet_contract::Redactor;
use gitfleet_store::writer::{WriterConfig, WriterHandle};
use gitfleet_store::{Record, Recorder, Store, WorkerEvent};
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
