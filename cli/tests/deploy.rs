//! The deployment files: the systemd unit verifies with
//! `systemd-analyze verify` (Debian package `systemd`; skipped with a
//! reason where it is not installed), pointed at the binary under test.

use std::path::Path;
use std::process::Command;

#[test]
fn the_systemd_unit_verifies() {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("skipping: systemd-analyze (Debian package `systemd`) is not installed");
        return;
    }
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/phantom-engine.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/phantom-engine node "));
    for key in [
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "Restart=on-failure",
        "User=phantom",
        "TimeoutStopSec=",
    ] {
        assert!(text.contains(key), "{key} in {}", unit.display());
    }
    // systemd checks that ExecStart's binary exists: the one under test.
    let temp = tempfile::tempdir().unwrap();
    let copy = temp.path().join("phantom-engine.service");
    std::fs::write(
        &copy,
        text.replace(
            "/usr/local/bin/phantom-engine",
            env!("CARGO_BIN_EXE_phantom-engine"),
        ),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "systemd-analyze verify: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
