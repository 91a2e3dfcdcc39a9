//! The fleet as a caller sees it: queues, workers, sandboxes (and releasing one), an
//! organization's usage; and, for admin keys, draining workers and the keys.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::audit::{Audit, Surface};
use crate::auth::Caller;
use crate::extract::{Body, Params, Path, json, json_value};
use crate::problem::Problem;
use crate::routes::run_to_end;
use crate::state::AppState;
use gitfleet_client::store::{ApiKey, SandboxFilter, SandboxRow};
use gitfleet_client::{EnqueueOptions, JobRecord, JobSpec, QueueStats, WorkerInfo};
use gitfleet_contract::Role;

/// `GET /v1/queues`: counts per queue.
#[derive(Debug, Serialize, JsonSchema)]
pub struct QueueList {
    pub queues: Vec<QueueStats>,
}

pub async fn queues(
    State(state): State<AppState>,
    _caller: Caller,
) -> Result<Json<QueueList>, Problem> {
    Ok(Json(QueueList {
        queues: state.client.queues().await?,
    }))
}

/// `GET /v1/workers`: the live workers. The jobs each holds are listed for admin keys only
/// (they are other organizations' jobs): other keys see how many slots are busy, and in
/// `running` only their own organization's jobs.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkerList {
    pub workers: Vec<WorkerInfo>,
}

pub async fn workers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WorkerList>, Problem> {
    Ok(Json(WorkerList {
        workers: workers_for(&state, &caller).await?,
    }))
}

/// The live workers as `caller` may see them: what `GET /v1/workers` answers, and the
/// dashboard's Workers page shows.
pub async fn workers_for(state: &AppState, caller: &Caller) -> Result<Vec<WorkerInfo>, Problem> {
    Ok(workers_seen_by(caller, state.client.workers().await?))
}

/// `workers` as `caller` may see them: an admin every job each runs; any other key its
/// organization's only, and no held list. What `GET /v1/workers`, the Workers page and its
/// live updates show.
pub fn workers_seen_by(caller: &Caller, mut workers: Vec<WorkerInfo>) -> Vec<WorkerInfo> {
    if !caller.is_admin() {
        for w in &mut workers {
            w.held.clear();
            w.running.retain(|j| caller.sees(j.org.as_deref()));
        }
    }
    workers
}

/// What `POST /v1/workers/{id}/drain` and `/undrain` answer: the worker as it is listed
/// now (its `state` follows within a heartbeat; `drain_requested_at` is set, or cleared, at
/// once).
#[derive(Debug, Serialize, JsonSchema)]
pub struct WorkerAnswer {
    pub worker: WorkerInfo,
}

/// `POST /v1/workers/{id}/drain` (admin): the worker stops taking jobs, from every queue,
/// its own included, and finishes the ones it holds; then it idles, `drained`, until
/// undrained or stopped. Workers serve every organization, so only an admin key may.
pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    drain_as(state, caller, surface, id, Drain::Drain).await
}

/// Whether to drain a worker or withdraw its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drain {
    Drain,
    Undrain,
}

impl Drain {
    /// The action's name in the audit log.
    pub fn audit_name(self) -> &'static str {
        match self {
            Drain::Drain => "worker.drain",
            Drain::Undrain => "worker.undrain",
        }
    }
}

/// `POST /v1/workers/{id}/undrain` (admin): withdraws a drain; once drained (at once, if
/// it had not begun), the worker takes jobs again.
pub async fn undrain(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    drain_as(state, caller, surface, id, Drain::Undrain).await
}

async fn drain_as(
    state: AppState,
    caller: Caller,
    surface: Surface,
    id: String,
    what: Drain,
) -> Result<Response, Problem> {
    let worker = drain_worker(&state, &caller, surface, &id, what).await?;
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, "/v1/workers".to_string())],
        Json(WorkerAnswer { worker }),
    )
        .into_response())
}

/// Drains worker `id` (or withdraws its drain) for `caller` (admin only), to its end even
/// if the caller hangs up, with its audit entry (from `surface`; fleet-wide, as a worker
/// serves every organization); the worker as it is listed now. What
/// `POST /v1/workers/{id}/drain` and `/undrain` do, and the dashboard's buttons.
pub async fn drain_worker(
    state: &AppState,
    caller: &Caller,
    surface: Surface,
    id: &str,
    what: Drain,
) -> Result<WorkerInfo, Problem> {
    let (st, caller, id) = (state.clone(), caller.clone(), id.to_string());
    run_to_end(async move {
        let mut audit = Audit::new(what.audit_name(), &caller, surface);
        audit.org = None;
        audit.target = Some(id.clone());
        let r = drain_now(&st, &caller, &id, what).await;
        audit.finish(&st, &caller, &r);
        r
    })
    .await?
}

async fn drain_now(
    state: &AppState,
    caller: &Caller,
    id: &str,
    what: Drain,
) -> Result<WorkerInfo, Problem> {
    let drain = what == Drain::Drain;
    if !caller.is_admin() {
        return Err(Problem::forbidden(format!(
            "this key's role is {}; draining a worker needs admin (a worker serves every \
             organization)",
            caller.role
        )));
    }
    gitfleet_contract::validate_worker_id(id).map_err(|e| Problem::bad_param("id", e.message))?;
    let queue = state.client.queue();
    let found = if drain {
        queue.drain_worker(id).await?
    } else {
        queue.undrain_worker(id).await?
    };
    let not_found = || Problem::not_found(format!("no live worker {id}"));
    if !found {
        return Err(not_found());
    }
    let worker = state
        .client
        .workers()
        .await?
        .into_iter()
        .find(|w| w.worker_id == id)
        .ok_or_else(not_found)?;
    tracing::info!(worker = %id, key = %caller.key_id, drain, "worker drain asked for");
    Ok(worker)
}

/// `GET /v1/sandboxes` parameters.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxParams {
    /// `initializing`, `ready`, `in_use`, `error` or `terminated`.
    #[schemars(extend("enum" = ["initializing", "ready", "in_use", "error", "terminated"]))]
    pub status: Option<String>,
    pub worker: Option<String>,
    pub agent: Option<String>,
    /// The repository URL, exactly.
    pub repo: Option<String>,
    /// An admin key's filter by organization.
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
    /// Sandboxes at most, 1-500 (default 100).
    #[schemars(range(min = 1, max = 500))]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SandboxList {
    pub sandboxes: Vec<SandboxRow>,
}

/// `GET /v1/sandboxes`: the registry, most recently used first.
pub async fn sandboxes(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<SandboxParams>,
) -> Result<Json<SandboxList>, Problem> {
    Ok(Json(SandboxList {
        sandboxes: sandboxes_for(&state, &caller, p).await?,
    }))
}

/// The registry's sandboxes matching `p` that `caller` may see, most recently used first:
/// what `GET /v1/sandboxes` answers, and the dashboard's Sandboxes page shows.
pub async fn sandboxes_for(
    state: &AppState,
    caller: &Caller,
    p: SandboxParams,
) -> Result<Vec<SandboxRow>, Problem> {
    let org = caller.scope(p.org.as_deref())?;
    const STATUSES: [&str; 5] = ["initializing", "ready", "in_use", "error", "terminated"];
    if let Some(s) = &p.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(Problem::bad_param(
            "status",
            format!(
                "unknown sandbox status {s:?}; known: {}",
                STATUSES.join(", ")
            ),
        ));
    }
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_param(
            "limit",
            format!("{limit} is not from 1 to 500"),
        ));
    }
    let filter = SandboxFilter {
        status: p.status,
        worker: p.worker,
        org,
        agent: p.agent,
        repo: p.repo,
        limit,
    };
    Ok(state.store.sandboxes_filtered(&filter).await?)
}

/// How long `DELETE /v1/sandboxes/{id}` waits for the release before answering `202`.
const RELEASE_WAIT: Duration = Duration::from_secs(30);

/// `DELETE /v1/sandboxes/{id}`: releases a live sandbox through the worker that holds it
/// (the `release` job, for the sandbox's organization). Answers the job's record: `200`
/// once it is done, `202` (with `Location`) if it is still going after 30 s.
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let (record, location) = release_sandbox(&state, &caller, surface, &id).await?;
    let status = if record.status.is_final() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, [(header::LOCATION, location)], Json(record)).into_response())
}

/// Releases live sandbox `id` for `caller` (operator and above, its organization's): the
/// `release` job with its audit entry (from `surface`), then up to 30 s waiting for it to
/// end. The job's record as it is then, and its `/v1/jobs/{id}` path. What
/// `DELETE /v1/sandboxes/{id}` does, and the dashboard's Release button.
pub async fn release_sandbox(
    state: &AppState,
    caller: &Caller,
    surface: Surface,
    id: &str,
) -> Result<(JobRecord, String), Problem> {
    let mut audit = Audit::new("sandbox.release", caller, surface);
    audit.target = Some(id.to_string());
    let owner = match release_target(state, caller, id).await {
        Ok(owner) => owner,
        Err(p) => {
            audit.finish(state, caller, &Err::<(), _>(p.clone()));
            return Err(p);
        }
    };
    audit.org = owner.org.clone();
    let spec = JobSpec::new("release", serde_json::json!({ "sandbox_id": id }));
    let options = EnqueueOptions {
        org: owner.org.clone(),
        ..Default::default()
    };
    let queue = gitfleet_contract::own_queue(&owner.worker);
    let (st, who) = (state.clone(), caller.clone());
    // The release job and its audit entry, to their end even if the caller hangs up (the
    // wait for the release that follows is only for the answer).
    let job = run_to_end(async move {
        let r = st
            .client
            .submit(&queue, &spec, &options)
            .await
            .map_err(Problem::from);
        if let Ok(job) = &r {
            audit.jobs([job.job_id.as_str()]);
        }
        audit.finish(&st, &who, &r);
        r
    })
    .await??;
    let record: Option<JobRecord> = state.client.wait(&job.job_id, RELEASE_WAIT).await?;
    let location = format!("/v1/jobs/{}", job.job_id);
    let Some(record) = record else {
        return Err(Problem::not_found(format!("job {} expired", job.job_id)));
    };
    Ok((record, location))
}

/// The live sandbox `DELETE /v1/sandboxes/{id}` is for, if the caller may release it.
async fn release_target(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<gitfleet_queue::SandboxOwner, Problem> {
    caller.require(Role::Operator)?;
    let not_found = || Problem::not_found(format!("no live sandbox {id}"));
    // The contract's check of a sandbox id (`<worker id>.<ulid>`).
    gitfleet_contract::fields::sandbox_id(&serde_json::json!({ "sandbox_id": id }))
        .map_err(|e| Problem::bad_param("id", e.message.trim_start_matches("sandbox_id: ")))?;
    let Some(owner) = state.client.queue().sandbox_owner(id).await? else {
        return Err(not_found());
    };
    if !caller.sees(owner.org.as_deref()) {
        return Err(not_found());
    }
    Ok(owner)
}

/// `GET /v1/orgs/{org}/usage`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Usage {
    pub org: String,
    /// USD per month; absent: no budget.
    pub monthly_budget_usd: Option<f64>,
    /// Spent this calendar month (UTC), sandboxes alive now included.
    pub spend_usd: f64,
    /// Live sandboxes of the organization, fleet-wide (from the Redis registry).
    pub live_sandboxes: u64,
    pub over_budget: bool,
}

pub async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Usage>, Problem> {
    gitfleet_contract::validate_org_id(&org).map_err(|e| Problem::from_job_error(&e, ""))?;
    if !caller.sees(Some(&org)) {
        // As for an organization that does not exist: a key learns nothing of others.
        return Err(Problem::not_found(format!("no organization {org}")));
    }
    let spend = state.store.org(&org).await?;
    Ok(Json(usage_of(&state, spend).await?))
}

/// An organization's usage from its spend (the record's) and its live sandboxes (counted
/// in the Redis registry, fleet-wide): what `GET /v1/orgs/{org}/usage` answers, and each
/// row of the dashboard's Organizations page.
pub async fn usage_of(
    state: &AppState,
    spend: gitfleet_client::store::OrgSpend,
) -> Result<Usage, Problem> {
    let live = state
        .client
        .queue()
        .org_sandbox_count(&spend.org_id)
        .await?;
    Ok(Usage {
        over_budget: spend.over_budget(),
        monthly_budget_usd: spend.monthly_budget_usd,
        spend_usd: spend.spend_usd,
        live_sandboxes: live,
        org: spend.org_id,
    })
}

/// `POST /v1/keys` (admin): a new key; its `key` is shown this once.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: String,
    pub role: Role,
    /// What the key is for: 1-100 printable characters.
    #[schemars(length(min = 1, max = 100))]
    pub name: Option<String>,
    /// Days until it expires (1-3650); absent: never.
    #[schemars(range(min = 1, max = 3650))]
    pub expires_days: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct CreatedKey {
    pub id: String,
    /// The key itself: shown once, stored only as a hash.
    pub key: String,
    pub org: String,
    pub role: Role,
    pub name: Option<String>,
    #[schemars(with = "Option<chrono::DateTime<chrono::Utc>>")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Body(body): Body,
) -> Result<Response, Problem> {
    // To its end even if the caller hangs up: the key and its audit entry both.
    let st = state.clone();
    run_to_end(async move {
        let mut audit = Audit::new("key.create", &caller, surface);
        let r = make_key(&st, &caller, &body, &mut audit).await;
        audit.finish(&st, &caller, &r);
        r
    })
    .await?
}

async fn make_key(
    state: &AppState,
    caller: &Caller,
    body: &[u8],
    audit: &mut Audit,
) -> Result<Response, Problem> {
    caller.require(Role::Admin)?;
    let req: NewKeyRequest = json(json_value(body)?, "")?;
    audit.org = Some(req.org.clone());
    if let Some(d) = req.expires_days
        && !(1..=3650).contains(&d)
    {
        return Err(Problem::bad_param(
            "expires_days",
            format!("{d} is not from 1 to 3650"),
        ));
    }
    let expires = req
        .expires_days
        .map(|d| chrono::Duration::days(i64::from(d)));
    let new = state
        .store
        .create_key(&req.org, req.role, req.name.as_deref(), expires)
        .await
        .map_err(key_problem)?;
    audit.target = Some(new.key.id.clone());
    let body = CreatedKey {
        id: new.key.id.clone(),
        key: new.token.clone(),
        org: new.key.org.clone(),
        role: new.key.role,
        name: new.key.name.clone(),
        expires_at: new.key.expires_at,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A store error of key management: bad input names its field; the rest is Postgres away.
fn key_problem(e: gitfleet_client::store::StoreError) -> Problem {
    match e {
        gitfleet_client::store::StoreError::Invalid { field, message } => {
            Problem::invalid(Some(field), message)
        }
        e => e.into(),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyParams {
    /// Only this organization's keys.
    #[schemars(regex(pattern = crate::openapi::ORG_PATTERN))]
    pub org: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct KeyList {
    pub keys: Vec<ApiKey>,
}

/// `GET /v1/keys` (admin): every key (never a secret), newest first.
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Params(p): Params<KeyParams>,
) -> Result<Json<KeyList>, Problem> {
    Ok(Json(KeyList {
        keys: keys_for(&state, &caller, p.org.as_deref()).await?,
    }))
}

/// Every key (never a secret), newest first, of organization `org` or of all: admin only.
/// What `GET /v1/keys` answers, and the dashboard's Organizations page lists.
pub async fn keys_for(
    state: &AppState,
    caller: &Caller,
    org: Option<&str>,
) -> Result<Vec<ApiKey>, Problem> {
    caller.require(Role::Admin)?;
    Ok(state.store.list_keys(org).await?)
}

/// `DELETE /v1/keys/{id}` (admin): revokes a key (within the key cache time everywhere).
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    surface: Surface,
    Path(id): Path<String>,
) -> Result<StatusCode, Problem> {
    let st = state.clone();
    run_to_end(async move {
        let mut audit = Audit::new("key.revoke", &caller, surface);
        // The revoked key's organization is not looked up: the entry is fleet-wide (an
        // admin's view), as key management is.
        audit.org = None;
        audit.target = Some(id.clone());
        let r = async {
            caller.require(Role::Admin)?;
            if st.store.revoke_key(&id).await? {
                Ok(StatusCode::NO_CONTENT)
            } else {
                Err(Problem::not_found(format!("no key {id}")))
            }
        }
        .await;
        audit.finish(&st, &caller, &r);
        r
    })
    .await?
}
