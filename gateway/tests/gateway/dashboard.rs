//! The dashboard (`/ui`): in a real browser (Debian's chromium, driven by playwright-core
//! from `gateway/ui-tests/`) against the gateway binary, a worker and a git server on
//! loopback; and its sessions over plain HTTP (cookies, revoked keys, a proxy's base path).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_testkit::fixtures;
use gitfleet_testkit::{GitDaemon, eventually};
use serde_json::json;

use crate::support::{World, world_with};

/// The live interval the tests run the gateway with.
pub(crate) const LIVE_MS: &str = "300";

pub(crate) fn ui_tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui-tests")
}

/// Debian's chromium: `GITFLEET_TEST_CHROMIUM`, else `/usr/bin/chromium`. Panics, saying
/// how to get it, when it is missing: the test must not pass without its browser.
pub(crate) fn chromium() -> PathBuf {
    let path = std::env::var_os("GITFLEET_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "{} is missing: `apt-get install -y chromium` (scripts/test does)",
        path.display()
    );
    path
}

/// `npm ci` in gateway/ui-tests once, when its node_modules lacks the pinned
/// playwright-core (never a browser download: playwright-core has none).
pub(crate) fn node_modules() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let dir = ui_tests_dir();
        let installed = dir.join("node_modules/playwright-core/package.json");
        let wanted = std::fs::read_to_string(dir.join("package.json")).expect("package.json");
        let have = std::fs::read_to_string(&installed).unwrap_or_default();
        let version = |text: &str, key: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(text).ok()?;
            Some(
                if key.is_empty() {
                    v["version"].as_str()
                } else {
                    v["dependencies"][key].as_str()
                }?
                .to_string(),
            )
        };
        if version(&have, "").is_some() && version(&have, "") == version(&wanted, "playwright-core")
        {
            return;
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
            .output()
            .expect("run npm (on Debian, `apt-get install nodejs npm`; scripts/test does)");
        assert!(
            out.status.success(),
            "npm ci in {} (needs the npm registry, or node_modules already there): {}\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `script` (of gateway/ui-tests) in node, in Debian's chromium, with `env` and the
/// screenshots folder and the browser every script takes, and asserts that it ran every
/// check and all passed (the gateway's log is in the failure). Its output.
pub(crate) async fn run_browser_script(
    w: &World,
    script: &str,
    mut env: Vec<(&'static str, String)>,
) -> String {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    env.push(("GF_SCREENSHOTS", shots.display().to_string()));
    env.push(("GF_CHROMIUM", chromium().display().to_string()));
    let script = ui_tests_dir().join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .current_dir(ui_tests_dir())
            .envs(env)
            .output()
            .expect("run node")
    })
    .await
    .expect("the browser test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the browser test failed ({}):\n{text}\n--- the gateway's log ---\n{}",
        out.status,
        w.gw.log_text()
    );
    assert!(text.contains(" passed, 0 failed"), "{text}");
    text
}

/// A job enqueued through the API; its id.
pub(crate) async fn enqueue(w: &World, key: &str, job: serde_json::Value) -> String {
    let a = w.post(key, "/v1/jobs", &job).await;
    assert_eq!(a.status, 201, "{job}: {}", a.text);
    a.body["job_id"].as_str().expect("job_id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser_signs_in_shows_and_retries_live_by_role() {
    chromium();
    tokio::task::spawn_blocking(node_modules)
        .await
        .expect("npm ci");
    let w = world_with(&[("GITFLEET_GATEWAY_UI_LIVE_MS", LIVE_MS)]).await;
    let daemon = GitDaemon::start(&w.fleet.remotes()).expect("a git daemon");
    let viewer = w.key("acme", Role::Viewer).await;
    let operator = w.key("acme", Role::Operator).await;
    let admin = w.key("fleet", Role::Admin).await;
    let globex = w.key("globex", Role::Producer).await;

    // A clone of a repository that is not there yet dies; once it is made, a retry works.
    let dead = enqueue(
        &w,
        &operator,
        json!({"op": "clone", "max_attempts": 1,
               "args": {"repo_url": daemon.url("later.git"), "agent_id": "a1", "task_id": "t1"}}),
    )
    .await;
    let died = w.get(&operator, &format!("/v1/jobs/{dead}?wait=60")).await;
    assert_eq!(died.body["status"], "dead", "{}", died.text);
    fixtures::bare_repo(&w.fleet.remotes(), "later.git", &[("README.md", "later\n")]);
    let delayed = enqueue(
        &w,
        &operator,
        json!({"op": "echo", "args": {"hi": 1}, "delay_secs": 3600}),
    )
    .await;
    let other = enqueue(&w, &globex, json!({"op": "echo", "args": {"theirs": 1}})).await;
    w.get(&globex, &format!("/v1/jobs/{other}?wait=30")).await;
    for _ in 0..3 {
        enqueue(&w, &operator, json!({"op": "echo", "args": {"n": 1}})).await;
    }
    // The rows the list shows are written in the background.
    eventually(
        "the jobs' rows are in the history",
        Duration::from_secs(30),
        async || {
            let a = w.get(&admin, "/v1/jobs?limit=50").await;
            let ids: Vec<&str> = a.body["jobs"]
                .as_array()
                .map(|j| j.iter().filter_map(|r| r["job_id"].as_str()).collect())
                .unwrap_or_default();
            let dead_row = a.body["jobs"]
                .as_array()
                .and_then(|j| j.iter().find(|r| r["job_id"] == dead.as_str()))
                .is_some_and(|r| r["status"] == "dead");
            (dead_row && ids.contains(&delayed.as_str()) && ids.contains(&other.as_str()))
                .then_some(())
                .ok_or(a.text)
        },
    )
    .await;

    let _text = run_browser_script(
        &w,
        "dashboard.mjs",
        vec![
            ("GF_BASE", w.gw.url("/ui")),
            ("GF_VIEWER_KEY", viewer.clone()),
            ("GF_OPERATOR_KEY", operator.clone()),
            ("GF_ADMIN_KEY", admin.clone()),
            ("GF_DEAD_JOB", dead.clone()),
            ("GF_DELAYED_JOB", delayed.clone()),
            ("GF_OTHER_JOB", other.clone()),
            ("GF_LIVE_MS", LIVE_MS.to_string()),
        ],
    )
    .await;

    // What the browser did, as the queue has it.
    let retried = w.get(&operator, &format!("/v1/jobs/{dead}")).await;
    assert_eq!(retried.body["status"], "done", "{}", retried.text);
    let cancelled = w.get(&operator, &format!("/v1/jobs/{delayed}")).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.text);
    // No key in the gateway's log.
    let log = w.gw.log_text();
    assert!(log.contains("dashboard sign-in"), "{log}");
    for key in [&viewer, &operator, &admin] {
        assert!(
            !log.contains(&key[21..]),
            "a key's secret is in the gateway's log"
        );
    }
}

/// An HTTP client that shows redirects rather than following them.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

/// The value of `name` among a response's `Set-Cookie` headers, and the whole header.
fn set_cookie(res: &reqwest::Response, name: &str) -> Option<(String, String)> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_string();
            (value, v.to_string())
        })
}

/// The value of hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').expect("closing quote")].to_string()
}

/// An `application/x-www-form-urlencoded` body.
fn form_body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", gitfleet_gateway::ui::urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Signs in at `base` (a URL) with `key`, as if over TLS when `tls`; the sign-in answer.
async fn sign_in(http: &reqwest::Client, base: &str, key: &str, tls: bool) -> reqwest::Response {
    let mut form = http.get(format!("{base}/signin"));
    if tls {
        form = form.header("x-forwarded-proto", "https");
    }
    let form = form.send().await.expect("the sign-in form");
    assert_eq!(form.status(), 200);
    let (token, _) = set_cookie(&form, "gitfleet_signin").expect("the form's cookie");
    let html = form.text().await.expect("a page");
    let csrf = hidden(&html, "csrf");
    let mut post = http
        .post(format!("{base}/signin"))
        .header("cookie", format!("gitfleet_signin={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", key), ("csrf", &csrf), ("next", "")]));
    if tls {
        post = post.header("x-forwarded-proto", "https");
    }
    post.send().await.expect("sign in")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_a_strict_cookie_that_a_revoked_key_ends_and_the_base_is_the_proxys() {
    let w = world_with(&[("GITFLEET_GATEWAY_UI_BASE", "/fleet/ui/")]).await;
    let http = plain_client();
    let store = w.fleet.store();
    let key = store
        .create_key("acme", Role::Operator, Some("ui"), None)
        .await
        .expect("a key");
    // The proxy passes /fleet/ui on; one that strips /fleet reaches /ui. Links are /fleet/ui.
    for at in ["/fleet/ui", "/ui"] {
        let base = w.gw.url(at);
        let res = http.get(format!("{base}/jobs")).send().await.unwrap();
        assert_eq!(res.status(), 303, "{at}: no session goes to sign-in");
        assert_eq!(
            res.headers()["location"],
            "/fleet/ui/signin?next=%2Ffleet%2Fui%2Fjobs",
            "{at}"
        );
        let signed = sign_in(&http, &base, &key.token, true).await;
        assert_eq!(signed.status(), 303, "{at}");
        assert_eq!(signed.headers()["location"], "/fleet/ui/");
        let (session, header) = set_cookie(&signed, "gitfleet_session").expect("a session cookie");
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/fleet/ui;"] {
            assert!(header.contains(attr), "{at}: {attr} in {header}");
        }
        assert!(!header.contains(&key.token[21..]), "no key in the cookie");
        let page = http
            .get(format!("{base}/jobs"))
            .header("cookie", format!("gitfleet_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{at}");
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(
            page.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("href=\"/fleet/ui/jobs\""),
            "links use the base"
        );
        assert!(!html.contains(&key.token[21..]), "no key in a page");
        // The asset the page names is served, cached for good.
        let css = html
            .split("href=\"")
            .find_map(|s| s.split('"').next().filter(|u| u.ends_with(".css")))
            .expect("a stylesheet")
            .to_string();
        let asset = http
            .get(w.gw.url(&css.replacen("/fleet/ui", at, 1)))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200, "{css}");
        assert_eq!(asset.headers()["content-type"], "text/css; charset=utf-8");
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
    }
    // Without TLS in front, the cookie is not Secure (a browser would not send it back).
    let signed = sign_in(&http, &w.gw.url("/ui"), &key.token, false).await;
    let (session, header) = set_cookie(&signed, "gitfleet_session").expect("a session cookie");
    assert!(!header.contains("Secure"), "{header}");
    // A wrong key is refused, saying so, with no session.
    let wrong = sign_in(&http, &w.gw.url("/ui"), "gfk_0123456789abcdef_nope", false).await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(&wrong, "gitfleet_session").is_none());
    assert!(wrong.text().await.unwrap().contains("not valid"));
    // A sign-in form posted without its token is refused.
    let forged = http
        .post(w.gw.url("/ui/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&[("key", &key.token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(set_cookie(&forged, "gitfleet_session").is_none());

    // Postgres keeps the session's hash, not its token.
    let rows: Vec<(Vec<u8>, String)> =
        sqlx::query_as("SELECT token_sha256, key_id FROM ui_sessions WHERE key_id = $1")
            .bind(&key.key.id)
            .fetch_all(store.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 3, "one session per sign-in");
    assert!(
        rows.iter()
            .any(|(h, _)| h[..] == gitfleet_client::store::session_hash(&session)[..])
    );
    // Revoking the key ends its sessions at once (no cache: every replica reads the row).
    let get = || {
        http.get(w.gw.url("/ui/"))
            .header("cookie", format!("gitfleet_session={session}"))
            .send()
    };
    assert_eq!(get().await.unwrap().status(), 200);
    assert!(store.revoke_key(&key.key.id).await.unwrap());
    let after = get().await.unwrap();
    assert_eq!(after.status(), 303, "a revoked key's session is over");
    assert!(
        after.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/fleet/ui/signin")
    );
}
