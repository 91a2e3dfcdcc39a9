//! The sandbox registry in Redis: who each live sandbox belongs to (its organization and
//! agent, and the worker that holds it), and how many live sandboxes each organization has
//! fleet-wide, which `GITFLEET_ORG_MAX_SANDBOXES` limits. A sandbox is claimed before it is
//! made and dropped when it is released (or its making failed); a worker declared dead, or
//! leaving, loses all of its in `reap.lua`. The worker holding a sandbox checks ownership from
//! its own memory; this is what the rest of the fleet (the gateway, an operator) reads.

use std::collections::HashMap;

use super::scripts::{SANDBOX_CLAIM, SANDBOX_DROP};
use super::{Queue, QueueError};

/// Who a live sandbox belongs to, as the registry has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxOwner {
    pub org: Option<String>,
    pub agent: String,
    pub worker: String,
}

impl Queue {
    /// Claims sandbox `id` (about to be made by `worker`) for `org` and `agent`. Refused
    /// with `budget_exceeded` when `org` has `max_per_org` live sandboxes already (`0`: no
    /// limit). Returns the organization's live sandboxes, this one included.
    pub async fn claim_sandbox(
        &self,
        id: &str,
        worker: &str,
        org: Option<&str>,
        agent: &str,
        max_per_org: u32,
    ) -> Result<u64, QueueError> {
        let org = org.unwrap_or("");
        let mut conn = self.conn();
        SANDBOX_CLAIM
            .key(self.keys.sandbox(id))
            .key(self.keys.worker_sandboxes(worker))
            .key(
                self.keys
                    .org_sandboxes(if org.is_empty() { "-" } else { org }),
            )
            .arg(id)
            .arg(worker)
            .arg(org)
            .arg(agent)
            .arg(max_per_org)
            .invoke_async(&mut conn)
            .await
            .map_err(QueueError::from_script)
    }

    /// Drops sandbox `id` of `worker` from the registry (released, or never made).
    pub async fn drop_sandbox(&self, id: &str, worker: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        let _: i64 = SANDBOX_DROP
            .key(self.keys.sandbox(id))
            .key(self.keys.worker_sandboxes(worker))
            .arg(id)
            .arg(self.keys.prefix())
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Who sandbox `id` belongs to; `None` when it is not live.
    pub async fn sandbox_owner(&self, id: &str) -> Result<Option<SandboxOwner>, QueueError> {
        let mut conn = self.conn();
        let f: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.sandbox(id))
            .query_async(&mut conn)
            .await?;
        Ok(f.get("worker").map(|worker| SandboxOwner {
            org: f.get("org").cloned(),
            agent: f.get("agent").cloned().unwrap_or_default(),
            worker: worker.clone(),
        }))
    }

    /// Live sandboxes of `org`, fleet-wide.
    pub async fn org_sandbox_count(&self, org: &str) -> Result<u64, QueueError> {
        let mut conn = self.conn();
        Ok(redis::cmd("SCARD")
            .arg(self.keys.org_sandboxes(org))
            .query_async(&mut conn)
            .await?)
    }
}
