//! Key expressions: one robot = one prefix `bicameral/{robot}/`.
//!
//! ```text
//! bicameral/{robot}/obs/joint_state        JointState    (robot → all, control rate)
//! bicameral/{robot}/obs/camera/{name}      CameraFrame   (robot → S2, camera rate)
//! bicameral/{robot}/task/instruction       Instruction   (operator → S2)
//! bicameral/{robot}/s2/plan                Plan          (S2 → S1, latest value)
//! bicameral/{robot}/s1/action_chunk        ActionChunk   (S1 → executor, latest value)
//! bicameral/{robot}/cmd/joint              JointCommand  (executor → robot)
//! bicameral/{robot}/safety/estop           EStop         (operators → executor)
//! bicameral/{robot}/safety/event           SafetyEvent   (executor → all)
//! bicameral/{robot}/status/{node}          NodeStatus    (each node, ~1 Hz)
//! bicameral/{robot}/alive/{node}           liveliness token per node
//! ```

use crate::MsgError;

/// Checks that a robot id or node/camera name is usable as one key-expression chunk:
/// non-empty, at most 64 bytes of `[A-Za-z0-9_-]`.
pub fn check_chunk(field: &'static str, value: &str) -> Result<(), MsgError> {
    if value.is_empty() || value.len() > 64 {
        return Err(MsgError::invalid(
            field,
            format!("`{value}` must be 1-64 characters"),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(MsgError::invalid(
            field,
            format!("`{value}` contains `{c}` (allowed: letters, digits, `_`, `-`)"),
        ));
    }
    Ok(())
}

/// The key expressions of one robot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    robot: String,
    prefix: String,
}

impl Keys {
    /// Keys for robot `robot` (checked with [`check_chunk`]).
    pub fn new(robot: &str) -> Result<Self, MsgError> {
        check_chunk("robot", robot)?;
        Ok(Keys {
            robot: robot.to_string(),
            prefix: format!("bicameral/{robot}"),
        })
    }

    /// The robot id.
    pub fn robot(&self) -> &str {
        &self.robot
    }

    /// `bicameral/{robot}` (the prefix every topic of this robot starts with).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Joint state topic.
    pub fn joint_state(&self) -> String {
        format!("{}/obs/joint_state", self.prefix)
    }

    /// Camera frames of camera `name`.
    pub fn camera(&self, name: &str) -> String {
        format!("{}/obs/camera/{name}", self.prefix)
    }

    /// All cameras (`*` wildcard).
    pub fn cameras(&self) -> String {
        format!("{}/obs/camera/*", self.prefix)
    }

    /// Task instructions.
    pub fn instruction(&self) -> String {
        format!("{}/task/instruction", self.prefix)
    }

    /// System 2's plans.
    pub fn plan(&self) -> String {
        format!("{}/s2/plan", self.prefix)
    }

    /// System 1's action chunks.
    pub fn action_chunk(&self) -> String {
        format!("{}/s1/action_chunk", self.prefix)
    }

    /// The executor's joint commands.
    pub fn joint_command(&self) -> String {
        format!("{}/cmd/joint", self.prefix)
    }

    /// Emergency stop.
    pub fn estop(&self) -> String {
        format!("{}/safety/estop", self.prefix)
    }

    /// Safety events.
    pub fn safety_event(&self) -> String {
        format!("{}/safety/event", self.prefix)
    }

    /// Status of node `node`.
    pub fn status(&self, node: &str) -> String {
        format!("{}/status/{node}", self.prefix)
    }

    /// Liveliness token of node `node`.
    pub fn alive(&self, node: &str) -> String {
        format!("{}/alive/{node}", self.prefix)
    }

    /// All liveliness tokens of this robot.
    pub fn alive_all(&self) -> String {
        format!("{}/alive/*", self.prefix)
    }

    /// Every topic of this robot (`bicameral/{robot}/**`).
    pub fn all(&self) -> String {
        format!("{}/**", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robot_ids_are_checked() {
        assert!(Keys::new("bc_humanoid-1").is_ok());
        for bad in ["", "a/b", "a*", "x$y", "a b", &"r".repeat(65)] {
            let err = Keys::new(bad).unwrap_err().to_string();
            assert!(err.contains("robot"), "{bad}: {err}");
        }
        let k = Keys::new("r1").unwrap();
        assert_eq!(k.action_chunk(), "bicameral/r1/s1/action_chunk");
        assert_eq!(k.camera("ego_view"), "bicameral/r1/obs/camera/ego_view");
    }
}
