//! Enqueue throughput: `wrk` (Debian's package, a separate process: 2 threads, 64
//! connections kept alive) posting to `POST /v1/jobs` for a fixed time, one job per request
//! or bulk arrays of 1,000. Its Lua script sets the body and headers and prints its summary
//! as one JSON line (requests, errors, latency percentiles) that [`Wrk`] reads.
//!
//! For reference, the same wrk against `GET /healthz` (no key, no Redis): what HTTP alone
//! costs on this machine, the ceiling of any route.
//!
//! Beside each, the same load through the Rust client in this process ([`client_load`]: 64
//! tasks calling the gateway's own `Client::submit`, or `submit_batch` with 1,000 jobs, as
//! the gateway's handler does): what the queue, Redis and the record writer can take
//! without HTTP, so the gap is what the gateway costs.
//!
//! The jobs go to a queue no worker serves, on a key prefix of their own: the figure is the
//! enqueue path, not workers taking jobs. After each run the jobs in the queue are counted
//! (every answered request must have enqueued its jobs), the writer is given time to write
//! their rows, and the prefix is emptied.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gitfleet_client::{BatchJob, Client, EnqueueOptions, JobSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::stats::percentile;

/// The queue the jobs wait in; no worker serves it.
pub const QUEUE: &str = "bench-load";
pub const CONNECTIONS: usize = 64;
const THREADS: usize = 2;

/// What one wrk run saw (its Lua `done` summary).
#[derive(Debug, Clone, Deserialize)]
pub struct Wrk {
    pub requests: u64,
    pub duration_us: u64,
    pub status_errors: u64,
    pub connect_errors: u64,
    pub read_errors: u64,
    pub write_errors: u64,
    pub timeouts: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// One run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRun {
    /// `gateway` (wrk over HTTP), `client` (the Rust client in this process) or `healthz`
    /// (wrk, `GET /healthz`).
    pub via: &'static str,
    /// Jobs per request: 1 or 1,000.
    pub per_request: usize,
    pub requests: u64,
    pub secs: f64,
    pub jobs_per_sec: f64,
    pub requests_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Jobs found waiting in the queue afterwards (at least `requests * per_request`: wrk
    /// does not count requests still in flight when it stops).
    pub jobs_in_queue: u64,
    /// How long after the run the gateway's record writer took to write the last of the
    /// run's rows (`None`: not within the bound).
    pub rows_behind_secs: Option<f64>,
    /// The run's rows over the time from its start to its last row written.
    pub writer_rows_per_sec: Option<f64>,
}

/// Checks wrk is there, naming how to get it.
pub fn require_wrk() -> anyhow::Result<()> {
    match std::process::Command::new("wrk")
        .arg("-v")
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if String::from_utf8_lossy(&out.stdout).starts_with("wrk ") => Ok(()),
        Ok(out) => bail!(
            "`wrk -v` printed {:?}; the load needs wrk (apt-get install wrk)",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(e) => bail!("cannot run wrk ({e}); the load needs it: apt-get install wrk"),
    }
}

/// The body of one request: one echo job, or an array of `n`.
pub fn body(n: usize) -> String {
    let job = |i: usize| format!(r#"{{"op":"echo","args":{{"n":{i}}},"queue":"{QUEUE}"}}"#);
    if n == 1 {
        job(0)
    } else {
        let jobs: Vec<String> = (0..n).map(job).collect();
        format!("[{}]", jobs.join(","))
    }
}

/// Writes the Lua script posting `body` with `key` into `dir` (`None`: plain GETs); its
/// path.
pub fn script(
    dir: &Path,
    name: &str,
    post: Option<(&str, &str)>,
) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}.lua"));
    let request = match post {
        Some((key, body)) => format!(
            r#"wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer {key}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"#
        ),
        None => String::new(),
    };
    let lua = format!(
        r#"{request}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'GATEWAY_BENCH {{"requests":%d,"duration_us":%d,"status_errors":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,"p50_us":%.0f,"p99_us":%.0f,"max_us":%.0f}}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"#
    );
    std::fs::write(&path, lua).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Runs wrk with `script` against `url` for `secs`.
pub async fn wrk(script: &Path, url: &str, secs: u64) -> anyhow::Result<Wrk> {
    let out = tokio::process::Command::new("wrk")
        .arg(format!("-t{THREADS}"))
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{secs}s"))
        .arg("--timeout")
        .arg("10s")
        .arg("-s")
        .arg(script)
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .context("running wrk")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout
        .lines()
        .find_map(|l| l.strip_prefix("GATEWAY_BENCH "))
    else {
        bail!(
            "wrk ({}) printed no summary:\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let w: Wrk = serde_json::from_str(line).with_context(|| format!("wrk's summary {line}"))?;
    let errors = w.status_errors + w.connect_errors + w.read_errors + w.write_errors + w.timeouts;
    if errors > 0 {
        bail!(
            "wrk saw {errors} failed requests of {}: {w:?}\n{stdout}",
            w.requests
        );
    }
    Ok(w)
}

impl LoadRun {
    pub fn from_wrk(per_request: usize, w: &Wrk) -> Self {
        let secs = w.duration_us as f64 / 1e6;
        Self {
            via: "gateway",
            per_request,
            requests: w.requests,
            secs,
            jobs_per_sec: (w.requests * per_request as u64) as f64 / secs,
            requests_per_sec: w.requests as f64 / secs,
            p50_ms: w.p50_us / 1000.0,
            p99_ms: w.p99_us / 1000.0,
            max_ms: w.max_us / 1000.0,
            jobs_in_queue: 0,
            rows_behind_secs: None,
            writer_rows_per_sec: None,
        }
    }
}

/// [`CONNECTIONS`] tasks enqueueing through `client` for `secs`, `per_request` jobs a
/// call, as `org`; the gateway's handler makes the same calls.
pub async fn client_load(
    client: &Client,
    org: &str,
    per_request: usize,
    secs: u64,
) -> anyhow::Result<LoadRun> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let options = EnqueueOptions {
        org: Some(org.to_string()),
        ..Default::default()
    };
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, options) = (client.clone(), options.clone());
            tokio::spawn(async move {
                let jobs: Vec<BatchJob> = (0..per_request)
                    .map(|i| BatchJob {
                        queue: QUEUE.to_string(),
                        spec: JobSpec::new("echo", json!({ "n": i })),
                        options: options.clone(),
                    })
                    .collect();
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    if per_request == 1 {
                        client.submit(QUEUE, &jobs[0].spec, &options).await?;
                    } else {
                        for r in client.submit_batch(&jobs).await? {
                            r?;
                        }
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let secs = start.elapsed().as_secs_f64();
    let requests = all.len() as u64;
    Ok(LoadRun {
        via: "client",
        per_request,
        requests,
        secs,
        jobs_per_sec: (requests * per_request as u64) as f64 / secs,
        requests_per_sec: requests as f64 / secs,
        p50_ms: percentile(&all, 50.0),
        p99_ms: percentile(&all, 99.0),
        max_ms: percentile(&all, 100.0),
        jobs_in_queue: 0,
        rows_behind_secs: None,
        writer_rows_per_sec: None,
    })
}

/// Waits up to `bound` until `count()` reaches `want`; how long it took.
pub async fn caught_up<F, Fut>(want: u64, bound: Duration, mut count: F) -> Option<f64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<u64>>,
{
    let start = Instant::now();
    let mut last = Ok(0);
    while start.elapsed() < bound {
        last = count().await;
        if last.as_ref().is_ok_and(|n| *n >= want) {
            return Some(start.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    match last {
        Ok(n) => {
            eprintln!("gateway-bench:   the record writer wrote {n} of {want} rows in {bound:?}")
        }
        Err(e) => eprintln!("gateway-bench:   cannot count the rows written: {e:#}"),
    }
    None
}
