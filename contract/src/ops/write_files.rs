//! `write_files`: files to write (or delete) in a sandbox's working tree. Each path must stay
//! inside the tree and out of `.git`; content is UTF-8 text or base64. (The worker also
//! refuses a write through a symlink the repository holds: that needs the tree itself.)

use std::path::PathBuf;

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{JobLimits, OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;
use crate::rules;

/// Bytes of one file, at most (after decoding). How many files and bytes one job writes
/// in all is a limit of its own ([`JobLimits`]).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// `write_files`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteFilesArgs {
    pub sandbox_id: String,
    /// 1 to `GITFLEET_JOB_MAX_WRITE_FILES` (default 10,000) files, of at most
    /// `GITFLEET_JOB_MAX_WRITE_BYTES` (default 64 MiB) in all.
    pub files: Vec<FileEntry>,
}

/// One file of `files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FileEntry {
    /// Relative to the working tree's root; no `..`, nothing under `.git`.
    pub path: String,
    /// The file's content (required unless `delete`), at most 16 MiB once decoded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// How `content` is written.
    #[serde(default)]
    pub encoding: Encoding,
    /// Delete the file instead.
    #[serde(default)]
    pub delete: bool,
}

/// How a file's `content` is written in the job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// One file to write or delete, checked and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// The field it came from (`files[3].path`), for errors.
    pub field: String,
    pub path: PathBuf,
    /// `None`: delete.
    pub content: Option<Vec<u8>>,
}

impl FileChange {
    /// The path as git names it (`a/b`, whatever `./a//b` it was given as); `None` if it
    /// is not UTF-8.
    pub fn git_path(&self) -> Option<String> {
        let parts: Option<Vec<&str>> = self
            .path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(part) => Some(part.to_str()),
                _ => None,
            })
            .collect();
        parts.map(|p| p.join("/"))
    }
}

/// The `files` of `args` (of `write_files` or `change`), checked and decoded, within the
/// job's write limits.
pub fn changes(args: &Value, limits: &JobLimits) -> Result<Vec<FileChange>, JobError> {
    let files = match args.get("files") {
        Some(Value::Array(files)) => files,
        None | Some(Value::Null) => return Err(JobError::invalid_input("files: required")),
        Some(_) => return Err(JobError::invalid_input("files: must be a list")),
    };
    if files.is_empty() {
        return Err(JobError::invalid_input(
            "files: must hold at least one entry",
        ));
    }
    if files.len() as u64 > limits.max_write_files {
        return Err(JobError::invalid_input(format!(
            "files: {} entries, over the limit of {} per job (GITFLEET_JOB_MAX_WRITE_FILES)",
            files.len(),
            limits.max_write_files
        )));
    }
    let mut total: u64 = 0;
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let field = format!("files[{i}]");
            if !f.is_object() {
                return Err(JobError::invalid_input(format!(
                    "{field}: must be an object"
                )));
            }
            let path_field = format!("{field}.path");
            let path = rules::path(
                &path_field,
                fields::string(f, "path")
                    .map_err(|e| JobError::invalid_input(format!("{field}.{}", e.message)))?,
            )?;
            let delete = fields::opt_bool(f, "delete", false)
                .map_err(|e| JobError::invalid_input(format!("{field}.{}", e.message)))?;
            if delete {
                return Ok(FileChange {
                    field: path_field,
                    path,
                    content: None,
                });
            }
            let content = fields::string(f, "content")
                .map_err(|e| JobError::invalid_input(format!("{field}.{}", e.message)))?;
            let encoding = fields::opt_string(f, "encoding")
                .map_err(|e| JobError::invalid_input(format!("{field}.{}", e.message)))?
                .unwrap_or("utf8");
            let bytes = match encoding {
                "utf8" => content.as_bytes().to_vec(),
                "base64" => base64::engine::general_purpose::STANDARD
                    .decode(content)
                    .map_err(|e| {
                        JobError::invalid_input(format!("{field}.content: not valid base64: {e}"))
                    })?,
                other => {
                    return Err(JobError::invalid_input(format!(
                        "{field}.encoding: {other:?} is not utf8 or base64"
                    )));
                }
            };
            if bytes.len() > MAX_FILE_BYTES {
                return Err(JobError::invalid_input(format!(
                    "{field}.content: {} bytes, over the limit of {MAX_FILE_BYTES}",
                    bytes.len()
                )));
            }
            total += bytes.len() as u64;
            if total > limits.max_write_bytes {
                return Err(JobError::invalid_input(format!(
                    "{field}.content: takes the job to {total} bytes, over the limit of {} \
                     bytes per job (GITFLEET_JOB_MAX_WRITE_BYTES)",
                    limits.max_write_bytes
                )));
            }
            Ok(FileChange {
                field: path_field,
                path,
                content: Some(bytes),
            })
        })
        .collect()
}

impl OpArgs for WriteFilesArgs {
    const OP: OpName = OpName::WriteFiles;
    type Result = WriteFilesResult;

    fn check(args: &Value, rules: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        changes(args, &rules.limits).map(|_| ())
    }
}

/// What `write_files` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteFilesResult {
    pub written: u64,
    pub deleted: u64,
}
