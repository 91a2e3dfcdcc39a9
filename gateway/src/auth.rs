//! Who is calling: the API key in `Authorization: Bearer gfk_…`, its organization and role.
//!
//! Keys live hashed in Postgres (`gitfleet_store::keys`). A replica checks a key there once
//! and then trusts it for `GITFLEET_GATEWAY_KEY_CACHE_SECS` (so the request path reads
//! memory, not Postgres; a revoked key stops working within that time); an expired key is
//! refused at once, from the cached expiry. When a key is used is written back in batches in
//! the background. Each key has its own request rate (GCRA, `governor`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::problem::Problem;
use crate::state::AppState;
use gitfleet_client::Store;
use gitfleet_client::store::ApiKey;
use gitfleet_contract::Role;

/// The caller of a request, from its API key.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
    /// What the key is for, as its creator named it (for the audit log).
    pub key_name: Option<String>,
    pub org: String,
    pub role: Role,
}

impl Caller {
    /// Refuses the request unless the key's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
        if self.role.permits(needed) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this key's role is {}; this needs {} or above",
                self.role, needed
            )))
        }
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the caller may see what belongs to organization `org` (`None`: a fleet-internal
    /// job, which only an admin sees).
    pub fn sees(&self, org: Option<&str>) -> bool {
        self.is_admin() || org == Some(self.org.as_str())
    }

    /// The organization a listing is for: the caller's own, or for an admin the one it
    /// names (`None`: every organization).
    pub fn scope(&self, asked: Option<&str>) -> Result<Option<String>, Problem> {
        match asked {
            Some(org) if self.is_admin() => {
                gitfleet_contract::validate_org_id(org)
                    .map_err(|e| Problem::from_job_error(&e, "").with_field("org"))?;
                Ok(Some(org.to_string()))
            }
            None if self.is_admin() => Ok(None),
            Some(org) if org != self.org => Err(Problem::forbidden(format!(
                "org: this key is for organization {}; only an admin key reads others",
                self.org
            ))
            .with_field("org")),
            _ => Ok(Some(self.org.clone())),
        }
    }
}

/// Checked keys, kept for the cache time; what keys were used, to write back.
pub struct Keys {
    store: Store,
    ttl: Duration,
    /// By SHA-256 of the whole token (the token itself is never kept).
    cache: Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    used: Mutex<HashMap<String, DateTime<Utc>>>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

/// Entries kept at most; past this the cache starts over (each key is then checked once more).
const CACHE_MAX: usize = 50_000;

impl Keys {
    pub fn new(store: Store, ttl: Duration, rate_per_sec: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(rate_per_sec).map(|rate| {
            let burst = NonZeroU32::new(burst.max(1)).expect("at least 1");
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            store,
            ttl,
            cache: Mutex::new(HashMap::new()),
            used: Mutex::new(HashMap::new()),
            limiter,
        }
    }

    /// The key `token` names, if it is good now.
    pub async fn authenticate(&self, token: &str) -> Result<Option<ApiKey>, Problem> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Utc::now();
        let cached = self
            .cache
            .lock()
            .expect("not poisoned")
            .get(&digest)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(key, _)| key.clone());
        let key = match cached {
            Some(key) => Some(key),
            None => {
                let key = self.store.authenticate(token).await?;
                if let Some(key) = &key {
                    let mut cache = self.cache.lock().expect("not poisoned");
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                    cache.insert(digest, (key.clone(), Instant::now()));
                }
                key
            }
        };
        Ok(key.filter(|k| k.is_active(now)))
    }

    /// Counts a request against the key's rate.
    pub(crate) fn admit(&self, key_id: &str) -> Result<(), Problem> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        match limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(Problem::rate_limited(
                    wait.as_secs_f64().ceil().max(1.0) as u64
                ))
            }
        }
    }

    pub(crate) fn mark_used(&self, key_id: &str) {
        self.used
            .lock()
            .expect("not poisoned")
            .insert(key_id.to_string(), Utc::now());
    }

    /// Writes when keys were last used, every `every`, until `stop` (then once more).
    pub async fn write_back(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(every) => false,
            };
            let used: Vec<(String, DateTime<Utc>)> =
                std::mem::take(&mut *self.used.lock().expect("not poisoned"))
                    .into_iter()
                    .collect();
            if !used.is_empty()
                && let Err(e) = self.store.touch_keys(&used).await
            {
                tracing::warn!(error = %e, "cannot record when keys were last used");
            }
            if let Some(limiter) = &self.limiter {
                limiter.retain_recent();
            }
            if stopping {
                return;
            }
        }
    }
}

/// The bearer token of a request, if it sent one.
pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let Some(token) = bearer(parts) else {
            return Err(Problem::unauthorized(
                "this needs an API key: send `Authorization: Bearer <key>` (`gitfleet keys create`)",
            ));
        };
        let Some(key) = state.keys.authenticate(token).await? else {
            return Err(Problem::unauthorized(
                "the API key is not valid: unknown, revoked or expired",
            ));
        };
        state.keys.admit(&key.id)?;
        state.keys.mark_used(&key.id);
        Ok(Caller {
            key_id: key.id,
            key_name: key.name,
            org: key.org,
            role: key.role,
        })
    }
}
