//! The job contract: what a producer sends.
//!
//! A job is `{"op": "<op>", "args": {...}}`; the queue layer wraps it in an envelope (id,
//! attempts, limits, times, idempotency key) stored in Redis. Each op's args and result are
//! typed in [`crate::ops`].

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::JobError;

/// What a job asks for: an op and its arguments. This is the JSON a producer enqueues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    pub op: String,
    #[serde(default = "empty_object")]
    pub args: Value,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl JobSpec {
    pub fn new(op: impl Into<String>, args: Value) -> Self {
        Self {
            op: op.into(),
            args,
        }
    }

    /// Parses a payload as stored in Redis, naming what is wrong when it is not a job.
    pub fn parse(payload: &str) -> Result<Self, JobError> {
        let spec: JobSpec = serde_json::from_str(payload).map_err(|e| {
            JobError::invalid_input(format!("job payload is not a valid job object: {e}"))
        })?;
        spec.check_shape()?;
        Ok(spec)
    }

    /// Checks what any job must satisfy, whatever its op.
    pub fn check_shape(&self) -> Result<(), JobError> {
        if self.op.is_empty() {
            return Err(JobError::invalid_input("op: must not be empty"));
        }
        if !self.args.is_object() {
            return Err(JobError::invalid_input("args: must be a JSON object"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_what_is_wrong_with_a_payload() {
        assert!(
            JobSpec::parse("{not json")
                .unwrap_err()
                .message
                .contains("not a valid job object")
        );
        assert!(
            JobSpec::parse(r#"{"op":"echo","args":[1]}"#)
                .unwrap_err()
                .message
                .starts_with("args:")
        );
        assert!(
            JobSpec::parse(r#"{"op":"echo","extra":1}"#)
                .unwrap_err()
                .message
                .contains("unknown field")
        );
        let spec = JobSpec::parse(r#"{"op":"echo"}"#).unwrap();
        assert_eq!(spec.args, serde_json::json!({}));
    }
}
