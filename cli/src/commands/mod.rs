//! The body of each `gitfleet` command, one module per command (the listings of the durable
//! record share one). `main.rs` holds the command line and turns what a body returns (an
//! exit code, or a [`crate::Fail`]) into the process's exit.

pub mod admin;
pub mod cancel;
pub mod demo;
pub mod job;
pub mod keys;
pub mod mcp;
pub mod queues;
pub mod record;
pub mod retry;
pub mod submit;
