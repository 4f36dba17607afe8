//! bicameral's runtime: what turns the two minds into a robot.
//!
//! * [`clock`]: the [`Clock`](clock::Clock) trait, wall clock and sim clock (nodes never read the
//!   wall clock directly).
//! * [`slot`]: lock-free latest-value slots between the async side and the real-time thread.
//! * [`safety`]: joint limits from the robot description and the filter every command passes.
//! * [`executor`]: the control-rate loop that turns chunks into commands (hold on stale plan,
//!   exhausted chunks or e-stop), and its dedicated thread.
//! * [`nodes`]: System 2 and System 1 as node logic over the [`nodes::Planner`] and
//!   [`nodes::ActionPolicy`] traits (transport- and clock-independent).
//! * [`hal`]: the robot hardware abstraction ([`hal::RobotHal`]) and a loopback echo device.
//! * [`live`]: those nodes and the executor's I/O on threads over zenoh, at their rates.

pub mod clock;
mod error;
pub mod executor;
pub mod hal;
pub mod live;
pub mod nodes;
pub mod safety;
pub mod slot;

pub use error::RuntimeError;
