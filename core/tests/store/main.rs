//! Integration tests of the durable record against real Postgres and Redis: each test has
//! a database of its own (dropped afterwards) and a Redis key prefix of its own; the outage
//! tests run a private Postgres server they stop and start.

mod harness;

mod budgets;
mod lifecycle;
mod migrations;
mod outage;
mod reap;
