//! gitfleet-testkit: what gitfleet's tests and benchmarks run against: real git servers on
//! loopback, repository fixtures, and one fleet harness (a queue, a store, workers) that every
//! crate's tests share.
//!
//! - [`GitDaemon`]: `git daemon` serving a directory of bare repositories over `git://`,
//!   with pushes enabled.
//! - [`HttpGitServer`]: `git http-backend` (smart HTTP: clone, fetch, push) behind a small
//!   HTTP/1.1 server that demands `Authorization: Basic` and records every request's
//!   `Authorization` header, so a test can prove how a token reached the server.
//! - [`HeldRemote`]: a `git daemon` remote whose hook holds the first push (before or after
//!   the branch moves) until the test lets it go, and records every push.
//! - [`RecordingServer`]: an HTTP server that answers every request 401, with a redirect
//!   to another server or with an error body, and records every header, so a test can prove
//!   what never reached it.
//! - [`fixtures`]: bare repositories made with the real `git` binary and a fixed identity
//!   (deterministic commit ids), a fast generator of large repositories (`git fast-import`),
//!   and helpers to read a remote's history and reflog.
//!
//! - [`postgres`]: a database of its own per test on the machine's Postgres, and a private
//!   Postgres server a test can stop and start (an outage for real).
//!
//! The fleet harness, against the machine's real Redis and Postgres:
//!
//! - [`TestQueue`]: a queue under a key prefix of its own, purged on drop.
//! - [`TestStore`]: the durable record on a migrated database of its own, dropped on drop.
//! - [`Fleet`]: in-process workers on a `TestQueue`, with or without a store, git sandboxes
//!   and the test's own ops; stopped on [`Fleet::shutdown`] or on drop.
//! - [`RedisServer`]: a `redis-server` of the test's own (to kill and restart, with users or
//!   a password of its own).
//! - [`eventually()`]: waiting for a condition with a deadline instead of sleeping.
//!
//! Every server is stopped on `Drop`, together with every process it started; every
//! prefix, database and directory a test made goes the same way.
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
pub mod eventually;
pub mod fixtures;
pub mod fleet;
pub mod held_remote;
pub mod http;
pub mod postgres;
mod process;
pub mod queue;
pub mod recording;
pub mod redis_keys;
pub mod redis_server;
mod server_thread;
pub mod store;

pub use daemon::GitDaemon;
pub use eventually::{eventually, eventually_blocking, eventually_every, poll_until};
pub use fleet::{Fleet, FleetBuilder, TEST_ALLOW_HOSTS, WorkerSetup, test_egress};
pub use held_remote::{HeldRemote, Hold};
pub use http::{HttpGitServer, RecordedRequest};
pub use queue::{TestQueue, redis_url};
pub use recording::{RecordingServer, SeenRequest};
pub use redis_server::RedisServer;
pub use store::TestStore;
