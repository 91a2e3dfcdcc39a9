//! gitfleet-core: the pieces every gitfleet process shares.
//!
//! - [`job`]: the job contract (ops, envelopes, statuses, error kinds) — the product's public
//!   interface;
//! - [`queue`]: the Redis queue layer (enqueue, reliable fetch, acknowledgement, retries,
//!   recovery of dead workers), whose key layout is documented in `docs/queue.md`;
//! - [`git`]: the one git runner and the checks on untrusted input;
//! - [`ops`]: the job ops a worker can run, one module per op;
//! - [`sandbox`]: pooled, isolated working copies, mirrors and the cache of released copies;
//! - [`worker`]: the worker runtime that drives apalis workers from that queue;
//! - [`store`]: the durable record in Postgres (history, sandbox registry, workers,
//!   budgets), written in the background by workers;
//! - [`config`]: configuration read from the environment by the binaries.

pub mod config;
pub mod git;
pub mod job;
pub mod ops;
pub mod queue;
pub mod sandbox;
pub mod store;
pub mod worker;
