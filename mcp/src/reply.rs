//! What a tool call answers: the op's result as compact JSON (text, and the same object as
//! structured content), or a tool error (`isError: true`) whose JSON is the job's
//! `{"kind", "message"}`. Results carry what an agent acts on: a diff over [`DIFF_CAP`]
//! characters is cut at a line, with `truncated: true`, `rest` (the paths whose diff was cut
//! or left out) and a `hint` to ask `git_diff` for them by `paths`: said in the rare result
//! that needs it rather than in the tool list every turn pays for.

use gitfleet_contract::{ErrorKind, JobError, OpName};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

/// The longest diff a tool result carries, in characters (about 2,000 tokens).
pub const DIFF_CAP: usize = 8_000;

/// A job's result as the tool's success.
pub(crate) fn success(op: OpName, result: Value) -> CallToolResult {
    let result = match op {
        OpName::Diff => cap_diff(result, DIFF_CAP),
        _ => result,
    };
    CallToolResult::structured(result)
}

/// A failure as the tool's error: `{"kind": "...", "message": "..."}`.
pub(crate) fn failure(error: &JobError) -> CallToolResult {
    CallToolResult::structured_error(json!({ "kind": error.kind, "message": error.message }))
}

/// [`failure`] of a new error.
pub(crate) fn fail(kind: ErrorKind, message: impl Into<String>) -> CallToolResult {
    failure(&JobError::new(kind, message))
}

/// A `diff` result with its `diff` cut to `cap` characters (at the end of a line where
/// there is one), `truncated` set and `rest` naming the files not shown in full. A diff
/// the worker already cut keeps its `truncated`; its `rest` is what this cut left out.
fn cap_diff(mut result: Value, cap: usize) -> Value {
    let Some(diff) = result.get("diff").and_then(Value::as_str) else {
        return result;
    };
    let Some((end, _)) = diff.char_indices().nth(cap) else {
        return result;
    };
    let cut = diff[..end].rfind('\n').map_or(end, |nl| nl + 1);
    let rest = files_from(diff, cut);
    let kept = diff[..cut].to_string();
    let map = result.as_object_mut().expect("a diff result is an object");
    map.insert("diff".into(), kept.into());
    map.insert("truncated".into(), true.into());
    map.insert("rest".into(), json!(rest));
    map.insert(
        "hint".into(),
        format!("diff cut at {cap} chars: call git_diff with paths from rest for the rest").into(),
    );
    result
}

/// The paths of the files in `diff` whose part does not end before byte `cut`: the one cut
/// through, and every one after it.
fn files_from(diff: &str, cut: usize) -> Vec<String> {
    let mut starts: Vec<(usize, String)> = Vec::new();
    let mut at = 0;
    for line in diff.split_inclusive('\n') {
        if let Some(header) = line.strip_prefix("diff --git ") {
            starts.push((at, header_path(header.trim_end_matches('\n'))));
        }
        at += line.len();
    }
    starts
        .iter()
        .enumerate()
        .filter(|(i, _)| starts.get(i + 1).map_or(diff.len(), |next| next.0) > cut)
        .map(|(_, (_, path))| path.clone())
        .collect()
}

/// The path a `diff --git a/<path> b/<path>` header names (the new path of a rename; git
/// quotes a path with unusual characters, and the quotes are dropped, not the escapes).
fn header_path(header: &str) -> String {
    fn side<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
        let s = s
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(s);
        s.strip_prefix(prefix)
    }
    // An unchanged name: two equal halves, whatever the path holds (spaces too).
    let half = header.len() / 2;
    // (A space in the middle: both halves then start and end on character boundaries.)
    if header.len() % 2 == 1
        && header.as_bytes()[half] == b' '
        && let (Some(a), Some(b)) = (side(&header[..half], "a/"), side(&header[half + 1..], "b/"))
        && a == b
    {
        return a.to_string();
    }
    // A rename: the new name, after the last ` b/`.
    match header.rfind(" b/").or_else(|| header.rfind(" \"b/")) {
        Some(at) => side(&header[at + 1..], "b/").unwrap_or(header).to_string(),
        None => header.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_diff(path: &str, lines: usize) -> String {
        let mut d = format!(
            "diff --git a/{path} b/{path}\nindex 0000000..1111111 100644\n--- a/{path}\n+++ b/{path}\n@@ -0,0 +1,{lines} @@\n"
        );
        for i in 0..lines {
            d.push_str(&format!("+line {i} of {path}\n"));
        }
        d
    }

    #[test]
    fn a_short_diff_is_left_as_it_is() {
        let result = json!({"diff": file_diff("a.txt", 3), "files_changed": 1, "truncated": false});
        assert_eq!(cap_diff(result.clone(), DIFF_CAP), result);
    }

    #[test]
    fn a_long_diff_is_cut_at_a_line_and_names_the_files_left_to_ask_for() {
        let diff = [
            file_diff("small.txt", 3),
            file_diff("dir/big file.txt", 1_000),
            file_diff("after.txt", 3),
        ]
        .concat();
        let result = cap_diff(
            json!({"diff": diff, "files_changed": 3, "truncated": false}),
            DIFF_CAP,
        );
        let kept = result["diff"].as_str().unwrap();
        assert!(kept.chars().count() <= DIFF_CAP, "{}", kept.len());
        assert!(kept.ends_with('\n'));
        assert!(diff.starts_with(kept));
        assert_eq!(result["truncated"], true);
        assert_eq!(result["rest"], json!(["dir/big file.txt", "after.txt"]));
        assert!(
            result["hint"].as_str().unwrap().contains("paths"),
            "{result}"
        );
        assert_eq!(result["files_changed"], 3);
    }

    #[test]
    fn the_cap_counts_characters_not_bytes() {
        let diff = file_diff("ü.txt", 2_000).replace("line", "zeile ü");
        let result = cap_diff(json!({"diff": diff}), 100);
        let kept = result["diff"].as_str().unwrap();
        assert!(kept.chars().count() <= 100);
        assert!(diff.starts_with(kept));
        assert_eq!(result["rest"], json!(["ü.txt"]));
    }

    #[test]
    fn a_header_names_its_path_plain_renamed_or_quoted() {
        assert_eq!(header_path("a/src/x y.rs b/src/x y.rs"), "src/x y.rs");
        assert_eq!(header_path("a/old.rs b/new.rs"), "new.rs");
        assert_eq!(header_path("a/ä.rs b/ü.rs"), "ü.rs");
        assert_eq!(header_path("a/üü b/x"), "x");
        assert_eq!(header_path("\"a/t\\tab\" \"b/t\\tab\""), "t\\tab");
    }

    #[test]
    fn a_failure_carries_its_kind_and_message() {
        let r = fail(ErrorKind::SandboxNotFound, "sandbox_id: no such sandbox");
        assert_eq!(r.is_error, Some(true));
        assert_eq!(
            r.structured_content,
            Some(json!({"kind": "sandbox_not_found", "message": "sandbox_id: no such sandbox"}))
        );
    }
}
