//! `gitfleet mcp`: the git tools (gitfleet-mcp) for a local agent over standard input and
//! output, acting for `--org` / `GITFLEET_ORG`, until the agent closes the pipe. Standard
//! output is the protocol's: nothing else is printed there, and a failure to start goes to
//! standard error.

use std::time::Duration;

use gitfleet_mcp::{GitTools, McpIdentity};

use crate::Fail;
use crate::connect::connect_as;

pub async fn serve(org: Option<String>, wait: Duration) -> Result<u8, Fail> {
    let org = org.ok_or_else(|| {
        Fail::Invalid(
            "--org / GITFLEET_ORG: gitfleet mcp acts for an organization (its jobs carry it, \
             reach its sandboxes only and are charged to it); give one"
                .into(),
        )
    })?;
    let client = connect_as(Some(org.clone())).await?;
    let identity = McpIdentity { org };
    GitTools::new(client, Some(identity))
        .with_wait(wait)
        .serve_stdio()
        .await
        .map_err(|e| Fail::Unreachable(format!("the MCP session ended: {e:#}")))?;
    Ok(0)
}
