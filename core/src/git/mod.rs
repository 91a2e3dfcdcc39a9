//! Running git on untrusted input. Every git process of the fleet goes through [`Git`]:
//! argv only, hardened `-c` settings, a protocol allow-list, a scrubbed environment, a
//! timeout that kills the whole process group, a bubblewrap jail where the machine has it
//! (`jail.rs`), capped output, credentials only through
//! `GIT_CONFIG_*` variables, an egress check (and pin) before every network call
//! ([`EgressConfig`]), and every message through the contract's one redaction
//! function ([`gitfleet_contract::Redactor`]). Each call made for a job is a step of its
//! run ([`steps`]). The checks on what jobs name (repository
//! URLs, branch names, paths) are the contract's too ([`gitfleet_contract::rules`]).

mod capture;
mod classify;
mod config;
mod egress;
mod home;
mod jail;
mod runner;
pub mod steps;

pub use config::{GitConfig, JailMode};
pub use egress::EgressConfig;
pub use jail::Sees;
pub use runner::{Git, GitOutput, RunOptions};
pub use steps::{StepLog, Steps, in_phase};
