//! `echo`: its result is its args. Exercises the queue end to end.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use gitfleet_contract::ops::{EchoArgs, Rules};
use gitfleet_contract::{JobError, OpArgs};

use super::{Op, RunContext};

pub struct Echo;

impl Op for Echo {
    fn name(&self) -> &'static str {
        EchoArgs::OP.as_str()
    }

    fn validate(&self, args: &Value) -> Result<(), JobError> {
        EchoArgs::check(args, &Rules::default())
    }

    fn timeout(&self, _args: &Value) -> Duration {
        Duration::from_secs(30)
    }

    fn run(&self, args: Value, _ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        futures::future::ready(Ok(args)).boxed()
    }
}
