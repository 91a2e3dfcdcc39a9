//! gitfleet-mcp: gitfleet's git ops as MCP tools for AI agents, over stdio (`gitfleet mcp`,
//! for a local agent) and over Streamable HTTP (the gateway mounts
//! [`streamable_http_service`] at `/mcp`). One [`GitTools`] server serves both.
//!
//! Eight tools, one per op an agent drives: `git_clone`, `git_status`, `git_diff`,
//! `git_write_files`, `git_pull`, `git_push`, `git_release`, `git_change`. Each takes its
//! op's args (the schema derived from the contract's args type, `catalog.rs`), enqueues the
//! job through [`gitfleet_client::Client`] for the caller's organization, waits for it
//! (up to [`DEFAULT_WAIT`], sending a progress notification each second when the request
//! asked for them), and answers with the op's result, or a tool error carrying the job's
//! `{"kind", "message"}` (`reply.rs`). Nothing else is exposed: no job ids, queues or
//! options, which the agent has no use for.
//!
//! Who a call acts for is its [`McpIdentity`]: fixed when the server is made (stdio), or,
//! over HTTP, the one the gateway's authentication put into the request's extensions; a
//! call with neither is refused (`auth`). Mounted in a gateway:
//!
//! ```no_run
//! # fn mount(client: gitfleet_client::Client) -> axum::Router {
//! use axum::{extract::Request, middleware::Next, response::Response};
//! use gitfleet_mcp::McpIdentity;
//!
//! async fn authenticate(mut request: Request, next: Next) -> Response {
//!     // The gateway checks the bearer API key here, and answers 401 without one.
//!     request.extensions_mut().insert(McpIdentity { org: "acme".into() });
//!     next.run(request).await
//! }
//!
//! let cancel = tokio_util::sync::CancellationToken::new();
//! axum::Router::new()
//!     .nest_service("/mcp", gitfleet_mcp::streamable_http_service(client, cancel))
//!     .layer(axum::middleware::from_fn(authenticate))
//! # }
//! ```

mod call;
mod catalog;
mod reply;

use std::sync::Arc;
use std::time::Duration;

use gitfleet_client::{Client, ErrorKind};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use tokio_util::sync::CancellationToken;

pub use reply::DIFF_CAP;

/// How long a tool call waits for its job by default before it answers `timeout` (the job
/// goes on; only the call stops waiting).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

/// The organization a tool call acts for: its jobs carry it, reach only its sandboxes and
/// are charged to it. Over HTTP the gateway inserts it into each request's extensions
/// (`http::Request::extensions_mut().insert(McpIdentity { .. })`) once it has
/// authenticated the request's API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpIdentity {
    pub org: String,
}

/// The MCP server of the git tools. Cheap to clone (one per HTTP request).
#[derive(Clone)]
pub struct GitTools {
    client: Client,
    identity: Option<McpIdentity>,
    wait: Duration,
    tools: Arc<Vec<Tool>>,
}

impl GitTools {
    /// Tools that enqueue through `client`, for `identity` when given, else for the
    /// identity each HTTP request carries.
    pub fn new(client: Client, identity: Option<McpIdentity>) -> Self {
        Self {
            client,
            identity,
            wait: DEFAULT_WAIT,
            tools: Arc::new(
                catalog::TOOLS
                    .iter()
                    .map(catalog::GitTool::to_tool)
                    .collect(),
            ),
        }
    }

    /// Waits up to `wait` for each job instead of [`DEFAULT_WAIT`].
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The tools as `tools/list` answers them.
    pub fn tools(&self) -> &[Tool] {
        &self.tools
    }

    /// Who the call of `context` acts for: the server's own identity, else the one the
    /// gateway put into the HTTP request (rmcp's Streamable HTTP server hands the handler
    /// the request's `http::request::Parts` in the context's extensions).
    fn identity(&self, context: &RequestContext<RoleServer>) -> Option<McpIdentity> {
        self.identity.clone().or_else(|| {
            context
                .extensions
                .get::<http::request::Parts>()?
                .extensions
                .get::<McpIdentity>()
                .cloned()
        })
    }
}

/// [`GitTools::new`].
pub fn server(client: Client, identity: Option<McpIdentity>) -> GitTools {
    GitTools::new(client, identity)
}

impl ServerHandler for GitTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("gitfleet", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Git for agents: git_clone gives a sandbox_id for the other git_* tools; \
                 git_release it when done. git_change does a whole change in one call.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = catalog::find(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool {:?}", request.name),
                None,
            ));
        };
        let Some(identity) = self.identity(&context) else {
            return Ok(reply::fail(
                ErrorKind::Auth,
                "no identity: this call carried no authenticated organization (over HTTP, \
                 send the API key as `Authorization: Bearer <key>`)",
            )
            .into());
        };
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let call = call::Call {
            client: &self.client,
            org: &identity.org,
            tool,
            wait: self.wait,
        };
        Ok(call.run(args, &context).await.into())
    }
}

/// Serves the tools on standard input and output for `identity` until the client closes
/// them (`gitfleet mcp`).
pub async fn serve_stdio(client: Client, identity: McpIdentity) -> anyhow::Result<()> {
    server(client, Some(identity)).serve_stdio().await
}

impl GitTools {
    /// Serves these tools on standard input and output until the client closes them.
    pub async fn serve_stdio(self) -> anyhow::Result<()> {
        let running = self.serve(rmcp::transport::stdio()).await?;
        running.waiting().await?;
        Ok(())
    }
}

/// The Streamable HTTP service of the tools, a tower `Service` the gateway mounts with
/// `Router::nest_service("/mcp", ..)` behind its authentication, which inserts each
/// request's [`McpIdentity`] into its extensions.
pub type McpHttpService = StreamableHttpService<GitTools, NeverSessionManager>;

/// [`McpHttpService`] over `client`; `cancel` ends the streams in flight (the gateway's
/// shutdown).
///
/// Stateless: no MCP session is kept, each POST is answered on its own (a plain JSON
/// answer, or an event stream when progress notifications come before the result). Any
/// replica behind a load balancer can take any request without sticky sessions or a
/// shared session store, and a replica that goes away loses no session. Nothing is lost
/// either: a tool call's whole life (the job, its progress, its result) is one request,
/// and the key is checked on every one. The `Host` check against DNS rebinding is off: it
/// guards servers that trust whoever reaches them, and this one trusts only a bearer key,
/// which a rebinding page does not have.
pub fn streamable_http_service(client: Client, cancel: CancellationToken) -> McpHttpService {
    let tools = server(client, None);
    StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .disable_allowed_hosts()
            .with_cancellation_token(cancel),
    )
}
