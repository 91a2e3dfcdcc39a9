//! [`RecordingServer`]: an HTTP/1.1 server on 127.0.0.1 (or another loopback address) that
//! gives every request the same answer (`401` with a Basic challenge, a `302` redirect to
//! another server, or an error status with a `text/plain` body, which git prints as
//! `remote:` lines) and records each request whole: method, path and query, every header.
//! Tests point git at it to prove what reached a server (a token over plain http, on another
//! port, past a redirect; an internal address) and what did not: a server that must never be
//! reached shows an empty record.
//!
//! Like [`HttpGitServer`](crate::HttpGitServer), it runs on a thread and tokio runtime of
//! its own, so it works from any caller, and stops on `Drop`.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

use crate::server_thread::{Ready, ServerThread};

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path and query, e.g. `/org/repo.git/info/refs?service=git-upload-pack`.
    pub target: String,
    /// Every header as received (names lowercase), in order.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The values of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How the server answers every request.
#[derive(Debug, Clone)]
enum Answer {
    Unauthorized,
    /// `302 Found` to this base URL followed by the request's own path and query.
    RedirectTo(String),
    /// This status with this `text/plain` body.
    Error(StatusCode, String),
}

struct State {
    answer: Answer,
    requests: Mutex<Vec<SeenRequest>>,
}

/// A running recording server; stopped on drop.
pub struct RecordingServer {
    addr: SocketAddr,
    state: Arc<State>,
    _thread: ServerThread,
}

impl std::fmt::Debug for RecordingServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingServer")
            .field("addr", &self.addr)
            .field("answer", &self.state.answer)
            .finish_non_exhaustive()
    }
}

impl RecordingServer {
    /// Answers every request `401 Unauthorized` with `WWW-Authenticate: Basic`, the answer
    /// that makes git send whatever credentials it has.
    pub fn unauthorized() -> anyhow::Result<Self> {
        Self::start(Answer::Unauthorized)
    }

    /// [`RecordingServer::unauthorized`] on another address (`::1`, `127.0.0.2`: loopback
    /// addresses a test's egress allowance does not cover).
    pub fn unauthorized_at(ip: IpAddr) -> anyhow::Result<Self> {
        Self::start_at(ip, Answer::Unauthorized)
    }

    /// Answers every request with `status` and `body` as `text/plain`: what a git server
    /// (or any internal service) says when it fails. git shows such a body as `remote:`
    /// lines.
    pub fn failing_with(status: u16, body: &str) -> anyhow::Result<Self> {
        let status = StatusCode::from_u16(status).context("an HTTP status")?;
        Self::start(Answer::Error(status, body.to_string()))
    }

    /// Answers every request `302 Found` with `Location: <base><path and query>`, e.g.
    /// `base` = another server's `url("")`.
    pub fn redirecting_to(base: &str) -> anyhow::Result<Self> {
        Self::start(Answer::RedirectTo(base.trim_end_matches('/').to_string()))
    }

    fn start(answer: Answer) -> anyhow::Result<Self> {
        Self::start_at(IpAddr::V4(Ipv4Addr::LOCALHOST), answer)
    }

    fn start_at(ip: IpAddr, answer: Answer) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind((ip, 0))
            .with_context(|| format!("binding the recording server on {ip}"))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the recording server's runtime")?;
        let state = Arc::new(State {
            answer,
            requests: Mutex::new(Vec::new()),
        });
        let thread = {
            let state = state.clone();
            ServerThread::start(
                "recording server",
                "gitfleet-testkit-recording",
                runtime,
                move |shutdown, ready| serve(listener, state, shutdown, ready),
            )?
        };
        Ok(Self {
            addr,
            state,
            _thread: thread,
        })
    }

    /// `http://127.0.0.1:<port>/<path>` (`http://[::1]:<port>/<path>` on `::1`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<SeenRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every `Authorization` (and `Proxy-Authorization`) header value received so far.
    pub fn authorization_headers(&self) -> Vec<String> {
        self.requests()
            .iter()
            .flat_map(|r| {
                let mut values = r.header("authorization");
                values.extend(r.header("proxy-authorization"));
                values.into_iter().map(str::to_string).collect::<Vec<_>>()
            })
            .collect()
    }
}

async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
    ready: Ready,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => {
            let _ = ready.send(Ok(()));
            listener
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (state, shutdown) = (state.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(req, &state).await) }
                    });
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = conn => {}
                        _ = shutdown.cancelled() => {}
                    }
                });
            }
        }
    }
}

async fn handle(req: Request<Incoming>, state: &State) -> Response<Full<Bytes>> {
    let target = req.uri().path_and_query().map_or_else(
        || req.uri().path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let method = req.method().to_string();
    // Read the body, so the client is not cut off mid-request.
    let _ = req.into_body().collect().await;
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(SeenRequest {
            method,
            target: target.clone(),
            headers,
        });
    let mut response = Response::new(Full::new(Bytes::new()));
    match &state.answer {
        Answer::Unauthorized => {
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"gitfleet-test\""),
            );
        }
        Answer::RedirectTo(base) => {
            *response.status_mut() = StatusCode::FOUND;
            if let Ok(location) = HeaderValue::from_str(&format!("{base}{target}")) {
                response.headers_mut().insert(header::LOCATION, location);
            }
        }
        Answer::Error(status, body) => {
            *response.body_mut() = Full::new(Bytes::from(body.clone()));
            *response.status_mut() = *status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
    }
    response
}
