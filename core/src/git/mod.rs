//! Running git on untrusted input. Every git process of the fleet goes through [`Git`]:
//! argv only, hardened `-c` settings, a protocol allow-list, a scrubbed environment, a
//! timeout that kills the whole process group, capped output, credentials only through
//! `GIT_CONFIG_*` variables, and every message through [`Redactor`]. The checks on what jobs
//! name (repository URLs, branch names, paths) live in [`validate`].

mod capture;
mod classify;
mod credentials;
mod redact;
mod runner;
pub mod validate;

pub use credentials::{Credential, Credentials};
pub use redact::Redactor;
pub use runner::{Git, GitConfig, GitOutput, RunOptions};
