//! Helpers the process tests share: the binary under test, an output for
//! a failure message, and a guard that kills what runs on a test's files.
#![allow(dead_code)] // each test file uses what it needs

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `phantom-engine` binary under test.
pub fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phantom-engine"))
}

/// A finished command's status and output, for a failure message.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Kills (SIGKILL) every process whose command line names this path when
/// dropped: a devnet that dies half-way leaves its node processes running.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.0.as_os_str())
            .status();
    }
}
