//! `write_files`: files to write (or delete) in a sandbox's working tree. Each path must stay
//! inside the tree and out of `.git`; content is UTF-8 text or base64. (The worker also
//! refuses a write through a symlink the repository holds: that needs the tree itself.)

use std::path::PathBuf;

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{OpArgs, OpName, Rules};
use crate::error::JobError;
use crate::fields;
use crate::rules;

/// Files in one job, at most.
pub const MAX_FILES: usize = 10_000;
/// Bytes of one file, at most (after decoding).
pub const MAX_FILE_BYTES: usize = 16 << 20;

/// `write_files`'s args.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteFilesArgs {
    pub sandbox_id: String,
    /// 1-10,000 files.
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

/// The `files` of `args` (of `write_files` or `change`), checked and decoded.
pub fn changes(args: &Value) -> Result<Vec<FileChange>, JobError> {
    let files = match args.get("files") {
        Some(Value::Array(files)) => files,
        None | Some(Value::Null) => return Err(JobError::invalid_input("files: required")),
        Some(_) => return Err(JobError::invalid_input("files: must be a list")),
    };
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(JobError::invalid_input(format!(
            "files: must hold 1-{MAX_FILES} entries"
        )));
    }
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

    fn check(args: &Value, _: &Rules) -> Result<(), JobError> {
        fields::sandbox_id(args)?;
        changes(args).map(|_| ())
    }
}

/// What `write_files` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteFilesResult {
    pub written: u64,
    pub deleted: u64,
}
