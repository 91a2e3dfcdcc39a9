//! A connection that drops after Redis has carried out a command but before its reply
//! arrives (a network blip, a failover, a response timeout). Redis changed the job; the
//! worker never heard. The job must still run, as it would for a worker that died.
//!
//! A proxy between the worker and Redis cuts one connection at the chosen moment, once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gitfleet_client::{EnqueueOptions, JobRecord, JobSpec, JobStatus};
use gitfleet_testkit::eventually;
use gitfleet_testkit::eventually::POLL;
use redis::AsyncCommands;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::processes::{ProcessFleet, WorkerProcess, redis_addr};

/// The bound the design gives for getting a dead worker's jobs back; a live worker that
/// missed a reply should do no worse.
const RECOVERY: Duration = Duration::from_secs(60);

/// When the proxy cuts a connection.
#[derive(Clone)]
enum Cut {
    /// Instead of relaying the first reply that mentions this job id.
    ReplyNaming(String),
    /// After relaying the first request that mentions both strings, once Redis shows the
    /// job `running`, before relaying any reply.
    AfterRequestNaming {
        job_id: String,
        also: String,
        job_key: String,
    },
}

/// A TCP proxy to the shared Redis that cuts one connection once, as [`Cut`] says, after
/// it is armed.
struct Proxy {
    port: u16,
    cut: Arc<Mutex<Option<Cut>>>,
    fired: Arc<AtomicBool>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let cut = Arc::new(Mutex::new(None));
        let fired = Arc::new(AtomicBool::new(false));
        let (shared_cut, shared_fired) = (cut.clone(), fired.clone());
        let upstream = redis_addr();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(upstream.as_str())
                    .await
                    .expect("connect to Redis");
                tokio::spawn(relay(
                    client,
                    server,
                    shared_cut.clone(),
                    shared_fired.clone(),
                ));
            }
        });
        Self { port, cut, fired }
    }

    fn arm(&self, cut: Cut) {
        *self.cut.lock().expect("not poisoned") = Some(cut);
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

fn mentions(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Relays one connection both ways; returning drops (closes) both sides.
async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    cut: Arc<Mutex<Option<Cut>>>,
    fired: Arc<AtomicBool>,
) {
    let mut from_client = vec![0u8; 1 << 16];
    let mut from_server = vec![0u8; 1 << 16];
    loop {
        tokio::select! {
            n = client.read(&mut from_client) => {
                let Ok(n @ 1..) = n else { return };
                let chunk = &from_client[..n];
                if server.write_all(chunk).await.is_err() {
                    return;
                }
                let armed = cut.lock().expect("not poisoned").clone();
                if let Some(Cut::AfterRequestNaming { job_id, also, job_key }) = &armed
                    && mentions(chunk, job_id)
                    && mentions(chunk, also)
                    && !fired.swap(true, Ordering::SeqCst)
                {
                    // Hold every reply back until Redis has done the work, then cut.
                    wait_until_running(job_key).await;
                    return;
                }
            }
            n = server.read(&mut from_server) => {
                let Ok(n @ 1..) = n else { return };
                let chunk = &from_server[..n];
                let armed = cut.lock().expect("not poisoned").clone();
                if let Some(Cut::ReplyNaming(job_id)) = &armed
                    && mentions(chunk, job_id)
                    && !fired.swap(true, Ordering::SeqCst)
                {
                    return;
                }
                if client.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn wait_until_running(job_key: &str) {
    // A plain loop, not `eventually`: this runs in a spawned task, which must be `Send`.
    let client = redis::Client::open(gitfleet_testkit::redis_url()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let status: Option<String> = conn.hget(job_key, "status").await.expect("HGET");
        if status.as_deref() == Some("running") {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{job_key} never ran");
}

/// A worker behind `proxy`, idle (blocked waiting for a job), and a job enqueued for it
/// that becomes due shortly, so that its id is known before the worker can see it and it
/// reaches the worker through the blocking take.
async fn idle_worker_and_a_job_due_soon<'q>(
    q: &'q ProcessFleet,
    proxy: &Proxy,
) -> (WorkerProcess<'q>, String) {
    let w = q
        .spawn_worker(&[("GITFLEET_REDIS_URL", &proxy.url())])
        .await;
    q.wait_until_registered(&w.id).await;
    let options = EnqueueOptions {
        delay: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let job = JobSpec::new("echo", json!({"lost": "reply"}));
    let id = q
        .client
        .submit("jobs", &job, &options)
        .await
        .expect("submit")
        .job_id;
    (w, id)
}

/// Waits for job `id` to finish; on failure says where the job is.
async fn wait_until_finished(q: &ProcessFleet, w: &WorkerProcess<'_>, id: &str) -> JobRecord {
    let keys = q.client.queue().keys();
    let lists = [keys.ready("jobs"), keys.held(&w.id)];
    eventually("the job finished", RECOVERY, async || {
        let r = q.job(id).await?;
        if r.status.is_final() {
            return Ok(r);
        }
        let found = q.lists_holding(id, &lists).await?;
        Err(format!("{r:?}; in lists {found:?} of {lists:?}"))
    })
    .await
}

/// The blocking take's reply is cut: Redis moved the job into the worker's held list, the
/// worker never learnt its id.
#[tokio::test]
async fn a_job_still_runs_when_the_reply_handing_it_to_the_worker_is_lost() {
    let q = ProcessFleet::new().await;
    let proxy = Proxy::start().await;
    let (w, id) = idle_worker_and_a_job_due_soon(&q, &proxy).await;
    proxy.arm(Cut::ReplyNaming(id.clone()));

    let r = wait_until_finished(&q, &w, &id).await;
    assert!(
        proxy.fired(),
        "the proxy never cut a reply: the test proved nothing"
    );
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(w.id.as_str()), "{r:?}");
    // The lost handover never started the job: it went back to its queue unstarted (not a
    // given-back run) and ran once.
    assert_eq!((r.attempts, r.given_back), (1, 0), "{r:?}");
}

/// The reply of the call that starts a job the blocking take handed over is cut: Redis
/// marked the job running; the worker, which still knows the id, asks to start it again.
#[tokio::test]
async fn a_job_still_runs_when_the_reply_to_starting_it_is_lost() {
    let q = ProcessFleet::new().await;
    let proxy = Proxy::start().await;
    let (w, id) = idle_worker_and_a_job_due_soon(&q, &proxy).await;
    // The request that starts a job names its queue's ready list; the one that finishes it
    // does not.
    proxy.arm(Cut::AfterRequestNaming {
        job_id: id.clone(),
        also: q.client.queue().keys().ready("jobs"),
        job_key: q.client.queue().keys().job(&id),
    });

    let r = wait_until_finished(&q, &w, &id).await;
    assert!(
        proxy.fired(),
        "the proxy never cut a request: the test proved nothing"
    );
    assert_eq!(r.status, JobStatus::Done, "{r:?}");
    assert_eq!(r.worker.as_deref(), Some(w.id.as_str()), "{r:?}");
    // Asked again, Redis handed over the run it had started, as the same attempt: one
    // run, none given back.
    assert_eq!((r.attempts, r.given_back), (1, 0), "{r:?}");
}
