//! The MCP tools at the gateway's `/mcp` (JSON-RPC over Streamable HTTP, JSON answers):
//! the size of the `tools/list` answer, which an agent pays for in tokens on every
//! session, and a `git_status` tool call beside the same `status` job through the Rust
//! client, on one sandbox, alternating call by call and reduced by round as the echo round
//! trips are (the difference is what MCP and HTTP add to the job).

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use gitfleet_client::{Client, EnqueueOptions, JobSpec, JobStatus};
use serde::Serialize;
use serde_json::{Value, json};

use crate::stats::percentile;

/// What `tools/list` answered.
#[derive(Debug, Clone, Serialize)]
pub struct ToolList {
    pub tools: usize,
    /// The whole JSON-RPC answer's bytes, as sent.
    pub bytes: usize,
}

/// One round of `git_status` calls, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct StatusRound {
    pub pairs: usize,
    pub mcp_p50: f64,
    pub client_p50: f64,
    /// `mcp_p50 - client_p50`.
    pub added_p50: f64,
}

pub struct Mcp<'a> {
    pub http: reqwest::Client,
    pub base: &'a str,
    pub key: &'a str,
    pub client: &'a Client,
    pub org: &'a str,
}

impl Mcp<'_> {
    /// One JSON-RPC call; the answer and its size in bytes.
    async fn rpc(&self, method: &str, params: Value) -> anyhow::Result<(Value, usize)> {
        let res = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(self.key)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await?;
        let status = res.status();
        let body = res.bytes().await?;
        ensure!(
            status.is_success(),
            "POST /mcp {method} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let answer: Value = serde_json::from_slice(&body)
            .with_context(|| format!("{method}: {}", String::from_utf8_lossy(&body)))?;
        if answer.get("error").is_some() {
            bail!("{method}: {answer}");
        }
        Ok((answer, body.len()))
    }

    pub async fn tools_list(&self) -> anyhow::Result<ToolList> {
        let (answer, bytes) = self.rpc("tools/list", json!({})).await?;
        let tools = answer["result"]["tools"]
            .as_array()
            .with_context(|| format!("tools/list: {answer}"))?
            .len();
        Ok(ToolList { tools, bytes })
    }

    async fn via_mcp(&self, sandbox: &str) -> anyhow::Result<f64> {
        let t = Instant::now();
        let (answer, _) = self
            .rpc(
                "tools/call",
                json!({"name": "git_status", "arguments": {"sandbox_id": sandbox}}),
            )
            .await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if answer["result"]["isError"] != false {
            bail!("git_status over MCP: {answer}");
        }
        Ok(ms)
    }

    async fn via_client(&self, sandbox: &str) -> anyhow::Result<f64> {
        let spec = JobSpec::new("status", json!({ "sandbox_id": sandbox }));
        let options = EnqueueOptions {
            org: Some(self.org.to_string()),
            ..Default::default()
        };
        let t = Instant::now();
        let job = self
            .client
            .submit(&Client::route(&spec), &spec, &options)
            .await?;
        let record = self
            .client
            .wait(&job.job_id, Duration::from_secs(60))
            .await?
            .context("the status job's record")?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if record.status != JobStatus::Done {
            bail!("status through the client: {record:?}");
        }
        Ok(ms)
    }

    /// `warmup` pairs unmeasured, then `rounds` rounds of `pairs`.
    pub async fn status_rounds(
        &self,
        sandbox: &str,
        warmup: usize,
        rounds: usize,
        pairs: usize,
    ) -> anyhow::Result<Vec<StatusRound>> {
        for _ in 0..warmup {
            self.via_mcp(sandbox).await?;
            self.via_client(sandbox).await?;
        }
        let mut out = Vec::new();
        for round in 0..rounds {
            let (mut mcp, mut client) = (vec![], vec![]);
            for i in 0..pairs {
                if (i + round) % 2 == 0 {
                    mcp.push(self.via_mcp(sandbox).await?);
                    client.push(self.via_client(sandbox).await?);
                } else {
                    client.push(self.via_client(sandbox).await?);
                    mcp.push(self.via_mcp(sandbox).await?);
                }
            }
            let (m, c) = (percentile(&mcp, 50.0), percentile(&client, 50.0));
            eprintln!(
                "gateway-bench:   round {}: git_status over MCP p50 {m:.2} ms, status job {c:.2} ms",
                round + 1
            );
            out.push(StatusRound {
                pairs,
                mcp_p50: m,
                client_p50: c,
                added_p50: m - c,
            });
        }
        Ok(out)
    }
}
