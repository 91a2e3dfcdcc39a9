//! The pages measured, one line each in [`PAGES`], and how they are requested: signed in to
//! the dashboard (its session cookie) or with an API key, one request at a time on one
//! keep-alive connection, each timed from sending it to the last byte of its answer on
//! loopback.
//!
//! A new dashboard page is one more line in [`PAGES`]; values that come from the seeded data
//! are `{placeholders}` filled from [`Samples`].

use std::time::Instant;

use anyhow::Context as _;
use reqwest::header;
use sqlx::PgPool;

/// Who requests a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// Signed in to the dashboard with an admin key: sees every organization.
    Admin,
    /// Signed in with a key of the biggest organization (`org-00`): sees its own jobs.
    Org,
    /// `Authorization: Bearer` with the admin key (the API).
    AdminKey,
    /// `Authorization: Bearer` with the organization's key.
    OrgKey,
}

impl Who {
    pub fn as_str(self) -> &'static str {
        match self {
            Who::Admin => "admin",
            Who::Org => "org",
            Who::AdminKey => "admin key",
            Who::OrgKey => "org key",
        }
    }
}

/// One page to measure.
pub struct Page {
    pub name: &'static str,
    pub who: Who,
    /// The path and query, with `{placeholders}` from [`Samples`].
    pub path: &'static str,
    /// Measure the page its `next` link points to (the cursor's second page), not this one.
    pub next: bool,
}

const fn page(name: &'static str, who: Who, path: &'static str) -> Page {
    Page {
        name,
        who,
        path,
        next: false,
    }
}

const fn next_of(name: &'static str, who: Who, path: &'static str) -> Page {
    Page {
        name,
        who,
        path,
        next: true,
    }
}

/// Every page measured: the dashboard's (its jobs list with each filter, search and order,
/// a job, the delayed, dead and audit views, the fleet's views) and the API's lists.
pub const PAGES: &[Page] = &[
    page("overview", Who::Admin, "/ui"),
    page("overview, one org", Who::Org, "/ui"),
    page("overview, ?org=", Who::Admin, "/ui?org={small_org}"),
    page("jobs", Who::Admin, "/ui/jobs"),
    page("jobs, one org", Who::Org, "/ui/jobs"),
    page("jobs ?status=dead", Who::Admin, "/ui/jobs?status=dead"),
    page(
        "jobs ?status=waiting",
        Who::Admin,
        "/ui/jobs?status=waiting",
    ),
    page("jobs ?op=", Who::Admin, "/ui/jobs?op={op}"),
    page("jobs ?queue=", Who::Admin, "/ui/jobs?queue={queue}"),
    page("jobs ?agent=", Who::Admin, "/ui/jobs?agent={agent}"),
    page("jobs ?task=", Who::Admin, "/ui/jobs?task={task}"),
    page("jobs ?sandbox=", Who::Admin, "/ui/jobs?sandbox={sandbox}"),
    page(
        "jobs ?since=&until= (1 day)",
        Who::Admin,
        "/ui/jobs?since={since}&until={until}",
    ),
    page(
        "jobs ?org= (smallest)",
        Who::Admin,
        "/ui/jobs?org={small_org}",
    ),
    page(
        "jobs ?status=dead, one org",
        Who::Org,
        "/ui/jobs?status=dead",
    ),
    next_of("jobs, next page", Who::Admin, "/ui/jobs"),
    next_of(
        "jobs ?status=dead, next page",
        Who::Admin,
        "/ui/jobs?status=dead",
    ),
    page("jobs ?q= (rare text)", Who::Admin, "/ui/jobs?q={text_rare}"),
    page(
        "jobs ?q= (common text)",
        Who::Admin,
        "/ui/jobs?q={text_common}",
    ),
    page("jobs ?q=, one org", Who::Org, "/ui/jobs?q={text_common}"),
    page("jobs ?id= (prefix)", Who::Admin, "/ui/jobs?id={id_prefix}"),
    page("jobs ?repo=", Who::Admin, "/ui/jobs?repo={repo}"),
    page(
        "jobs ?sort=finished_desc",
        Who::Admin,
        "/ui/jobs?sort=finished_desc",
    ),
    page("delayed", Who::Admin, "/ui/delayed"),
    page("dead", Who::Admin, "/ui/dead"),
    page("dead, one org", Who::Org, "/ui/dead"),
    page("dead ?op=", Who::Admin, "/ui/dead?op={op}"),
    page("audit", Who::Admin, "/ui/audit"),
    page("workers", Who::Admin, "/ui/workers"),
    page("sandboxes", Who::Admin, "/ui/sandboxes"),
    page("repositories", Who::Admin, "/ui/repositories"),
    page("schedule", Who::Admin, "/ui/schedule"),
    page("organizations", Who::Admin, "/ui/orgs"),
    page("job (dead, in Redis)", Who::Admin, "/ui/jobs/{dead_id}"),
    page("job (history, runs)", Who::Admin, "/ui/jobs/{job_id}"),
    page("job (history), one org", Who::Org, "/ui/jobs/{org_job_id}"),
    page("GET /v1/jobs", Who::AdminKey, "/v1/jobs"),
    page("GET /v1/jobs, one org", Who::OrgKey, "/v1/jobs"),
    page(
        "GET /v1/jobs?status=dead",
        Who::AdminKey,
        "/v1/jobs?status=dead",
    ),
    page("GET /v1/jobs?op=", Who::AdminKey, "/v1/jobs?op={op}"),
    page(
        "GET /v1/jobs?queue=",
        Who::AdminKey,
        "/v1/jobs?queue={queue}",
    ),
    page(
        "GET /v1/jobs?agent=",
        Who::AdminKey,
        "/v1/jobs?agent={agent}",
    ),
    page("GET /v1/jobs?task=", Who::AdminKey, "/v1/jobs?task={task}"),
    page(
        "GET /v1/jobs?sandbox=",
        Who::AdminKey,
        "/v1/jobs?sandbox={sandbox}",
    ),
    page("GET /v1/jobs?repo=", Who::AdminKey, "/v1/jobs?repo={repo}"),
    page(
        "GET /v1/jobs?repo= (rare)",
        Who::AdminKey,
        "/v1/jobs?repo={rare_repo}",
    ),
    page(
        "GET /v1/jobs?since=&until=",
        Who::AdminKey,
        "/v1/jobs?since={since}&until={until}",
    ),
    page(
        "GET /v1/jobs?org=",
        Who::AdminKey,
        "/v1/jobs?org={small_org}",
    ),
    page(
        "GET /v1/jobs?id= (exact)",
        Who::AdminKey,
        "/v1/jobs?id={job_id}",
    ),
    page(
        "GET /v1/jobs?id= (prefix)",
        Who::AdminKey,
        "/v1/jobs?id={id_prefix}",
    ),
    page(
        "GET /v1/jobs?q= (rare text)",
        Who::AdminKey,
        "/v1/jobs?q={text_rare}",
    ),
    page(
        "GET /v1/jobs?q= (common text)",
        Who::AdminKey,
        "/v1/jobs?q={text_common}",
    ),
    page(
        "GET /v1/jobs?q=, one org",
        Who::OrgKey,
        "/v1/jobs?q={text_common}",
    ),
    page(
        "GET /v1/jobs?sort=enqueued_asc",
        Who::AdminKey,
        "/v1/jobs?sort=enqueued_asc",
    ),
    page(
        "GET /v1/jobs?sort=finished_desc",
        Who::AdminKey,
        "/v1/jobs?sort=finished_desc",
    ),
    page(
        "GET /v1/jobs?sort=finished_asc",
        Who::AdminKey,
        "/v1/jobs?sort=finished_asc",
    ),
    next_of("GET /v1/jobs, next page", Who::AdminKey, "/v1/jobs"),
    next_of(
        "GET /v1/jobs?sort=finished_desc, next",
        Who::AdminKey,
        "/v1/jobs?sort=finished_desc",
    ),
    page("GET /v1/jobs/{id}", Who::AdminKey, "/v1/jobs/{job_id}"),
    page(
        "GET /v1/jobs/{id} (dead)",
        Who::AdminKey,
        "/v1/jobs/{dead_id}",
    ),
];

/// Values of the seeded data the pages filter by, as `(placeholder, value)`; values are
/// percent-encoded when they are put in a path.
pub struct Samples(pub Vec<(&'static str, String)>);

impl Samples {
    /// Picks them from the seeded database: the newest job of `org-00` with an agent (its
    /// agent, task and sandbox), the busiest and a rare repository, the smallest
    /// organization, a job with runs, a day 20 days ago, and `dead_id`.
    pub async fn pick(pool: &PgPool, dead_id: &str) -> anyhow::Result<Self> {
        let (agent, task, sandbox, org_job_id): (String, String, String, String) = sqlx::query_as(
            "SELECT agent_id, task_id, sandbox_id, job_id FROM jobs \
                  WHERE org_id = 'org-00' AND sandbox_id IS NOT NULL AND status = 'done' \
                  ORDER BY enqueued_at DESC LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .context("a job of org-00")?;
        let repos: Vec<(String,)> = sqlx::query_as(
            "(SELECT repo_url FROM git_sandboxes GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1) \
             UNION ALL \
             (SELECT repo_url FROM git_sandboxes GROUP BY 1 ORDER BY count(*), 1 LIMIT 1)",
        )
        .fetch_all(pool)
        .await
        .context("the busiest and the rarest repository")?;
        let (small_org,): (String,) = sqlx::query_as(
            "SELECT org_id FROM jobs WHERE org_id IS NOT NULL GROUP BY 1 ORDER BY count(*), 1 LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .context("the smallest organization")?;
        let (job_id,): (String,) = sqlx::query_as(
            "SELECT r.job_id FROM job_runs r WHERE r.attempt = 2 AND r.git_steps IS NOT NULL \
              ORDER BY r.job_id DESC LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .context("a job with two runs")?;
        let now = chrono::Utc::now();
        let day = |days: i64| {
            (now - chrono::Duration::days(days))
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string()
        };
        Ok(Samples(vec![
            ("agent", agent),
            ("task", task),
            ("sandbox", sandbox),
            ("org_job_id", org_job_id),
            ("repo", repos[0].0.clone()),
            ("rare_repo", repos[repos.len() - 1].0.clone()),
            ("small_org", small_org),
            ("id_prefix", job_id[..10].to_string()),
            ("job_id", job_id),
            ("dead_id", dead_id.to_string()),
            ("since", day(20)),
            ("until", day(19)),
            ("op", "merge".into()),
            ("queue", "priority".into()),
            ("text_rare", "module_42.rs".into()),
            ("text_common", "non-fast-forward".into()),
        ]))
    }

    /// `path` with its placeholders filled (percent-encoded).
    pub fn fill(&self, path: &str) -> String {
        let mut out = path.to_string();
        for (k, v) in &self.0 {
            out = out.replace(&format!("{{{k}}}"), &urlencode(v));
        }
        out
    }
}

fn urlencode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTTP client for the gateway, with the two dashboard sessions and the two keys.
pub struct Visitor {
    pub http: reqwest::Client,
    pub base: String,
    pub admin_cookie: String,
    pub org_cookie: String,
    pub admin_key: String,
    pub org_key: String,
}

/// Signs in to the dashboard with `key` as a browser does (the form's page for its token
/// and cookie, then the form): the `Cookie` header of the session.
pub async fn sign_in(http: &reqwest::Client, base: &str, key: &str) -> anyhow::Result<String> {
    let form = http
        .get(format!("{base}/ui/signin"))
        .send()
        .await
        .context("GET /ui/signin")?;
    let form_cookie = cookie_of(&form, "gitfleet_signin").context("the sign-in form's cookie")?;
    let html = form.text().await?;
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("the sign-in form's csrf field")?
        .to_string();
    let body = format!(
        "key={}&csrf={}&next={}",
        urlencode(key),
        urlencode(&csrf),
        urlencode("/ui")
    );
    let res = http
        .post(format!("{base}/ui/signin"))
        .header(header::COOKIE, format!("gitfleet_signin={form_cookie}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .context("POST /ui/signin")?;
    anyhow::ensure!(
        res.status() == reqwest::StatusCode::SEE_OTHER,
        "sign-in answered {}",
        res.status()
    );
    let session = cookie_of(&res, "gitfleet_session").context("no session cookie")?;
    Ok(format!("gitfleet_session={session}"))
}

fn cookie_of(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, value) = pair.split_once('=')?;
            (k.trim() == name && !value.is_empty()).then(|| value.to_string())
        })
}

/// One request's answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub ms: f64,
}

impl Visitor {
    pub fn request(&self, who: Who, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", self.base));
        match who {
            Who::Admin => req.header(header::COOKIE, &self.admin_cookie),
            Who::Org => req.header(header::COOKIE, &self.org_cookie),
            Who::AdminKey => req.bearer_auth(&self.admin_key),
            Who::OrgKey => req.bearer_auth(&self.org_key),
        }
    }

    /// GETs `path` as `who`, timed to the last byte.
    pub async fn get(&self, who: Who, path: &str) -> anyhow::Result<Answer> {
        let started = Instant::now();
        let res = self
            .request(who, path)
            .send()
            .await
            .with_context(|| format!("GET {path}"))?;
        let status = res.status().as_u16();
        let body = res.text().await.with_context(|| format!("GET {path}"))?;
        Ok(Answer {
            status,
            body,
            ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The path a page's `next` link points to: the API's `next`, or the dashboard's
    /// `rel="next"` link.
    pub async fn next_path(&self, who: Who, path: &str) -> anyhow::Result<String> {
        let a = self.get(who, path).await?;
        anyhow::ensure!(a.status == 200, "GET {path}: {}", a.status);
        let next = if path.starts_with("/v1/") {
            let v: serde_json::Value = serde_json::from_str(&a.body)?;
            v["next"].as_str().map(str::to_string)
        } else {
            a.body
                .split("rel=\"next\"")
                .next()
                .and_then(|before| before.rsplit("href=\"").next())
                .and_then(|rest| rest.split('"').next())
                .filter(|href| href.contains("cursor="))
                .map(|href| href.replace("&amp;", "&").replace("&#x3d;", "="))
        }
        .with_context(|| format!("GET {path}: no next page"))?;
        // An absolute URL or a path: the path.
        Ok(match next.find("://") {
            Some(i) => next[i + 3..]
                .find('/')
                .map(|j| next[i + 3 + j..].to_string())
                .unwrap_or(next),
            None => next,
        })
    }
}

/// One page's figures over one round.
#[derive(Debug, Clone)]
pub struct Measured {
    pub samples: Vec<f64>,
    pub status: u16,
    pub bytes: usize,
    /// The first line of the body when the status was not 200.
    pub problem: Option<String>,
}

/// Requests `path` as `who` `warmup` times unmeasured, then `n` times, one after another.
pub async fn measure(
    v: &Visitor,
    who: Who,
    path: &str,
    warmup: usize,
    n: usize,
) -> anyhow::Result<Measured> {
    for _ in 0..warmup {
        v.get(who, path).await?;
    }
    let mut samples = Vec::with_capacity(n);
    let mut status = 200;
    let mut bytes = 0;
    let mut problem = None;
    for _ in 0..n {
        let a = v.get(who, path).await?;
        samples.push(a.ms);
        bytes = a.body.len();
        if a.status != 200 {
            status = a.status;
            problem.get_or_insert_with(|| a.body.chars().take(200).collect());
        }
    }
    Ok(Measured {
        samples,
        status,
        bytes,
        problem,
    })
}
