//! An `echo` job's round trip through the gateway (`POST /v1/jobs`, then `GET
//! /v1/jobs/{id}?wait=10`) beside the same through the Rust client (`submit`, then `wait`),
//! one after the other on an otherwise idle fleet.
//!
//! The client is the gateway's own (`AppState::client`: the same Redis connection, the same
//! record writer), so the difference is what the gateway adds: HTTP and JSON both ways, the
//! key check and the rate limiter, and the record it reads back to answer each request. The
//! two sides alternate job by job (which goes first swaps every pair), so a burst of load
//! from elsewhere on the machine hits both alike; each round is reduced on its own, and the
//! report gives the median over rounds.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use gitfleet_client::{Client, EnqueueOptions, JobSpec, JobStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::stats::{Summary, percentile};

/// What the gateway's long poll and the client's wait may take for one echo job.
const WAIT: Duration = Duration::from_secs(10);

/// One round's figures, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    pub pairs: usize,
    pub gateway_p50: f64,
    pub gateway_p99: f64,
    pub client_p50: f64,
    pub client_p99: f64,
    /// `gateway_p50 - client_p50`.
    pub added_p50: f64,
    /// The parts of each side, p50: `POST` and `GET ?wait`; `submit` and `wait`.
    pub post_p50: f64,
    pub get_p50: f64,
    pub submit_p50: f64,
    pub wait_p50: f64,
}

/// The two ways to run a job, with what they need.
pub struct Sides<'a> {
    pub http: reqwest::Client,
    pub base: &'a str,
    pub key: &'a str,
    pub client: &'a Client,
    pub org: &'a str,
}

impl Sides<'_> {
    /// Through the gateway: the two requests' times, in ms.
    async fn via_gateway(&self, n: usize) -> anyhow::Result<(f64, f64)> {
        let t0 = Instant::now();
        let created = self
            .http
            .post(format!("{}/v1/jobs", self.base))
            .bearer_auth(self.key)
            .json(&json!({"op": "echo", "args": {"n": n}}))
            .send()
            .await?;
        ensure!(
            created.status() == reqwest::StatusCode::CREATED,
            "POST /v1/jobs answered {}: {}",
            created.status(),
            created.text().await.unwrap_or_default()
        );
        let created: Value = created.json().await?;
        let id = created["job_id"].as_str().context("job_id")?.to_string();
        let t1 = Instant::now();
        let done: Value = self
            .http
            .get(format!(
                "{}/v1/jobs/{id}?wait={}",
                self.base,
                WAIT.as_secs()
            ))
            .bearer_auth(self.key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let t2 = Instant::now();
        if done["status"] != "done" || done["result"]["n"] != n {
            bail!("echo {id} through the gateway: {done}");
        }
        Ok((ms(t1 - t0), ms(t2 - t1)))
    }

    /// Through the Rust client: submit's and wait's times, in ms.
    async fn via_client(&self, n: usize) -> anyhow::Result<(f64, f64)> {
        let spec = JobSpec::new("echo", json!({ "n": n }));
        let options = EnqueueOptions {
            org: Some(self.org.to_string()),
            ..Default::default()
        };
        let t0 = Instant::now();
        let job = self
            .client
            .submit(&Client::route(&spec), &spec, &options)
            .await?;
        let t1 = Instant::now();
        let record = self
            .client
            .wait(&job.job_id, WAIT)
            .await?
            .context("the job's record")?;
        let t2 = Instant::now();
        if record.status != JobStatus::Done
            || record.result.as_ref().map(|r| &r["n"]) != Some(&json!(n))
        {
            bail!("echo {} through the client: {record:?}", job.job_id);
        }
        Ok((ms(t1 - t0), ms(t2 - t1)))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `warmup` pairs unmeasured, then `rounds` rounds of `pairs` pairs.
pub async fn run(
    sides: &Sides<'_>,
    warmup: usize,
    rounds: usize,
    pairs: usize,
) -> anyhow::Result<Vec<Round>> {
    for n in 0..warmup {
        sides.via_gateway(n).await?;
        sides.via_client(n).await?;
    }
    let mut out = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (mut post, mut get, mut submit, mut wait) = (vec![], vec![], vec![], vec![]);
        let (mut gateway, mut client) = (vec![], vec![]);
        for i in 0..pairs {
            let n = (round + 1) * 1_000_000 + i;
            let (g, c) = if (i + round) % 2 == 0 {
                let g = sides.via_gateway(n).await?;
                (g, sides.via_client(n).await?)
            } else {
                let c = sides.via_client(n).await?;
                (sides.via_gateway(n).await?, c)
            };
            post.push(g.0);
            get.push(g.1);
            gateway.push(g.0 + g.1);
            submit.push(c.0);
            wait.push(c.1);
            client.push(c.0 + c.1);
        }
        let (g, c) = (Summary::of(&gateway), Summary::of(&client));
        let r = Round {
            pairs,
            gateway_p50: g.p50_ms,
            gateway_p99: g.p99_ms,
            client_p50: c.p50_ms,
            client_p99: c.p99_ms,
            added_p50: g.p50_ms - c.p50_ms,
            post_p50: percentile(&post, 50.0),
            get_p50: percentile(&get, 50.0),
            submit_p50: percentile(&submit, 50.0),
            wait_p50: percentile(&wait, 50.0),
        };
        eprintln!(
            "gateway-bench:   round {}: gateway p50 {:.3} ms, client p50 {:.3} ms",
            round + 1,
            r.gateway_p50,
            r.client_p50
        );
        out.push(r);
    }
    Ok(out)
}
