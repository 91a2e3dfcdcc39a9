//! gitfleet-core: the worker side of the fleet, in layers that point one way.
//!
//! - [`git`]: the one git runner (argv only, hardened, scrubbed, time- and output-limited);
//! - [`sandbox`]: pooled, isolated working copies, per-repository mirrors (and the replay of
//!   commits in them), the cache of released copies, the template;
//! - [`ops`]: the job ops a worker runs, one module per op, over the sandboxes;
//! - [`runtime`]: the worker runtime that drives apalis workers from the queue, with its
//!   loops (fetch, acknowledge, promote, heartbeat) and the record it keeps.
//!
//! Beneath them all is the job contract (`gitfleet-contract`); the Redis queue
//! (`gitfleet-queue`) and the Postgres record (`gitfleet-store`) are their own crates, which
//! producers use without any of this one.

pub mod git;
pub mod ops;
pub mod runtime;
pub mod sandbox;
