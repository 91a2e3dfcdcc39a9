//! The API's OpenAPI 3.1 document, served at `/openapi.json` (and rendered at `/docs`).
//!
//! The schemas come from the types the handlers read and answer (the job contract's, the
//! store's rows, the queue's counts, the gateway's own), through one schemars generator whose
//! definitions live at `#/components/schemas/`, so every `$ref` resolves within the document.
//! OpenAPI 3.1 takes JSON Schema 2020-12 as it is: no translation. What a schema cannot say
//! (the routes, their parameters, statuses, headers and who may call them) is [`ROUTES`]: one
//! entry per method and path of [`crate::router`], which a test holds to the router.

use std::sync::OnceLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::problem::{self, ProblemDoc};
use crate::routes::{fleet, health, jobs, repositories, schedule};
use gitfleet_client::store::{ApiKey, HitRates, JobRow, SandboxRow};
use gitfleet_client::{Enqueued, JobRecord};
use gitfleet_contract::Role;
use gitfleet_contract::ops::OpName;

/// An organization's id, as `gitfleet_contract::validate_org_id` takes it.
pub const ORG_PATTERN: &str = "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$";

/// One operation of the API: a method and path of the router, and how it is documented.
pub struct Route {
    /// Lower case, as an OpenAPI path item names it: `get`, `post`, `delete`.
    pub method: &'static str,
    /// As the router has it: `/v1/jobs/{id}`.
    pub path: &'static str,
    pub operation_id: &'static str,
    pub tag: &'static str,
    describe: fn(&mut Builder) -> Operation,
}

/// Every route of [`crate::router`], in the order the reference lists them. (`/mcp` is a
/// nested service, one operation here: its own protocol, JSON-RPC, runs inside the POST.)
pub const ROUTES: &[Route] = &[
    route("post", "/v1/jobs", "createJobs", "jobs", create_jobs),
    route("get", "/v1/jobs", "listJobs", "jobs", list_jobs),
    route("get", "/v1/jobs/{id}", "getJob", "jobs", get_job),
    route("delete", "/v1/jobs/{id}", "cancelJob", "jobs", cancel_job),
    route(
        "get",
        "/v1/jobs/{id}/events",
        "jobEvents",
        "jobs",
        job_events,
    ),
    route("post", "/v1/jobs/{id}/retry", "retryJob", "jobs", retry_job),
    route(
        "post",
        "/v1/jobs/{id}/delete",
        "deleteJob",
        "jobs",
        delete_job,
    ),
    route(
        "post",
        "/v1/jobs/{id}/run-now",
        "runJobNow",
        "jobs",
        run_job_now,
    ),
    route(
        "post",
        "/v1/jobs/actions",
        "bulkJobAction",
        "jobs",
        bulk_job_action,
    ),
    route("get", "/v1/audit", "listAudit", "audit", list_audit),
    route("get", "/v1/queues", "listQueues", "fleet", list_queues),
    route("get", "/v1/workers", "listWorkers", "fleet", list_workers),
    route(
        "post",
        "/v1/workers/{id}/drain",
        "drainWorker",
        "fleet",
        drain_worker,
    ),
    route(
        "post",
        "/v1/workers/{id}/undrain",
        "undrainWorker",
        "fleet",
        undrain_worker,
    ),
    route(
        "get",
        "/v1/sandboxes",
        "listSandboxes",
        "fleet",
        list_sandboxes,
    ),
    route(
        "delete",
        "/v1/sandboxes/{id}",
        "releaseSandbox",
        "fleet",
        release_sandbox,
    ),
    route(
        "get",
        "/v1/repositories",
        "listRepositories",
        "fleet",
        list_repositories,
    ),
    route(
        "get",
        "/v1/cache/hit-rate",
        "getCacheHitRate",
        "fleet",
        get_hit_rate,
    ),
    route(
        "get",
        "/v1/orgs/{org}/usage",
        "getUsage",
        "fleet",
        get_usage,
    ),
    route(
        "get",
        "/v1/schedule",
        "getSchedule",
        "schedule",
        get_schedule,
    ),
    route(
        "post",
        "/v1/schedule/{task}/run",
        "runTask",
        "schedule",
        run_task,
    ),
    route("post", "/v1/keys", "createKey", "keys", create_key),
    route("get", "/v1/keys", "listKeys", "keys", list_keys),
    route("delete", "/v1/keys/{id}", "revokeKey", "keys", revoke_key),
    route("post", "/mcp", "mcp", "mcp", mcp),
    route("get", "/healthz", "healthz", "health", healthz),
    route("get", "/readyz", "readyz", "health", readyz),
    route("get", "/openapi.json", "openapi", "reference", openapi),
    route("get", "/docs", "docs", "reference", docs),
];

const fn route(
    method: &'static str,
    path: &'static str,
    operation_id: &'static str,
    tag: &'static str,
    describe: fn(&mut Builder) -> Operation,
) -> Route {
    Route {
        method,
        path,
        operation_id,
        tag,
        describe,
    }
}

/// The tags, in order, with what each groups.
const TAGS: &[(&str, &str)] = &[
    (
        "jobs",
        "Enqueue jobs (one, or many in one round trip), read and wait for them, follow their \
         events, list and search the history; retry, cancel, delete and run now, one job or \
         every job matching a filter.",
    ),
    (
        "fleet",
        "The queues, workers, sandboxes and repositories, the cache hit rate, and an \
         organization's usage.",
    ),
    (
        "schedule",
        "The scheduler: its runs, each task's next tick and the leader; run a task now \
         (admin keys only).",
    ),
    ("keys", "API keys (admin keys only)."),
    (
        "audit",
        "The audit log: every action taken through the API or the dashboard (operator and \
         admin keys).",
    ),
    (
        "mcp",
        "gitfleet's git tools for agents over MCP (Streamable HTTP, stateless): JSON-RPC 2.0 \
         in a POST; see docs/api.md.",
    ),
    ("health", "For load balancers and orchestrators; no key."),
    ("reference", "This document and its rendering; no key."),
];

/// The problem statuses, as reusable responses (`#/components/responses/<name>`).
const PROBLEMS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "The request is wrong (`invalid_input`): not JSON, an unknown op or field, a wrong \
         type, a value out of range; `field` names what.",
    ),
    (
        401,
        "Unauthorized",
        "No API key, or an unknown, revoked or expired one (`auth`).",
    ),
    (
        402,
        "PaymentRequired",
        "The organization has spent its monthly budget (`budget_exceeded`).",
    ),
    (
        403,
        "Forbidden",
        "The key's role does not allow this, or it asks for another organization (`auth`).",
    ),
    (
        404,
        "NotFound",
        "No such job, sandbox, organization, key, live worker or scheduler task, or not the \
         key's organization's (`not_found`).",
    ),
    (
        406,
        "NotAcceptable",
        "`/mcp`: the `Accept` header does not take both `application/json` and \
         `text/event-stream` (`invalid_input`).",
    ),
    (
        409,
        "Conflict",
        "The job is not in a state that allows this (`conflict`).",
    ),
    (
        413,
        "PayloadTooLarge",
        "The body is over `GITFLEET_GATEWAY_MAX_BODY_BYTES` (`payload_too_large`).",
    ),
    (
        415,
        "UnsupportedMediaType",
        "`/mcp`: not `Content-Type: application/json`, or the body is not a JSON-RPC \
         message (`invalid_input`).",
    ),
    (
        422,
        "IdempotencyKeyReused",
        "The `Idempotency-Key` was used with another body (`conflict`, `field`: \
         `Idempotency-Key`).",
    ),
    (
        429,
        "TooManyRequests",
        "The key is over its request rate (`rate_limited`); retry after `Retry-After` seconds.",
    ),
    (
        500,
        "InternalServerError",
        "The queue answered something the gateway does not understand (`internal`); the \
         gateway's log says what.",
    ),
    (
        503,
        "ServiceUnavailable",
        "Redis or Postgres cannot be reached, or (`POST /v1/schedule/{task}/run`) no scheduler \
         replica leads (`unavailable`); retry after `Retry-After` seconds.",
    ),
];

/// How one operation is documented.
struct Operation {
    summary: &'static str,
    description: &'static str,
    /// The least role it needs; `None`: no key at all.
    role: Option<Role>,
    parameters: Vec<Value>,
    body: Option<Value>,
    /// Its successful answers, by status.
    answers: Vec<(u16, Value)>,
    /// The problem statuses it may answer (401 and 429 are added for every keyed operation).
    problems: Vec<u16>,
}

impl Operation {
    fn new(summary: &'static str, description: &'static str, role: Option<Role>) -> Self {
        Self {
            summary,
            description,
            role,
            parameters: Vec::new(),
            body: None,
            answers: Vec::new(),
            problems: Vec::new(),
        }
    }

    fn param(mut self, p: Value) -> Self {
        self.parameters.push(p);
        self
    }

    fn params(mut self, ps: Vec<Value>) -> Self {
        self.parameters.extend(ps);
        self
    }

    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn answer(mut self, status: u16, response: Value) -> Self {
        self.answers.push((status, response));
        self
    }

    fn problems(mut self, statuses: &[u16]) -> Self {
        self.problems.extend_from_slice(statuses);
        self
    }

    fn to_json(&self, route: &Route) -> Value {
        let mut responses = Map::new();
        for (status, response) in &self.answers {
            responses.insert(status.to_string(), response.clone());
        }
        let mut problems = self.problems.clone();
        if self.role.is_some() {
            problems.extend([401, 429]);
        }
        problems.sort_unstable();
        problems.dedup();
        for status in problems {
            let (_, name, _) = PROBLEMS
                .iter()
                .find(|(s, _, _)| *s == status)
                .unwrap_or_else(|| panic!("{}: no problem response {status}", route.operation_id));
            responses.insert(
                status.to_string(),
                json!({ "$ref": format!("#/components/responses/{name}") }),
            );
        }
        let mut op = json!({
            "operationId": route.operation_id,
            "tags": [route.tag],
            "summary": self.summary,
            "description": self.description,
            "responses": responses,
        });
        let obj = op.as_object_mut().expect("object literal");
        if !self.parameters.is_empty() {
            obj.insert("parameters".into(), Value::Array(self.parameters.clone()));
        }
        if let Some(body) = &self.body {
            obj.insert("requestBody".into(), body.clone());
        }
        match self.role {
            None => {
                obj.insert("security".into(), json!([]));
            }
            Some(role) => {
                obj.insert("x-gitfleet-role".into(), role.as_str().into());
            }
        }
        op
    }
}

/// Builds schemas into one set of components.
struct Builder {
    /// Named types become `#/components/schemas/<Name>`.
    components: SchemaGenerator,
    /// Parameters' schemas, inlined (a parameter is one property of a `*Params` struct).
    inline: SchemaGenerator,
}

impl Builder {
    fn new() -> Self {
        let settings = SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "#/components/schemas/".into();
            s.meta_schema = None;
        });
        Self {
            components: settings.clone().into_generator(),
            inline: settings
                .with(|s| s.inline_subschemas = true)
                .into_generator(),
        }
    }

    /// `T`'s schema: a `$ref` into the components for a named type.
    fn schema<T: JsonSchema>(&mut self) -> Value {
        self.components.subschema_for::<T>().to_value()
    }

    /// The query parameters of `T` (a `*Params` struct): one per property.
    fn query<T: JsonSchema>(&mut self) -> Vec<Value> {
        let root = self.inline.root_schema_for::<T>().to_value();
        let required: Vec<&str> = root["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let Some(props) = root["properties"].as_object() else {
            return Vec::new();
        };
        props
            .iter()
            .map(|(name, schema)| {
                let mut schema = not_null(schema.clone());
                let description = schema.as_object_mut().and_then(|o| o.remove("description"));
                let mut p = json!({
                    "name": name,
                    "in": "query",
                    "required": required.contains(&name.as_str()),
                    "schema": schema,
                });
                if let Some(d) = description {
                    p["description"] = d;
                }
                p
            })
            .collect()
    }
}

/// A schema of a value that may be absent, as a parameter has it: without `null` (a query
/// string has no null; the parameter is left out instead).
fn not_null(mut schema: Value) -> Value {
    if let Some(types) = schema.get_mut("type").and_then(Value::as_array_mut) {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            schema["type"] = types[0].clone();
        }
    }
    // `anyOf: [T, {"type": "null"}]`: T, with the field's own description.
    if let Some(branches) = schema.get_mut("anyOf").and_then(Value::as_array_mut) {
        branches.retain(|b| b != &json!({ "type": "null" }));
        if branches.len() == 1 {
            let mut inner = branches.pop().expect("one branch");
            if let (Some(d), Some(o)) = (schema.get("description"), inner.as_object_mut()) {
                o.insert("description".into(), d.clone());
            }
            return not_null(inner);
        }
    }
    schema
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": schema,
    })
}

/// A job's id: a ULID.
fn job_id() -> Value {
    path_param(
        "id",
        "The job's id (a ULID, 26 letters and digits).",
        json!({ "type": "string", "pattern": "^[0-9A-Za-z]{26}$" }),
    )
}

fn json_body(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "required": true,
        "content": { "application/json": { "schema": schema } },
    })
}

fn json_answer(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "content": { "application/json": { "schema": schema } },
    })
}

fn with_headers(mut response: Value, headers: &[(&str, &str)]) -> Value {
    let mut map = Map::new();
    for (name, description) in headers {
        map.insert(
            (*name).to_string(),
            json!({ "description": description, "schema": { "type": "string" } }),
        );
    }
    response["headers"] = Value::Object(map);
    response
}

const LOCATION: (&str, &str) = ("Location", "Where the job is: `/v1/jobs/{id}`.");
const WORKERS_LOCATION: (&str, &str) = ("Location", "Where to follow it: `/v1/workers`.");
const SCHEDULE_LOCATION: (&str, &str) = ("Location", "Where to follow it: `/v1/schedule`.");

/// What can be done next with the job one `POST /v1/jobs` answered (OpenAPI links: its
/// `job_id` is their `id`).
fn job_links(response: Value) -> Value {
    let mut response = response;
    let mut links = Map::new();
    for (op, what) in [
        ("getJob", "Read it, or wait for it to end."),
        ("jobEvents", "Follow its state changes."),
        ("cancelJob", "Cancel it while it waits."),
        ("retryJob", "Retry it once it is dead."),
    ] {
        links.insert(
            op.into(),
            json!({
                "operationId": op,
                "parameters": { "id": "$response.body#/job_id" },
                "description": what,
            }),
        );
    }
    response["links"] = Value::Object(links);
    response
}

fn create_jobs(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    let bulk = b.schema::<jobs::BulkEnqueued>();
    let one = json!({ "$ref": "#/components/schemas/NewJob" });
    Operation::new(
        "Enqueue one job, or an array of them",
        "One job (`NewJob`) answers its record and `Location`; an array of up to \
         `GITFLEET_GATEWAY_MAX_BULK` (1000) jobs goes to Redis in one round trip and answers \
         `{\"jobs\": [...]}` in the order sent, or enqueues nothing when any of them is wrong \
         (the problem's `field` names it: `[3].args.repo_url`). The job runs for the key's \
         organization. With an `Idempotency-Key`, the same key and body within 24 h answer the \
         first job(s) with `200` and enqueue nothing; the same key with another body is `422`.",
        Some(Role::Producer),
    )
    .param(json!({
        "name": "Idempotency-Key",
        "in": "header",
        "required": false,
        "description": "1-200 characters, no control characters; scoped to the key's \
                        organization (draft-ietf-httpapi-idempotency-key-header).",
        "schema": { "type": "string", "minLength": 1, "maxLength": 200 },
    }))
    .body(json_body(
        "One job, or a non-empty array of jobs.",
        json!({ "oneOf": [one, { "type": "array", "items": one, "minItems": 1 }] }),
    ))
    .answer(
        201,
        job_links(with_headers(
            json_answer(
                "Enqueued: the job's record (one job; with `Location`), or one entry per job \
                 (an array).",
                json!({ "oneOf": [record, bulk] }),
            ),
            &[LOCATION],
        )),
    )
    .answer(
        200,
        job_links(with_headers(
            json_answer(
                "The `Idempotency-Key` and body were seen before: the first job(s), nothing \
                 enqueued.",
                json!({ "oneOf": [record, bulk] }),
            ),
            &[LOCATION],
        )),
    )
    .problems(&[400, 402, 403, 404, 413, 422, 500, 503])
}

fn list_jobs(b: &mut Builder) -> Operation {
    let page = b.schema::<jobs::JobPage>();
    Operation::new(
        "List and search jobs from the history, newest first",
        "From Postgres, which the gateway writes in the background: a job enqueued a moment \
         ago may not be listed yet. Search by job id (`id`: exact, or a prefix) and by text \
         in the error message (`q`, served by a trigram index); `sort` by enqueue or finish \
         time. Pages by cursor: `next` (also in `Link`, `rel=\"next\"`) is the next page's \
         URL, absent on the last. `total` counts every matching job: exact up to 10,000, \
         otherwise the planner's estimate (`total_is_estimate`).",
        Some(Role::Viewer),
    )
    .params(b.query::<jobs::ListParams>())
    .answer(
        200,
        with_headers(
            json_answer("A page of jobs.", page),
            &[(
                "Link",
                "`</v1/jobs?...&cursor=...>; rel=\"next\"`, when there is a next page.",
            )],
        ),
    )
    .problems(&[400, 403, 503])
}

fn get_job(b: &mut Builder) -> Operation {
    let detail = b.schema::<jobs::JobDetail>();
    Operation::new(
        "Read a job, or wait for it to end",
        "The job's live record from Redis, else its history row, with its runs from the \
         history (`runs`: worker, times, outcome, error, sandbox and git steps of each \
         attempt). With `wait`, answers once the job is done, dead or cancelled, or when \
         `wait` seconds have passed (check `status`).",
        Some(Role::Viewer),
    )
    .param(job_id())
    .params(b.query::<jobs::WaitParams>())
    .answer(200, json_answer("The job's record and its runs.", detail))
    .problems(&[400, 404, 500, 503])
}

fn cancel_job(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Cancel a waiting or delayed job",
        "It leaves its queue, never runs, and ends `cancelled`. A running or finished job is \
         `409`. An audit entry (`job.cancel`).",
        Some(Role::Operator),
    )
    .param(job_id())
    .param(surface_header())
    .answer(200, json_answer("The cancelled job's record.", record))
    .problems(&[400, 403, 404, 409, 500, 503])
}

fn job_events(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Follow a job's state changes (server-sent events)",
        "An event `state` (with an increasing `id`) whose data is the job's record \
         (`JobRecord`), at once and then each time its status, attempts or worker change; the \
         stream ends after the job is done, dead or cancelled.",
        Some(Role::Viewer),
    )
    .param(job_id())
    .answer(
        200,
        json!({
            "description": "`event: state`, `id: <n>`, `data: <JobRecord as JSON>`, until \
                            the job ends (and comments, `:`, to keep the connection open).",
            "content": { "text/event-stream": { "schema": {
                "description": "One event (OpenAPI 3.1 describes an event stream by its \
                                events).",
                "type": "object",
                "required": ["event", "data", "id"],
                "properties": {
                    "event": { "const": "state" },
                    "id": { "type": "string", "pattern": "^[0-9]+$" },
                    "data": {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": record,
                    },
                },
            } } },
        }),
    )
    .problems(&[400, 404, 500, 503])
}

fn retry_job(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Retry a dead job",
        "The job goes back to its queue with a fresh set of attempts. A job that is not dead \
         is `409`. An audit entry (`job.retry`).",
        Some(Role::Operator),
    )
    .param(job_id())
    .param(surface_header())
    .answer(200, json_answer("The job's record, waiting again.", record))
    .problems(&[400, 403, 404, 409, 500, 503])
}

/// The `Gitfleet-Surface` header every action takes (for its audit entry).
fn surface_header() -> Value {
    json!({
        "name": "Gitfleet-Surface",
        "in": "header",
        "required": false,
        "description": "Where the action is taken, for its audit entry: `api` (default) or \
                        `ui` (the dashboard). The caller's word.",
        "schema": { "type": "string", "enum": ["api", "ui"] },
    })
}

fn delete_job(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Delete a dead or delayed job",
        "The job is removed from Redis (its record and its dead or delayed set) and never \
         runs; its row in the history stays, with `deleted_at` (a deleted delayed job ends \
         `cancelled` there). Answers the record as it was. Any other state is `409`. An \
         audit entry (`job.delete`).",
        Some(Role::Operator),
    )
    .param(job_id())
    .param(surface_header())
    .answer(
        200,
        json_answer("The deleted job's record, as it was.", record),
    )
    .problems(&[400, 403, 404, 409, 500, 503])
}

fn run_job_now(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Run a delayed job now",
        "A job due later (`delay_secs`), or waiting out a retry's backoff, joins its queue's \
         backlog now (as if it had come due). Any other state is `409`. An audit entry \
         (`job.run_now`).",
        Some(Role::Operator),
    )
    .param(job_id())
    .param(surface_header())
    .answer(200, json_answer("The job's record, waiting.", record))
    .problems(&[400, 403, 404, 409, 500, 503])
}

fn bulk_job_action(b: &mut Builder) -> Operation {
    let req = b.schema::<jobs::BulkRequest>();
    let out = b.schema::<jobs::BulkOutcome>();
    Operation::new(
        "Retry, delete or run now every dead or delayed job matching a filter",
        "First a dry run (`dry_run: true`, the default) answers `matched` and changes \
         nothing; then the same request with `dry_run: false` and `expect: <matched>` acts. \
         It is refused with `409` if more jobs match than `expect` (fewer is fine). The jobs \
         are found in chunks and acted on in chunks (no long Redis call); a matched job that \
         left the state before its chunk ran is `skipped`, and a job that came to match \
         after the scan is not acted on. At most 100,000 jobs per action. A key that is not \
         an admin's acts on its organization's jobs only. An audit entry \
         (`jobs.retry`, `jobs.delete`, `jobs.run_now`), dry runs aside.",
        Some(Role::Operator),
    )
    .param(surface_header())
    .body(json_body("The action and its filter.", req))
    .answer(200, json_answer("What matched, and what was done.", out))
    .problems(&[400, 403, 409, 413, 500, 503])
}

fn list_audit(b: &mut Builder) -> Operation {
    let list = b.schema::<crate::routes::audit::AuditList>();
    Operation::new(
        "List the audit log, newest first",
        "Every action taken through the API or the dashboard: who (the key's id, name, role \
         and organization; never its secret), what, when, on which jobs, from which surface, \
         and how it ended (`ok`, or the problem's kind). An operator key reads its \
         organization's entries; an admin every organization's, or `org`'s. Entries are \
         written in the background: one may appear a moment after its action. Pages by \
         cursor, as `GET /v1/jobs`.",
        Some(Role::Operator),
    )
    .params(b.query::<crate::routes::audit::AuditParams>())
    .answer(
        200,
        with_headers(
            json_answer("A page of entries.", list),
            &[(
                "Link",
                "`</v1/audit?...&cursor=...>; rel=\"next\"`, when there is a next page.",
            )],
        ),
    )
    .problems(&[400, 403, 503])
}

fn list_queues(b: &mut Builder) -> Operation {
    let list = b.schema::<fleet::QueueList>();
    Operation::new(
        "Count the jobs of each queue",
        "Waiting, running, delayed, done, dead and cancelled, per queue.",
        Some(Role::Viewer),
    )
    .answer(200, json_answer("Counts per queue.", list))
    .problems(&[500, 503])
}

fn list_workers(b: &mut Builder) -> Operation {
    let list = b.schema::<fleet::WorkerList>();
    Operation::new(
        "List the live workers",
        "Each with its state (`running`, `draining`, `drained`, `dead`), host, version, \
         queues, slots and busy slots with the job each runs (`running`), heartbeat age and \
         start. `held` (every id in its held list) is listed for admin keys only, and \
         `running` only shows other keys their own organization's jobs: workers serve every \
         organization.",
        Some(Role::Viewer),
    )
    .answer(200, json_answer("The workers.", list))
    .problems(&[500, 503])
}

fn worker_id_param() -> Value {
    path_param(
        "id",
        "The worker's id, as `GET /v1/workers` lists it.",
        json!({ "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,99}$" }),
    )
}

fn drain_worker(b: &mut Builder) -> Operation {
    let answer = b.schema::<fleet::WorkerAnswer>();
    Operation::new(
        "Drain a worker",
        "It stops taking jobs, from every queue it serves and its own, and finishes the ones \
         it holds: from this answer on it starts none (Redis refuses its fetches), and a job \
         sent to its own queue is answered `sandbox_not_found` at once, as are those waiting \
         there when it learns of the drain (at its next heartbeat). It says `draining`, then, \
         when its last job is done, `drained`: its live sandboxes are removed and it idles, \
         still listed, until undrained or stopped. Asking again changes nothing. Admin keys \
         only: a worker serves every organization. An audit entry (`worker.drain`).",
        Some(Role::Admin),
    )
    .param(surface_header())
    .param(worker_id_param())
    .answer(
        202,
        with_headers(
            json_answer(
                "Asked: the worker as listed now (`drain_requested_at` set; `state` follows \
                 within a heartbeat).",
                answer,
            ),
            &[WORKERS_LOCATION],
        ),
    )
    .problems(&[400, 403, 404, 500, 503])
}

fn undrain_worker(b: &mut Builder) -> Operation {
    let answer = b.schema::<fleet::WorkerAnswer>();
    Operation::new(
        "Undrain a worker",
        "Withdraws a drain: a drained worker takes jobs again within a heartbeat; one still \
         draining finishes its drain first, then takes jobs again. Admin keys only. An audit \
         entry (`worker.undrain`).",
        Some(Role::Admin),
    )
    .param(surface_header())
    .param(worker_id_param())
    .answer(
        202,
        with_headers(
            json_answer(
                "Withdrawn: the worker as listed now (`drain_requested_at` cleared).",
                answer,
            ),
            &[WORKERS_LOCATION],
        ),
    )
    .problems(&[400, 403, 404, 500, 503])
}

fn get_schedule(b: &mut Builder) -> Operation {
    let answer = b.schema::<schedule::Schedule>();
    Operation::new(
        "The scheduler's runs, next ticks and leader",
        "The most recent runs (task, tick, replica, outcome, duration, and whether a tick of \
         its schedule or a run asked for by hand), each task's schedule and next tick on the \
         leader, and the replica that leads. Admin keys only.",
        Some(Role::Admin),
    )
    .params(b.query::<schedule::ScheduleParams>())
    .answer(200, json_answer("The schedule.", answer))
    .problems(&[400, 403, 500, 503])
}

fn run_task(b: &mut Builder) -> Operation {
    let answer = b.schema::<schedule::RunAccepted>();
    Operation::new(
        "Run a scheduler task now",
        "The request goes to the leader through Redis; it runs the task once, within a leader \
         check (`GITFLEET_SCHEDULER_LEADER_CHECK_MS`), recorded like any run at the tick this \
         answer gives (`trigger` `manual` in `GET /v1/schedule`). No leader: `503`, nothing \
         is queued. Admin keys only. An audit entry (`schedule.run`).",
        Some(Role::Admin),
    )
    .param(surface_header())
    .param(path_param(
        "task",
        "The task: `eviction`, `priority`, `health_check`, `cleanup`, `template_rebuild` or \
         `retention`.",
        json!({ "type": "string" }),
    ))
    .answer(
        202,
        with_headers(
            json_answer(
                "Asked: the run's tick and the leader that will run it; follow `Location`.",
                answer,
            ),
            &[SCHEDULE_LOCATION],
        ),
    )
    .problems(&[400, 403, 404, 500, 503])
}

fn list_sandboxes(b: &mut Builder) -> Operation {
    let list = b.schema::<fleet::SandboxList>();
    Operation::new(
        "List sandboxes from the registry",
        "The key's organization's (an admin's: every one, or `org`'s), most recently used \
         first.",
        Some(Role::Viewer),
    )
    .params(b.query::<fleet::SandboxParams>())
    .answer(200, json_answer("The sandboxes.", list))
    .problems(&[400, 403, 503])
}

fn list_repositories(b: &mut Builder) -> Operation {
    let page = b.schema::<repositories::RepositoryPage>();
    Operation::new(
        "List the repositories the fleet works on",
        "Per repository and per worker: sandboxes made (cache hits, misses, and by source), \
         mirror fetches, the mirror's size, pushes, rebases and conflicts, and whether it is \
         pinned among the fleet's top ten. The figures are the key's organization's jobs' \
         only (an admin's: every organization's, or `org`'s); workers add theirs every few \
         seconds. Most recently used first, or most used (`sort=uses`); pages by cursor: \
         `next` (also in `Link`, `rel=\"next\"`) is the next page's URL, absent on the last.",
        Some(Role::Viewer),
    )
    .params(b.query::<repositories::RepoParams>())
    .answer(
        200,
        with_headers(
            json_answer("A page of repositories.", page),
            &[(
                "Link",
                "`</v1/repositories?...&cursor=...>; rel=\"next\"`, when there is a next page.",
            )],
        ),
    )
    .problems(&[400, 403, 503])
}

fn get_hit_rate(b: &mut Builder) -> Operation {
    let rates = b.schema::<HitRates>();
    Operation::new(
        "The cache hit rate over the last hour and day",
        "Of the sandboxes made, how many recycled a released copy of their repository: the \
         key's organization's (an admin's: the fleet's, or `org`'s).",
        Some(Role::Viewer),
    )
    .params(b.query::<repositories::HitRateParams>())
    .answer(200, json_answer("Sandboxes made and cache hits.", rates))
    .problems(&[400, 403, 503])
}

fn release_sandbox(b: &mut Builder) -> Operation {
    let record = b.schema::<JobRecord>();
    Operation::new(
        "Release a live sandbox",
        "Through the worker that holds it (a `release` job for the sandbox's organization). \
         Answers the job's record: `200` once it ended, `202` if it is still going after 30 s. \
         An audit entry (`sandbox.release`).",
        Some(Role::Operator),
    )
    .param(surface_header())
    .param(path_param(
        "id",
        "The sandbox's id: `<worker id>.<ulid>`.",
        json!({
            "type": "string",
            "pattern": "^[A-Za-z0-9][A-Za-z0-9-]{0,99}\\.[0-9A-Za-z]{26}$",
        }),
    ))
    .answer(
        200,
        with_headers(
            json_answer("The `release` job ended: its record.", record.clone()),
            &[LOCATION],
        ),
    )
    .answer(
        202,
        with_headers(
            json_answer(
                "The `release` job is still going after 30 s: its record; follow `Location`.",
                record,
            ),
            &[LOCATION],
        ),
    )
    .problems(&[400, 403, 404, 500, 503])
}

fn get_usage(b: &mut Builder) -> Operation {
    let usage = b.schema::<fleet::Usage>();
    Operation::new(
        "An organization's budget, spend this month and live sandboxes",
        "A key reads its own organization's; an admin any. Another organization is `404`, as \
         one that does not exist.",
        Some(Role::Viewer),
    )
    .param(path_param(
        "org",
        "The organization: 1-64 of letters, digits, `_`, `-`, `.`, not starting with `-` or \
         `.`.",
        json!({ "type": "string", "pattern": ORG_PATTERN }),
    ))
    .answer(200, json_answer("The organization's usage.", usage))
    .problems(&[400, 404, 500, 503])
}

fn create_key(b: &mut Builder) -> Operation {
    let req = b.schema::<fleet::NewKeyRequest>();
    let created = b.schema::<fleet::CreatedKey>();
    Operation::new(
        "Make an API key",
        "The answer's `key` is the only time the key is shown: Postgres keeps only a hash \
         of its secret. An audit entry (`key.create`; never the key).",
        Some(Role::Admin),
    )
    .param(surface_header())
    .body(json_body("The key to make.", req))
    .answer(
        201,
        json_answer("The key, with its token (shown once).", created),
    )
    .problems(&[400, 403, 413, 503])
}

fn list_keys(b: &mut Builder) -> Operation {
    let list = b.schema::<fleet::KeyList>();
    b.schema::<ApiKey>();
    Operation::new(
        "List API keys",
        "Every key (never a secret), newest first; `org` picks one organization's.",
        Some(Role::Admin),
    )
    .params(b.query::<fleet::KeyParams>())
    .answer(200, json_answer("The keys.", list))
    .problems(&[400, 403, 503])
}

fn revoke_key(_: &mut Builder) -> Operation {
    Operation::new(
        "Revoke an API key",
        "For good; every replica stops taking it within `GITFLEET_GATEWAY_KEY_CACHE_SECS`. \
         An audit entry (`key.revoke`).",
        Some(Role::Admin),
    )
    .param(surface_header())
    .param(path_param(
        "id",
        "The key's id: the 16 hex digits after `gfk_`.",
        json!({ "type": "string", "pattern": "^[0-9a-f]{16}$" }),
    ))
    .answer(204, json!({ "description": "Revoked." }))
    .problems(&[400, 403, 404, 503])
}

fn mcp(_: &mut Builder) -> Operation {
    let message = json!({
        "description": "A JSON-RPC 2.0 message (MCP: `initialize`, `tools/list`, \
                        `tools/call`, notifications).",
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {
            "jsonrpc": { "const": "2.0" },
            "id": { "type": ["string", "integer"] },
            "method": { "type": "string" },
            "params": { "type": "object" },
        },
    });
    let answer = json!({
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {
            "jsonrpc": { "const": "2.0" },
            "id": { "type": ["string", "integer", "null"] },
            "result": {},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": { "type": "integer" },
                    "message": { "type": "string" },
                },
            },
        },
    });
    Operation::new(
        "Call gitfleet's git tools (MCP, Streamable HTTP)",
        "Each POST is answered on its own (no MCP session): a request answers its JSON-RPC \
         response, as JSON, or as an event stream when progress notifications come first (a \
         tool call enqueues its job and waits for it); a notification answers `202`. Send \
         `Accept: application/json, text/event-stream` and `Content-Type: application/json`. \
         The key's organization is the tools' identity. A request the MCP transport cannot take \
         is a problem document: `406` (the `Accept`), `415` (the content type, or a body \
         that is not a JSON-RPC message), `405` for another method.",
        Some(Role::Producer),
    )
    .body(json_body("A JSON-RPC message.", message))
    .answer(
        200,
        json!({
            "description": "The JSON-RPC response (a failed tool call is a result with \
                            `isError: true` and `{kind, message}`).",
            "content": {
                "application/json": { "schema": answer },
                "text/event-stream": { "schema": {
                    "description": "One event: a progress notification, then the response.",
                    "type": "object",
                    "required": ["data"],
                    "properties": { "data": { "type": "string" } },
                } },
            },
        }),
    )
    .answer(202, json!({ "description": "A notification, taken." }))
    .problems(&[403, 406, 415, 503])
}

fn healthz(b: &mut Builder) -> Operation {
    let health = b.schema::<health::Health>();
    Operation::new("The process is up", "Always `200` while it serves.", None)
        .answer(200, json_answer("Up.", health))
}

fn readyz(b: &mut Builder) -> Operation {
    let health = b.schema::<health::Health>();
    Operation::new(
        "Redis and Postgres answer",
        "Each checked with a 2 s limit; `checks` says which failed.",
        None,
    )
    .answer(200, json_answer("Ready.", health.clone()))
    .answer(503, json_answer("Not ready: `checks` says why.", health))
}

fn openapi(_: &mut Builder) -> Operation {
    Operation::new("This document", "OpenAPI 3.1.", None).answer(
        200,
        json_answer(
            "The OpenAPI document.",
            json!({ "type": "object", "required": ["openapi", "paths"] }),
        ),
    )
}

fn docs(_: &mut Builder) -> Operation {
    Operation::new(
        "The reference, as a page",
        "This document rendered, with the problem kinds at `#problem-<kind>` (a problem's \
         `type`).",
        None,
    )
    .answer(
        200,
        json!({
            "description": "An HTML page.",
            "content": { "text/html": { "schema": { "type": "string" } } },
        }),
    )
}

/// `NewJob`: one job to enqueue, one variant per op a key may enqueue, each with that op's
/// args (so a client, a generator or a fuzzer knows the args of every op).
fn new_job_schema(b: &mut Builder) -> Value {
    let base = b.inline.root_schema_for::<jobs::NewJob>().to_value();
    let mut variants = Vec::new();
    for op in OpName::ALL.iter().copied().filter(|op| !op.is_internal()) {
        let args = op.args_subschema(&mut b.components).to_value();
        // Also the result, for readers of a done job's `result`.
        op.result_subschema(&mut b.components);
        let args_required = resolve(&b.components, &args)
            .and_then(|s| s.get("required"))
            .and_then(Value::as_array)
            .is_some_and(|r| !r.is_empty());
        let mut v = base.clone();
        let obj = v.as_object_mut().expect("a struct's schema is an object");
        obj.remove("title");
        obj.insert("title".into(), format!("NewJob ({op})").into());
        obj.remove("description");
        let props = obj["properties"]
            .as_object_mut()
            .expect("NewJob has properties");
        props.insert("op".into(), json!({ "const": op.as_str() }));
        let args_description = format!("`{op}`'s args.");
        props.insert(
            "args".into(),
            json!({ "allOf": [args], "description": args_description }),
        );
        if args_required {
            obj["required"]
                .as_array_mut()
                .expect("NewJob requires op")
                .push("args".into());
        }
        variants.push(v);
    }
    json!({
        "description": base["description"],
        "oneOf": variants,
    })
}

/// The definition a `$ref` into the components names, or the schema itself.
fn resolve<'a>(generator: &'a SchemaGenerator, schema: &'a Value) -> Option<&'a Value> {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => generator
            .definitions()
            .get(r.strip_prefix("#/components/schemas/")?),
        None => Some(schema),
    }
}

fn build() -> Value {
    let mut b = Builder::new();
    let mut paths = Map::new();
    for route in ROUTES {
        let op = (route.describe)(&mut b).to_json(route);
        paths
            .entry(route.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects")
            .insert(route.method.to_string(), op);
    }
    let problem = b.schema::<ProblemDoc>();
    let new_job = new_job_schema(&mut b);
    b.schema::<Enqueued>();
    b.schema::<JobRow>();
    b.schema::<SandboxRow>();
    let mut schemas = b.components.take_definitions(true);
    schemas.insert("NewJob".into(), new_job);
    if let Some(p) = schemas.get_mut("Problem") {
        p["properties"]["kind"]["enum"] = problem::kinds().collect();
    }
    let mut responses = Map::new();
    for (status, name, description) in PROBLEMS {
        let mut headers = Map::new();
        if matches!(status, 429 | 503) {
            headers.insert(
                "Retry-After".into(),
                json!({
                    "description": "Seconds to wait before trying again.",
                    "schema": { "type": "integer", "minimum": 0 },
                }),
            );
        }
        if *status == 401 {
            headers.insert(
                "WWW-Authenticate".into(),
                json!({
                    "description": "`Bearer realm=\"gitfleet\"`.",
                    "schema": { "type": "string" },
                }),
            );
        }
        let mut r = json!({
            "description": description,
            "content": { "application/problem+json": { "schema": problem } },
        });
        if !headers.is_empty() {
            r["headers"] = Value::Object(headers);
        }
        responses.insert((*name).to_string(), r);
    }
    let tags: Vec<Value> = TAGS
        .iter()
        .map(|(name, description)| json!({ "name": name, "description": description }))
        .collect();
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "gitfleet gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Git jobs for fleets of AI agents: the HTTP API.",
            "description": "Every `/v1` request carries an API key of one organization with \
                            one role (`viewer` < `producer` < `operator` < `admin`; \
                            `x-gitfleet-role` is the least an operation needs). Errors are \
                            RFC 9457 problem documents (`application/problem+json`) whose \
                            `type` is `/docs#problem-<kind>`.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "tags": tags,
        "security": [{ "bearerAuth": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key: `Authorization: Bearer gfk_<id>_<secret>` \
                                    (`gitfleet keys create`, or `POST /v1/keys`).",
                },
            },
        },
    })
}

/// The document (built once).
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// `GET /openapi.json`.
pub async fn serve() -> Response {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let body = BYTES.get_or_init(|| serde_json::to_vec(document()).expect("plain data"));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.as_slice(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` under `value`, with where it is.
    fn refs<'a>(value: &'a Value, at: String, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "$ref"
                        && let Some(r) = v.as_str()
                    {
                        out.push((at.clone(), r));
                    }
                    refs(v, format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_ref_resolves_within_the_document() {
        let doc = document();
        let mut found = Vec::new();
        refs(doc, String::new(), &mut found);
        assert!(found.len() > 50, "{} refs", found.len());
        for (at, r) in found {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{at}: {r} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{at}: {r} does not resolve");
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::HashSet::new();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method];
            assert_eq!(op["operationId"], route.operation_id, "{}", route.path);
            assert!(
                ids.insert(route.operation_id),
                "{} twice",
                route.operation_id
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{}",
                route.operation_id
            );
            // Every path parameter of the path is declared, and nothing else is.
            let in_path: Vec<&str> = route
                .path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(in_path, declared, "{}", route.operation_id);
            let open = matches!(
                route.path,
                "/healthz" | "/readyz" | "/openapi.json" | "/docs"
            );
            assert_eq!(
                op.get("security") == Some(&json!([])),
                open,
                "{}: security",
                route.operation_id
            );
            if !open {
                assert!(op["responses"]["401"].is_object(), "{}", route.operation_id);
            }
        }
        let paths = doc["paths"].as_object().unwrap();
        let methods: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
        assert_eq!(methods, ROUTES.len());
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
    }

    #[test]
    fn a_job_body_names_the_args_of_every_op_a_key_may_enqueue() {
        let doc = document();
        let variants = doc["components"]["schemas"]["NewJob"]["oneOf"]
            .as_array()
            .unwrap();
        let ops: Vec<&str> = variants
            .iter()
            .map(|v| v["properties"]["op"]["const"].as_str().unwrap())
            .collect();
        let public: Vec<&str> = OpName::ALL
            .iter()
            .filter(|op| !op.is_internal())
            .map(|op| op.as_str())
            .collect();
        assert_eq!(ops, public);
        let clone = &variants[ops.iter().position(|o| *o == "clone").unwrap()];
        assert_eq!(
            clone["properties"]["args"]["allOf"][0]["$ref"],
            "#/components/schemas/CloneArgs"
        );
        assert_eq!(clone["required"], json!(["op", "args"]));
        assert_eq!(clone["additionalProperties"], false);
        let echo = &variants[ops.iter().position(|o| *o == "echo").unwrap()];
        assert_eq!(echo["required"], json!(["op"]));
        let kinds = &doc["components"]["schemas"]["Problem"]["properties"]["kind"]["enum"];
        assert!(kinds.as_array().unwrap().contains(&json!("rate_limited")));
        assert!(
            kinds
                .as_array()
                .unwrap()
                .contains(&json!("sandbox_not_found"))
        );
    }

    #[test]
    fn query_parameters_come_from_the_params_structs() {
        let doc = document();
        let params = doc["paths"]["/v1/jobs"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
        for name in ["status", "op", "since", "until", "limit", "cursor"] {
            assert!(names.contains(&name), "{name}: {names:?}");
        }
        let status = params.iter().find(|p| p["name"] == "status").unwrap();
        let consts: Vec<&Value> = status["schema"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| &v["const"])
            .collect();
        assert!(consts.contains(&&json!("cancelled")), "{status}");
        let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
        assert_eq!(limit["schema"]["maximum"], 500, "{limit}");
    }

    /// Every `.route("<path>", <methods>)` of `crate::router` but `/mcp`, read from lib.rs:
    /// the other half of holding [`ROUTES`] to the router (the gateway's tests request each
    /// entry of `ROUTES` from the running binary).
    fn router_routes() -> Vec<(String, String)> {
        let src = include_str!("lib.rs");
        let mut out = Vec::new();
        for (i, _) in src.match_indices(".route(\"") {
            let rest = &src[i + ".route(\"".len()..];
            let path = &rest[..rest.find('"').unwrap()];
            if path.starts_with("/mcp") {
                continue;
            }
            // The route call's text, to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[path.len() + 1..end];
            for method in ["get", "post", "put", "patch", "delete"] {
                for (k, _) in call.match_indices(&format!("{method}(")) {
                    let before = call[..k].chars().last();
                    if matches!(before, Some(' ' | '.' | ',' | '\n')) {
                        out.push((method.to_string(), path.to_string()));
                    }
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_routes_table_is_the_routers_routes() {
        let mut table: Vec<(String, String)> = ROUTES
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_string()))
            .collect();
        // `/mcp` is a nested service (`.nest_service`), not a `.route`: its one operation is
        // held to the binary by the gateway's tests.
        table.retain(|(_, path)| path != "/mcp");
        table.sort();
        assert_eq!(router_routes(), table);
    }
}
