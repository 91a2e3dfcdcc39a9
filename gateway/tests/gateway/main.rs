//! The gateway end to end: the `gitfleet-gateway` binary as a process on a free loopback
//! port, in front of in-process workers on the real Redis, a Postgres database of its own
//! and git servers on loopback; driven by a real HTTP client.

mod support;

mod actions;
mod auth;
mod dashboard;
mod dashboard_fleet;
mod dashboard_jobs;
mod drain;
mod errors;
mod examples;
mod fleet;
mod git;
mod hang_up;
mod jobs;
mod mcp;
mod reference;
mod repositories;
mod schemathesis;
mod spool;
