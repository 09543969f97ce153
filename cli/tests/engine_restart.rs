//! The engine as the real binary: two shards on two cores over a small
//! signed workload (all input entering on the first core and handed to the
//! second over its SPSC ring), stopped with SIGTERM, restarted on the same data dir;
//! nothing made durable before the stop is lost, the restarted run
//! finishes the workload, and replay of the data dir reproduces every
//! shard's finalized rounds and state root (byte-identically, twice).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

const EVENTS_PER_SHARD: &str = "4096";

fn engine(cache: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_phantom-engine"));
    command.env("PHANTOM_BENCH_CACHE", cache);
    command
}

fn bench_args(data_dir: &Path) -> Vec<String> {
    [
        "bench",
        "--shards",
        "2",
        "--committee",
        "4",
        "--tx-per-anchor",
        "4",
        "--events-per-shard",
        EVENTS_PER_SHARD,
        "--fsync",
        "always",
        "--single-intake",
        "--json",
        "--data-dir",
        data_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Longest a run of the engine may take here before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// SIGKILLs a child that outlives [`RUN_LIMIT`], so a hung engine fails the
/// test (it exits by a signal) instead of hanging the whole run; disarmed
/// when dropped.
struct Watchdog(Arc<AtomicBool>);

impl Watchdog {
    fn arm(child: &Child) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let pid = child.id() as i32;
        let flag = done.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < RUN_LIMIT {
                if flag.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !flag.load(Ordering::Acquire) {
                eprintln!("engine pid {pid} ran past {RUN_LIMIT:?}: killing it");
                // SAFETY: kill(2) on our own child, not yet reaped (the
                // guard is dropped only after waiting for it).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        });
        Watchdog(done)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The JSON lines of `stderr` of one type, by shard.
fn lines_of_type(stderr: &str, kind: &str) -> Vec<Value> {
    let mut lines: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| value["type"] == kind)
        .collect();
    lines.sort_by_key(|value| value["shard"].as_u64());
    lines
}

/// Waits until the child reports `engine_started` on stderr, then sends
/// SIGTERM; returns the child's output (stderr re-assembled).
fn stop_after_start(mut child: Child) -> (Output, String) {
    let _watchdog = Watchdog::arm(&child);
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).unwrap();
        assert!(read > 0, "engine exited before it started: {seen}");
        seen += &line;
        if line.contains(r#""type":"engine_started""#) {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: plain kill(2) on our own child's pid.
    let status = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(status, 0);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    seen += &rest;
    (child.wait_with_output().unwrap(), seen)
}

#[test]
fn sigterm_restart_and_replay_lose_nothing_durable_and_agree() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = dir.path().join("data");

    // Run 1, stopped by SIGTERM: exit 0, every log made durable.
    let child = engine(&cache)
        .args(bench_args(&data))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (first, first_stderr) = stop_after_start(child);
    assert!(first.status.success(), "run 1 failed: {first_stderr}");
    let stopped = lines_of_type(&first_stderr, "shard_stopped");
    assert_eq!(stopped.len(), 2, "{first_stderr}");
    eprintln!("run 1 stopped: {stopped:?}");
    for shard in &stopped {
        assert_eq!(
            shard["durable_records"], shard["log_records"],
            "graceful stop makes the whole log durable: {shard}"
        );
    }
    assert!(
        data.join("genesis.toml").is_file(),
        "data dir keeps its genesis"
    );

    // Run 2 on the same data dir: recovery finds every durable record.
    let child = engine(&cache)
        .args(bench_args(&data))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = Watchdog::arm(&child);
    let second = child.wait_with_output().unwrap();
    drop(watchdog);
    let second_stderr = String::from_utf8_lossy(&second.stderr).to_string();
    assert!(second.status.success(), "run 2 failed: {second_stderr}");
    let restored = lines_of_type(&second_stderr, "shard_restored");
    assert_eq!(restored.len(), 2, "{second_stderr}");
    for (before, after) in stopped.iter().zip(&restored) {
        assert!(
            after["records"].as_u64() >= before["durable_records"].as_u64(),
            "acknowledged records lost: before {before}, after {after}"
        );
        assert_eq!(
            after["anchors"],
            before["restored_anchors"].as_u64().unwrap() + before["anchors"].as_u64().unwrap()
        );
    }
    let result: Value = serde_json::from_slice(&second.stdout).unwrap();
    let shards = result["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    assert_ne!(shards[0]["core"], shards[1]["core"], "one shard per core");

    // Replay: every transfer of the workload finalized, the same roots, twice the same bytes.
    let replay = |json: bool| {
        let mut command = engine(&cache);
        command.args(["replay", "--data-dir", data.to_str().unwrap()]);
        if json {
            command.arg("--json");
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    };
    let replayed: Value = serde_json::from_slice(&replay(true)).unwrap();
    for (bench_shard, replayed_shard) in shards.iter().zip(replayed["shards"].as_array().unwrap()) {
        assert_eq!(
            replayed_shard["finalized_events"].as_u64().unwrap(),
            EVENTS_PER_SHARD.parse::<u64>().unwrap(),
            "every transfer finalized once across the restart"
        );
        assert_eq!(replayed_shard["state_root"], bench_shard["state_root"]);
    }
    assert_eq!(
        replay(false),
        replay(false),
        "replay output is byte-identical"
    );
}
