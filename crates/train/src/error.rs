//! Errors of training and checkpoint IO.

use std::path::PathBuf;

/// What can go wrong while training or loading a trained policy.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration file is unreadable or invalid.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong (field and problem).
        message: String,
    },
    /// The dataset cannot be used for training.
    #[error("dataset {dir}: {message}")]
    Dataset {
        /// The dataset directory.
        dir: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading the dataset failed.
    #[error(transparent)]
    DatasetIo(#[from] bicameral_dataset::DatasetError),
    /// The model rejected an input or a checkpoint.
    #[error(transparent)]
    Policy(#[from] bicameral_policy::PolicyError),
    /// File IO.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged at step {step}: loss = {loss}")]
    Diverged {
        /// The step.
        step: usize,
        /// The loss value.
        loss: f32,
    },
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Config {
            path: path.into(),
            message: message.into(),
        }
    }
}
