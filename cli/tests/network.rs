//! The validator network as real processes on loopback over real QUIC:
//!
//! * `devnet`: 4 nodes with 2 shards finalize identical sequences under
//!   load (`AGREE`), and `replay` of a node's data dir reproduces its root;
//! * crashes: a node SIGKILLed at each injected point (after signing, after
//!   persisting, before sending) and SIGKILLed at a random moment restarts
//!   on its data dir, catches up and agrees, and a scan of every log finds
//!   no seat with two anchors at one seq;
//! * a node started late catches up from far behind while the others'
//!   memory stays flat;
//! * a node whose key is not in the genesis committee is refused;
//! * hostile traffic (random datagrams, length prefixes of 4 GiB, oversized
//!   and malformed frames, consensus messages before a Hello) is scored and
//!   banned while the network keeps finalizing;
//! * `tx send` / `tx balance` against a one-seat network.
//!
//! Each test uses its own port range; the network tests run one at a time
//! (a lock), since each starts several processes on this 2-core machine.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{engine, text};

/// One network test at a time.
static NETWORK: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    NETWORK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `devnet` with `extra` flags; returns its stdout, failing the test
/// (with the nodes' logs' tails) unless it printed AGREE and exited 0.
fn devnet(dir: &Path, base_port: u16, extra: &[&str]) -> String {
    let output = engine()
        .args([
            "devnet",
            "--nodes",
            "4",
            "--shards",
            "2",
            "--min-rounds",
            "5",
        ])
        .arg("--data-dir")
        .arg(dir)
        .args(["--base-port", &base_port.to_string()])
        // No miner unless a test asks for one (its mint check needs a load
        // long enough for minted outputs to mature).
        .args(if extra.contains(&"--miners") {
            &[][..]
        } else {
            &["--miners", "0"][..]
        })
        .args(extra)
        .output()
        .expect("devnet runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() || !stdout.lines().any(|l| l == "AGREE") {
        let mut logs = String::new();
        for n in 0..4 {
            let log =
                std::fs::read_to_string(dir.join(format!("node-{n}/node.log"))).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            logs += &format!("--- node {n} log tail\n{}\n", tail.join("\n"));
        }
        panic!("devnet did not agree:\n{}\n{logs}", text(&output));
    }
    stdout
}

/// The `(shard, state root)` pairs devnet printed for node `n`'s replay.
fn replayed_roots(stdout: &str, n: usize) -> Vec<(u16, String)> {
    let prefix = format!("node {n} shard ");
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| rest.contains("replay reproduces"))
        .map(|rest| {
            let shard = rest.split(':').next().unwrap().parse().unwrap();
            let root = rest.rsplit(' ').next().unwrap().to_string();
            (shard, root)
        })
        .collect()
}

#[test]
fn devnet_of_four_nodes_and_two_shards_agrees_under_load_and_replays() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    // Half the transfers pay the other shard; each node runs its two
    // shards on two cores, so its own seats' bundles cross its rings.
    let stdout = devnet(
        &dir,
        17100,
        &[
            "--seconds",
            "8",
            "--load",
            "400",
            "--cross-shard",
            "0.5",
            "--cores-per-node",
            "2",
        ],
    );
    // Value crossed in both directions, every export was imported (the
    // data dirs say so), and the supply equations hold for every node.
    for pair in ["shard 0 -> 1", "shard 1 -> 0"] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with("node 0 supply: ") && l.contains(pair))
            .unwrap_or_else(|| panic!("no {pair} line\n{stdout}"));
        assert!(line.contains("in flight 0 (0 leaves)"), "{line}");
        assert!(!line.contains("exported 0,"), "{line}");
    }
    for n in 0..4 {
        assert!(
            stdout.lines().any(
                |l| l.starts_with(&format!("node {n} supply: unspent")) && l.ends_with("holds")
            ),
            "{stdout}"
        );
    }
    // The consensus tools over node 0's data dir: every round's logged
    // payout root of both shards is the previous owed balances plus the
    // per-anchor shares `payout-root` computes (fees from the payloads).
    for shard in 0..2 {
        let (rounds, paid, _, _) =
            common::check_payout_roots(&dir.join("node-0"), shard, temp.path());
        assert!(
            rounds >= 5 && paid >= 1,
            "shard {shard}: {rounds} rounds, {paid} paid fees"
        );
    }
    // Bundles between a node's own seats crossed its rings.
    let rings: f64 = stdout
        .lines()
        .filter_map(|l| l.split("cross-shard over its rings ").nth(1))
        .map(|rest| rest.split(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(rings > 0.0, "no bundle crossed a ring\n{stdout}");
    // Load went through: transfers were accepted and finalized.
    let load = stdout
        .lines()
        .find(|l| l.starts_with("load: "))
        .expect("a load line");
    // "load: offered R/s (sent N), accepted R/s (N), refused ..."
    let accepted: u64 = load
        .split("accepted ")
        .nth(1)
        .and_then(|rest| rest.split('(').nth(1))
        .and_then(|count| count.split(')').next())
        .unwrap_or_else(|| panic!("no accepted count in {load}"))
        .parse()
        .unwrap();
    assert!(accepted > 1000, "{load}");
    for shard in 0..2 {
        assert!(
            stdout.contains(&format!("shard {shard}: all 4 nodes agree on rounds 0..=")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!(
                "shard {shard}: all 4 nodes finalized the same anchors in the same order"
            )),
            "{stdout}"
        );
    }
    // Every node's replay reproduced the same roots, and the replay
    // command over node 2's data dir prints them too.
    let roots = replayed_roots(&stdout, 0);
    assert_eq!(roots.len(), 2, "{stdout}");
    for n in 1..4 {
        assert_eq!(replayed_roots(&stdout, n), roots, "{stdout}");
    }
    let replay = engine()
        .args(["replay", "--json", "--data-dir"])
        .arg(dir.join("node-2"))
        .output()
        .unwrap();
    assert!(replay.status.success(), "{}", text(&replay));
    let json: Value = serde_json::from_slice(&replay.stdout).unwrap();
    let shards = json["shards"].as_array().expect("shards");
    for (shard, root) in &roots {
        let entry = shards
            .iter()
            .find(|s| s["shard"] == *shard)
            .expect("each shard");
        assert_eq!(entry["state_root"].as_str().unwrap(), root);
        assert!(entry["finalized_events"].as_u64().unwrap() > 0);
    }
}

/// The miner role end to end (DESIGN §10): a devnet with its miner (one
/// thread at a bounded hash rate) finalizes mints; a spend of an immature
/// minted output is refused with its maturity; a matured one spends and is
/// final at its recipient; the supply equations count the minted value;
/// AGREE.
#[test]
fn devnet_with_its_miner_finalizes_mints_refuses_immature_spends_and_spends_matured_ones() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let stdout = devnet(
        &dir,
        18200,
        &[
            "--seconds",
            "20",
            "--load",
            "400",
            "--miners",
            "1",
            "--mint-maturity",
            "300",
        ],
    );
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(needle))
            .unwrap_or_else(|| panic!("no line starting {needle:?}\n{stdout}"))
            .to_string()
    };
    let won = line("mints: ");
    let count: u64 = won["mints: ".len()..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{won}"));
    assert!(count >= 1, "{won}");
    assert!(line("mints: a spend of immature output")
        .contains("was refused: input 0 is a minted output that matures at anchor index"));
    assert!(line("mints: matured output").contains("spent; final at pc1"));
    // Minted value is in every node's supply equation, which holds.
    for n in 0..4 {
        let supply = line(&format!("node {n} supply: unspent"));
        assert!(supply.ends_with("holds"), "{supply}");
        assert!(!supply.contains("minted 0)"), "{supply}");
    }
}

/// Every node signs through its own signer process and holds no key: the
/// network agrees as with local keys, and each signer answered.
#[test]
fn devnet_with_every_node_on_a_signer_agrees() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let stdout = devnet(
        &dir,
        18200,
        &["--seconds", "6", "--load", "300", "--signers"],
    );
    assert!(stdout.lines().any(|l| l == "AGREE"), "{stdout}");
    for n in 0..4 {
        let config = std::fs::read_to_string(dir.join(format!("node-{n}/node.toml"))).unwrap();
        assert!(
            config.contains("signer = \"unix:") && !config.contains("key ="),
            "{config}"
        );
        let state = std::fs::read_to_string(dir.join(format!("node-{n}/signer.state"))).unwrap();
        assert!(
            state.lines().any(|l| l.starts_with("h 0 ")),
            "node {n} signed no header"
        );
        assert!(
            state.lines().any(|l| l.starts_with("c 0 ")),
            "node {n} signed no checkpoint"
        );
    }
}

/// The production committee size: 21 node processes (one shard, low load)
/// for a minute must agree, every node finalizing to the end and every
/// core loop turning (no watchdog line, status lines until the stop).
///
/// Behind `NETWORK_K21=1`: on this 2-core host in the test profile a core
/// loop is still seen, rarely, not polled again after a yield for two
/// seconds (the watchdog's `core_stalled` line names it), which this test
/// counts as a failure.
#[test]
fn an_equivocating_seat_is_slashed_once_its_share_claimed_and_a_second_claim_refused() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    // Node 3's seat in shard 0 signs two anchors at one seq; the devnet
    // claims validator 0's owed balance after the load and checks it (and
    // refuses a second claim); AGREE covers the slash on every node.
    let stdout = devnet(
        &dir,
        18300,
        &["--seconds", "6", "--load", "200", "--equivocate", "3"],
    );
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}\n{stdout}"))
            .to_string()
    };
    assert!(line("the planted equivocation").starts_with("shard 0: "));
    assert!(line("the planted equivocation").contains("(seat 3 at seq 20)"));
    // The slash share computed here from the genesis: bond 10 000 PC split
    // over the validator's two seats, the seat's 5 000 PC shared by the
    // three other seats (floor), two units of dust to the carrier.
    let bond_per_seat: u64 = 10_000 * 100_000_000 / 2;
    let share = bond_per_seat / 3;
    for n in 0..4 {
        let slashed = line(&format!(
            "node {n} shard 0: seat 3 (validator 3) slashed 100 %"
        ));
        assert!(
            slashed.contains(&format!("{bond_per_seat} units")),
            "{slashed}"
        );
        let kept = line(&format!(
            "node {n} shard 1: validator 3's seat keeps its bond"
        ));
        assert!(kept.contains(&bond_per_seat.to_string()), "{kept}");
    }
    let claim = line("devnet: validator 0 claimed its owed");
    assert!(
        claim.contains(&format!(
            "slash share computed from the genesis bonds is {share}"
        )),
        "{claim}"
    );
    let owed: u64 = claim
        .split("claimed its owed ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(owed >= share, "{claim}");
    assert!(claim.contains(&format!("balance 0 -> {owed}")), "{claim}");
    assert!(
        claim.contains("Duplicate"),
        "the second claim is refused: {claim}"
    );
}

#[test]
fn twenty_one_nodes_agree_and_every_node_finalizes_to_the_end() {
    if std::env::var_os("NETWORK_K21").is_none() {
        eprintln!("skipped: set NETWORK_K21=1 to run 21 node processes for a minute");
        return;
    }
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let output = engine()
        .args(["devnet", "--nodes", "21", "--shards", "1", "--load", "50"])
        .args(["--miners", "0"])
        .args(["--seconds", "60", "--min-rounds", "5"])
        .arg("--data-dir")
        .arg(&dir)
        .args(["--base-port", "17600"])
        .output()
        .expect("devnet runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut problems = Vec::new();
    for n in 0..21 {
        let log =
            std::fs::read_to_string(dir.join(format!("node-{n}/node.log"))).unwrap_or_default();
        let lines: Vec<Value> = log
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if let Some(stall) = lines.iter().find(|v| v["type"] == "core_stalled") {
            problems.push(format!("node {n}: {stall}"));
        }
        let last_status = lines
            .iter()
            .filter(|v| v["type"] == "status")
            .filter_map(|v| v["t_ms"].as_u64())
            .max()
            .unwrap_or(0);
        // Nodes start over a few seconds and stop at the end of the load.
        if last_status < 50_000 {
            problems.push(format!("node {n}: last status line at {last_status} ms"));
        }
    }
    assert!(
        output.status.success() && stdout.lines().any(|l| l == "AGREE"),
        "devnet of 21 did not agree: {problems:?}\n{}",
        text(&output)
    );
    assert!(problems.is_empty(), "{problems:?}\n{stdout}");
    assert!(
        stdout.contains("shard 0: all 21 nodes finalized the same anchors in the same order"),
        "{stdout}"
    );
}

#[test]
fn nodes_crashed_at_injected_points_restart_catch_up_and_never_equivocate() {
    let _guard = lock();
    for (index, site) in [
        "after-signing:25",
        "after-persisting:25",
        "before-sending:25",
    ]
    .iter()
    .enumerate()
    {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("devnet");
        let stdout = devnet(
            &dir,
            17200 + 100 * index as u16,
            &["--seconds", "6", "--load", "300", "--crash-at", site],
        );
        assert!(
            stdout.contains("node 3: restarted 1 time(s) on its data dir"),
            "{site}: the victim never crashed\n{stdout}"
        );
        assert!(
            stdout.contains("node 3 died (signal: 9"),
            "{site}: the victim did not die of SIGKILL\n{stdout}"
        );
        let log = std::fs::read_to_string(dir.join("node-3/node.log")).unwrap();
        assert!(log.contains("\"type\":\"crash_injected\""), "{site}");
        assert_eq!(
            stdout
                .matches("no seat signed two anchors at one seq")
                .count(),
            2,
            "{site}: both shards' logs scanned\n{stdout}"
        );
    }
}

#[test]
fn a_node_killed_at_a_random_moment_restarts_catches_up_and_agrees() {
    let _guard = lock();
    // A random moment, printed so that a failure can be replayed.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let kill_after = 1.0 + f64::from(nanos % 3000) / 1000.0;
    eprintln!("SIGKILL after {kill_after:.3} s of load");
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let stdout = devnet(
        &dir,
        17500,
        &[
            "--seconds",
            "7",
            "--load",
            "300",
            "--victim",
            "1",
            "--kill-after",
            &format!("{kill_after:.3}"),
        ],
    );
    assert!(stdout.contains("SIGKILL node 1"), "{stdout}");
    assert!(
        stdout.contains("node 1: restarted 1 time(s) on its data dir"),
        "{stdout}"
    );
    assert_eq!(
        stdout
            .matches("no seat signed two anchors at one seq")
            .count(),
        2,
        "{stdout}"
    );
}

#[test]
fn a_late_node_catches_up_from_far_behind_while_peer_memory_stays_flat() {
    // NET_SOAK=<seconds> starts the late node that many seconds late
    // instead (the load runs 30 s longer than that).
    let late_by: u64 = std::env::var("NET_SOAK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let seconds = if late_by > 6 { late_by + 30 } else { 12 };
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let (seconds, late_by) = (seconds.to_string(), late_by.to_string());
    let stdout = devnet(
        &dir,
        17600,
        &[
            "--seconds",
            &seconds,
            "--load",
            "300",
            "--late-by",
            &late_by,
        ],
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("late node 3: "))
        .expect("a late-node memory line");
    let numbers: Vec<f64> = line
        .split(' ')
        .filter_map(|word| word.parse().ok())
        .collect();
    let (before, during) = (numbers[numbers.len() - 2], numbers[numbers.len() - 1]);
    assert!(before > 0.0 && during > 0.0, "{line}");
    assert!(
        during <= before * 1.5 + 16.0,
        "serving a catch-up grew a peer's memory: {line}"
    );
    // The late node asked for ranges and finalized every round with the others.
    let log = std::fs::read_to_string(dir.join("node-3/node.log")).unwrap();
    let asked = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "status")
        .filter_map(|v| v["catch_up_requests"].as_u64())
        .max()
        .unwrap_or(0);
    assert!(asked > 0, "the late node never sent a GetRange");
}

/// A node process whose stderr lines are collected by a thread.
struct Node {
    child: Child,
    lines: std::sync::Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(args: &[&str]) -> Node {
        let mut child = engine()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node starts");
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Node { child, lines }
    }

    /// Waits up to `limit` for a line containing every one of `needles`.
    fn wait_for(&self, needles: &[&str], limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| needles.iter().all(|n| l.contains(n)))
            {
                return Some(line.clone());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// SIGTERM, then the exit code (SIGKILL after 20 s).
    fn stop(mut self) -> Option<i32> {
        // SAFETY: signals a child this test started.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A node a failed test leaves behind is killed, so that it cannot hold
/// its ports (and disturb the next test) after the panic.
impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `genesis new` into `dir`.
fn new_genesis(dir: &Path, k: &str, shards: &str) -> PathBuf {
    let output = engine()
        .args([
            "genesis",
            "new",
            "--k",
            k,
            "--shards",
            shards,
            "--clients",
            "4",
        ])
        .args(["--outputs-per-client", "16", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    dir.join("genesis.toml")
}

fn node_args<'a>(
    genesis: &'a str,
    data_dir: &'a str,
    key: &'a str,
    addr: &'a str,
    peer: Option<&'a str>,
) -> Vec<&'a str> {
    let mut args = vec![
        "node",
        "--genesis",
        genesis,
        "--data-dir",
        data_dir,
        "--key",
        key,
        "--addr",
        addr,
        // Tests run many nodes at once: each serves its metrics on a
        // port of its own (the data dir's metrics.addr names it).
        "--metrics-addr",
        "127.0.0.1:0",
    ];
    if let Some(peer) = peer {
        args.extend(["--peer", peer]);
    }
    args
}

/// A one-validator network (`shards` shards, k = 1) in `temp`, its node
/// started on `addr` and up; the network dir (genesis and keys) beside it.
fn start_one_seat_node(temp: &Path, shards: &str, addr: &str) -> (Node, PathBuf) {
    let net = temp.join("net");
    let genesis = new_genesis(&net, "1", shards);
    let data = temp.join("data");
    let key = net.join("keys/validator-00.key");
    let node = Node::start(&node_args(
        genesis.to_str().unwrap(),
        data.to_str().unwrap(),
        key.to_str().unwrap(),
        addr,
        None,
    ));
    node.wait_for(&["core_started"], Duration::from_secs(20))
        .expect("the node starts");
    (node, net)
}

/// A recipient (hex key, from seeds 1, 2, ...) whose shard among 2 passes
/// `wanted`.
fn recipient_where(wanted: impl Fn(u16) -> bool) -> String {
    let key = (1u8..)
        .map(|seed| pc_codec::SigningKey::from_secret_bytes(&[seed; 32]).unwrap())
        .find(|k| wanted(pc_codec::ids::shard_of(&k.public_key(), 2)))
        .unwrap();
    hex::encode(key.public_key())
}

/// `tx send` from `client` to `to` through the one-seat node at
/// 127.0.0.1:17800 with `args` (amount, fee); its receipt.
fn tx_send(genesis: &str, client: &Path, to: &str, args: &[&str]) -> Value {
    let send = engine()
        .args([
            "tx",
            "send",
            "--genesis",
            genesis,
            "--node",
            "127.0.0.1:17800",
        ])
        .arg("--key")
        .arg(client)
        .args(["--to", to])
        .args(args)
        .output()
        .unwrap();
    assert!(send.status.success(), "{}", text(&send));
    serde_json::from_slice(&send.stdout).unwrap()
}

/// The hex public key a key file names.
fn public_key_hex(key_file: &Path) -> String {
    std::fs::read_to_string(key_file)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("public_key = \""))
        .unwrap()
        .trim_end_matches('"')
        .to_string()
}

#[test]
fn a_node_whose_key_is_not_in_the_committee_is_refused() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let genesis = new_genesis(&temp.path().join("net"), "4", "1");
    let outsider_key = temp.path().join("outsider.key");
    let keygen = engine()
        .args(["keygen", "--out"])
        .arg(&outsider_key)
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{}", text(&keygen));
    let outsider_hex = String::from_utf8_lossy(&keygen.stdout).trim().to_string();
    let g = genesis.to_str().unwrap();
    let (a_dir, b_dir) = (temp.path().join("a"), temp.path().join("b"));
    let (a_dir, b_dir) = (a_dir.to_str().unwrap(), b_dir.to_str().unwrap());
    let member_key = temp.path().join("net/keys/validator-00.key");
    let member = Node::start(&node_args(
        g,
        a_dir,
        member_key.to_str().unwrap(),
        "127.0.0.1:17700",
        None,
    ));
    member
        .wait_for(&["core_started"], Duration::from_secs(20))
        .expect("the member starts");
    let outsider = Node::start(&node_args(
        g,
        b_dir,
        outsider_key.to_str().unwrap(),
        "127.0.0.1:17710",
        Some("127.0.0.1:17700"),
    ));
    let refused = member.wait_for(
        &[
            "peer_refused",
            &outsider_hex,
            "not in the genesis committee",
        ],
        Duration::from_secs(20),
    );
    assert!(
        refused.is_some(),
        "the member never refused the outsider\n{}",
        member.log()
    );
    assert!(outsider
        .wait_for(
            &["seats\":0", "not in the genesis committee"],
            Duration::from_secs(5)
        )
        .is_some());
    assert!(
        !member.log().contains("\"type\":\"peer_connected\""),
        "the outsider was admitted\n{}",
        member.log()
    );
    assert_eq!(outsider.stop(), Some(0));
    assert_eq!(member.stop(), Some(0));
}

/// The wallet over a one-seat network (one shard): a new key and its
/// address; `wallet send` picks the client's outputs itself (more than one
/// when one is not enough), pays the new address and sends the change
/// back; `wallet balance` of both shows it once final.
#[test]
fn the_wallet_picks_inputs_pays_an_address_and_lists_balances() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let (node, net) = start_one_seat_node(temp.path(), "1", "127.0.0.1:17800");
    let g = net.join("genesis.toml");
    let client = net.join("keys/client-00.key");
    let run = |args: &[&str]| -> Value {
        let output = engine().args(args).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let new_key = temp.path().join("mine.key");
    let made = run(&["wallet", "new", "--out", new_key.to_str().unwrap()]);
    let address = made["address"].as_str().unwrap().to_string();
    assert!(address.starts_with("pc1") && address.len() == 61, "{made}");
    let again = engine()
        .args(["wallet", "new", "--out", new_key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success(), "a wallet never overwrites a key");
    let printed = engine()
        .args(["wallet", "address", "--key", new_key.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), address);
    let before = run(&[
        "wallet",
        "balance",
        "--node",
        "127.0.0.1:17800",
        "--key",
        client.to_str().unwrap(),
    ]);
    let outputs = before["outputs"].as_array().unwrap();
    let one = outputs[0]["amount"].as_u64().unwrap();
    let spendable = before["spendable"].as_u64().unwrap();
    assert_eq!(outputs.len(), 16, "{before}");
    // More than one output's worth: two inputs at least.
    let amount = one + one / 2;
    let sent = run(&[
        "wallet",
        "send",
        "--genesis",
        g.to_str().unwrap(),
        "--node",
        "127.0.0.1:17800",
        "--key",
        client.to_str().unwrap(),
        "--to",
        &address,
        "--amount",
        &amount.to_string(),
        "--fee",
        "10",
    ]);
    assert_eq!(sent["outcome"], "accepted", "{sent}");
    assert_eq!(sent["inputs"], 2, "{sent}");
    let wait = |key: &Path, want: u64| -> Value {
        let began = std::time::Instant::now();
        loop {
            let balance = run(&[
                "wallet",
                "balance",
                "--node",
                "127.0.0.1:17800",
                "--key",
                key.to_str().unwrap(),
            ]);
            if balance["spendable"].as_u64() == Some(want) {
                return balance;
            }
            assert!(began.elapsed() < Duration::from_secs(20), "{balance}");
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let paid = wait(&new_key, amount);
    assert_eq!(paid["outputs"].as_array().unwrap().len(), 1, "{paid}");
    // The client holds what it had minus the payment and the fee: its 14
    // untouched outputs and the change.
    let after = wait(&client, spendable - amount - 10);
    assert_eq!(after["outputs"].as_array().unwrap().len(), 15, "{after}");
    // More than it holds is refused with a line saying so.
    let too_much = engine()
        .args([
            "wallet",
            "send",
            "--genesis",
            g.to_str().unwrap(),
            "--node",
            "127.0.0.1:17800",
        ])
        .args(["--key", new_key.to_str().unwrap(), "--to", &address])
        .args(["--amount", &(amount + 1).to_string()])
        .output()
        .unwrap();
    assert!(!too_much.status.success());
    assert!(text(&too_much).contains("spendable"), "{}", text(&too_much));
    assert_eq!(node.stop(), Some(0));
}

#[test]
fn tx_send_moves_value_and_tx_balance_reads_it_from_a_one_seat_network() {
    use pc_codec::ids::shard_of;
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let (node, net) = start_one_seat_node(temp.path(), "2", "127.0.0.1:17800");
    let genesis = net.join("genesis.toml");
    let g = genesis.to_str().unwrap();
    let client = net.join("keys/client-00.key");
    let balance = |owner: &str| -> (u64, u64) {
        let output = engine()
            .args(["tx", "balance", "--genesis", g, "--node", "127.0.0.1:17800"])
            .args(["--owner", owner])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        (
            json["amount"].as_u64().unwrap(),
            json["finalized_round"].as_u64().unwrap(),
        )
    };
    let client_hex = public_key_hex(&client);
    let client_public: [u8; 32] = hex::decode(&client_hex).unwrap().try_into().unwrap();
    let (start, _) = balance(&client_hex);
    assert!(start > 0, "the client is funded in genesis");
    // A recipient on the client's shard (the next test pays across shards).
    let recipient_hex = recipient_where(|shard| shard == shard_of(&client_public, 2));
    let receipt = tx_send(
        g,
        &client,
        &recipient_hex,
        &["--amount", "5000", "--fee", "7"],
    );
    assert_eq!(receipt["outcome"], "accepted", "{receipt}");
    // Final within a few seconds: the recipient holds 5000, the client 5007 less.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (got, _) = balance(&recipient_hex);
        if got == 5000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the transfer never finalized\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(balance(&client_hex).0, start - 5007);
    // The same input again is accepted into the pool but never applies.
    tx_send(g, &client, &recipient_hex, &["--amount", "1000"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(balance(&recipient_hex).0, 5000, "a double spend applied");
    assert_eq!(node.stop(), Some(0));
}

#[test]
fn tx_send_to_another_shard_is_exported_and_imported_and_tx_balance_shows_it() {
    use pc_codec::ids::shard_of;
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let (node, net) = start_one_seat_node(temp.path(), "2", "127.0.0.1:17800");
    let genesis = net.join("genesis.toml");
    let g = genesis.to_str().unwrap();
    let client = net.join("keys/client-00.key");
    let client_hex = public_key_hex(&client);
    let client_public: [u8; 32] = hex::decode(&client_hex).unwrap().try_into().unwrap();
    let home = shard_of(&client_public, 2);
    // A recipient of the other shard.
    let recipient_hex = recipient_where(|shard| shard != home);
    let receipt = tx_send(
        g,
        &client,
        &recipient_hex,
        &["--amount", "4000", "--fee", "3"],
    );
    assert_eq!(receipt["outcome"], "accepted", "{receipt}");
    assert_eq!(receipt["to_shard"], u64::from(1 - home), "{receipt}");
    assert!(
        receipt["cross_shard"]
            .as_str()
            .is_some_and(|t| t.contains("exported by shard")),
        "{receipt}"
    );
    // The destination shard imports it: the recipient's balance there.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = engine()
            .args(["tx", "balance", "--genesis", g, "--node", "127.0.0.1:17800"])
            .args(["--owner", &recipient_hex])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        let json: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(json["shard"], u64::from(1 - home), "{json}");
        if json["amount"].as_u64() == Some(4000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the export was never imported: {json}\n{}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(node.stop(), Some(0));
}

/// Sends hostile traffic to `target` for about `seconds`: random datagrams
/// from one UDP socket, and QUIC connections (from another) that send a
/// 4 GiB length prefix, an oversized frame, a malformed frame, random
/// stream bytes and a `Get` before any Hello. Returns the two source
/// addresses.
fn hostile_traffic(target: SocketAddr, seconds: u64) -> (SocketAddr, SocketAddr) {
    let datagram_socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram_source = datagram_socket.local_addr().unwrap();
    let quic_port = UdpSocket::bind("127.0.0.1:0").unwrap();
    let quic_source = quic_port.local_addr().unwrap();
    drop(quic_port);
    let flooder = std::thread::spawn(move || {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let end = Instant::now() + Duration::from_secs(seconds);
        let mut buf = vec![0u8; 1500];
        while Instant::now() < end {
            for byte in buf.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *byte = state as u8;
            }
            let len = 1 + (state as usize % 1400);
            let _ = datagram_socket.send_to(&buf[..len], target);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let quic = std::thread::spawn(move || {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .ring_depth(32)
            .spawn(move || async move { hostile_quic(target, quic_source, seconds).await })
            .unwrap()
            .join()
            .unwrap()
    });
    flooder.join().unwrap();
    quic.join().unwrap();
    (datagram_source, quic_source)
}

async fn hostile_quic(target: SocketAddr, source: SocketAddr, seconds: u64) {
    use pc_net::driver::Driver;
    use pc_net::frame::MAX_FRAME_BYTES;
    use pc_net::{NetConfig, NetEndpoint, NetEvent, NetMessage};
    let endpoint = NetEndpoint::new(NetConfig::default(), None).unwrap();
    let socket = glommio::net::UdpSocket::bind(source).unwrap();
    let (sender, events) = glommio::channels::local_channel::new_unbounded();
    let driver = Driver::spawn(socket, endpoint, move |event| {
        let _ = sender.try_send(event);
    });
    let handle = driver.handle();
    let oversized = (MAX_FRAME_BYTES as u32 + 1).to_le_bytes().to_vec();
    let get_before_hello = {
        let mut bytes = Vec::new();
        pc_net::encode_frame(
            &NetMessage::Get {
                shard: 0,
                ids: vec![[7; 32]],
            },
            &mut bytes,
        )
        .unwrap();
        bytes
    };
    let payloads: Vec<Vec<u8>> = vec![
        vec![0xff; 4],           // a 4 GiB length prefix
        oversized,               // one byte over the frame cap
        vec![2, 0, 0, 0, 99, 0], // a frame with an unknown tag
        (0..65536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect(), // garbage
        get_before_hello,        // consensus traffic without a Hello
    ];
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut round = 0usize;
    while Instant::now() < end {
        let Ok(conn) = handle.connect(target, pc_net::tls::CERTIFICATE_NAME) else {
            break;
        };
        let payload = payloads[round % payloads.len()].clone();
        round += 1;
        // Wait for the handshake (or a refusal), send the payload, wait for
        // the close.
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut sent = false;
        while Instant::now() < deadline {
            let event = glommio::timer::timeout(Duration::from_millis(200), async {
                Ok::<_, glommio::GlommioError<()>>(events.recv().await)
            })
            .await;
            match event {
                Ok(Some(NetEvent::Connected { conn: c, .. })) if c == conn && !sent => {
                    let _ = handle.send_unframed(conn, payload.clone());
                    sent = true;
                }
                Ok(Some(NetEvent::Closed { conn: c, .. })) if c == conn => break,
                _ => {}
            }
        }
        handle.close(conn, 0, "next");
    }
    let _ = driver.stop().await;
}

#[test]
fn hostile_traffic_is_scored_and_banned_while_the_network_keeps_finalizing() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("devnet");
    let base_port = 17900u16;
    let mut devnet = engine()
        .args(["devnet", "--nodes", "4", "--shards", "2", "--seconds", "14"])
        .args(["--miners", "0"])
        .args(["--load", "300", "--min-rounds", "5", "--data-dir"])
        .arg(&dir)
        .args(["--base-port", &base_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = devnet.stdout.take().unwrap();
    // Wait for the load to run (the third progress line), then attack node 0.
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while seen.lines().filter(|l| l.starts_with("   3 ")).count() == 0 {
        let read = stdout.read(&mut buf).unwrap();
        assert!(read > 0, "devnet ended early:\n{seen}");
        seen += &String::from_utf8_lossy(&buf[..read]);
    }
    let target = SocketAddr::from(([127, 0, 0, 1], base_port));
    let (datagram_source, quic_source) = hostile_traffic(target, 6);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut stderr = String::new();
    devnet
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = devnet.wait().unwrap();
    seen += &rest;
    assert!(
        status.success() && seen.lines().any(|l| l == "AGREE"),
        "the network did not keep agreeing under attack:\n{seen}\n{stderr}"
    );
    let log = std::fs::read_to_string(dir.join("node-0/node.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    for source in [datagram_source, quic_source] {
        assert!(
            lines.iter().any(|v| v["type"] == "peer_violation"
                && v["remote"] == source.to_string()
                && v["banned"] == true),
            "{source} was never banned"
        );
    }
    // The attacks were seen as what they are.
    for reason in [
        "4294967295",
        "exceeds",
        "datagram for no connection",
        "malformed frame",
        "before a verified Hello",
    ] {
        assert!(
            lines.iter().any(|v| v["type"] == "peer_violation"
                && v["reason"].as_str().unwrap_or("").contains(reason)),
            "no violation naming {reason:?}"
        );
    }
    // Node 0 kept finalizing through the attack and its memory stayed bounded.
    let statuses: Vec<&Value> = lines.iter().filter(|v| v["type"] == "status").collect();
    let peak_rss_kib = statuses
        .iter()
        .filter_map(|v| v["anon_rss_kib"].as_u64())
        .max()
        .unwrap();
    assert!(
        peak_rss_kib < 512 * 1024,
        "node 0 peaked at {peak_rss_kib} KiB"
    );
    let book = std::fs::read_to_string(dir.join("node-0/peers-core-0.book")).unwrap();
    assert!(
        book.contains(&datagram_source.to_string()),
        "the peer book does not name the flooder"
    );
}

/// `bench --network quic` feeds the bench workload over loopback QUIC and
/// ends with exactly the finalized counts and state roots of the same
/// workload run in process (the bench itself exits non-zero otherwise).
#[test]
fn bench_over_quic_finalizes_what_the_in_process_run_finalizes() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let output = engine()
        .env("PHANTOM_BENCH_CACHE", temp.path().join("cache"))
        .args([
            "bench",
            "--network",
            "quic",
            "--quic-port",
            "18000",
            "--shards",
            "2",
            "--committee",
            "4",
            "--tx-per-anchor",
            "8",
            "--events-per-shard",
            "2048",
            "--seconds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["network"], "quic", "{stdout}");
    let quic = &result["quic"];
    assert_eq!(quic["same_state"], true, "{stdout}");
    // 2 shards x 2048 transfers at 8 per anchor, plus the rounds' filler.
    assert!(
        quic["anchors_sent"].as_u64().unwrap() >= 2 * 2048 / 8,
        "{stdout}"
    );
    assert!(quic["datagrams_sent"].as_u64().unwrap() > 0, "{stdout}");
    assert!(quic["ratio"].as_f64().unwrap() > 0.0, "{stdout}");
    let shards = result["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2);
    for shard in shards {
        assert!(
            shard["finalized_events"].as_u64().unwrap() >= 2048,
            "{stdout}"
        );
        assert!(
            shard["in_process_events_per_s"].as_f64().unwrap() > 0.0,
            "{stdout}"
        );
    }
}

/// The Python interpreter that has aioquic: `$PC_INTEROP_PYTHON`, else
/// the venv `.ci/run` makes in `target/interop-venv`, else `python3`; or
/// `None` to skip. With `PC_INTEROP=require` (as `.ci/run` sets once it
/// installed aioquic) a missing one fails the test instead.
fn interop_python() -> Option<String> {
    let venv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/interop-venv/bin/python"
    );
    let python = std::env::var("PC_INTEROP_PYTHON").unwrap_or_else(|_| {
        if Path::new(venv).exists() {
            venv.to_string()
        } else {
            "python3".to_string()
        }
    });
    let has_aioquic = Command::new(&python)
        .args(["-c", "import aioquic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_aioquic {
        return Some(python);
    }
    assert!(
        std::env::var("PC_INTEROP").as_deref() != Ok("require"),
        "PC_INTEROP=require but {python} cannot import aioquic"
    );
    eprintln!("skipped: {python} has no aioquic (pip install aioquic, or set PC_INTEROP_PYTHON)");
    None
}

/// Runs the aioquic probe against `port` offering `alpn`.
fn aioquic_probe(python: &str, port: u16, alpn: &str) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/aioquic_client.py"
    );
    let output = Command::new(python)
        .args([script, "127.0.0.1", &port.to_string(), alpn])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)))
}

/// RFC 9000 interop: aioquic (another QUIC and TLS 1.3 implementation)
/// completes a handshake with ALPN `phantom/0` and reads the node's first
/// frame; offering `h3` it is refused with CRYPTO_ERROR 0x178, the TLS
/// alert no_application_protocol (120).
#[test]
fn a_client_of_another_quic_implementation_handshakes_and_a_wrong_alpn_is_refused() {
    let Some(python) = interop_python() else {
        return;
    };
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let (node, _net) = start_one_seat_node(temp.path(), "1", "127.0.0.1:18100");

    let accepted = aioquic_probe(&python, 18100, "phantom/0");
    assert_eq!(accepted["handshake_completed"], true, "{accepted}");
    assert_eq!(accepted["alpn"], "phantom/0", "{accepted}");
    // The node's Hello, a whole frame, on the stream it opened.
    assert_eq!(accepted["first_frame_complete"], true, "{accepted}");
    let length = accepted["first_frame_length"].as_u64().unwrap();
    assert!(
        length > 0 && length <= pc_net::MAX_FRAME_BYTES as u64,
        "{accepted}"
    );

    let refused = aioquic_probe(&python, 18100, "h3");
    assert_eq!(refused["handshake_completed"], false, "{refused}");
    assert_eq!(refused["error_code"], 0x178, "{refused}");
    assert!(
        node.wait_for(&["connection_refused", "0x178"], Duration::from_secs(5))
            .is_some(),
        "{}",
        node.log()
    );
    assert_eq!(node.stop(), Some(0));
}

/// The peer book outlives the process: a node restarted without any
/// `--peer` dials the validators it met before, and the book on disk names
/// the peer with its proved validator key.
#[test]
fn a_restarted_node_without_configured_peers_redials_from_its_peer_book() {
    let _guard = lock();
    let temp = tempfile::tempdir().unwrap();
    let net = temp.path().join("net");
    let genesis = new_genesis(&net, "2", "1");
    let g = genesis.to_str().unwrap();
    let (a_dir, b_dir) = (temp.path().join("a"), temp.path().join("b"));
    let (a_dir, b_dir) = (a_dir.to_str().unwrap(), b_dir.to_str().unwrap());
    let a_key = net.join("keys/validator-00.key");
    let b_key = net.join("keys/validator-01.key");
    let a = Node::start(&node_args(
        g,
        a_dir,
        a_key.to_str().unwrap(),
        "127.0.0.1:18200",
        None,
    ));
    a.wait_for(&["core_started"], Duration::from_secs(20))
        .expect("node a starts");
    let b = Node::start(&node_args(
        g,
        b_dir,
        b_key.to_str().unwrap(),
        "127.0.0.1:18210",
        Some("127.0.0.1:18200"),
    ));
    b.wait_for(
        &["peer_connected", "\"outgoing\":true"],
        Duration::from_secs(20),
    )
    .unwrap_or_else(|| panic!("b never reached a\n{}", b.log()));
    assert_eq!(b.stop(), Some(0));
    let book = std::fs::read_to_string(Path::new(b_dir).join("peers-core-0.book")).unwrap();
    let a_hex = public_key_hex(&a_key);
    assert!(book.contains("127.0.0.1:18200"), "{book}");
    assert!(
        book.contains(&a_hex),
        "the book keeps a's proved key\n{book}"
    );

    // No --peer this time.
    let b = Node::start(&node_args(
        g,
        b_dir,
        b_key.to_str().unwrap(),
        "127.0.0.1:18210",
        None,
    ));
    let line = b
        .wait_for(
            &["peer_connected", "\"outgoing\":true"],
            Duration::from_secs(20),
        )
        .unwrap_or_else(|| panic!("the restarted b never redialled a\n{}", b.log()));
    assert!(line.contains(&a_hex), "{line}");
    assert_eq!(b.stop(), Some(0));
    assert_eq!(a.stop(), Some(0));
}
