//! zenoh session settings (`[zenoh]` in launch files) and their translation to a zenoh config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::TransportError;

/// How a session joins the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionMode {
    /// Talks directly to other peers (the default; what launches use).
    #[default]
    Peer,
    /// Connects to a router only.
    Client,
    /// A zenoh router.
    Router,
}

/// User/password authentication of this session (zenoh `transport/auth/usrpwd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The user this session presents to others.
    pub user: String,
    /// Its password.
    pub password: String,
    /// `user:password` lines this session accepts from others (one per line). Without it the
    /// session accepts any peer (it only presents its own credentials).
    #[serde(default)]
    pub dictionary_file: Option<PathBuf>,
}

/// Who may publish what, enforced by this session on what it receives (zenoh access control,
/// default deny). Usernames come from [`AuthConfig`] authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// Users allowed everything under `bicameral/**` (nodes: planner, action node, sim/robot).
    pub controllers: Vec<String>,
    /// Users allowed to read everything and to publish only e-stops and instructions.
    #[serde(default)]
    pub operators: Vec<String>,
}

/// A session's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZenohConfig {
    /// Peer, client or router.
    #[serde(default)]
    pub mode: SessionMode,
    /// Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Endpoints to connect to.
    #[serde(default)]
    pub connect: Vec<String>,
    /// UDP multicast scouting (off by default: peers find each other through `listen` and
    /// `connect` only).
    #[serde(default)]
    pub multicast_scouting: bool,
    /// Authentication.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Access control (needs `auth` with a dictionary to know who is who).
    #[serde(default)]
    pub acl: Option<AclConfig>,
}

impl Default for ZenohConfig {
    fn default() -> Self {
        ZenohConfig {
            mode: SessionMode::Peer,
            listen: Vec::new(),
            connect: Vec::new(),
            multicast_scouting: false,
            auth: None,
            acl: None,
        }
    }
}

/// The port launches listen on by default.
pub const DEFAULT_PORT: u16 = 7447;

impl ZenohConfig {
    /// A peer listening on `tcp/127.0.0.1:{port}` (what a launch uses by default).
    pub fn loopback_listener(port: u16) -> Self {
        ZenohConfig {
            listen: vec![format!("tcp/127.0.0.1:{port}")],
            ..Default::default()
        }
    }

    /// A peer connecting to `tcp/127.0.0.1:{port}`.
    pub fn loopback_client(port: u16) -> Self {
        ZenohConfig {
            connect: vec![format!("tcp/127.0.0.1:{port}")],
            ..Default::default()
        }
    }

    /// Checks the settings; `source` names the file in errors.
    pub fn validate(&self, source: &str) -> Result<(), TransportError> {
        let bad = |field: &str, problem: String| TransportError::Config {
            file: source.to_string(),
            field: format!("zenoh.{field}"),
            problem,
        };
        for (field, eps) in [("listen", &self.listen), ("connect", &self.connect)] {
            for ep in eps {
                if !ep.starts_with("tcp/") {
                    return Err(bad(
                        field,
                        format!("`{ep}`: only tcp/<host>:<port> endpoints are built in"),
                    ));
                }
            }
        }
        if let Some(auth) = &self.auth {
            if auth.user.is_empty() || auth.password.is_empty() {
                return Err(bad("auth", "user and password must be non-empty".into()));
            }
            if let Some(d) = &auth.dictionary_file
                && !d.is_file()
            {
                return Err(bad(
                    "auth.dictionary_file",
                    format!("{} does not exist", d.display()),
                ));
            }
        }
        if self.acl.is_some()
            && self
                .auth
                .as_ref()
                .is_none_or(|a| a.dictionary_file.is_none())
        {
            return Err(bad(
                "acl",
                "access control needs auth.dictionary_file (usernames identify peers)".into(),
            ));
        }
        Ok(())
    }

    /// The zenoh configuration.
    pub fn to_zenoh(&self) -> Result<zenoh::Config, TransportError> {
        self.validate("zenoh config")?;
        let mut c = zenoh::Config::default();
        let mode = match self.mode {
            SessionMode::Peer => "peer",
            SessionMode::Client => "client",
            SessionMode::Router => "router",
        };
        let mut set = |key: &str, value: Value| {
            c.insert_json5(key, &value.to_string())
                .map_err(|e| TransportError::Zenoh(format!("config `{key}`: {e}")))
        };
        set("mode", json!(mode))?;
        set("listen/endpoints", json!(self.listen))?;
        set("connect/endpoints", json!(self.connect))?;
        set("scouting/multicast/enabled", json!(self.multicast_scouting))?;
        if let Some(auth) = &self.auth {
            let mut usrpwd = json!({"user": auth.user, "password": auth.password});
            if let Some(d) = &auth.dictionary_file {
                usrpwd["dictionary_file"] = json!(d.display().to_string());
            }
            set("transport/auth/usrpwd", usrpwd)?;
        }
        if let Some(acl) = &self.acl {
            set("access_control", acl_json(acl))?;
        }
        Ok(c)
    }
}

/// Every zenoh message kind ACL rules can name.
const ALL_MESSAGES: [&str; 9] = [
    "put",
    "delete",
    "declare_subscriber",
    "query",
    "declare_queryable",
    "reply",
    "liveliness_token",
    "declare_liveliness_subscriber",
    "liveliness_query",
];

fn acl_json(acl: &AclConfig) -> Value {
    let read: Vec<&str> = ALL_MESSAGES
        .iter()
        .copied()
        .filter(|m| *m != "put" && *m != "delete")
        .collect();
    let mut rules = vec![json!({
        "id": "controllers_all",
        "permission": "allow",
        "flows": ["ingress", "egress"],
        "messages": ALL_MESSAGES,
        "key_exprs": ["bicameral/**"],
    })];
    let mut policies = vec![json!({"rules": ["controllers_all"], "subjects": ["controllers"]})];
    let mut subjects = vec![json!({"id": "controllers", "usernames": acl.controllers})];
    if !acl.operators.is_empty() {
        rules.push(json!({
            "id": "operators_read",
            "permission": "allow",
            "flows": ["ingress", "egress"],
            "messages": read,
            "key_exprs": ["bicameral/**"],
        }));
        rules.push(json!({
            "id": "operators_receive",
            "permission": "allow",
            "flows": ["egress"],
            "messages": ["put", "delete"],
            "key_exprs": ["bicameral/**"],
        }));
        rules.push(json!({
            "id": "operators_command",
            "permission": "allow",
            "flows": ["ingress"],
            "messages": ["put"],
            "key_exprs": ["bicameral/*/safety/estop", "bicameral/*/task/instruction"],
        }));
        subjects.push(json!({"id": "operators", "usernames": acl.operators}));
        policies.push(json!({
            "rules": ["operators_read", "operators_receive", "operators_command"],
            "subjects": ["operators"],
        }));
    }
    json!({
        "enabled": true,
        "default_permission": "deny",
        "rules": rules,
        "subjects": subjects,
        "policies": policies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_translate_and_bad_ones_are_named() {
        let c = ZenohConfig::loopback_listener(7447);
        c.to_zenoh().unwrap();
        let bad = ZenohConfig {
            listen: vec!["udp/0.0.0.0:1".into()],
            ..Default::default()
        };
        assert!(
            bad.validate("launch/x.toml")
                .unwrap_err()
                .to_string()
                .contains("zenoh.listen")
        );
        let bad = ZenohConfig {
            acl: Some(AclConfig {
                controllers: vec!["a".into()],
                operators: vec![],
            }),
            ..Default::default()
        };
        assert!(
            bad.validate("f")
                .unwrap_err()
                .to_string()
                .contains("dictionary_file")
        );
        let toml_err = toml_like_roundtrip();
        assert!(toml_err.contains("unknown field"), "{toml_err}");
    }

    fn toml_like_roundtrip() -> String {
        serde_json::from_str::<ZenohConfig>(r#"{"mode": "peer", "lisen": []}"#)
            .unwrap_err()
            .to_string()
    }
}
