//! A full disk (DESIGN §6, issue "operator's life cycle"): a 4-node
//! `devnet` whose data dirs live on a small tmpfs, filled up under load.
//! Every node stops at its next log segment with one `fatal` line naming
//! the file and the operation (`fallocate … No space left on device`);
//! once space is freed the nodes restart on their data dirs, restore every
//! record they had made durable, decide new rounds together, and their
//! logs agree with no seat having signed two anchors at one seq.
//!
//! Needs to mount a tmpfs (root); elsewhere it says why and skips.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{engine, Reaper};

/// Unmounts the tmpfs at the end, after killing what still runs on it.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        drop(Reaper(self.0.clone()));
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn a_full_disk_stops_the_nodes_cleanly_and_they_restart_once_space_is_freed() {
    let temp = tempfile::tempdir().unwrap();
    let mnt = temp.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mnt)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        println!("skipping: cannot mount a tmpfs here (needs root) to fill a disk");
        return;
    }
    let _mount = Mount(mnt.clone());
    let dir = mnt.join("devnet");
    let mut devnet = engine()
        .args([
            "devnet",
            "--miners",
            "0",
            "--nodes",
            "4",
            "--shards",
            "1",
            "--seconds",
            "40",
            "--load",
            "600",
            "--min-rounds",
            "5",
            "--base-port",
            "7900",
            "--segment-bytes",
            "2097152",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("devnet starts");
    // Once the load runs, fill the disk but for 1 MiB: the next segment of
    // every node (2 MiB) cannot be allocated.
    let stdout = devnet.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let t = line
            .split_whitespace()
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        seen.push(line);
        if t.is_some_and(|t| t >= 2) {
            break;
        }
    }
    assert!(
        seen.iter()
            .any(|l| l.split_whitespace().next() == Some("2")),
        "the load never ran:\n{}",
        seen.join("\n")
    );
    let df = Command::new("df")
        .args(["-B1", "--output=avail"])
        .arg(&mnt)
        .output()
        .unwrap();
    let avail: u64 = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap();
    let filler = mnt.join("filler");
    let fill = Command::new("fallocate")
        .args(["-l", &avail.saturating_sub(1 << 20).to_string()])
        .arg(&filler)
        .status()
        .unwrap();
    assert!(fill.success(), "fallocate the filler");
    let rest: Vec<String> = lines.collect();
    let status = devnet.wait().unwrap();
    assert!(
        !status.success(),
        "the devnet went on with a full disk: {}",
        rest.join("\n")
    );
    // Every node stopped with one line naming the file and the operation.
    let nodes: Vec<PathBuf> = (0..4).map(|n| dir.join(format!("node-{n}"))).collect();
    let mut stopped = 0;
    for node in &nodes {
        let fatal: Vec<Value> = lines_of(&node.join("node.log"))
            .into_iter()
            .filter(|v| v["type"] == "fatal")
            .collect();
        if let Some(line) = fatal.first() {
            let error = line["error"].as_str().unwrap();
            assert!(
                error.contains("fallocate")
                    && error.contains("No space left on device")
                    && error.contains(".seg"),
                "{error}"
            );
            assert_eq!(fatal.len(), 1);
            stopped += 1;
        }
    }
    assert!(stopped >= 1, "no node met the full disk");
    // Space freed: every node restarts on its data dir and the network
    // decides new rounds.
    std::fs::remove_file(&filler).unwrap();
    let before: Vec<u64> = nodes
        .iter()
        .map(|n| {
            pc_engine::tools::agreement::logged_rounds(n, 0)
                .unwrap()
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
        })
        .collect();
    let mut restarted = Vec::new();
    for node in &nodes {
        let log = std::fs::File::create(node.join("restart.log")).unwrap();
        restarted.push(
            engine()
                .args(["node", "--seconds", "12", "--metrics-addr", "off"])
                .arg("--config")
                .arg(node.join("node.toml"))
                .arg("--genesis")
                .arg(dir.join("genesis.toml"))
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }
    // A little load so that rounds are decided after the restart.
    let genesis = dir.join("genesis.toml");
    // A recipient that is a key: `tx send` refuses one that is not.
    let recipient = pc_codec::to_hex(
        &pc_codec::SigningKey::from_secret_bytes(&[0x11; 32])
            .unwrap()
            .public_key(),
    );
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut sent = 0u32;
    while Instant::now() < deadline && sent < 20 {
        let _ = engine()
            .args(["tx", "send", "--node", "127.0.0.1:7900", "--amount", "1"])
            .arg("--genesis")
            .arg(&genesis)
            .arg("--key")
            .arg(dir.join("keys/client-00.key"))
            .args(["--to", &recipient, "--genesis-output"])
            .arg((900 + sent).to_string())
            .output();
        sent += 1;
    }
    for mut child in restarted {
        let status = child.wait().unwrap();
        assert!(status.success(), "a restarted node failed: {status:?}");
    }
    for (n, node) in nodes.iter().enumerate() {
        let log = lines_of(&node.join("restart.log"));
        assert!(
            log.iter().all(|v| v["type"] != "fatal"),
            "node {n} failed after the restart"
        );
        let restored = log
            .iter()
            .find(|v| v["type"] == "shard_restored")
            .unwrap_or_else(|| panic!("node {n}: no shard_restored line"));
        assert_eq!(
            restored["records"], restored["durable_records"],
            "node {n}: every record it kept is durable"
        );
    }
    let after = pc_engine::tools::agreement::compare_shard(&nodes, 0)
        .unwrap_or_else(|d| panic!("the restarted nodes disagree: {d:?}"));
    let common = after.common_round.unwrap();
    assert!(
        common > *before.iter().max().unwrap(),
        "no round decided after the restart: {common} vs {before:?}"
    );
    let scanned = pc_engine::tools::agreement::scan_for_equivocation(&nodes, 0)
        .unwrap_or_else(|d| panic!("a seat signed twice: {d:?}"));
    assert!(scanned > 0);
    println!(
        "{stopped} of 4 nodes stopped on the full disk; after the restart they agree through round {common} (highest before: {}), {scanned} logged anchors scanned",
        before.iter().max().unwrap()
    );
}
