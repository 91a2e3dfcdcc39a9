//! `echo`: its result is its args. Exercises the queue end to end.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;

/// `echo`'s args: any JSON object, answered back as the result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct EchoArgs(pub Map<String, Value>);

impl OpArgs for EchoArgs {
    const OP: OpName = OpName::Echo;
    type Result = EchoArgs;

    fn check(_: &Value, _: &Rules) -> Result<(), JobError> {
        Ok(())
    }
}
