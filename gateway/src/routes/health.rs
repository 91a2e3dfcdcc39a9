//! `/healthz` (the process is up) and `/readyz` (Redis and Postgres answer), without auth,
//! for load balancers and orchestrators.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use crate::state::AppState;

#[derive(Debug, Serialize, JsonSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when a dependency does not answer.
    pub status: &'static str,
    /// Per dependency (`redis`, `postgres`): `ok` or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Checks>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Checks {
    pub redis: String,
    pub postgres: String,
}

pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        checks: None,
    })
}

/// How long a dependency may take to answer a readiness check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let redis = tokio::time::timeout(CHECK_TIMEOUT, state.client.queue().ping()).await;
    let redis = match redis {
        Ok(Ok(_)) => "ok".to_string(),
        Ok(Err(_)) => "cannot reach Redis".to_string(),
        Err(_) => "Redis did not answer in 2 s".to_string(),
    };
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_string(),
        Ok(Err(_)) => "cannot reach Postgres".to_string(),
        Err(_) => "Postgres did not answer in 2 s".to_string(),
    };
    let ready = redis == "ok" && postgres == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ready { "ok" } else { "unavailable" },
            checks: Some(Checks { redis, postgres }),
        }),
    )
}
