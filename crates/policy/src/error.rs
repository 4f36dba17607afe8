//! Typed errors of the policy crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong building, loading, saving or running the action head.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is invalid (parse error or violated constraint).
    #[error("invalid model config: {0}")]
    Config(String),
    /// The configuration file is invalid.
    #[error("{path}: invalid model config: {msg}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A safetensors file (or a shard index) could not be parsed.
    #[error("{path}: {msg}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// A checkpoint directory contains neither `model.safetensors` nor
    /// `model.safetensors.index.json`.
    #[error("{0}: no model.safetensors or model.safetensors.index.json")]
    NoWeights(PathBuf),
    /// Tensors the model needs are absent, present with the wrong shape or dtype, or present
    /// but unused (each list names the tensors).
    #[error("{path}: checkpoint does not match the model: {}", describe_mismatch(.missing, .unexpected, .mismatched))]
    CheckpointMismatch {
        /// The checkpoint (file or directory).
        path: PathBuf,
        /// Tensors the model needs that the checkpoint lacks.
        missing: Vec<String>,
        /// Tensors under the model prefix the model does not use.
        unexpected: Vec<String>,
        /// Tensors present with the wrong shape or an unsupported dtype: `name: problem`.
        mismatched: Vec<String>,
    },
    /// An input tensor has the wrong shape or value.
    #[error("invalid input `{name}`: {msg}")]
    Input {
        /// The input.
        name: &'static str,
        /// What is wrong.
        msg: String,
    },
    /// A tensor could not be read back from the device.
    #[error("tensor readback failed: {0}")]
    Readback(String),
}

fn describe_mismatch(missing: &[String], unexpected: &[String], mismatched: &[String]) -> String {
    let mut parts = Vec::new();
    let list = |v: &[String]| {
        let shown: Vec<&str> = v.iter().take(8).map(String::as_str).collect();
        let more = if v.len() > 8 {
            format!(", … ({} more)", v.len() - 8)
        } else {
            String::new()
        };
        format!("{}{more}", shown.join(", "))
    };
    if !missing.is_empty() {
        parts.push(format!("{} missing: {}", missing.len(), list(missing)));
    }
    if !unexpected.is_empty() {
        parts.push(format!(
            "{} unexpected: {}",
            unexpected.len(),
            list(unexpected)
        ));
    }
    if !mismatched.is_empty() {
        parts.push(format!(
            "{} mismatched: {}",
            mismatched.len(),
            list(mismatched)
        ));
    }
    parts.join("; ")
}

impl PolicyError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub(crate) fn input(name: &'static str, msg: impl Into<String>) -> Self {
        Self::Input {
            name,
            msg: msg.into(),
        }
    }
}
