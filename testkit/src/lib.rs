//! gitfleet-testkit: real git servers on loopback and repository fixtures, for gitfleet's
//! tests and benchmarks.
//!
//! - [`GitDaemon`]: `git daemon` serving a directory of bare repositories over `git://`,
//!   with pushes enabled.
//! - [`HttpGitServer`]: `git http-backend` (smart HTTP: clone, fetch, push) behind a small
//!   HTTP/1.1 server that demands `Authorization: Basic` and records every request's
//!   `Authorization` header, so a test can prove how a token reached the server.
//! - [`fixtures`]: bare repositories made with the real `git` binary and a fixed identity
//!   (deterministic commit ids), a fast generator of large repositories (`git fast-import`),
//!   and helpers to read a remote's history and reflog.
//!
//! - [`postgres`]: a database of its own per test on the machine's Postgres, and a private
//!   Postgres server a test can stop and start (an outage for real).
//!
//! Every server is stopped on `Drop`, together with every process it started.
//!
//! ```no_run
//! use gitfleet_testkit::{GitDaemon, fixtures};
//!
//! let root = tempfile::tempdir()?;
//! fixtures::bare_repo(root.path(), "demo.git", &[("README.md", "hello\n")]);
//! let daemon = GitDaemon::start(root.path())?;
//! let work = tempfile::tempdir()?;
//! fixtures::git(work.path(), ["clone", daemon.url("demo.git").as_str(), "demo"])?;
//! # anyhow::Ok(())
//! ```

pub mod daemon;
pub mod fixtures;
pub mod http;
pub mod postgres;
mod process;
pub mod redis_keys;

pub use daemon::GitDaemon;
pub use http::{HttpGitServer, RecordedRequest};
