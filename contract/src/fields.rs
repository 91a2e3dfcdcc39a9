//! Reading a job's args: one function per kind of field, each naming the field and the
//! reason in its error, so a producer learns exactly what to fix.

use serde_json::Value;

use crate::error::JobError;
use crate::rules as validate;

fn bad(field: &str, reason: impl std::fmt::Display) -> JobError {
    JobError::invalid_input(format!("{field}: {reason}"))
}

/// A required string.
pub fn string<'a>(args: &'a Value, field: &str) -> Result<&'a str, JobError> {
    match args.get(field) {
        None | Some(Value::Null) => Err(bad(field, "required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// An optional string.
pub fn opt_string<'a>(args: &'a Value, field: &str) -> Result<Option<&'a str>, JobError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

/// An optional boolean.
pub fn opt_bool(args: &Value, field: &str, default: bool) -> Result<bool, JobError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(field, "must be true or false")),
    }
}

/// A path of a checked list as [`opt_paths`] gives it: without a trailing `/` (`src/` and
/// `src` name the same directory). For typed args, which keep the paths as the job gave them.
pub fn as_checked(path: &str) -> &str {
    path.trim_end_matches('/')
}

/// An optional list of paths inside the working tree, each checked.
pub fn opt_paths(args: &Value, field: &str) -> Result<Vec<String>, JobError> {
    match args.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => {
            if items.len() > 10_000 {
                return Err(bad(field, "at most 10000 paths"));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = format!("{field}[{i}]");
                    let s = v.as_str().ok_or_else(|| bad(&name, "must be a string"))?;
                    validate::path(&name, s)?;
                    Ok(as_checked(s).to_string())
                })
                .collect()
        }
        Some(_) => Err(bad(field, "must be a list of paths")),
    }
}

/// An id that becomes part of a branch name (`agent_id`, `task_id`): 1-64 of letters,
/// digits, `_`, `-`, `.`, not starting with `-` or `.`.
pub fn ident<'a>(args: &'a Value, field: &str) -> Result<&'a str, JobError> {
    let s = string(args, field)?;
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(bad(
            field,
            "must be 1-64 of letters, digits, '_', '-', '.', not starting with '-' or '.'",
        ));
    }
    Ok(s)
}

/// A sandbox id: `<worker id>.<ulid>`. Returns the worker id.
pub fn sandbox_id(args: &Value) -> Result<(&str, &str), JobError> {
    let id = string(args, "sandbox_id")?;
    let (worker, ulid) = id
        .rsplit_once('.')
        .ok_or_else(|| bad("sandbox_id", "must be <worker id>.<ulid>"))?;
    crate::names::validate_worker_id(worker).map_err(|e| bad("sandbox_id", e.message))?;
    if ulid.len() != 26 || !ulid.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(bad("sandbox_id", "must be <worker id>.<ulid>"));
    }
    Ok((id, worker))
}

/// A branch name, checked as git would and more.
pub fn branch<'a>(args: &'a Value, field: &str, default: &'a str) -> Result<&'a str, JobError> {
    let name = opt_string(args, field)?.unwrap_or(default);
    validate::branch(field, name)?;
    Ok(name)
}

/// A commit message: not empty, at most 64 KiB, no NUL.
pub fn message<'a>(args: &'a Value, field: &str) -> Result<&'a str, JobError> {
    let m = string(args, field)?;
    if m.trim().is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if m.len() > 65_536 || m.contains('\0') {
        return Err(bad(field, "at most 64 KiB, and no NUL"));
    }
    Ok(m)
}
