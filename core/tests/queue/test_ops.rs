//! Ops that exist only for these tests: one that counts the runs of each job, one that fails
//! on purpose until a given run, one that never finishes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::future::BoxFuture;
use gitfleet_contract::{ErrorKind, JobError};
use gitfleet_core::ops::{DEFAULT_MAX_ATTEMPTS, Op, RunContext};
use serde_json::{Value, json};

/// Counts the runs of each job id; its result is `{}`.
#[derive(Clone, Default)]
pub struct Counting {
    pub runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl Op for Counting {
    fn name(&self) -> &'static str {
        "count"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(30)
    }
    fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        *self.runs.lock().unwrap().entry(ctx.job_id).or_default() += 1;
        futures::future::ready(Ok(json!({}))).boxed()
    }
}

/// Fails with `kind` until its `succeed_on`-th run of a job (never, if 0), recording when
/// each run started. Its own limit of runs is the default unless `max_attempts` says.
#[derive(Clone)]
pub struct Flaky {
    pub kind: ErrorKind,
    pub succeed_on: u32,
    pub max_attempts: u32,
    pub starts: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
}

impl Flaky {
    pub fn new(kind: ErrorKind, succeed_on: u32) -> Self {
        Self {
            kind,
            succeed_on,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            starts: Default::default(),
        }
    }
}

impl Op for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    fn timeout(&self, _: &Value) -> Duration {
        Duration::from_secs(30)
    }
    fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let run = {
            let mut starts = self.starts.lock().unwrap();
            let runs = starts.entry(ctx.job_id).or_default();
            runs.push(Instant::now());
            runs.len() as u32
        };
        let result = if self.succeed_on != 0 && run >= self.succeed_on {
            Ok(json!({ "run": run }))
        } else {
            Err(JobError::new(
                self.kind,
                format!("run {run} failed on purpose"),
            ))
        };
        futures::future::ready(result).boxed()
    }
}

/// Never finishes on its own: each run is cut off by its time limit, `timeout`. Counts the
/// runs of each job.
#[derive(Clone)]
pub struct Hang {
    pub timeout: Duration,
    pub runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl Op for Hang {
    fn name(&self) -> &'static str {
        "hang"
    }
    fn validate(&self, _: &Value) -> Result<(), JobError> {
        Ok(())
    }
    fn max_attempts(&self) -> u32 {
        2
    }
    fn timeout(&self, _: &Value) -> Duration {
        self.timeout
    }
    fn run(&self, _: Value, ctx: RunContext) -> BoxFuture<'static, Result<Value, JobError>> {
        *self.runs.lock().unwrap().entry(ctx.job_id).or_default() += 1;
        futures::future::pending().boxed()
    }
}
