//! Runtime errors.

/// Errors of the runtime crate.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A configuration value is out of range.
    #[error("{file}: `{field}`: {problem}")]
    Config {
        /// File (or description) the value came from.
        file: String,
        /// Dotted field path.
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// The robot description or embodiment is unusable.
    #[error(transparent)]
    Robot(#[from] bicameral_robot::RobotError),
    /// A chunk or state could not be handed to the executor.
    #[error("executor input: {0}")]
    Chunk(String),
    /// A node could not produce its output (policy error, malformed input).
    #[error("node: {0}")]
    Node(String),
    /// zenoh refused an operation.
    #[error("transport: {0}")]
    Transport(String),
    /// A thread could not be started or ended badly.
    #[error("{0}")]
    Thread(String),
}
