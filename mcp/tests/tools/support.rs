//! What these tests share: a fleet with git workers, the MCP service mounted in an axum
//! server on 127.0.0.1:0 behind a stand-in for the gateway's authentication, and MCP
//! clients (rmcp's own, over Streamable HTTP) acting as agents of an organization.

use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use gitfleet_client::Client;
use gitfleet_mcp::McpIdentity;
use gitfleet_testkit::Fleet;
use rmcp::model::{CallToolRequestParams, CallToolResult, ProgressNotificationParam};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A fleet with `workers` git workers, and the MCP service over it at `url`.
pub struct Mcp {
    pub fleet: Fleet,
    pub url: String,
    stop: CancellationToken,
}

impl Mcp {
    pub async fn start(workers: usize) -> Self {
        let fleet = Fleet::builder("mcp").git().workers(workers).start().await;
        let client = fleet.client().clone();
        Self::serve(fleet, client).await
    }

    /// The service over `client` (the fleet's, or one made differently), beside `fleet`.
    pub async fn serve(fleet: Fleet, client: Client) -> Self {
        let stop = CancellationToken::new();
        // As the gateway's: a trusted producer naming each job's organization.
        let service = gitfleet_mcp::streamable_http_service(client, stop.clone());
        let app = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(axum::middleware::from_fn(authenticate));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let shutdown = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
                .unwrap();
        });
        Self { fleet, url, stop }
    }

    /// An agent of organization `org` (its bearer key, in these tests, is the org's name),
    /// or of none (`None`: no `Authorization` header).
    pub async fn agent(&self, org: Option<&str>) -> Agent {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str());
        if let Some(org) = org {
            config = config.auth_header(org);
        }
        let (progress, notes) = mpsc::unbounded_channel();
        let client = Progress { sender: progress }
            .serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("the MCP client connects");
        Agent { client, notes }
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The stand-in for the gateway's API-key middleware: the bearer token names the
/// organization, which goes into the request's extensions as the tools expect it.
async fn authenticate(mut request: Request, next: Next) -> axum::response::Response {
    let org = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    if let Some(org) = org {
        request.extensions_mut().insert(McpIdentity { org });
    }
    next.run(request).await
}

/// The client side: hands every progress notification to the test.
pub struct Progress {
    sender: mpsc::UnboundedSender<ProgressNotificationParam>,
}

impl ClientHandler for Progress {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.sender.send(params);
    }
}

pub struct Agent {
    pub client: RunningService<RoleClient, Progress>,
    /// The progress notifications received, in order.
    pub notes: mpsc::UnboundedReceiver<ProgressNotificationParam>,
}

impl Agent {
    /// Calls `tool` with `args` (a JSON object).
    pub async fn call(&self, tool: &'static str, args: Value) -> CallToolResult {
        let Value::Object(args) = args else {
            panic!("tool args are an object")
        };
        self.client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
            .await
            .unwrap_or_else(|e| panic!("{tool}: the call itself failed: {e}"))
    }

    /// Calls a tool that must succeed; returns its result, read from its text (what an
    /// agent reads) and checked against its structured content.
    pub async fn ok(&self, tool: &'static str, args: Value) -> Value {
        let result = self.call(tool, args).await;
        assert_eq!(result.is_error, Some(false), "{tool} failed: {result:?}");
        let value = text_json(&result);
        assert_eq!(result.structured_content.as_ref(), Some(&value), "{tool}");
        value
    }

    /// Calls a tool that must fail; returns its error's `(kind, message)`.
    pub async fn err(&self, tool: &'static str, args: Value) -> (String, String) {
        let result = self.call(tool, args).await;
        assert_eq!(result.is_error, Some(true), "{tool} succeeded: {result:?}");
        let error = text_json(&result);
        (
            error["kind"].as_str().expect("a kind").to_string(),
            error["message"].as_str().expect("a message").to_string(),
        )
    }
}

/// The JSON of a result's one text block.
pub fn text_json(result: &CallToolResult) -> Value {
    assert_eq!(result.content.len(), 1, "one content block: {result:?}");
    let text = &result.content[0].as_text().expect("a text block").text;
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the text is JSON ({e}): {text}"))
}

/// The longest a test waits for something that a working system does in well under it.
pub const PATIENCE: Duration = Duration::from_secs(60);
