//! Transport errors.

/// Errors of the transport crate. Decode errors name the key expression.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A configuration value is unusable.
    #[error("{file}: `{field}`: {problem}")]
    Config {
        /// Where the value came from.
        file: String,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// zenoh refused an operation.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// A message could not be encoded.
    #[error("{key}: {source}")]
    Encode {
        /// Key expression.
        key: String,
        /// Codec error.
        source: bicameral_msgs::MsgError,
    },
    /// A received payload is not a valid message of the topic's type.
    #[error("{key}: {source}")]
    Decode {
        /// Key expression it arrived on.
        key: String,
        /// Codec error.
        source: bicameral_msgs::MsgError,
    },
    /// Nothing arrived within the timeout.
    #[error("{key}: nothing received within {timeout_ms} ms")]
    Timeout {
        /// Key expression.
        key: String,
        /// The timeout.
        timeout_ms: u64,
    },
    /// The session or subscriber is closed.
    #[error("{0}: closed")]
    Closed(String),
}

impl TransportError {
    pub(crate) fn zenoh(context: &str, e: impl std::fmt::Display) -> Self {
        TransportError::Zenoh(format!("{context}: {e}"))
    }
}
