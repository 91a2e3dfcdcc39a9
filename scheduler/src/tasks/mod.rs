//! The scheduler's tasks, one file each, all of one shape: `XConfig` (its schedule from
//! `GITFLEET_SCHEDULE_<TASK>` and its settings, each default documented where declared) and
//! `run_once(&ctx, tick)`, one round at the time `tick` (tests pass the time they want).

pub mod cleanup;
pub mod eviction;
pub mod health_check;
pub mod priority;
pub mod retention;
pub mod template_rebuild;

use chrono::{DateTime, Utc};

use crate::config::Schedule;
use crate::{Context, SchedError};

/// What a round did, as JSON (stored as the run's detail).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome(pub serde_json::Value);

/// A scheduler task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Task {
    Eviction,
    Priority,
    HealthCheck,
    Cleanup,
    TemplateRebuild,
    Retention,
}

impl Task {
    pub const ALL: [Task; 6] = [
        Task::Eviction,
        Task::Priority,
        Task::HealthCheck,
        Task::Cleanup,
        Task::TemplateRebuild,
        Task::Retention,
    ];

    /// Its name in `scheduler_runs` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Task::Eviction => "eviction",
            Task::Priority => "priority",
            Task::HealthCheck => "health_check",
            Task::Cleanup => "cleanup",
            Task::TemplateRebuild => "template_rebuild",
            Task::Retention => "retention",
        }
    }

    /// The task named `name` (as [`Task::name`] has it).
    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Its schedule in `ctx`'s configuration.
    pub fn schedule(self, config: &crate::SchedulerConfig) -> &Schedule {
        match self {
            Task::Eviction => &config.eviction.schedule,
            Task::Priority => &config.priority.schedule,
            Task::HealthCheck => &config.health_check.schedule,
            Task::Cleanup => &config.cleanup.schedule,
            Task::TemplateRebuild => &config.template.schedule,
            Task::Retention => &config.retention.schedule,
        }
    }

    /// One round of the task at `tick`.
    pub async fn run_once(self, ctx: &Context, tick: DateTime<Utc>) -> Result<Outcome, SchedError> {
        match self {
            Task::Eviction => eviction::run_once(ctx, tick).await,
            Task::Priority => priority::run_once(ctx, tick).await,
            Task::HealthCheck => health_check::run_once(ctx, tick).await,
            Task::Cleanup => cleanup::run_once(ctx, tick).await,
            Task::TemplateRebuild => template_rebuild::run_once(ctx, tick).await,
            Task::Retention => retention::run_once(ctx, tick).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_layer_knows_every_task_by_its_name() {
        let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(names, gitfleet_queue::SCHEDULER_TASKS);
        for t in Task::ALL {
            assert_eq!(Task::from_name(t.name()), Some(t));
        }
        assert_eq!(Task::from_name("nap"), None);
    }
}
