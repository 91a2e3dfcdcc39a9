//! The gateway under measurement, in this process: `gitfleet_gateway::start` and `router`,
//! served by `axum::serve` on a free loopback port, as the `gitfleet-gateway` binary
//! serves them.

use std::time::Duration;

use anyhow::Context as _;
use gitfleet_client::ops::JobLimits;
use gitfleet_client::{QueueConfig, StoreConfig};
use gitfleet_gateway::Background;
use gitfleet_gateway::config::GatewayConfig;
use gitfleet_gateway::state::AppState;
use tokio_util::sync::CancellationToken;

/// Requests one API key may make per second here: far above what the machine can serve, so
/// the limiter runs (its cost is in the figures) but never refuses.
pub const RATE_PER_SEC: u32 = 10_000_000;

pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub state: AppState,
    background: Background,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// A gateway on `queue` (its Redis and key prefix) and the database at `database_url`,
    /// with the defaults of the binary but for the rate limit ([`RATE_PER_SEC`]).
    pub async fn start(queue: QueueConfig, database_url: &str) -> anyhow::Result<Self> {
        let config = GatewayConfig {
            addr: "127.0.0.1:0".parse().expect("an address"),
            max_body_bytes: 16 << 20,
            max_bulk: 1000,
            rate_per_sec: RATE_PER_SEC,
            rate_burst: RATE_PER_SEC,
            key_cache: Duration::from_secs(5),
            spool_dir: None,
            ui: gitfleet_gateway::config::UiConfig::default(),
            queue,
            store: StoreConfig {
                database_url: Some(database_url.to_string()),
                ..Default::default()
            },
            limits: JobLimits::default(),
        };
        let (state, background) = gitfleet_gateway::start(config).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("listening on 127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let server = tokio::spawn(
            axum::serve(listener, gitfleet_gateway::router(state.clone()))
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        Ok(Self {
            base,
            state,
            background,
            stop,
            server,
        })
    }

    /// Stops serving and writes the records the gateway still holds.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        self.background.stop().await;
    }
}
