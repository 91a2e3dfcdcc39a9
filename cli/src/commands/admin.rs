//! `gitfleet admin`: the fleet's own operations, for an operator. They act for the fleet,
//! never for an organization: a worker refuses an internal op from one, and so does this.

use gitfleet_client::ops::validate;
use gitfleet_client::{Client, EnqueueOptions, JobSpec, OpName};
use serde_json::Value;

use super::submit::print_job;
use crate::connect::connect_as;
use crate::{Fail, Wait};

/// `gitfleet admin maintain '<args>'`: a `maintain` job on the own queue of the worker it
/// names, printed as `submit` prints a job (after it finished, with `--wait`).
pub async fn maintain(args: &str, wait: Wait, org: Option<String>) -> Result<u8, Fail> {
    if let Some(org) = org {
        return Err(Fail::Invalid(format!(
            "--org / GITFLEET_ORG: admin commands act for the fleet, not for an organization \
             (given {org}); unset it"
        )));
    }
    let args: Value = serde_json::from_str(args)
        .map_err(|e| Fail::Invalid(format!("args: not valid JSON: {e}")))?;
    let spec = JobSpec::new(OpName::Maintain.as_str(), args);
    validate(&spec, &Default::default()).map_err(|e| Fail::Invalid(e.message))?;
    let client = connect_as(None).await?;
    let queue = Client::route(&spec);
    let options = EnqueueOptions {
        max_attempts: Some(1),
        ..Default::default()
    };
    let enqueued = client.submit(&queue, &spec, &options).await?;
    print_job(&client, &enqueued.job_id, &wait).await
}
