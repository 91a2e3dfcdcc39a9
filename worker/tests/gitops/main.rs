//! The git ops end to end: in-process workers with real sandboxes, the real Redis, and real
//! git servers on loopback (`git daemon`, and `git http-backend` behind basic auth), started
//! by each test under a temporary directory of its own.

mod support;

mod change;
mod clone_variants;
mod contention;
mod egress;
mod error_kinds;
mod git_steps;
mod group;
mod hostile;
mod hostile_repo;
mod jail;
mod large_results;
mod limits;
mod lock_check;
mod ops;
mod pull;
mod push_protocol;
mod registry;
mod secrets;
mod status_scope;
