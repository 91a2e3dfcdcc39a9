//! The contract fuzzed: schemathesis (pinned, installed from PyPI into a venv under the
//! target directory, kept across runs) reads the live gateway's `/openapi.json`, checks it
//! with a real OpenAPI validator, and sends every operation of it generated requests, valid
//! and not, with an admin key and with a producer key. No answer may be a 5xx, and every
//! answer must be one the document names: its status, content type, headers and body schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_contract::egress::EgressPolicy;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::Fleet;

use crate::support::{GatewayProcess, World};

const SCHEMATHESIS: &str = "4.32.5";
const VALIDATOR: &str = "0.9.0";

/// What every answer is held to (schemathesis's names). Left out: `positive_data_acceptance`
/// (the document cannot say every rule of the job contract, e.g. that a `repo_url` must be a
/// URL git can reach, so schema-valid requests are refused with `400`, as they should be) and
/// the checks that need its stateful phase (which is off: it costs minutes).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      negative_data_rejection,missing_required_header,unsupported_method,\
                      allow_header_conformance,ignored_auth";

/// The venv with schemathesis and openapi-spec-validator, made once per target directory
/// (a marker file says it is complete). Panics, saying why, when it cannot be made: the test
/// must not pass without its fuzzer.
fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("schemathesis-{SCHEMATHESIS}-venv"));
        let marker = dir.join(".installed");
        if marker.exists() {
            return dir;
        }
        let _ = std::fs::remove_dir_all(&dir);
        must(
            Command::new("python3").args(["-m", "venv"]).arg(&dir),
            "python3 -m venv (on Debian, `apt-get install python3-venv`; scripts/test does)",
        );
        must(
            Command::new(dir.join("bin/pip")).args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("schemathesis=={SCHEMATHESIS}"),
                &format!("openapi-spec-validator=={VALIDATOR}"),
            ]),
            "pip install schemathesis and openapi-spec-validator from PyPI (this test needs \
             PyPI reachable, or the venv already made in the target directory)",
        );
        std::fs::write(&marker, b"").expect("write the venv's marker");
        dir
    })
}

/// Runs `cmd`; panics with `what` and its output unless it succeeds.
fn must(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A fleet whose git reaches 127.0.0.1 only, whatever host a fuzzed `clone` names (the
/// fuzzer's URLs never leave the machine; refused ones fail the job at once), and the
/// gateway in front of it with `sleep` jobs kept short.
async fn fuzz_world() -> World {
    let fleet = Fleet::builder("gateway-fuzz")
        .config(WorkerConfig {
            name_stem: "gateway-fuzz".into(),
            concurrency: 8,
            retry_base: Duration::from_millis(100),
            ..Default::default()
        })
        .git_with(|s| {
            s.egress.policy = EgressPolicy::default()
                .allowing("127.0.0.1")
                .and_then(|p| p.only_hosts("127.0.0.1"))
                .expect("a loopback-only policy");
        })
        .store()
        .workers(1)
        .start()
        .await;
    let gw = GatewayProcess::start(&fleet, &[("GITFLEET_JOB_MAX_SLEEP_MS", "200")]);
    World {
        fleet,
        gw,
        http: reqwest::Client::new(),
    }
}

/// One schemathesis run over the operations of `doc` (the served document, saved: read
/// from a file, every operation is fuzzed, `/openapi.json` too) that `filter` selects, as
/// `key`; its output.
fn fuzz(w: &World, doc: &Path, key: &str, filter: &[&str], work: &Path) -> String {
    let out = Command::new(venv().join("bin/schemathesis"))
        .current_dir(work)
        .env("GITFLEET_FUZZ_KEY", key)
        .env("NO_COLOR", "1")
        // sitecustomize.py there: one thread at a time in `ast.parse`, which is not
        // thread-safe before CPython 3.11.8 (the machine has 3.11.7).
        .env(
            "PYTHONPATH",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gateway/python"),
        )
        .arg("--config-file")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/gateway/schemathesis.toml"
        ))
        .arg("run")
        .arg(doc)
        .args(["--url", &w.gw.base])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25"])
        // One worker thread: hypothesis reads lambdas' source with `ast.parse`, which races
        // between threads on CPython 3.11.7 (gh-106905) and fails a run now and then with
        // `FlakyFailure` (seen in CI despite sitecustomize.py's lock, on another path).
        .args(["--workers", "1"])
        .args(["--seed", "20261201"])
        .args(["--suppress-health-check", "all"])
        .args(filter)
        .output()
        .expect("run schemathesis");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{text}\n--- the gateway's log (tail) ---\n{}",
        out.status,
        tail(&w.gw.log_text(), 4000)
    );
    // What it tried and warned of, for `--nocapture`.
    println!("{text}");
    text
}

fn tail(text: &str, n: usize) -> &str {
    let start = text.len().saturating_sub(n);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    &text[start..]
}

/// How many operations a run tested and how many cases it sent, from its summary.
fn summary(text: &str) -> (usize, usize) {
    let tested = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `Tested:` in schemathesis's summary:\n{text}"));
    let cases = text
        .lines()
        .find_map(|l| l.trim().split_once(" generated, ")?.0.parse().ok())
        .unwrap_or_else(|| panic!("no `N generated` in schemathesis's summary:\n{text}"));
    (tested, cases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let venv = tokio::task::spawn_blocking(venv).await.expect("venv");
    let w = fuzz_world().await;
    let work = w.fleet.tmp().join("schemathesis");
    std::fs::create_dir_all(&work).expect("a work directory");

    // The document, as the binary serves it, through a real OpenAPI 3.1 validator.
    let doc = w
        .http
        .get(w.gw.url("/openapi.json"))
        .send()
        .await
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("a body");
    let file = work.join("openapi.json");
    std::fs::write(&file, &doc).expect("write the document");
    let checked = must(
        Command::new(venv.join("bin/openapi-spec-validator")).arg(&file),
        "openapi-spec-validator /openapi.json",
    );
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains(": OK"),
        "{checked:?}"
    );

    let admin = w.key("fuzz", Role::Admin).await;
    let producer = w.key("fuzz", Role::Producer).await;
    // A scheduler replica leads (in this process, on the fleet's Redis and Postgres), so
    // `runTask` answers what a deployment answers (202 or 404) rather than its 503 for a
    // fleet without a scheduler (that one is drain.rs's); cron schedules off.
    let stop_scheduler = tokio_util::sync::CancellationToken::new();
    let mut config = gitfleet_scheduler::SchedulerConfig {
        leader_check: Duration::from_millis(200),
        ..Default::default()
    };
    let off = || gitfleet_scheduler::config::Schedule::parse("off").expect("off");
    config.eviction.schedule = off();
    config.priority.schedule = off();
    config.health_check.schedule = off();
    config.cleanup.schedule = off();
    config.template.schedule = off();
    config.retention.schedule = off();
    let scheduler = tokio::spawn(gitfleet_scheduler::cron::run(
        gitfleet_scheduler::Context {
            store: w.fleet.store().clone(),
            queue: w.fleet.queue().clone(),
            replica: "fuzz-replica".into(),
            config,
        },
        stop_scheduler.clone(),
    ));
    gitfleet_testkit::eventually("a scheduler leader", Duration::from_secs(30), async || {
        let s = w.get(&admin, "/v1/schedule").await;
        (!s.body["leader"].is_null()).then_some(()).ok_or(s.text)
    })
    .await;
    let operations = gitfleet_gateway::openapi::ROUTES.len();
    // An admin key, on everything but revoking keys: the fuzzer would revoke the keys it
    // lists, its own among them, and answer the rest of the run with 401s.
    let admin_run = tokio::task::block_in_place(|| {
        fuzz(
            &w,
            &file,
            &admin,
            &["--exclude-operation-id", "revokeKey"],
            &work,
        )
    });
    let (tested, cases) = summary(&admin_run);
    assert_eq!(tested, operations - 1, "{admin_run}");
    assert!(cases >= 10 * tested, "{admin_run}");
    // A producer key, on everything: what it may not do answers 403, as documented.
    let producer_run = tokio::task::block_in_place(|| fuzz(&w, &file, &producer, &[], &work));
    let (tested, _) = summary(&producer_run);
    assert_eq!(tested, operations, "{producer_run}");
    stop_scheduler.cancel();
    let _ = scheduler.await;
}
