//! The robot hardware abstraction: where the executor's commands go and where measured joint
//! positions come from. Implementations: [`LoopbackEcho`] (a device that reports its last
//! command as its state; for tests and dry runs), and the simulated robot over zenoh, which
//! needs no object here (its states arrive on the joint-state topic and it reads the command
//! topic; see [`crate::live::spawn_executor_bridge`]).

use crate::RuntimeError;
use crate::executor::Command;

/// A robot's motor interface, in the embodiment's action order.
pub trait RobotHal: Send {
    /// Device name (for logs).
    fn name(&self) -> &str;

    /// Number of joints.
    fn dim(&self) -> usize;

    /// Writes the newest measured positions (rad, m) into `q`; false if nothing new.
    fn read_state(&mut self, q: &mut [f64]) -> Result<bool, RuntimeError>;

    /// Sends one command to the motors.
    fn write_command(&mut self, command: &Command) -> Result<(), RuntimeError>;
}

/// A device whose measured position is exactly its last commanded position.
#[derive(Debug, Clone)]
pub struct LoopbackEcho {
    q: Vec<f64>,
    fresh: bool,
}

impl LoopbackEcho {
    /// Starts at `initial` (rad, m).
    pub fn new(initial: Vec<f64>) -> Self {
        LoopbackEcho {
            q: initial,
            fresh: true,
        }
    }
}

impl RobotHal for LoopbackEcho {
    fn name(&self) -> &str {
        "loopback-echo"
    }

    fn dim(&self) -> usize {
        self.q.len()
    }

    fn read_state(&mut self, q: &mut [f64]) -> Result<bool, RuntimeError> {
        if q.len() != self.q.len() {
            return Err(RuntimeError::Node(format!(
                "loopback-echo has {} joints, asked for {}",
                self.q.len(),
                q.len()
            )));
        }
        let fresh = std::mem::replace(&mut self.fresh, false);
        q.copy_from_slice(&self.q);
        Ok(fresh)
    }

    fn write_command(&mut self, command: &Command) -> Result<(), RuntimeError> {
        if command.position.len() != self.q.len() {
            return Err(RuntimeError::Node(format!(
                "command has {} positions, loopback-echo has {} joints",
                command.position.len(),
                self.q.len()
            )));
        }
        self.q.copy_from_slice(&command.position);
        self.fresh = true;
        Ok(())
    }
}
