//! STUB (branch `sched`), to be deleted when branch `speed` is merged.
//!
//! `SandboxManager::rebuild_template` and `Mirrors::refresh_all` are written on branch
//! `speed` (commit 33d871f, "Sandbox template: versioned template/<ulid>/ ..."), with these
//! exact names and result fields. The `maintain` op's `rebuild_template` task calls them;
//! these stand-ins only let this branch compile and do nothing. On merging `speed`, delete
//! this file and its `mod template_stub;` line in `sandbox/mod.rs`: the compiler then finds
//! speed's real methods under the same names (a duplicate definition error, not a silent
//! mix-up, if this file is left behind).

use super::SandboxManager;
use super::mirror::Mirrors;
use crate::job::JobError;

/// Stand-in for speed's `sandbox::TemplateRebuild` (same fields).
#[derive(Debug, Clone)]
pub struct TemplateRebuild {
    pub template_id: String,
    pub copies_removed: usize,
    pub versions_removed: usize,
}

/// Stand-in for speed's `mirror::RefreshedAll` (same fields).
#[derive(Debug, Default)]
pub struct RefreshedAll {
    pub refreshed: usize,
    pub failed: Vec<(String, JobError)>,
}

impl SandboxManager {
    /// STUB: no template exists on this branch yet; reports that nothing was rebuilt.
    pub async fn rebuild_template(&self) -> Result<TemplateRebuild, JobError> {
        Ok(TemplateRebuild {
            template_id: "none (stub: template rebuild lands with branch speed)".into(),
            copies_removed: 0,
            versions_removed: 0,
        })
    }
}

impl Mirrors {
    /// STUB: refreshes nothing on this branch (mirrors are refreshed on use).
    pub async fn refresh_all(&self) -> RefreshedAll {
        RefreshedAll::default()
    }
}
