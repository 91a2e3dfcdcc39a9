//! `gitfleet submit`: enqueue one job, or many with `--bulk`.

use std::io::{BufRead, Write};
use std::time::Duration;

use gitfleet_client::{Client, DEFAULT_QUEUE, EnqueueOptions, ErrorKind, JobSpec, OpName};
use serde_json::{Value, json};

use crate::connect::connect_as;
use crate::output::{error_object, report};
use crate::{Fail, Submit, Wait, secs};

/// `gitfleet submit <op> [args]`: enqueues one job, prints its record (after it finished,
/// with `--wait`).
pub async fn one(s: Submit, org: Option<String>) -> Result<u8, Fail> {
    let op = s.op.unwrap_or_default();
    refuse_internal(&op)?;
    let args: Value = match s.args.as_deref() {
        None => json!({}),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Fail::Invalid(format!("args: not valid JSON: {e}")))?,
    };
    let spec = JobSpec::new(op, args);
    let options = EnqueueOptions {
        delay: s.delay.map(|d| secs("--delay", d)).transpose()?,
        idempotency_key: s.idempotency_key,
        max_attempts: s.max_attempts,
        timeout: s.timeout_ms.map(Duration::from_millis),
        ..Default::default()
    };
    let client = connect_as(org).await?;
    let queue = s.queue.clone().unwrap_or_else(|| Client::route(&spec));
    let enqueued = client.submit(&queue, &spec, &options).await?;
    print_job(&client, &enqueued.job_id, &s.wait).await
}

/// Prints the record of job `id`, just enqueued (after it finished, with `--wait`); the
/// exit code follows its status.
pub(crate) async fn print_job(client: &Client, id: &str, wait: &Wait) -> Result<u8, Fail> {
    let record = if wait.wait {
        client.wait(id, secs("--timeout", wait.timeout)?).await?
    } else {
        client.job(id).await?
    };
    match record {
        Some(r) => Ok(report(&r, wait.wait)),
        None => Err(Fail::Unreachable(format!(
            "job {id} was enqueued but its record is gone"
        ))),
    }
}

/// `gitfleet submit --bulk`: one `{"op", "args"}` object a line on standard input, all
/// checked before any is enqueued; prints one job id (or error object) a line.
pub async fn bulk(s: Submit, org: Option<String>) -> Result<u8, Fail> {
    let mut specs = Vec::new();
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| Fail::Invalid(format!("standard input: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let spec: JobSpec = serde_json::from_str(&line).map_err(|e| {
            Fail::Invalid(format!(
                "line {}: not a {{\"op\", \"args\"}} object: {e}",
                i + 1
            ))
        })?;
        refuse_internal(&spec.op).map_err(|e| match e {
            Fail::Invalid(m) => Fail::Invalid(format!("line {}: {m}", i + 1)),
            other => other,
        })?;
        specs.push((i + 1, spec));
    }
    let options = EnqueueOptions {
        delay: s.delay.map(|d| secs("--delay", d)).transpose()?,
        max_attempts: s.max_attempts,
        timeout: s.timeout_ms.map(Duration::from_millis),
        ..Default::default()
    };
    let client = connect_as(org).await?;
    client.check_options(&options)?;
    for (line, spec) in &specs {
        client.check(spec).map_err(|e| match Fail::from(e) {
            Fail::Invalid(m) => Fail::Invalid(format!("line {line}: {m}")),
            other => other,
        })?;
    }
    let only_specs: Vec<JobSpec> = specs.iter().map(|(_, s)| s.clone()).collect();
    let mut code = 0;
    let mut out = std::io::stdout().lock();
    for chunk in only_specs.chunks(1000) {
        for r in client
            .submit_many(s.queue.as_deref().unwrap_or(DEFAULT_QUEUE), chunk, &options)
            .await?
        {
            match r {
                Ok(e) => {
                    let _ = writeln!(out, "{}", e.job_id);
                }
                Err(e) => {
                    code = 2;
                    let _ = writeln!(
                        out,
                        "{}",
                        error_object(ErrorKind::InvalidInput, &e.to_string())
                    );
                }
            }
        }
    }
    Ok(code)
}

/// `submit` is for producers: the fleet's own ops go through `gitfleet admin`.
fn refuse_internal(op: &str) -> Result<(), Fail> {
    match OpName::from_name(op) {
        Some(op) if op.is_internal() => Err(Fail::Invalid(format!(
            "op: {op} is internal to the fleet; an operator sends it with `gitfleet admin {op}`"
        ))),
        _ => Ok(()),
    }
}
