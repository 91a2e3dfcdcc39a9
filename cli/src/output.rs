//! What commands print on standard output: one JSON value a line (records, counts, errors),
//! or a table of the record for people; and the exit code a job's record stands for.

use std::io::Write;

use gitfleet_client::{ErrorKind, JobError, JobRecord, JobStatus};
use serde_json::{Value, json};

pub fn print(v: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
}

/// [`print`] on standard error, for a command whose standard output is a protocol's.
pub fn eprint(v: &Value) {
    let mut out = std::io::stderr().lock();
    let _ = writeln!(out, "{v}");
}

pub fn error_object(kind: ErrorKind, message: &str) -> Value {
    json!({ "error": JobError::new(kind, message) })
}

/// Prints a record and picks the exit code for it.
pub fn report(record: &JobRecord, waited: bool) -> u8 {
    print(&record.to_cli_json());
    exit_code(record.status, waited)
}

/// The exit code a job in `status` stands for (the table in `main.rs`'s docs): 0 done, 1
/// dead, 6 cancelled (it never ran: not a failure of the job, but no result either), 3 a
/// `--wait` that ended before the job did, else 0 (accepted).
pub fn exit_code(status: JobStatus, waited: bool) -> u8 {
    match status {
        JobStatus::Done => 0,
        JobStatus::Dead => 1,
        JobStatus::Cancelled => 6,
        JobStatus::Waiting | JobStatus::Delayed | JobStatus::Running if waited => 3,
        JobStatus::Waiting | JobStatus::Delayed | JobStatus::Running => 0,
    }
}

/// Prints rows as a JSON array (`--json`) or a table.
pub fn print_rows<T: serde::Serialize>(rows: &[T], json: bool, table: impl Fn(&[T]) -> String) {
    if json {
        print(&serde_json::to_value(rows).expect("plain data"));
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(table(rows).as_bytes());
    }
}
