//! Observability as an operator meets it (DESIGN §9):
//!
//! * a node under load (a 4-node `devnet`) serves every metric family on
//!   `/metrics`; two scrapes a few seconds apart show the counters the load
//!   drives growing, the verify-time share above zero, and
//!   `pc_shard_finalized_events_total` agreeing with the node's status
//!   line of the same moment; `GET /` is 404, `POST /metrics` 405 and a
//!   1 MiB request line is refused while the node keeps serving;
//!   `promtool check metrics` passes on the scrape, and every metric an
//!   alert rule or a dashboard panel names is in it;
//! * `promtool check rules` passes on `deploy/prometheus/alerts.yml` and
//!   `promtool test rules` shows the "no round decided" alert firing on a
//!   series that stops;
//! * `cache-bench` on a `bench --keep` data dir: the counts the cache's
//!   capacity implies, and one clear line for a bad data dir;
//! * `health` passes while the shards finalize and fails once the quorum
//!   stops;
//! * every line the node writes is a JSON object.
//!
//! promtool comes from Debian's `prometheus` package (`.ci/run` installs
//! it and sets `PC_PROMTOOL=require`); without it the promtool checks say
//! why and are skipped.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pc_engine::metrics::scrape::{self, Scrape};
use serde_json::Value;

mod common;
use common::{engine, text, Reaper};

/// One test of this file at a time (each starts processes).
static ONE: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    ONE.lock().unwrap_or_else(|p| p.into_inner())
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// promtool, or `None` (with the reason printed) when it is not installed
/// and not required.
fn promtool() -> Option<&'static str> {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("promtool");
    }
    assert!(
        std::env::var("PC_PROMTOOL").as_deref() != Ok("require"),
        "PC_PROMTOOL=require but promtool is not on PATH"
    );
    println!(
        "skipping the promtool checks: promtool (Debian package `prometheus`) is not installed; .ci/run installs it"
    );
    None
}

/// Every family the node serves, by the series names a scrape shows.
const FAMILIES: &[&str] = &[
    "pc_p2p_inbound_messages_total",
    "pc_p2p_inbound_bytes_total",
    "pc_p2p_outbound_messages_total",
    "pc_p2p_outbound_bytes_total",
    "pc_p2p_dropped_messages_total",
    "pc_p2p_send_errors_total",
    "pc_p2p_violations_total",
    "pc_p2p_bans_total",
    "pc_p2p_handshake_failures_total",
    "pc_p2p_connected_peers",
    "pc_p2p_connections",
    "pc_p2p_banned_peers",
    "pc_p2p_receive_wait_seconds_bucket",
    "pc_p2p_receive_wait_seconds_count",
    "pc_p2p_round_trip_seconds_bucket",
    "pc_node_persist_successes_total",
    "pc_node_persist_failures_total",
    "pc_node_observer_lag_rounds",
    "pc_node_cache_headers_hits_total",
    "pc_node_cache_headers_misses_total",
    "pc_node_cache_payloads_hits_total",
    "pc_node_cache_payloads_misses_total",
    "pc_node_store_header_read_seconds_bucket",
    "pc_node_store_header_read_seconds_sum",
    "pc_node_store_header_read_seconds_count",
    "pc_node_store_payload_read_seconds_bucket",
    "pc_node_store_payload_read_seconds_sum",
    "pc_node_store_payload_read_seconds_count",
    "pc_node_inbox_frames",
    "pc_shard_anchors_accepted_total",
    "pc_shard_anchors_rejected_total",
    "pc_shard_rounds_decided_total",
    "pc_shard_last_decided_round",
    "pc_shard_state_root_round",
    "pc_shard_finalized_anchors_total",
    "pc_shard_finalized_events_total",
    "pc_shard_applied_events_total",
    "pc_shard_rejected_double_spends_total",
    "pc_shard_submit_to_final_seconds_bucket",
    "pc_shard_arrival_to_final_seconds_bucket",
    "pc_shard_pending_parents",
    "pc_shard_mempool_events",
    "pc_shard_outstanding_pulls",
    "pc_shard_catch_up_requests_total",
    "pc_shard_ring_depth",
    "pc_shard_log_appended_bytes_total",
    "pc_shard_log_records",
    "pc_shard_durable_lag_records",
    "pc_shard_signature_verifies_total",
    "pc_shard_verify_seconds_total",
    "pc_shard_verify_time_share",
    "pc_shard_admitted_events_total",
    "pc_shard_refused_events_total",
    "pc_shard_backlog_events",
    "pc_shard_backlog_bound_events",
    "pc_shard_committee_quorum",
    "pc_process_resident_memory_bytes",
    "pc_process_open_fds",
    "pc_build_info",
];

/// The metric names an alert rule or a dashboard panel uses (`up` is
/// Prometheus's own).
fn names_used_by_deploy() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/phantom-engine.json",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let bytes = text.as_bytes();
        let mut i = 0;
        while let Some(at) = text[i..].find("pc_") {
            let start = i + at;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            if boundary {
                names.insert(text[start..end].to_string());
            }
            i = end.max(start + 1);
        }
    }
    names
}

/// The node's status lines of `shard` so far: finalized events, in order.
fn status_finalized(log: &Path, shard: u64) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["type"] == "status" && v["shard"].as_u64() == Some(shard))
        .filter_map(|v| v["finalized_events"].as_u64())
        .collect()
}

#[test]
fn a_node_under_load_serves_every_family_and_the_counters_grow() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let mut devnet = engine()
        .args([
            "devnet",
            "--miners",
            "0",
            "--nodes",
            "4",
            "--shards",
            "2",
            "--seconds",
            "24",
            "--load",
            "800",
            "--min-rounds",
            "5",
            "--base-port",
            "7700",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("devnet starts");
    let _reaper = Reaper(dir.clone());
    // Wait for the load's progress lines.
    let stdout = devnet.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines_rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no progress line at t = 6 s:\n{}", seen.join("\n")));
        // "   6      0  ..." : the load's sixth second.
        let t = line
            .split_whitespace()
            .next()
            .and_then(|t| t.parse::<u64>().ok());
        seen.push(line);
        if t.is_some_and(|t| t >= 6) {
            break;
        }
    }
    let metrics: SocketAddr = "127.0.0.1:7709".parse().unwrap();
    let noted = std::fs::read_to_string(dir.join("node-0/metrics.addr")).unwrap();
    assert_eq!(
        noted.trim(),
        metrics.to_string(),
        "the data dir notes the address"
    );
    // The seed's P2pMetricsServe says where the running node serves them.
    let serve = engine()
        .args(["P2pMetricsServe", "--store_dir"])
        .arg(dir.join("node-0"))
        .output()
        .unwrap();
    assert!(serve.status.success(), "{}", text(&serve));
    assert!(
        String::from_utf8_lossy(&serve.stdout).contains(&format!("http://{metrics}/metrics")),
        "{}",
        text(&serve)
    );
    let first_answer = scrape::get(metrics, "GET", "/metrics").unwrap();
    assert_eq!(first_answer.status, 200);
    assert_eq!(
        first_answer.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let first = Scrape::of(&first_answer.body);
    std::thread::sleep(Duration::from_secs(4));
    let second_answer = scrape::get(metrics, "GET", "/metrics").unwrap();
    let second = Scrape::of(&second_answer.body);

    // Every family.
    for family in FAMILIES {
        assert!(second.has(family), "{family} missing from the scrape");
    }
    // The seed's buckets, exactly.
    for histogram in [
        "pc_node_store_header_read_seconds_bucket",
        "pc_node_store_payload_read_seconds_bucket",
    ] {
        let bounds: BTreeSet<String> = second
            .samples
            .iter()
            .filter(|s| {
                s.name == histogram && s.labels.get("shard").map(String::as_str) == Some("0")
            })
            .map(|s| s.labels["le"].clone())
            .collect();
        let seed: BTreeSet<String> = ["0.001", "0.005", "0.01", "0.05", "0.1", "0.5", "+Inf"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(bounds, seed, "{histogram}");
    }
    // What the load drives grew between the scrapes.
    for series in [
        "pc_p2p_inbound_messages_total",
        "pc_p2p_inbound_bytes_total",
        "pc_p2p_outbound_messages_total",
        "pc_p2p_outbound_bytes_total",
        "pc_shard_finalized_anchors_total",
        "pc_shard_finalized_events_total",
        "pc_shard_rounds_decided_total",
        "pc_node_persist_successes_total",
        "pc_node_cache_payloads_misses_total",
        "pc_node_store_header_read_seconds_count",
        "pc_node_store_payload_read_seconds_count",
        "pc_shard_submit_to_final_seconds_count",
        "pc_shard_signature_verifies_total",
        "pc_shard_verify_seconds_total",
    ] {
        let (a, b) = (first.sum(series, &[]), second.sum(series, &[]));
        assert!(b > a, "{series} did not grow: {a} then {b}");
    }
    let share = first.sum("pc_shard_verify_time_share", &[])
        + second.sum("pc_shard_verify_time_share", &[]);
    assert!(share > 0.0, "the verify-time share stayed 0");
    // The scrape is the status line of the same moment (within a second's
    // worth of events).
    for shard in 0..2u64 {
        let label = shard.to_string();
        let scraped = second.sum("pc_shard_finalized_events_total", &[("shard", &label)]) as u64;
        std::thread::sleep(Duration::from_millis(1500));
        let lines = status_finalized(&dir.join("node-0/node.log"), shard);
        let second_worth = lines
            .windows(2)
            .map(|w| w[1].saturating_sub(w[0]))
            .max()
            .unwrap_or(0);
        assert!(
            lines.iter().any(|l| l.abs_diff(scraped) <= second_worth),
            "shard {shard}: scraped {scraped} finalized events, status lines say {lines:?}"
        );
    }
    // `health` passes while the shards finalize, and fails once the quorum
    // stops (two of the four nodes paused with SIGSTOP).
    let health = |max_age: &str| {
        engine()
            .args([
                "health",
                "--node",
                &metrics.to_string(),
                "--max-age",
                max_age,
            ])
            .output()
            .unwrap()
    };
    let healthy = health("5");
    assert!(healthy.status.success(), "{}", text(&healthy));
    let line: Value = serde_json::from_slice(&healthy.stdout).unwrap();
    assert_eq!(line["healthy"], true, "{line}");
    assert_eq!(line["shards"].as_array().map(Vec::len), Some(2), "{line}");
    let signal = |signal: &str| {
        for n in [2, 3] {
            let pattern = dir.join(format!("node-{n}/node.toml"));
            let _ = Command::new("pkill")
                .arg(signal)
                .arg("-f")
                .arg(pattern.as_os_str())
                .status();
        }
    };
    signal("-STOP");
    std::thread::sleep(Duration::from_secs(6));
    let stalled = health("3");
    signal("-CONT");
    assert_eq!(stalled.status.code(), Some(1), "{}", text(&stalled));
    let line: Value = serde_json::from_slice(&stalled.stdout).unwrap();
    assert_eq!(line["healthy"], false, "{line}");
    // A backup of a running node under load.
    let backup_file = temp.path().join("node-1.backup");
    let backup = engine()
        .args(["backup", "--data-dir"])
        .arg(dir.join("node-1"))
        .arg("--out")
        .arg(&backup_file)
        .output()
        .unwrap();
    assert!(backup.status.success(), "{}", text(&backup));
    // Only GET /metrics.
    assert_eq!(scrape::get(metrics, "GET", "/").unwrap().status, 404);
    assert_eq!(
        scrape::get(metrics, "POST", "/metrics").unwrap().status,
        405
    );
    let huge = format!("/metrics?{}", "a".repeat(1 << 20));
    match scrape::get(metrics, "GET", &huge) {
        Ok(answer) => assert_eq!(answer.status, 431, "a 1 MiB request line"),
        Err(error) => println!("the 1 MiB request line was cut off: {error}"),
    }
    assert_eq!(
        scrape::get(metrics, "GET", "/metrics").unwrap().status,
        200,
        "still serving after it"
    );
    // promtool lints the live scrape; the deploy files name only metrics
    // the node serves.
    if let Some(promtool) = promtool() {
        let mut check = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        check
            .stdin
            .take()
            .unwrap()
            .write_all(second_answer.body.as_bytes())
            .unwrap();
        let output = check.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "promtool check metrics: {}",
            text(&output)
        );
    }
    let served: BTreeSet<&str> = second.samples.iter().map(|s| s.name.as_str()).collect();
    for name in names_used_by_deploy() {
        assert!(
            served.contains(name.as_str()),
            "{name} (used by deploy/) is not in the live scrape"
        );
    }
    let status = devnet.wait().unwrap();
    reader.join().unwrap();
    let rest: Vec<String> = lines_rx.try_iter().collect();
    assert!(status.success(), "devnet: {}", rest.join("\n"));
    assert!(rest.iter().any(|l| l == "AGREE"), "{}", rest.join("\n"));
    assert!(
        rest.iter()
            .any(|l| l.starts_with("node 3 metrics: finalized events per shard")),
        "the devnet summary reads every node's metrics: {}",
        rest.join("\n")
    );
    // Every line the node wrote is a JSON object through tracing.
    let log = std::fs::read_to_string(dir.join("node-0/node.log")).unwrap();
    for line in log.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(value["type"].is_string(), "{line}");
        if value["type"] != "genesis_loaded" {
            assert!(value["level"].is_string(), "{line}");
        }
    }
    assert!(log.starts_with("{\"type\":\"genesis_loaded\",\"k\":4,\"commitment\":\""));
    // Stopped: nothing serves the data dir's metrics, and it says so.
    let serve = engine()
        .args(["metrics-serve", "--data-dir"])
        .arg(dir.join("node-0"))
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(1), "{}", text(&serve));
    assert!(String::from_utf8_lossy(&serve.stderr).contains("no running node serves metrics"));
    check_restored_backup(&temp.path().join("restored"), &backup_file, &dir);
}

/// The backup restores to a data dir a node starts on (its seats as
/// observers) and whose logs agree with the other nodes'; a tampered copy
/// and an occupied target are refused.
fn check_restored_backup(restored: &Path, backup: &Path, devnet: &Path) {
    let mut bytes = std::fs::read(backup).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    let tampered = backup.with_extension("tampered");
    std::fs::write(&tampered, &bytes).unwrap();
    let restore = |from: &Path| {
        engine()
            .args(["restore", "--from"])
            .arg(from)
            .arg("--data-dir")
            .arg(restored)
            .output()
            .unwrap()
    };
    let refused = restore(&tampered);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!restored.exists(), "a refused restore leaves nothing");
    let ok = restore(backup);
    assert!(ok.status.success(), "{}", text(&ok));
    let again = restore(backup);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an occupied data dir is refused"
    );
    // A node starts on it: seats as observers, every shard restored.
    let node = engine()
        .args([
            "node",
            "--seconds",
            "3",
            "--metrics-addr",
            "off",
            "--addr",
            "127.0.0.1:7790",
        ])
        .arg("--config")
        .arg(restored.join("node.toml"))
        .arg("--data-dir")
        .arg(restored)
        .arg("--genesis")
        .arg(devnet.join("genesis.toml"))
        .output()
        .unwrap();
    assert!(node.status.success(), "{}", text(&node));
    let lines: Vec<Value> = String::from_utf8_lossy(&node.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        lines.iter().any(|v| v["type"] == "config_note"),
        "the node says its seats run as observers"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|v| v["type"] == "shard_restored")
            .count(),
        2
    );
    let others: Vec<PathBuf> = [restored.to_path_buf()]
        .into_iter()
        .chain((0..4).map(|n| devnet.join(format!("node-{n}"))))
        .collect();
    for shard in 0..2 {
        let agreement = pc_engine::tools::agreement::compare_shard(&others, shard)
            .unwrap_or_else(|d| panic!("the restored data dir disagrees: {d:?}"));
        assert!(
            agreement.common_round.is_some_and(|r| r > 0),
            "{agreement:?}"
        );
    }
}

#[test]
fn the_alert_rules_check_and_the_stall_alert_fires_on_a_series_that_stops() {
    let Some(promtool) = promtool() else {
        return;
    };
    let dir = repo().join("deploy/prometheus");
    let check = Command::new(promtool)
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
    let test = Command::new(promtool)
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(test.status.success(), "{}", text(&test));
}

#[test]
fn cache_bench_counts_what_the_capacity_implies_and_refuses_bad_data_dirs() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("bench-data");
    let bench = engine()
        .env("PHANTOM_BENCH_CACHE", temp.path().join("cache"))
        .args([
            "bench",
            "--shards",
            "1",
            "--committee",
            "4",
            "--tx-per-anchor",
            "8",
            "--events-per-shard",
            "2048",
            "--seconds",
            "1",
            "--keep",
            "--json",
        ])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(bench.status.success(), "{}", text(&bench));
    let run = |mode: &str, sample: &str, iterations: &str, hdr: &str, pl: &str| -> Value {
        let output = engine()
            .args([
                "cache-bench",
                "--mode",
                mode,
                "--sample",
                sample,
                "--iterations",
                iterations,
            ])
            .args(["--cache-hdr-cap", hdr, "--cache-pl-cap", pl])
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let headers = run("headers", "100", "5", "100", "0");
    for field in [
        "hdr_hits",
        "hdr_misses",
        "pl_hits",
        "pl_misses",
        "elapsed_ms",
        "lookup_p99_us",
    ] {
        assert!(!headers[field].is_null(), "{field} in {headers}");
    }
    assert_eq!(headers["sample"], 100, "{headers}");
    assert_eq!(headers["hdr_misses"], 100, "{headers}");
    assert_eq!(headers["hdr_hits"], 400, "{headers}");
    assert_eq!(headers["store_reads"], 100, "{headers}");
    let payloads = run("payloads", "80", "3", "0", "200");
    assert_eq!(payloads["pl_misses"], 80, "{payloads}");
    assert_eq!(payloads["pl_hits"], 160, "{payloads}");
    let off = run("payloads", "80", "3", "0", "0");
    assert_eq!(off["pl_hits"], 0, "{off}");
    assert_eq!(off["pl_misses"], 240, "{off}");
    // The same data dir restores as the node restores it, timed.
    let restart = engine()
        .args(["restart-time", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(restart.status.success(), "{}", text(&restart));
    let restart: Value = serde_json::from_slice(&restart.stdout).unwrap();
    let shard = &restart["shards"][0];
    assert!(shard["records"].as_u64().unwrap() > 100, "{restart}");
    assert!(shard["anchors"].as_u64().unwrap() > 100, "{restart}");
    assert!(shard["log_bytes"].as_u64().unwrap() > 0, "{restart}");
    assert!(shard["seconds"].as_f64().unwrap() > 0.0, "{restart}");
    // The seed's spellings.
    let seed = engine()
        .args([
            "CacheBench",
            "--mode",
            "headers",
            "--sample",
            "10",
            "--iterations",
            "2",
        ])
        .args([
            "--cache_hdr_cap",
            "10",
            "--cache_pl_cap",
            "0",
            "--store_dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(seed.status.success(), "{}", text(&seed));
    // Bad data dirs: one line, exit 1.
    let empty = temp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    for (dir, says) in [
        (temp.path().join("missing"), "no such data dir"),
        (empty.clone(), "not a phantom-engine data dir"),
    ] {
        let output = engine()
            .args(["cache-bench", "--data-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(dir.to_str().unwrap()),
            "{stderr}"
        );
    }
}
