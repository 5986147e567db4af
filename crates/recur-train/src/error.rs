use thiserror::Error;

/// Errors of the training layer. Each variant names the offending field, tensor or file.
#[derive(Debug, Error)]
pub enum TrainError {
    /// An error from the recurrent engine.
    #[error(transparent)]
    Nn(#[from] recur_nn::NnError),
    /// A configuration field is invalid.
    #[error("invalid config field `{field}`: {reason}")]
    Config {
        /// The field name (dotted path).
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Inputs do not fit together (shapes, lengths, label ranges).
    #[error("{0}")]
    Invalid(String),
    /// Training produced non-finite losses or gradients too many times in a row.
    #[error("training diverged: {consecutive} consecutive steps with a non-finite loss or gradient (last at step {step}); lower the learning rate or tighten clipping")]
    Diverged {
        /// Consecutive bad steps when training stopped.
        consecutive: usize,
        /// The global step of the last bad step.
        step: u64,
    },
    /// A checkpoint is unreadable, corrupt or does not match the model.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint directory or file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// An I/O error, with the path it concerns.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Result alias for the training layer.
pub type Result<T> = std::result::Result<T, TrainError>;

impl TrainError {
    /// A config error for `field`.
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TrainError::Config {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// An I/O error at `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}
