//! Snapshots and pruning under crashes (DESIGN §6.1, the operator's life
//! cycle): a 4-node `devnet` under load whose nodes snapshot and prune
//! their logs, with the victim killed at each injected point of a
//! snapshot or pruning write (`PC_CRASH_AT`: after the temp file is
//! written, after the rename before the directory fsync, between two
//! segment deletions). Every restart succeeds, every transfer the nodes
//! took is finalized, no seat signs two anchors at one seq, and every
//! node's replay (from its snapshot) ends at its logged state root.
//!
//! The long version — a SIGKILL loop of `PC_KILL_LOOP` kills (at least
//! 20) at random moments — runs when that variable is set.
//!
//! A node's data dir with a flipped byte in its newest snapshot starts
//! from the older one, naming the bad file; a snapshot of another shard is
//! refused by name.

use std::path::Path;
use std::process::Output;

mod common;
use common::{engine, text, Reaper};

/// One devnet at a time: they share the machine's two cores.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn devnet(dir: &Path, base_port: u16, extra: &[&str]) -> Output {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let _reaper = Reaper(dir.to_path_buf());
    let port = base_port.to_string();
    let mut args = vec![
        "devnet",
        "--nodes",
        "4",
        "--base-port",
        &port,
        "--segment-bytes",
        "2097152",
        "--miners",
        "0",
        "--data-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    engine().args(&args).output().expect("devnet runs")
}

/// What every run must show: agreement, no double seq, every transfer
/// the nodes took finalized, replays ending at the logged roots.
fn assert_whole(output: &Output, what: &str, replays: usize, min_from_snapshots: usize) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{what}: {}", text(output));
    assert!(stdout.contains("AGREE"), "{what}: {}", text(output));
    assert!(
        stdout.contains("no seat signed two anchors at one seq"),
        "{what}: {}",
        text(output)
    );
    assert!(
        stdout.contains("(0 not finalized within"),
        "{what}: something the nodes took was lost: {}",
        text(output)
    );
    let from_snapshots = stdout
        .lines()
        .filter(|l| l.contains("replay from its snapshot of round"))
        .count();
    let from_genesis = stdout
        .lines()
        .filter(|l| l.contains(": replay reproduces "))
        .count();
    assert_eq!(
        from_snapshots + from_genesis,
        replays,
        "{what}: every node's every shard replays: {}",
        text(output)
    );
    assert!(
        from_snapshots >= min_from_snapshots,
        "{what}: pruned logs replay from their snapshots: {}",
        text(output)
    );
}

#[test]
fn a_kill_at_every_point_of_a_snapshot_or_prune_write_leaves_a_node_that_restarts() {
    let temp = tempfile::tempdir().unwrap();
    // A snapshot every 6 MiB of log: at the first one the two 2 MiB
    // segments wholly below it go at once, so the kill between two
    // deletions is reached.
    for (n, point) in ["snapshot-temp", "snapshot-rename", "prune-between"]
        .into_iter()
        .enumerate()
    {
        let dir = temp.path().join(point);
        let output = devnet(
            &dir,
            19_100 + 100 * n as u16,
            &[
                "--shards",
                "1",
                "--load",
                "2000",
                "--seconds",
                "20",
                "--snapshot-interval-rounds",
                "0",
                "--snapshot-interval-bytes",
                "6291456",
                "--retain-rounds",
                "50",
                "--victim",
                "3",
                "--crash-env",
                point,
            ],
        );
        assert_whole(&output, point, 4, 1);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("devnet: node 3 died"),
            "{point}: the victim was not killed there: {}",
            text(&output)
        );
        let log = std::fs::read_to_string(dir.join("node-3").join("node.log")).unwrap();
        assert!(
            log.contains(&format!("PC_CRASH_AT={point}: aborting here")),
            "{point}: {log}"
        );
        // The restart after the kill restored from the log (and a
        // snapshot, once one was written).
        assert!(
            log.matches("\"type\":\"shard_restored\"").count() >= 2,
            "{point}: {log}"
        );
    }
}

#[test]
fn a_sigkill_loop_under_load_loses_nothing() {
    let Some(kills) = std::env::var("PC_KILL_LOOP")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        println!("skipping: set PC_KILL_LOOP=N (at least 20) for the SIGKILL loop");
        return;
    };
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("loop");
    let seconds = (3 * kills).max(60).to_string();
    let kills = kills.to_string();
    let output = devnet(
        &dir,
        19_400,
        &[
            "--shards",
            "1",
            "--load",
            "1000",
            "--seconds",
            &seconds,
            "--snapshot-interval-rounds",
            "200",
            "--retain-rounds",
            "50",
            "--victim",
            "3",
            "--kill-loop",
            &kills,
        ],
    );
    assert_whole(&output, "kill loop", 4, 1);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("(loop)").count().to_string(),
        kills,
        "{}",
        text(&output)
    );
}

#[test]
fn a_damaged_newest_snapshot_is_named_and_the_older_one_used_and_a_foreign_one_refused() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("net");
    let output = devnet(
        &dir,
        19_600,
        &[
            "--shards",
            "2",
            "--load",
            "800",
            "--seconds",
            "12",
            "--snapshot-interval-rounds",
            "60",
        ],
    );
    // The logs are whole (the default retention): replays from genesis.
    assert_whole(&output, "snapshots", 8, 0);
    let node = dir.join("node-0");
    let snapshots = |shard: &str| node.join(shard).join("snapshots");
    let mut files: Vec<_> = std::fs::read_dir(snapshots("shard-000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "two snapshots kept: {files:?}");
    let (older, newest) = (files[0].clone(), files[1].clone());
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&newest, &bytes).unwrap();
    // Shard 0's older snapshot, named as shard 1's newest.
    let foreign = snapshots("shard-001").join("snap-00000000000099999999.rkyv");
    std::fs::copy(&older, &foreign).unwrap();
    let restart = engine()
        .args(["restart-time", "--data-dir", node.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(restart.status.success(), "{}", text(&restart));
    let lines = String::from_utf8_lossy(&restart.stdout).to_string()
        + &String::from_utf8_lossy(&restart.stderr);
    let line_of = |kind: &str, file: &Path| {
        lines
            .lines()
            .find(|l| l.contains(kind) && l.contains(file.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no {kind} line naming {}: {lines}", file.display()))
            .to_string()
    };
    let damaged = line_of("\"type\":\"snapshot_skipped\"", &newest);
    assert!(damaged.contains("\"shard\":0"), "{damaged}");
    let restored = line_of("\"type\":\"shard_restored\"", &older);
    assert!(
        restored.contains("\"shard\":0"),
        "the older snapshot is used: {restored}"
    );
    let refused = line_of("\"type\":\"snapshot_skipped\"", &foreign);
    assert!(
        refused.contains("snapshot of shard 0, this node's is 1"),
        "{refused}"
    );
}

#[test]
fn a_node_restored_from_an_old_backup_resumes_its_seat_without_signing_a_used_seq() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("restore");
    // Backed up 4 s in, restored over its data dir 12 s in: its log ends
    // 8 s before its last own anchors, which its peers hold.
    let output = devnet(
        &dir,
        19_700,
        &[
            "--shards",
            "1",
            "--load",
            "800",
            "--seconds",
            "20",
            "--victim",
            "1",
            "--restore-victim",
            "4:12",
        ],
    );
    assert_whole(&output, "restore", 4, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("devnet: restored node 1 from its backup"),
        "{}",
        text(&output)
    );
    let log = std::fs::read_to_string(dir.join("node-1").join("node.log")).unwrap();
    assert!(
        log.contains("--resume-seat: each seat signs again only after"),
        "{log}"
    );
}

#[test]
fn a_node_whose_peers_pruned_what_it_needs_is_told_pruned_and_says_so() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("late");
    // The peers prune their first segments ~15 s in; node 3 starts empty
    // 18 s in and asks them for round 0 on. Without state sync (not built)
    // it cannot catch up: the run fails on it, and its log says why.
    let output = devnet(
        &dir,
        19_800,
        &[
            "--shards",
            "1",
            "--load",
            "2000",
            "--seconds",
            "26",
            "--snapshot-interval-rounds",
            "0",
            "--snapshot-interval-bytes",
            "6291456",
            "--retain-rounds",
            "50",
            "--victim",
            "3",
            "--late-by",
            "18",
        ],
    );
    assert!(!output.status.success(), "{}", text(&output));
    let log = std::fs::read_to_string(dir.join("node-3").join("node.log")).unwrap();
    let pruned: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "peer_pruned")
        .collect();
    assert!(!pruned.is_empty(), "no peer_pruned line: {log}");
    assert!(
        pruned
            .iter()
            .all(|v| v["oldest_round"].as_u64().is_some_and(|r| r > 0)
                && v["snapshot_round"].as_u64().is_some()),
        "{pruned:?}"
    );
    let peers: std::collections::BTreeSet<u64> =
        pruned.iter().filter_map(|v| v["peer"].as_u64()).collect();
    assert!(
        peers.len() >= 2,
        "it asked other peers after a Pruned: {peers:?}"
    );
}
