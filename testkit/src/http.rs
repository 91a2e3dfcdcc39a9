//! [`HttpGitServer`]: smart HTTP git (clone, fetch, push) on 127.0.0.1, behind basic auth.
//!
//! A small HTTP/1.1 server (hyper) on its own thread and tokio runtime, so it works from any
//! caller, `#[tokio::test]` current-thread runtimes included. Every request must carry
//! `Authorization: Basic <base64(username:password)>`; any other request gets
//! `401 Unauthorized` with `WWW-Authenticate: Basic realm="gitfleet-test"` and counts as an
//! auth failure. Authorized requests are handed to `git http-backend` as CGI: the request
//! body is streamed to its stdin, its CGI headers (`Status:` and the rest, up to a blank
//! line) become the response head and the rest of its stdout is streamed back.
//!
//! The URL path is handed to the backend as `PATH_INFO` as it arrived (not percent-decoded):
//! keep repository names to plain characters.
//!
//! Every request is recorded (method, path, query, the raw `Authorization` header, status),
//! so a test can check how credentials reached the server.
//!
//! Each `git http-backend` leads its own process group; `Drop` stops accepting, lets
//! requests in flight finish for up to [`SHUTDOWN_GRACE`], then kills whatever is left.

use std::convert::Infallible;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::TryStreamExt as _;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{ChildStdin, Command};
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::process::GroupKillGuard;
use crate::server_thread::{Ready, ServerThread};

/// How long `Drop` lets requests in flight finish before killing them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// The realm in the `WWW-Authenticate` challenge.
pub const REALM: &str = "gitfleet-test";
/// The most CGI header bytes accepted from `git http-backend`.
const MAX_CGI_HEADER: usize = 64 * 1024;

type Body = BoxBody<Bytes, std::io::Error>;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The URL path, e.g. `/demo.git/info/refs`.
    pub path: String,
    /// The query string, e.g. `service=git-upload-pack`.
    pub query: Option<String>,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The status code the server answered with.
    pub status: u16,
}

/// `Basic <base64(username:password)>`, the value of an `Authorization` header.
pub fn basic_auth(username: &str, password: &str) -> String {
    format!(
        "Basic {}",
        STANDARD.encode(format!("{username}:{password}"))
    )
}

struct State {
    root: PathBuf,
    username: String,
    /// `username:password`
    credentials: Vec<u8>,
    backend: PathBuf,
    requests: Mutex<Vec<RecordedRequest>>,
    auth_failures: AtomicUsize,
    tracker: TaskTracker,
}

impl State {
    fn authorized(&self, header: Option<&str>) -> bool {
        let Some((scheme, value)) = header.and_then(|h| h.trim().split_once(' ')) else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && STANDARD
                .decode(value.trim())
                .is_ok_and(|decoded| decoded == self.credentials)
    }

    fn record(&self, request: RecordedRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(request);
    }
}

/// A running HTTP git server; stopped (with every process it started) on drop.
pub struct HttpGitServer {
    addr: SocketAddr,
    state: Arc<State>,
    _thread: ServerThread,
}

impl std::fmt::Debug for HttpGitServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGitServer")
            .field("addr", &self.addr)
            .field("root", &self.state.root)
            .finish_non_exhaustive()
    }
}

impl HttpGitServer {
    /// Serves every repository under `root` on `http://127.0.0.1:<port>/`, to clients that
    /// authenticate as `username`/`password`. Returns once the server is listening.
    pub fn start(root: &Path, username: &str, password: &str) -> anyhow::Result<HttpGitServer> {
        let root = root
            .canonicalize()
            .with_context(|| format!("http git server root {}", root.display()))?;
        let backend = http_backend_path()?;
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).context("binding the http git server")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gitfleet-testkit-http")
            .enable_all()
            .build()
            .context("building the http git server's runtime")?;
        let state = Arc::new(State {
            root,
            username: username.to_string(),
            credentials: format!("{username}:{password}").into_bytes(),
            backend,
            requests: Mutex::new(Vec::new()),
            auth_failures: AtomicUsize::new(0),
            tracker: TaskTracker::new(),
        });
        // The runtime goes with the thread: dropping it drops every task still running,
        // and their guards kill the process groups of backends that did not finish.
        let thread = {
            let state = state.clone();
            ServerThread::start(
                "http git server",
                "gitfleet-testkit-http",
                runtime,
                move |shutdown, ready| serve(listener, state, shutdown, ready),
            )?
        };
        Ok(HttpGitServer {
            addr,
            state,
            _thread: thread,
        })
    }

    /// `http://127.0.0.1:<port>/<repo>` (no credentials in it).
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The (canonical) directory served.
    pub fn root(&self) -> &Path {
        &self.state.root
    }

    /// Every request received so far, oldest first (including the refused ones).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many requests were refused with 401.
    pub fn auth_failures(&self) -> usize {
        self.state.auth_failures.load(Ordering::SeqCst)
    }
}

/// `$(git --exec-path)/git-http-backend`: run directly, not through the `git` wrapper,
/// which would be one more process to clean up.
fn http_backend_path() -> anyhow::Result<PathBuf> {
    let out = std::process::Command::new("git")
        .arg("--exec-path")
        .env_clear()
        .envs(crate::fixtures::base_env())
        .output()
        .context("running git --exec-path")?;
    if !out.status.success() {
        bail!(
            "git --exec-path failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let backend = Path::new(&dir).join("git-http-backend");
    if !backend.is_file() {
        bail!("{} not found", backend.display());
    }
    Ok(backend)
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
    let tracker = state.tracker.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    tracker.spawn(serve_connection(stream, peer, state.clone(), shutdown.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
        }
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait()).await;
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(req, peer, &state).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

fn full(status: StatusCode, text: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, state: &State) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let response = if state.authorized(authorization.as_deref()) {
        match run_cgi(req, peer, state).await {
            Ok(response) => response,
            Err(err) => full(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("gitfleet-testkit: {err:#}\n"),
            ),
        }
    } else {
        state.auth_failures.fetch_add(1, Ordering::SeqCst);
        let mut response = full(StatusCode::UNAUTHORIZED, "authentication required\n");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!("Basic realm=\"{REALM}\""))
                .unwrap_or(HeaderValue::from_static("Basic")),
        );
        response
    };
    state.record(RecordedRequest {
        method,
        path,
        query,
        authorization,
        status: response.status().as_u16(),
    });
    response
}

/// Runs `git http-backend` for one request: CGI environment, body to stdin, CGI headers
/// parsed into the response head, the rest of stdout streamed as the body.
async fn run_cgi(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: &State,
) -> anyhow::Result<Response<Body>> {
    let (parts, body) = req.into_parts();
    let mut cmd = Command::new(&state.backend);
    cmd.env_clear()
        .envs(crate::fixtures::base_env())
        .env("GIT_PROJECT_ROOT", &state.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", &state.username)
        .env("REMOTE_ADDR", peer.ip().to_string())
        .env("AUTH_TYPE", "Basic")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("SERVER_SOFTWARE", "gitfleet-testkit")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""));
    for (header, var) in [
        (header::CONTENT_TYPE, "CONTENT_TYPE"),
        (header::CONTENT_LENGTH, "CONTENT_LENGTH"),
        (header::CONTENT_ENCODING, "HTTP_CONTENT_ENCODING"),
        (HeaderName::from_static("git-protocol"), "HTTP_GIT_PROTOCOL"),
    ] {
        if let Some(value) = parts.headers.get(&header) {
            cmd.env(
                var,
                OsString::from(String::from_utf8_lossy(value.as_bytes()).into_owned()),
            );
        }
    }
    cmd.current_dir(&state.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning git http-backend")?;
    let mut guard = GroupKillGuard::new(child.id());
    let stdin = child.stdin.take().context("http-backend stdin")?;
    let stdout = child.stdout.take().context("http-backend stdout")?;
    let mut stderr = child.stderr.take().context("http-backend stderr")?;

    state.tracker.spawn(pump_body(body, stdin));
    let label = format!("{} {}", parts.method, parts.uri);
    state.tracker.spawn(async move {
        let mut errors = String::new();
        let _ = stderr.read_to_string(&mut errors).await;
        if child.wait().await.is_ok() {
            guard.disarm();
        }
        if !errors.trim().is_empty() {
            eprintln!(
                "gitfleet-testkit: git http-backend ({label}): {}",
                errors.trim()
            );
        }
    });

    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    let mut response = Response::builder().status(StatusCode::OK);
    let mut header_bytes = 0;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .await
            .context("reading git http-backend's headers")?;
        if n == 0 {
            bail!("git http-backend ended before its headers did");
        }
        header_bytes += n;
        if header_bytes > MAX_CGI_HEADER {
            bail!("git http-backend sent over {MAX_CGI_HEADER} bytes of headers");
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            bail!("bad CGI header line from git http-backend: {line:?}");
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            let code: u16 = code
                .parse()
                .with_context(|| format!("bad CGI Status from git http-backend: {value:?}"))?;
            response = response.status(code);
        } else {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("bad CGI header name {name:?}"))?;
            let value = HeaderValue::from_str(value)
                .with_context(|| format!("bad CGI header value {value:?}"))?;
            response = response.header(name, value);
        }
    }
    let body = StreamBody::new(ReaderStream::with_capacity(reader, 64 * 1024).map_ok(Frame::data));
    response.body(body.boxed()).context("building the response")
}

/// Streams the request body into the backend's stdin, then closes it.
async fn pump_body(mut body: Incoming, mut stdin: ChildStdin) {
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return;
        };
        if let Ok(data) = frame.into_data()
            && stdin.write_all(&data).await.is_err()
        {
            return;
        }
    }
    let _ = stdin.shutdown().await;
}
