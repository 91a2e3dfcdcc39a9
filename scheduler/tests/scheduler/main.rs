//! The scheduler against the real Postgres and Redis of this machine: each task's
//! `run_once` with time under the test's control, and real `gitfleet-scheduler` replicas.
//! Each test has a database of its own and a Redis key prefix of its own, both removed
//! afterwards.

mod world;

mod cleanup;
mod eviction;
mod health_check;
mod priority;
mod replicas;
mod retention;
mod template_rebuild;
mod ticks;
mod url_passwords;
