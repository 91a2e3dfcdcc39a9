//! The git tools end to end, as an agent meets them: rmcp's MCP client over Streamable HTTP
//! against the service mounted in an axum server on loopback, in-process git workers on
//! the real Redis, and real git servers (`git daemon`) under each test's own directory.

mod support;

mod identity;
mod list;
mod workflow;
