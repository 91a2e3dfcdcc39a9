//! What the gateway tests share: a fleet (in-process workers with git sandboxes, on the real
//! Redis and a Postgres database of its own), the `gitfleet-gateway` binary started as a
//! process on a free loopback port in front of it, and a real HTTP client.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gitfleet_contract::Role;
use gitfleet_core::runtime::WorkerConfig;
use gitfleet_testkit::Fleet;
use serde_json::Value;

/// The `gitfleet-gateway` process; killed (the process itself) on drop.
pub struct GatewayProcess {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl GatewayProcess {
    /// Starts the gateway in front of `fleet` with `env` on top of the defaults, and
    /// returns once it listens.
    pub fn start(fleet: &Fleet, env: &[(&str, &str)]) -> Self {
        let n = std::sync::atomic::AtomicUsize::new(0);
        let log = fleet.tmp().join(format!(
            "gateway-{}.log",
            n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + std::process::id() as usize
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gitfleet-gateway"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GITFLEET_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GITFLEET_REDIS_URL", &fleet.test_queue().config().redis_url)
            .env("GITFLEET_KEY_PREFIX", fleet.prefix())
            .env("GITFLEET_GATEWAY_ADDR", "127.0.0.1:0")
            .env("GITFLEET_GATEWAY_KEY_CACHE_SECS", "0.2")
            .env("GITFLEET_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create the gateway log"));
        // The fleet's own database, unless the test names another (a private server).
        if !env.iter().any(|(k, _)| *k == "GITFLEET_DATABASE_URL") {
            cmd.env("GITFLEET_DATABASE_URL", fleet.database_url());
        }
        let mut child = cmd.spawn().expect("spawn gitfleet-gateway");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        let _ = lines.read_line(&mut first);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let mut gw = GatewayProcess {
            child,
            base: String::new(),
            log,
        };
        let parsed: Value = serde_json::from_str(first.trim()).unwrap_or_else(|e| {
            panic!(
                "the gateway's first line {first:?} is not JSON ({e})\n{}",
                gw.log_text()
            )
        });
        let addr = parsed["addr"].as_str().expect("addr").to_string();
        gw.base = format!("http://{addr}");
        gw
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fleet (one worker with git, a store), the gateway in front of it, and a client.
pub struct World {
    pub fleet: Fleet,
    pub gw: GatewayProcess,
    pub http: reqwest::Client,
}

/// A world whose gateway is started with `env` on top of the defaults.
pub async fn world_with(env: &[(&str, &str)]) -> World {
    let fleet = Fleet::builder("gateway")
        .config(WorkerConfig {
            name_stem: "gateway".into(),
            concurrency: 8,
            retry_base: Duration::from_millis(100),
            ..Default::default()
        })
        .git()
        .store()
        .workers(1)
        .start()
        .await;
    let gw = GatewayProcess::start(&fleet, env);
    World {
        fleet,
        gw,
        http: reqwest::Client::new(),
    }
}

pub async fn world() -> World {
    world_with(&[]).await
}

/// What a request answered: status, headers, body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is a problem document of `status` and `kind`; returns it.
    #[track_caller]
    pub fn problem(&self, status: u16, kind: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.body["kind"], kind, "{}", self.text);
        assert_eq!(self.body["status"], status, "{}", self.text);
        assert!(
            self.body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            self.text
        );
        &self.body
    }
}

impl World {
    /// A new key of `org` with `role`; the token.
    pub async fn key(&self, org: &str, role: Role) -> String {
        self.fleet
            .store()
            .create_key(org, role, Some("test"), None)
            .await
            .expect("create a key")
            .token
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let res = req.send().await.expect("the gateway answers");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, key: &str, path: &str) -> Answer {
        self.send(self.http.get(self.gw.url(path)).bearer_auth(key))
            .await
    }

    pub async fn post(&self, key: &str, path: &str, body: &Value) -> Answer {
        self.send(
            self.http
                .post(self.gw.url(path))
                .bearer_auth(key)
                .json(body),
        )
        .await
    }

    pub async fn delete(&self, key: &str, path: &str) -> Answer {
        self.send(self.http.delete(self.gw.url(path)).bearer_auth(key))
            .await
    }

    /// Enqueues `job` and waits for it to be done; its `result`. Panics otherwise.
    pub async fn run_ok(&self, key: &str, job: Value) -> Value {
        let created = self.post(key, "/v1/jobs", &job).await;
        assert_eq!(created.status, 201, "{job}: {}", created.text);
        let id = created.body["job_id"].as_str().expect("job_id").to_string();
        let done = self.get(key, &format!("/v1/jobs/{id}?wait=60")).await;
        assert_eq!(done.status, 200, "{}", done.text);
        assert_eq!(done.body["status"], "done", "{job}: {}", done.text);
        done.body["result"].clone()
    }
}
