//! The `gitfleet` CLI, run as a user runs it, against the real Redis and in-process
//! workers (a `gitfleet_testkit::Fleet`), each test under a key prefix of its own.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use gitfleet_client::JobStatus;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::postgres::TestDatabase;
use gitfleet_testkit::store::store_on;
use gitfleet_testkit::{Fleet, FleetBuilder, eventually};
use serde_json::{Value, json};

mod bulk;
mod cancel;
mod history;
mod keys;
mod mcp;
mod queues;
mod retry;
mod tokens;

/// A fleet (workers added by the test) and the CLI pointed at it.
struct Env {
    fleet: Fleet,
    /// `GITFLEET_DATABASE_URL` for the CLI: `none` unless the test has a database.
    database_url: String,
}

impl Env {
    async fn new() -> Self {
        Self {
            fleet: Fleet::builder("cli").start().await,
            database_url: "none".into(),
        }
    }

    /// The CLI and the workers keep the record in `db`, which is not migrated yet: the
    /// store connects when a worker first writes.
    async fn with_database(db: &TestDatabase) -> Self {
        Self {
            fleet: Fleet::builder("cli")
                .store_on(store_on(&db.url))
                .start()
                .await,
            database_url: db.url.clone(),
        }
    }

    /// The CLI on a fleet `builder` makes (a queue configured its own way, git), with
    /// `GITFLEET_DATABASE_URL` set to `database_url` (`none` without one).
    async fn on(builder: FleetBuilder, database_url: Option<&str>) -> Self {
        Self {
            fleet: builder.start().await,
            database_url: database_url.unwrap_or("none").into(),
        }
    }

    /// Runs `gitfleet args...` (with `stdin`), returning its exit code and stdout lines.
    async fn run(&self, args: &[&str], stdin: Option<&str>) -> (i32, Vec<String>) {
        self.run_env(args, stdin, &[]).await
    }

    /// [`Env::run`] with more variables set.
    async fn run_env(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        vars: &[(&str, &str)],
    ) -> (i32, Vec<String>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
        // The identity is the test's to give: none unless `vars` has one.
        cmd.args(args)
            .env_remove("GITFLEET_ORG")
            .envs(vars.iter().copied())
            .env(
                "GITFLEET_REDIS_URL",
                &self.fleet.test_queue().config().redis_url,
            )
            .env("GITFLEET_KEY_PREFIX", self.fleet.prefix())
            .env("GITFLEET_DATABASE_URL", &self.database_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_string);
        let out = tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().unwrap();
            let mut pipe = child.stdin.take().unwrap();
            if let Some(text) = stdin {
                pipe.write_all(text.as_bytes()).unwrap();
            }
            drop(pipe);
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        (
            out.status.code().unwrap_or(-1),
            stdout.lines().map(str::to_string).collect(),
        )
    }

    async fn run_json(&self, args: &[&str]) -> (i32, Value) {
        self.run_json_env(args, &[]).await
    }

    async fn run_json_env(&self, args: &[&str], vars: &[(&str, &str)]) -> (i32, Value) {
        let (code, lines) = self.run_env(args, None, vars).await;
        assert_eq!(lines.len(), 1, "one JSON object: {lines:?}");
        (code, serde_json::from_str(&lines[0]).unwrap())
    }
}

fn assert_micros_time(v: &Value, field: &str) {
    let s = v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is a string: {v}"));
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{field}={s}: {e}"));
    let frac = s.split('.').nth(1).expect("fractional seconds");
    assert_eq!(
        frac.trim_end_matches('Z').len(),
        6,
        "{field}={s} has microseconds"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_with_wait_prints_the_finished_job_and_exits_0() {
    let mut env = Env::new().await;
    env.fleet.add_worker().await;
    let (code, v) = env
        .run_json(&[
            "submit",
            "echo",
            r#"{"msg":"hi"}"#,
            "--wait",
            "--timeout",
            "10",
        ])
        .await;
    assert_eq!(code, 0, "{v}");
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "attempts",
            "enqueued_at",
            "finished_at",
            "job_id",
            "op",
            "result",
            "started_at",
            "status"
        ]
    );
    assert_eq!(v["status"], "done");
    assert_eq!(v["op"], "echo");
    assert_eq!(v["attempts"], 1);
    assert_eq!(v["result"], json!({"msg": "hi"}));
    for field in ["enqueued_at", "started_at", "finished_at"] {
        assert_micros_time(&v, field);
    }
    // The same object comes back later from `gitfleet job`.
    let id = v["job_id"].as_str().unwrap();
    let (code, again) = env.run_json(&["job", id]).await;
    assert_eq!((code, &again), (0, &v));
    env.fleet.shutdown().await;
}

#[tokio::test]
async fn a_dead_job_exits_1_with_its_error() {
    let env = Env::new().await;
    let (code, v) = env
        .run_json(&[
            "submit",
            "echo",
            "{}",
            "--queue",
            "worker:gone-01ABC",
            "--wait",
        ])
        .await;
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["status"], "dead");
    assert_eq!(v["error"]["kind"], "sandbox_not_found");
    assert!(v.get("result").is_none(), "error in place of result: {v}");
}

#[tokio::test]
async fn bad_usage_and_invalid_input_exit_2_with_an_invalid_input_error() {
    let env = Env::new().await;
    for (args, expected) in [
        (
            vec!["submit", "frobnicate", "{}"],
            "unknown op \"frobnicate\"",
        ),
        (vec!["submit", "sleep", r#"{"ms":-1}"#], "ms:"),
        (vec!["submit", "echo", "{oops"], "args: not valid JSON"),
        (
            vec!["submit", "echo", "{}", "--queue", "Bad Queue"],
            "queue",
        ),
        (vec!["submit", "echo", "{}", "--delay", "-3"], "--delay"),
        (vec!["submit", "echo", "--frobnicate"], "--frobnicate"),
        (vec!["job", "../../etc/passwd"], "not a job id"),
        (vec!["job", "01NOSUCHJOBNOSUCHJOBNOSUCH"], "no job"),
    ] {
        let (code, v) = env.run_json(&args).await;
        assert_eq!(code, 2, "{args:?}: {v}");
        assert_eq!(v["error"]["kind"], "invalid_input", "{args:?}: {v}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(expected),
            "{args:?}: {message:?} should mention {expected:?}"
        );
    }
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(v, json!([]), "nothing was enqueued");
}

#[tokio::test]
async fn a_job_over_the_configured_limits_is_refused_at_submit_and_nothing_is_enqueued() {
    let env = Env::new().await;
    let refused = |(code, v): (i32, Value), expected: &str| {
        assert_eq!(code, 2, "{v}");
        assert_eq!(v["error"]["kind"], "invalid_input", "{v}");
        assert_eq!(v["error"]["message"], expected, "{v}");
    };
    // The default cap on a run time is an hour.
    refused(
        env.run_json(&["submit", "echo", "{}", "--timeout-ms", "3600001"])
            .await,
        "timeout_ms: 3600001 ms is over the limit of 3600000 ms (GITFLEET_JOB_MAX_TIMEOUT_MS)",
    );
    // The CLI reads the limits the workers read.
    let vars = [
        ("GITFLEET_JOB_MAX_TIMEOUT_MS", "1000"),
        ("GITFLEET_JOB_MAX_SLEEP_MS", "500"),
    ];
    refused(
        env.run_json_env(&["submit", "echo", "{}", "--timeout-ms", "1001"], &vars)
            .await,
        "timeout_ms: 1001 ms is over the limit of 1000 ms (GITFLEET_JOB_MAX_TIMEOUT_MS)",
    );
    refused(
        env.run_json_env(&["submit", "sleep", r#"{"ms": 501}"#], &vars)
            .await,
        "ms: 501 is over the limit of 500 (GITFLEET_JOB_MAX_SLEEP_MS)",
    );
    let (code, lines) = env
        .run_env(
            &["submit", "--bulk", "--timeout-ms", "1001"],
            Some("{\"op\":\"echo\",\"args\":{}}\n"),
            &vars,
        )
        .await;
    assert_eq!(code, 2, "{lines:?}");
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(v, json!([]), "nothing was enqueued");

    let (code, v) = env
        .run_json_env(&["submit", "echo", "{}", "--timeout-ms", "1000"], &vars)
        .await;
    assert_eq!((code, v["status"].as_str()), (0, Some("waiting")), "{v}");
}

#[tokio::test]
async fn wait_that_times_out_exits_3_with_the_job_still_waiting() {
    let env = Env::new().await;
    let (code, v) = env
        .run_json(&["submit", "echo", "{}", "--wait", "--timeout", "0.3"])
        .await;
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["status"], "waiting");
    assert_eq!(v["started_at"], Value::Null);
}

/// `job --wait` that times out exits 3 and prints the job as it then is: one still waiting
/// (no worker serves its queue), one running (its worker is still on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_wait_that_times_out_exits_3_with_the_job_as_it_is() {
    let mut env = Env::on(
        Fleet::builder("cli").config(WorkerConfig {
            name_stem: "cli".into(),
            // The job still running at the end is given back at once.
            grace_period: Duration::from_millis(100),
            ..Default::default()
        }),
        None,
    )
    .await;
    let (_, v) = env
        .run_json(&["submit", "echo", "{}", "--queue", "nobody"])
        .await;
    let id = v["job_id"].as_str().unwrap();
    let (code, v) = env
        .run_json(&["job", id, "--wait", "--timeout", "0.3"])
        .await;
    assert_eq!(code, 3, "{v}");
    assert_eq!(
        (v["job_id"].as_str(), v["status"].as_str()),
        (Some(id), Some("waiting"))
    );
    assert_eq!(v["started_at"], Value::Null, "{v}");

    env.fleet.add_worker().await;
    let (_, v) = env.run_json(&["submit", "sleep", r#"{"ms": 60000}"#]).await;
    let id = v["job_id"].as_str().unwrap().to_string();
    let queue = env.fleet.queue().clone();
    eventually("the job to run", Duration::from_secs(20), async || {
        let r = queue.job(&id).await.map_err(|e| e.to_string())?.unwrap();
        if r.status == JobStatus::Running {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    })
    .await;
    let (code, v) = env
        .run_json(&["job", &id, "--wait", "--timeout", "0.3"])
        .await;
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["status"], "running", "{v}");
    assert_micros_time(&v, "started_at");
    assert_eq!(v["finished_at"], Value::Null, "{v}");
    env.fleet.shutdown().await;
}

#[tokio::test]
async fn delayed_and_idempotent_submits() {
    let env = Env::new().await;
    let (code, v) = env
        .run_json(&["submit", "echo", "{}", "--delay", "60"])
        .await;
    assert_eq!((code, v["status"].as_str()), (0, Some("delayed")));
    let (_, first) = env
        .run_json(&["submit", "echo", "{}", "--idempotency-key", "task-9"])
        .await;
    let (_, second) = env
        .run_json(&["submit", "echo", "{}", "--idempotency-key", "task-9"])
        .await;
    assert_eq!(first["job_id"], second["job_id"]);
    let (_, v) = env.run_json(&["queues"]).await;
    assert_eq!(
        v,
        json!([{"queue": "jobs", "waiting": 1, "running": 0, "delayed": 1, "done": 0, "dead": 0,
                "cancelled": 0}])
    );
}

#[tokio::test]
async fn an_unreachable_queue_exits_4_without_showing_the_password() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet"));
    let out = cmd
        .args(["submit", "echo", "{}"])
        .env("GITFLEET_REDIS_URL", "redis://:hunter2@127.0.0.1:1")
        .env("GITFLEET_DATABASE_URL", "none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "network");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout} {stderr}"
    );
}

#[tokio::test]
async fn demo_with_a_configured_redis_that_does_not_answer_fails_without_a_private_one() {
    // GITFLEET_REDIS_URL named, and nothing at it: the user's Redis is down, and a private
    // server would hide that. (With it unset, the demo would start one; see
    // `private_redis`'s tests and `demo::UrlSource`.)
    let out = Command::new(env!("CARGO_BIN_EXE_gitfleet"))
        .arg("demo")
        .env("GITFLEET_REDIS_URL", "redis://:hunter2@127.0.0.1:1")
        .env("GITFLEET_DATABASE_URL", "none")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stdout} {stderr}");
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["error"]["kind"], "network");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is Redis running?"),
        "{v}"
    );
    assert!(!stderr.contains("private redis-server"), "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stderr.contains("hunter2"),
        "{stdout} {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_goes_through_admin_never_for_an_organization() {
    let mut env = Env {
        fleet: Fleet::builder("cli").git().start().await,
        database_url: "none".into(),
    };
    let worker = env.fleet.add_worker().await;
    let args = json!({"task": "health_check", "worker_id": worker}).to_string();

    // `submit` is for producers: refused, pointing at `admin`; nothing is enqueued.
    let (code, v) = env.run_json(&["submit", "maintain", &args]).await;
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gitfleet admin maintain"),
        "{v}"
    );
    // `admin` acts for the fleet: an organization, by flag or by variable, is refused.
    let (code, v) = env
        .run_json(&["--org", "acme", "admin", "maintain", &args])
        .await;
    assert_eq!(code, 2, "{v}");
    let (code, v) = env
        .run_json_env(&["admin", "maintain", &args], &[("GITFLEET_ORG", "acme")])
        .await;
    assert_eq!(code, 2, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GITFLEET_ORG"),
        "{v}"
    );
    let (_, queues) = env.run_json(&["queues"]).await;
    assert_eq!(queues, json!([]), "nothing was enqueued");

    // An operator's maintain runs on the worker it names.
    let (code, v) = env
        .run_json(&["admin", "maintain", &args, "--wait", "--timeout", "30"])
        .await;
    assert_eq!((code, v["status"].as_str()), (0, Some("done")), "{v}");
    assert!(v["result"].is_object(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_the_organizations_own_and_names_one_job() {
    let env = Env::new().await;
    let submit = |org: &'static str, args: &'static str| {
        let env = &env;
        async move {
            env.run_json(&[
                "--org",
                org,
                "submit",
                "echo",
                args,
                "--idempotency-key",
                "k-1",
            ])
            .await
        }
    };
    let (code, first) = submit("acme", r#"{"a":1}"#).await;
    assert_eq!(code, 0, "{first}");
    let (_, again) = submit("acme", r#"{"a":1}"#).await;
    assert_eq!(again["job_id"], first["job_id"]);
    let (_, other) = submit("other", r#"{"a":1}"#).await;
    assert_ne!(
        other["job_id"], first["job_id"],
        "another organization's key is its own"
    );
    let (code, conflict) = submit("acme", r#"{"a":2}"#).await;
    assert_eq!(code, 2, "{conflict}");
    assert_eq!(conflict["error"]["kind"], "conflict", "{conflict}");
    assert!(
        conflict["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"k-1\""),
        "{conflict}"
    );
}
