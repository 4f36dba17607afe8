//! Errors of the simulator.

use std::path::PathBuf;

/// Everything that can go wrong building or stepping a simulated world.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A scene or configuration file is malformed or inconsistent.
    #[error("{}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The robot description could not be loaded.
    #[error(transparent)]
    Robot(#[from] bicameral_robot::RobotError),
    /// The robot model cannot be simulated as given.
    #[error("robot \"{robot}\": {message}")]
    Model {
        /// Robot name.
        robot: String,
        /// What is wrong, naming the link or joint.
        message: String,
    },
    /// A command vector has the wrong length or non-finite values.
    #[error("joint command: {0}")]
    Command(String),
    /// The physics blew up (NaN, runaway velocity); the episode must end as failed.
    #[error("physics diverged at step {step} (t = {time:.3} s): {reason}")]
    Diverged {
        /// Step index.
        step: u64,
        /// Simulated time (s).
        time: f64,
        /// Which body and what happened.
        reason: String,
    },
    /// A camera could not be rendered.
    #[error("camera rendering: {0}")]
    Render(String),
    /// An episode was stopped early by its own logic (time limit, a failed grasp); the episode
    /// ends as failed with this reason.
    #[error("episode stopped: {0}")]
    Stopped(String),
    /// No directory with `robots/` and `sim/` was found.
    #[error(
        "could not find the bicameral data directory (robots/ and sim/) from {}; run from the repository or set BICAMERAL_HOME",
        start.display()
    )]
    DataRootNotFound {
        /// Where the search started.
        start: PathBuf,
    },
}
