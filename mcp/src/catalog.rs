//! The eight git tools as an agent sees them in `tools/list`: a name, a description it can
//! act on, and an input schema taken from the op's args type in the contract.
//!
//! An agent pays for every token of the list on every turn, so the whole answer is held to
//! 3,000 bytes of JSON (a test measures it on the wire). The contract's schemas are written
//! for people (titles, a description per field, `$defs`): [`compact`] keeps what a caller
//! needs to build a valid call (types, `required`, enums, defaults, nested items inlined)
//! and the descriptions below say the rest once, per tool.

use std::sync::Arc;

use gitfleet_contract::ops::OpName;
use rmcp::model::{JsonObject, Tool};
use serde_json::{Map, Value};

/// One git tool: its MCP name, the op it enqueues, what the agent reads about it, and the
/// args of the op it leaves out of the schema (accepted, but of no use through this tool).
pub(crate) struct GitTool {
    pub name: &'static str,
    pub op: OpName,
    pub description: &'static str,
    pub hidden: &'static [&'static str],
}

/// Every tool, in the order an agent uses them.
pub(crate) const TOOLS: &[GitTool] = &[
    GitTool {
        name: "git_clone",
        op: OpName::Clone,
        description: "A new sandbox of repo_url, on branch agent-{agent_id}-{task_id}. \
                      Returns sandbox_id for the other tools; git_release it when done.",
        // The fleet's mirrors make a full sandbox about as cheap as a shallow one, and a
        // shallow one pushes alone (never grouped): a choice for producers that know the
        // repository, not one to put before an agent on every turn.
        hidden: &["shallow"],
    },
    GitTool {
        name: "git_status",
        op: OpName::Status,
        description: "A sandbox's branch, head_sha, ahead/behind and changed paths.",
        hidden: &[],
    },
    GitTool {
        name: "git_diff",
        op: OpName::Diff,
        description: "A sandbox's diff (staged: the index's), of all paths or those given.",
        hidden: &[],
    },
    GitTool {
        name: "git_write_files",
        op: OpName::WriteFiles,
        description: "Write or delete files in a sandbox (encoding base64 for binary).",
        hidden: &[],
    },
    GitTool {
        name: "git_pull",
        op: OpName::Pull,
        description: "Update a sandbox from its remote branch.",
        hidden: &[],
    },
    GitTool {
        name: "git_push",
        op: OpName::Push,
        description: "Commit a sandbox's changes (all, or paths) and push to target_branch \
                      (default: the agent branch). Returns commit_sha.",
        hidden: &[],
    },
    GitTool {
        name: "git_release",
        op: OpName::Release,
        description: "Free a sandbox when done.",
        hidden: &[],
    },
    GitTool {
        name: "git_change",
        op: OpName::Change,
        description: "Clone, write, commit and push in one call, no sandbox. Returns \
                      commit_sha.",
        // `change` makes no working copy (a shallow or sparse one means nothing to it), and
        // commits exactly the files it is given (`paths` could only drop some of them).
        hidden: &["shallow", "sparse_paths", "paths"],
    },
];

/// The tool called `name`, if there is one.
pub(crate) fn find(name: &str) -> Option<&'static GitTool> {
    TOOLS.iter().find(|t| t.name == name)
}

impl GitTool {
    /// The tool as `tools/list` shows it.
    pub fn to_tool(&self) -> Tool {
        let schema = compact(&Value::from(self.op.args_schema()), self.hidden);
        Tool::new(self.name, self.description, Arc::new(schema))
    }
}

/// The keys of a JSON Schema a caller needs to build a valid call; everything else
/// (`$schema`, `title`, `description`, `format`, `minimum`...) is dropped.
const KEPT: &[&str] = &["type", "properties", "required", "items", "enum", "default"];

/// `schema` (a schemars root schema) cut down to what a caller needs: `$ref`s inlined from
/// `$defs`, only the [`KEPT`] keys, `null` dropped from types (an optional field is one
/// not `required`), no `type` beside an `enum`, the defaults that go without saying
/// dropped (an absent list is empty, an absent flag is off: only `"default": true` and
/// other values stay), and the `hidden` properties of the root left out.
pub(crate) fn compact(schema: &Value, hidden: &[&str]) -> JsonObject {
    let defs = schema.get("$defs").cloned().unwrap_or(Value::Null);
    let mut root = match node(schema, &defs) {
        Value::Object(map) => map,
        other => panic!("an op's args schema is an object schema, not {other}"),
    };
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        props.retain(|name, _| !hidden.contains(&name.as_str()));
    }
    if let Some(Value::Array(required)) = root.get_mut("required") {
        required.retain(|name| !hidden.iter().any(|h| name == h));
    }
    root
}

fn node(schema: &Value, defs: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = Map::new();
    // `{"$ref": ..., "default": ...}`: the definition, with the siblings over it.
    if let Some(Value::String(reference)) = map.get("$ref") {
        let name = reference.trim_start_matches("#/$defs/");
        let def = defs
            .get(name)
            .unwrap_or_else(|| panic!("schema reference {reference} has no definition"));
        if let Value::Object(inlined) = node(def, defs) {
            out = inlined;
        }
    }
    for (key, value) in map {
        if !KEPT.contains(&key.as_str()) {
            continue;
        }
        let value = match key.as_str() {
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, prop)| (name.clone(), node(prop, defs)))
                    .collect(),
            ),
            "items" => node(value, defs),
            "type" if map.contains_key("enum") => continue,
            "type" => without_null(value),
            "default" if value == &Value::Bool(false) => continue,
            "default" if value.as_array().is_some_and(Vec::is_empty) => continue,
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

/// `["string", "null"]` → `"string"`.
fn without_null(types: &Value) -> Value {
    match types {
        Value::Array(list) => {
            let mut left: Vec<Value> = list.iter().filter(|t| *t != "null").cloned().collect();
            if left.len() == 1 {
                left.pop().expect("one left")
            } else {
                Value::Array(left)
            }
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tool_list_fits_the_budget_with_room_for_the_json_rpc_envelope() {
        let list = rmcp::model::ListToolsResult::with_all_items(
            TOOLS.iter().map(GitTool::to_tool).collect(),
        );
        let bytes = serde_json::to_vec(&list).unwrap();
        println!("tools/list result: {} bytes", bytes.len());
        println!("{}", String::from_utf8_lossy(&bytes));
        assert!(bytes.len() <= 2_900, "{} bytes", bytes.len());
    }

    #[test]
    fn a_compacted_schema_inlines_definitions_and_keeps_only_what_builds_a_call() {
        let schema = compact(&Value::from(OpName::WriteFiles.args_schema()), &[]);
        assert_eq!(
            Value::Object(schema),
            json!({
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {
                        "type": "object",
                        "properties": {
                            "content": {"type": "string"},
                            "delete": {"type": "boolean"},
                            "encoding": {"enum": ["utf8", "base64"], "default": "utf8"},
                            "path": {"type": "string"},
                        },
                        "required": ["path"],
                    }},
                    "sandbox_id": {"type": "string"},
                },
                "required": ["sandbox_id", "files"],
            })
        );
    }

    #[test]
    fn a_hidden_property_leaves_the_schema_and_its_required_list() {
        let schema = compact(
            &Value::from(OpName::Change.args_schema()),
            &["shallow", "sparse_paths", "paths"],
        );
        let props = schema["properties"].as_object().unwrap();
        for hidden in ["shallow", "sparse_paths", "paths"] {
            assert!(!props.contains_key(hidden), "{hidden}");
        }
        assert_eq!(
            schema["required"],
            json!(["repo_url", "agent_id", "task_id", "files", "message"])
        );
        assert_eq!(
            props["branch"],
            json!({"type": "string", "default": "main"})
        );
        assert_eq!(props["target_branch"], json!({"type": "string"}));
    }

    #[test]
    fn every_tool_has_a_unique_name_and_hides_only_args_its_op_has() {
        for (i, tool) in TOOLS.iter().enumerate() {
            assert!(
                TOOLS[..i].iter().all(|t| t.name != tool.name),
                "{}",
                tool.name
            );
            let full = Value::from(tool.op.args_schema());
            for hidden in tool.hidden {
                assert!(
                    full["properties"].get(hidden).is_some(),
                    "{}: {hidden}",
                    tool.name
                );
                assert!(
                    !full["required"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r == hidden),
                    "{}: a required arg cannot be hidden: {hidden}",
                    tool.name
                );
            }
        }
    }
}
