//! gitfleet-gateway: the one front door for every caller outside the fleet.
//!
//! A stateless HTTP server (axum): any number of replicas may run behind a load balancer,
//! all of them over the same Redis and Postgres. It serves
//!
//! - the JSON API under `/v1` (jobs, queues, workers and draining them, sandboxes, usage,
//!   the schedule, keys, the audit log), errors as RFC 9457 problem documents
//!   ([`problem`]); every action through it is an audit entry ([`audit`]);
//! - MCP tools for agents at `/mcp` (Streamable HTTP, stateless; `gitfleet-mcp`), for
//!   producer keys and above;
//! - the dashboard for people at `/ui` (server-rendered pages, signed in with an API key;
//!   [`ui`], docs/dashboard.md);
//! - `/healthz` and `/readyz`, without auth;
//! - the reference: `/openapi.json` (OpenAPI 3.1, [`openapi`]) and `/docs` (it rendered,
//!   [`docs`]), without auth.
//!
//! Every `/v1` request carries an API key (`Authorization: Bearer gfk_…`, [`auth`]) that
//! names its organization and role. Jobs are enqueued through `gitfleet-client`, the same
//! library as the CLI's, stamped with the key's organization; their rows are written by a
//! background writer, never in the request path. docs/api.md is the reference.

pub mod audit;
pub mod auth;
pub mod config;
pub mod docs;
mod extract;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod state;
pub mod ui;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use tokio_util::sync::CancellationToken;

use crate::auth::Keys;
use crate::config::GatewayConfig;
use crate::problem::Problem;
use crate::state::{AppState, Shared};
use gitfleet_client::store::writer::WriterConfig;
use gitfleet_client::store::{Budgets, Recorder, WriterHandle};
use gitfleet_client::{Client, Store};
use gitfleet_contract::Redactor;

/// Every route of the gateway, on `state`.
pub fn router(state: AppState) -> Router {
    use routes::{audit, fleet, health, jobs, repositories, schedule};
    let max_body = state.config.max_body_bytes;
    let mcp = Router::new()
        .nest_service(
            "/mcp",
            gitfleet_mcp::streamable_http_service(state.client.clone(), state.shutdown.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            mcp_auth,
        ));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/jobs/actions", post(jobs::bulk))
        .route("/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/v1/jobs/{id}/delete", post(jobs::delete))
        .route("/v1/jobs/{id}/run-now", post(jobs::run_now))
        .route("/v1/audit", get(audit::list))
        .route("/v1/queues", get(fleet::queues))
        .route("/v1/workers", get(fleet::workers))
        .route("/v1/workers/{id}/drain", post(fleet::drain))
        .route("/v1/workers/{id}/undrain", post(fleet::undrain))
        .route("/v1/sandboxes", get(fleet::sandboxes))
        .route("/v1/sandboxes/{id}", delete(fleet::release))
        .route("/v1/repositories", get(repositories::list))
        .route("/v1/cache/hit-rate", get(repositories::hit_rate))
        .route("/v1/orgs/{org}/usage", get(fleet::usage))
        .route("/v1/schedule", get(schedule::get))
        .route("/v1/schedule/{task}/run", post(schedule::run))
        .route("/v1/keys", post(fleet::create_key).get(fleet::list_keys))
        .route("/v1/keys/{id}", delete(fleet::revoke_key))
        .route("/openapi.json", get(openapi::serve))
        .route("/docs", get(docs::serve))
        .merge(mcp)
        .merge(ui::router(&state.config.ui))
        .fallback(|| async { Problem::not_found("no such route; see /openapi.json") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(state)
}

/// The MCP endpoint's door: the request's API key must be a producer's (or above); its
/// organization goes to the tools as their [`gitfleet_mcp::McpIdentity`].
async fn mcp_auth(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::FromRequestParts;
    use axum::response::IntoResponse;
    let (mut parts, body) = req.into_parts();
    let caller = match auth::Caller::from_request_parts(&mut parts, &state).await {
        Ok(c) => c,
        Err(p) => return p.into_response(),
    };
    if let Err(p) = caller.require(gitfleet_contract::Role::Producer) {
        return p.into_response();
    }
    parts
        .extensions
        .insert(gitfleet_mcp::McpIdentity { org: caller.org });
    let res = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    transport_problem(res).await
}

/// The MCP transport (rmcp) answers a request it cannot take (an `Accept` without both JSON
/// and an event stream, a body that is not JSON) with a 4xx in plain text; like every bad
/// request to the gateway, it becomes a problem document, the transport's words its detail.
async fn transport_problem(res: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{ALLOW, CONTENT_TYPE};
    use axum::response::IntoResponse;
    let plain = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|t| t.starts_with("text/plain"));
    let status = res.status();
    if !status.is_client_error() || !plain {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let said = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_string()
    } else {
        text
    };
    let kind = if status == StatusCode::METHOD_NOT_ALLOWED {
        "method_not_allowed"
    } else {
        "invalid_input"
    };
    let mut out =
        Problem::new(status, kind, format!("/mcp: {said} (see /docs, MCP tools)")).into_response();
    if let Some(allow) = parts.headers.get(ALLOW) {
        out.headers_mut().insert(ALLOW, allow.clone());
    }
    out
}

/// One line per request: method, path, status, time (debug; a 5xx at warn). Never a header
/// (the API key is in one) or a body.
async fn log_request(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let started = std::time::Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if res.status().is_server_error() {
        tracing::warn!(%method, %path, status, ms, "request failed");
    } else {
        tracing::debug!(%method, %path, status, ms, "request");
    }
    res
}

/// A running gateway's background parts: the record writer, the key write-back, the
/// budget refresh. Stopped by [`Background::stop`].
pub struct Background {
    stop: CancellationToken,
    writer: WriterHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks, writing what they hold (the writer spools what Postgres does not
    /// take in its flush time).
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        let report = self.writer.close().await;
        tracing::info!(
            written = report.written,
            spooled = report.spooled,
            "record writer stopped"
        );
    }
}

/// Connects to Redis and Postgres (migrating it) and builds the state every request
/// shares, with its background tasks.
pub async fn start(config: GatewayConfig) -> anyhow::Result<(AppState, Background)> {
    let redis = config.queue.redacted_url();
    let client = Client::connect(config.queue.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {redis}: {e}"))?;
    let Some(store) = Store::open(&config.store)? else {
        anyhow::bail!(
            "GITFLEET_DATABASE_URL=none: the gateway needs Postgres (API keys live there)"
        );
    };
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("cannot migrate Postgres at {}: {e}", store.redacted_url()))?;
    let stop = CancellationToken::new();
    let name = format!(
        "gateway-{}-{}",
        hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "host".into()),
        ulid::Ulid::new()
    );
    if let Some(dir) = &config.spool_dir {
        std::fs::create_dir_all(dir).map_err(|e| {
            anyhow::anyhow!(
                "GITFLEET_GATEWAY_SPOOL_DIR: cannot create {}: {e}",
                dir.display()
            )
        })?;
    }
    let (recorder, writer) = Recorder::start_producer(
        store.clone(),
        WriterConfig {
            spool_dir: config.spool_dir.clone(),
            ..WriterConfig::default()
        },
        name,
        Redactor::default(),
    );
    let budgets = Budgets::default();
    let failing = budgets.refresh(&store).await.is_err();
    let mut tasks = vec![tokio::spawn(budgets.clone().keep_fresh(
        store.clone(),
        config.store.budget_refresh,
        stop.clone(),
        failing,
    ))];
    let client = client
        .with_limits(config.limits)
        .with_recorder(recorder, budgets);
    let keys = Arc::new(Keys::new(
        store.clone(),
        config.key_cache,
        config.rate_per_sec,
        config.rate_burst,
    ));
    tasks.push(tokio::spawn(
        keys.clone()
            .write_back(Duration::from_secs(5), stop.clone()),
    ));
    let state = AppState::new(Shared {
        client,
        store,
        keys,
        live: Arc::new(ui::live::Live::new(config.ui.live_interval)),
        config: Arc::new(config),
        shutdown: stop.clone(),
    });
    Ok((
        state,
        Background {
            stop,
            writer,
            tasks,
        },
    ))
}
