//! The git steps of the job a task runs for: every git process [`Git::run`] starts while a
//! run is being recorded lands in that run's [`StepLog`], with its command (from the
//! contract's fixed list, never an argument), phase, start, duration and outcome.
//!
//! Which run a git call is for is a tokio task-local ([`Steps::scope`]): the runtime sets it
//! around each job, so the jobs running at once on one worker never see each other's
//! steps. Task-locals do not cross `tokio::spawn`: code that runs git in a task of its own
//! on a job's behalf passes the job's [`Steps`] on itself (the group commit's leader does,
//! for every job of its batch); work a job only started and did not wait for (the move of a
//! sandbox onto its landed commit after the job answered) is nobody's step. The sandbox and
//! mirror code marks its calls with their [`StepPhase`] ([`in_phase`]).
//!
//! Cost per git command: one task-local read and an `Arc` clone when it starts, one
//! uncontended mutex and a `Vec` push (of a 40-byte step) when it ends; nothing at all when
//! no run is recorded (a worker without a store).
//!
//! [`Git::run`]: super::Git::run

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gitfleet_contract::steps::{
    GitCommand, GitStep, GitSteps, MAX_GIT_STEPS, StepOutcome, StepPhase,
};

tokio::task_local! {
    static STEPS: Steps;
}

/// The steps of one run, filled while it runs.
#[derive(Debug)]
pub struct StepLog {
    started: Instant,
    kept: Mutex<GitSteps>,
}

impl StepLog {
    /// An empty log for a run beginning now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            kept: Mutex::new(GitSteps {
                steps: Vec::with_capacity(16),
                dropped: 0,
            }),
        })
    }

    /// What the run recorded so far, leaving the log empty.
    pub fn take(&self) -> GitSteps {
        std::mem::take(&mut *self.kept.lock().expect("not poisoned"))
    }

    fn push(&self, step: GitStep) {
        let mut kept = self.kept.lock().expect("not poisoned");
        if kept.steps.len() < MAX_GIT_STEPS {
            kept.steps.push(step);
        } else {
            kept.dropped = kept.dropped.saturating_add(1);
        }
    }
}

/// Where the git calls of a task are recorded: the log of its job's run (or, for work done
/// for several jobs at once, each of theirs), and the phase they are in.
#[derive(Debug, Clone)]
pub struct Steps {
    logs: Arc<[Arc<StepLog>]>,
    phase: StepPhase,
}

impl Steps {
    /// The steps of the run `log` records, in phase `op`.
    pub fn of(log: &Arc<StepLog>) -> Self {
        Self {
            logs: Arc::new([log.clone()]),
            phase: StepPhase::Op,
        }
    }

    /// The steps of the task this is called in, if its run is recorded.
    pub fn current() -> Option<Self> {
        STEPS.try_with(Clone::clone).ok()
    }

    /// One place for steps done for every job of `each` (a push group's batch): each
    /// records them, in `phase`. `None` when none of them is recorded.
    pub fn shared(each: impl IntoIterator<Item = Steps>, phase: StepPhase) -> Option<Self> {
        let logs: Vec<Arc<StepLog>> = each.into_iter().flat_map(|s| s.logs.to_vec()).collect();
        (!logs.is_empty()).then(|| Self {
            logs: logs.into(),
            phase,
        })
    }

    /// Runs `fut` with its git calls recorded here.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        STEPS.scope(self, fut).await
    }

    fn record(&self, command: GitCommand, began: Instant, outcome: StepOutcome, code: Option<i32>) {
        let ms = millis(began.elapsed().as_millis());
        for log in self.logs.iter() {
            log.push(GitStep {
                command,
                phase: self.phase,
                at_ms: millis(began.saturating_duration_since(log.started).as_millis()),
                ms,
                outcome,
                code,
            });
        }
    }
}

fn millis(ms: u128) -> u64 {
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// Runs `fut` with the git calls it makes for the current run marked `phase` (inner phases
/// win: the mirror fetch of a clone is `mirror`, its checkout `sandbox`).
pub async fn in_phase<F: Future>(phase: StepPhase, fut: F) -> F::Output {
    match Steps::current() {
        Some(steps) => steps.with_phase(phase).scope(fut).await,
        None => fut.await,
    }
}

impl Steps {
    fn with_phase(mut self, phase: StepPhase) -> Self {
        self.phase = phase;
        self
    }
}

/// One git call being timed (made by the runner as the call begins). It records its step
/// when told how the call ended, or, if it is dropped first (the job stopped waiting),
/// as `cancelled`.
pub(super) struct StepTimer {
    steps: Option<Steps>,
    command: GitCommand,
    began: Instant,
}

impl StepTimer {
    pub(super) fn start(sub: Option<&str>) -> Self {
        let steps = Steps::current();
        Self {
            // Only a recorded call pays for naming its command.
            command: if steps.is_some() {
                GitCommand::of(sub)
            } else {
                GitCommand::Other
            },
            steps,
            began: Instant::now(),
        }
    }

    pub(super) fn finish(mut self, outcome: StepOutcome, code: Option<i32>) {
        if let Some(steps) = self.steps.take() {
            steps.record(self.command, self.began, outcome, code);
        }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        if let Some(steps) = self.steps.take() {
            steps.record(self.command, self.began, StepOutcome::Cancelled, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_go_to_the_run_whose_task_made_them_in_their_phase() {
        let (a, b) = (StepLog::new(), StepLog::new());
        let run_a = Steps::of(&a).scope(async {
            StepTimer::start(Some("fetch")).finish(StepOutcome::Ok, None);
            in_phase(StepPhase::Mirror, async {
                StepTimer::start(Some("ls-remote")).finish(StepOutcome::Exit, Some(2));
            })
            .await;
            // Dropped unfinished: the job stopped waiting.
            drop(StepTimer::start(Some("push")));
        });
        let run_b = Steps::of(&b).scope(async {
            StepTimer::start(Some("status")).finish(StepOutcome::Ok, None);
        });
        tokio::join!(run_a, run_b);
        // Outside any run: recorded nowhere.
        StepTimer::start(Some("gc")).finish(StepOutcome::Ok, None);

        let a = a.take();
        let got: Vec<_> = a
            .steps
            .iter()
            .map(|s| (s.command, s.phase, s.outcome, s.code))
            .collect();
        assert_eq!(
            got,
            [
                (GitCommand::Fetch, StepPhase::Op, StepOutcome::Ok, None),
                (
                    GitCommand::LsRemote,
                    StepPhase::Mirror,
                    StepOutcome::Exit,
                    Some(2)
                ),
                (
                    GitCommand::Push,
                    StepPhase::Op,
                    StepOutcome::Cancelled,
                    None
                ),
            ]
        );
        let b = b.take();
        assert_eq!(b.steps.len(), 1);
        assert_eq!(b.steps[0].command, GitCommand::Status);
    }

    #[tokio::test]
    async fn a_run_keeps_its_first_steps_and_counts_the_rest() {
        let log = StepLog::new();
        Steps::of(&log)
            .scope(async {
                for _ in 0..MAX_GIT_STEPS + 7 {
                    StepTimer::start(Some("rev-parse")).finish(StepOutcome::Ok, None);
                }
            })
            .await;
        let kept = log.take();
        assert_eq!((kept.steps.len(), kept.dropped), (MAX_GIT_STEPS, 7));
    }

    #[tokio::test]
    async fn shared_steps_are_recorded_by_every_job_of_the_batch() {
        let (a, b) = (StepLog::new(), StepLog::new());
        let shared =
            Steps::shared([Steps::of(&a), Steps::of(&b)], StepPhase::PushGroup).expect("two runs");
        shared
            .scope(async { StepTimer::start(Some("push")).finish(StepOutcome::Ok, None) })
            .await;
        for log in [a, b] {
            let steps = log.take().steps;
            assert_eq!(steps.len(), 1);
            assert_eq!(
                (steps[0].command, steps[0].phase),
                (GitCommand::Push, StepPhase::PushGroup)
            );
        }
        assert!(Steps::shared([], StepPhase::PushGroup).is_none());
    }
}
