//! Process-level tests of the `gitfleet-worker` binary against real Redis: workers are
//! started, signalled and killed as an orchestrator would, and each test checks what a user
//! of the fleet sees in the job records.
//!
//! Every test runs under a key prefix of its own (a `gitfleet_testkit::TestQueue`, see `processes`), so they run side by side
//! on the shared Redis; the ones that kill Redis start a server of their own.

mod processes;

mod acl;
mod crash;
mod drain;
mod egress;
mod fencing;
mod invalid_jobs;
mod jail;
mod limits;
mod lost_replies;
mod poison;
mod push_crash;
mod python_producer;
mod queue_settings;
mod redis_restart;
mod routing;
mod shutdown;
mod sigterm_push;
mod tenants;
mod url_passwords;
