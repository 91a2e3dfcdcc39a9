//! `gitfleet-gateway`: the HTTP API (and its OpenAPI document, MCP tools) in front of the
//! fleet, configured from the environment (README.md's configuration table). Prints
//! `{"addr": "<address it listens on>"}` once it listens (with port 0, the one it got), and
//! runs until SIGTERM or Ctrl-C: it then stops taking connections, finishes the requests it
//! has, and writes the records it holds.

use anyhow::Context;
use gitfleet_gateway::config::GatewayConfig;
use tokio::signal::unix::{SignalKind, signal};

/// mimalloc, not glibc's malloc: a request allocates and frees many small buffers on
/// whichever thread runs it, and glibc's allocator was a quarter of the gateway's CPU at
/// 64 connections (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long requests in flight may take to finish once the gateway is told to stop.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    gitfleet_telemetry::init_tracing();
    let config = GatewayConfig::from_env()?;
    let addr = config.addr;
    let (state, background) = gitfleet_gateway::start(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} (GITFLEET_GATEWAY_ADDR)"))?;
    let bound = listener.local_addr()?;
    println!("{}", serde_json::json!({ "addr": bound.to_string() }));
    tracing::info!(addr = %bound, "gateway listening");
    let mut term = signal(SignalKind::terminate())?;
    let stopping = tokio_util::sync::CancellationToken::new();
    let signalled = stopping.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("stopping: finishing the requests in flight");
        signalled.cancel();
    });
    let server = axum::serve(listener, gitfleet_gateway::router(state))
        .with_graceful_shutdown(stopping.clone().cancelled_owned());
    // Long polls and event streams may outlast the grace time: they are cut then (a client
    // reconnects to another replica).
    let grace = async {
        stopping.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        r = server => r?,
        _ = grace => tracing::warn!("requests still open after {SHUTDOWN_GRACE:?}; closing them"),
    }
    background.stop().await;
    Ok(())
}
