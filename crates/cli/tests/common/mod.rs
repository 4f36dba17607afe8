//! Helpers shared by the CLI tests: scratch directories and running the binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// A fresh scratch directory for test `name` (per process).
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bicameral-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `bicameral` binary with `args` (logging at warn).
pub fn bicameral(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bicameral"))
        .env("BICAMERAL_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

/// Asserts success (showing stderr otherwise) and returns stdout.
pub fn ok(res: &Output, what: &str) -> String {
    assert!(
        res.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8_lossy(&res.stdout).into_owned()
}

/// A loopback TCP port free right now (for a zenoh listener).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
