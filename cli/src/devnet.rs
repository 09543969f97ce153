//! `phantom-engine devnet`: a local network on loopback. It writes a dev
//! genesis and keys into a data dir, starts the nodes as separate
//! `phantom-engine node` processes, drives transfer load from the funded
//! client keys over QUIC, prints each second the finalized events/s per
//! shard and the finality latency, stops the nodes with SIGTERM and checks
//! their logs: every node finalized at least `--min-rounds` rounds, and all
//! logged the same anchors count, state root and payout root for every
//! round all of them finalized; then `replay` of each node's data dir must
//! reproduce that node's last logged round. It prints `AGREE` or exits
//! non-zero naming the divergence, and leaves the data dirs for `replay`.

use pc_node::telemetry::Event;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pc_codec::genesis::{ConsensusParams, Genesis};
use pc_codec::ids::shard_of;
use pc_codec::{to_hex, Encode, MicroEvent, SigningKey};
use pc_engine::client::{self, LoadProfile, LoadStats};
use pc_engine::config::{NodeConfig, StorageConfig};
use pc_engine::metrics::scrape::Scrape;
use pc_engine::tools::agreement;
use pc_net::frame::EventOutcome;
use pc_storage::Durability;

use crate::dev_genesis::{self, DevClients, DevGenesis};
use crate::error::CliError;

/// Marker file of a devnet data dir (a dir holding it may be reused).
const MARKER: &str = "devnet.toml";
/// Units of each genesis output.
const OUTPUT_UNITS: u64 = 1_000_000;
/// Funded clients of every shard.
const CLIENTS_PER_SHARD: u16 = 2;
/// Units each load transfer pays back to its owner (the rest is its fee).
const PAYS_UNITS: u64 = 999_000;

/// Flags of `devnet`.
#[derive(clap::Args)]
pub struct DevnetArgs {
    /// Nodes (each holds one seat of every shard).
    #[arg(long, default_value_t = 4)]
    pub nodes: u8,
    /// Shards.
    #[arg(long, default_value_t = 2)]
    pub shards: u16,
    /// Seconds of load.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// Transfers per second submitted, over all shards.
    #[arg(long, default_value_t = 1000.0)]
    pub load: f64,
    /// Every node must finalize at least this many rounds per shard.
    #[arg(long, default_value_t = 5)]
    pub min_rounds: u64,
    /// The data dir (default: ./phantom-devnet). An existing devnet dir
    /// there is replaced; any other existing dir is refused.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// UDP port of node 0's core 0; node n uses base + 10 n.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Log durability of the nodes.
    #[arg(long, default_value = "batch")]
    pub fsync: Durability,
    /// Bytes of each log segment of the nodes (a multiple of 4096, at
    /// least 2 MiB).
    #[arg(long, default_value_t = 16 << 20)]
    pub segment_bytes: u64,
    /// Finalized rounds between the nodes' local snapshots (0: none by
    /// rounds).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_SNAPSHOT_INTERVAL_ROUNDS)]
    pub snapshot_interval_rounds: u64,
    /// Log bytes between the nodes' local snapshots (0: none by bytes).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_SNAPSHOT_INTERVAL_BYTES)]
    pub snapshot_interval_bytes: u64,
    /// Rounds of log the nodes keep for catch-up (older segments are
    /// pruned once a snapshot covers them).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_RETAIN_ROUNDS)]
    pub retain_rounds: u64,
    /// The node the fault flags below act on (default: the last).
    #[arg(long)]
    pub victim: Option<u8>,
    /// Start the victim with an injected crash (after-signing:N,
    /// after-persisting:N, before-sending:N); restart it on its data dir
    /// when it dies.
    #[arg(long)]
    pub crash_at: Option<pc_engine::node::CrashPlan>,
    /// SIGKILL the victim this many seconds into the load, then restart it
    /// on its data dir.
    #[arg(long)]
    pub kill_after: Option<f64>,
    /// Start the victim with a kill point of its snapshot and pruning
    /// writes armed (`PC_CRASH_AT`: snapshot-temp, snapshot-rename,
    /// prune-between); restart it on its data dir when it dies there.
    #[arg(long)]
    pub crash_env: Option<String>,
    /// SIGKILL the victim this many times at pseudo-random moments of the
    /// load (seeded, so a run can be repeated), restarting it each time.
    #[arg(long, default_value_t = 0)]
    pub kill_loop: u32,
    /// `A:B`: back the victim up A seconds into the load; B seconds in,
    /// stop it, restore the backup over its data dir (which then ends
    /// before its last own anchors) and start it with `--resume-seat`.
    #[arg(long)]
    pub restore_victim: Option<String>,
    /// Start the victim this many seconds after the load (empty data dir):
    /// it catches up from far behind.
    #[arg(long)]
    pub late_by: Option<f64>,
    /// Keep offering the full load whatever the nodes answer (by default
    /// the load generator stops sending to a node that answered
    /// `Overloaded` until its retry-after passed).
    #[arg(long)]
    pub no_backoff: bool,
    /// A load that changes over time, `SECONDS:RATE,...` (transfers per
    /// second over all shards); replaces `--load` and `--seconds`.
    #[arg(long)]
    pub load_profile: Option<String>,
    /// Share of the load's transfers that pay an owner of another shard
    /// (exported by the source shard, imported by the destination).
    #[arg(long, default_value_t = 0.5)]
    pub cross_shard: f64,
    /// Cores of each node (its shards are spread over them; with 2 or
    /// more, cross-shard bundles between its own seats cross its rings).
    #[arg(long, default_value_t = 1)]
    pub cores_per_node: usize,
    /// Node N's seat in shard 0 signs two anchors at one seq (a hidden
    /// test flag of the node); the other seats must turn it into evidence
    /// that slashes the seat's bond in shard 0 (and only there). After the
    /// load, another validator claims its owed balance, and the summary
    /// checks the slash, the claim and a refused second claim.
    #[arg(long)]
    pub equivocate: Option<u8>,
    /// Miner processes (`phantom-engine mine`, one thread each, against
    /// node i mod nodes); 0 turns mining off (the capacity figures of the
    /// README are measured so). After the load the devnet checks that mints
    /// finalized, that an immature minted output is refused and that a
    /// matured one spends.
    #[arg(long, default_value_t = 1)]
    pub miners: u8,
    /// Hash rate bound of each miner (its CPU share: some 5 % of one core
    /// here at the default). The genesis' initial target expects a
    /// solution every 2 s at this rate.
    #[arg(long, default_value_t = 100_000)]
    pub miner_hashes_per_second: u64,
    /// Maturity of minted outputs in finalized anchors of the mint shard
    /// (all three tiers; the protocol's defaults are 50 000 and more).
    #[arg(long, default_value_t = 1_000)]
    pub mint_maturity: u64,
    /// Every node signs through its own signer process (`phantom-engine
    /// signer`, on a Unix socket in its data dir) and holds no key.
    #[arg(long)]
    pub signers: bool,
}

/// What the mint watcher saw during the load.
#[derive(Debug, Default)]
struct MintWatch {
    /// The refusal of a spend of an immature minted output: (out point,
    /// mature at, the node's reason).
    immature_refused: Option<(String, u64, String)>,
    /// A spend of a matured minted output the node accepted: (out point,
    /// amount, recipient key).
    matured_spent: Option<(String, u64, [u8; 32])>,
}

/// During the load, every 500 ms: the miners' outputs on `node`; the first
/// immature one is spent (it must be refused with its maturity), the first
/// matured one is spent to a fresh key (it must be accepted).
fn watch_mints(
    genesis: &Genesis,
    keys: &[SigningKey],
    node: SocketAddr,
    over: &AtomicBool,
) -> Result<MintWatch, CliError> {
    let mut watch = MintWatch::default();
    let network = genesis.network();
    // Anchors an output must still be from maturity (a third of it) for a
    // spend to be tried as immature.
    let margin = (genesis.params.maturity_anchors[0] / 3).max(1);
    let shard = genesis.params.mint_shard;
    while !over.load(Ordering::Relaxed)
        && (watch.immature_refused.is_none() || watch.matured_spent.is_none())
    {
        std::thread::sleep(Duration::from_millis(500));
        for key in keys {
            let Ok((outputs, next_index)) = crate::wallet::unspent(node, key.public_key()) else {
                continue;
            };
            for output in outputs.iter().filter(|o| o.mature_at > 0) {
                let immature = output.mature_at > next_index;
                // An immature spend is tried only well before maturity: the
                // shard moves on while the spend travels.
                if immature && output.mature_at - next_index < margin {
                    continue;
                }
                if (immature && watch.immature_refused.is_some())
                    || (!immature && watch.matured_spent.is_some())
                {
                    continue;
                }
                let recipient = loop {
                    let candidate = SigningKey::generate(&mut rand::rng()).public_key();
                    if shard_of(&candidate, genesis.params.shards) == shard {
                        break candidate;
                    }
                };
                let aux: [u8; 32] = rand::random();
                let transfer = pc_codec::TransferBuilder::new()
                    .input(output.out_point)
                    .output(output.amount, recipient)
                    .sign(&network, key, &aux)?;
                let Ok(receipt) =
                    crate::node_cmd::submit_event(node, shard, &MicroEvent::Transfer(transfer))
                else {
                    continue;
                };
                let name = format!(
                    "{}:{}",
                    to_hex(&output.out_point.tx_id),
                    output.out_point.index
                );
                match (&receipt.outcome, immature) {
                    (EventOutcome::Rejected { detail, .. }, true) if detail.contains("matures at") => {
                        watch.immature_refused = Some((name, output.mature_at, detail.clone()));
                    }
                    // Refused for another reason (overloaded): tried again.
                    (EventOutcome::Rejected { .. }, true) => {}
                    (EventOutcome::Accepted, true) => {
                        return Err(usage(format!(
                            "{node}: accepted a spend of minted output {name}, immature until anchor {} (the shard was at {next_index})",
                            output.mature_at
                        )))
                    }
                    (EventOutcome::Accepted, false) => {
                        watch.matured_spent = Some((name, output.amount, recipient));
                    }
                    // A matured output refused (e.g. overloaded): tried
                    // again next time.
                    (EventOutcome::Rejected { .. }, false) => {}
                }
            }
        }
    }
    Ok(watch)
}

/// The mint summary: mints finalized, the watcher's refused immature spend
/// and final matured spend, the miners' CPU share. An error if the run
/// shows none of them.
fn report_mints(
    watch: &MintWatch,
    miners: &Miners,
    node: SocketAddr,
    genesis: &Genesis,
    args: &DevnetArgs,
) -> Result<(), CliError> {
    let answer = client::request(
        node,
        pc_net::NetMessage::GetMintTemplate { request: 1 },
        Duration::from_secs(10),
        |m| matches!(m, pc_net::NetMessage::MintTemplate { request: 1, .. }),
    )?;
    let pc_net::NetMessage::MintTemplate {
        mint_count,
        reward,
        target,
        next_anchor_index,
        ..
    } = answer
    else {
        unreachable!("filtered to templates")
    };
    let cpu: f64 = miners.cpu_seconds.iter().sum();
    println!(
        "mints: {mint_count} won on shard {} (next reward {reward} units, target {target:#x}, anchor index {next_anchor_index}); maturity {} anchors; {} miner(s) at most {} hashes/s each used {:.1} % of one core",
        genesis.params.mint_shard,
        args.mint_maturity,
        args.miners,
        args.miner_hashes_per_second,
        100.0 * cpu / miners.ran_seconds.max(1e-9),
    );
    if mint_count == 0 {
        return Err(usage(format!(
            "no mint finalized in the run; see {}",
            miners
                .children
                .first()
                .map_or_else(String::new, |(_, log)| log.display().to_string())
        )));
    }
    let Some((output, mature_at, reason)) = &watch.immature_refused else {
        return Err(usage(
            "no immature minted output was seen during the load to try a spend of".into(),
        ));
    };
    println!("mints: a spend of immature output {output} (matures at anchor {mature_at}) was refused: {reason}");
    let Some((output, amount, recipient)) = &watch.matured_spent else {
        return Err(usage(
            "no minted output matured during the load (raise --seconds or lower --mint-maturity)"
                .into(),
        ));
    };
    // The matured spend is final once the recipient holds it.
    let waited = Instant::now();
    loop {
        let (balance, _) = crate::node_cmd::balance_of(node, *recipient)?;
        if balance == *amount {
            println!(
                "mints: matured output {output} ({amount} units) spent; final at {}",
                pc_codec::address::encode_address(recipient)
            );
            return Ok(());
        }
        if waited.elapsed() > Duration::from_secs(20) {
            return Err(usage(format!(
                "the spend of matured output {output} did not finalize within 20 s (recipient holds {balance})"
            )));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Starts a signer for `key` on `socket` (its log and state in `dir`) and
/// waits (at most 10 s) until it listens.
fn start_signer(
    exe: &Path,
    genesis: &Path,
    key: &Path,
    dir: &Path,
    socket: &Path,
) -> Result<Child, CliError> {
    let log_path = dir.join("signer.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| CliError::io(&log_path, "create signer log", e))?;
    let mut child = Command::new(exe)
        .arg("signer")
        .arg("--key")
        .arg(key)
        .arg("--genesis")
        .arg(genesis)
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .arg("--state")
        .arg(dir.join("signer.state"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| CliError::io(exe, "start a signer", e))?;
    let began = Instant::now();
    while pc_engine::signer::SignerClient::connect(&socket.display().to_string()).is_err() {
        if began.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            return Err(usage(format!(
                "the signer on {} did not listen within 10 s; see {}",
                socket.display(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

/// User and system CPU seconds of process `pid` (from `/proc/PID/stat`).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start at
    // the state, field 3; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// The miner processes of a devnet.
struct Miners {
    children: Vec<(Child, PathBuf)>,
    keys: Vec<SigningKey>,
    started: Instant,
    /// CPU seconds each used, read when it was stopped.
    cpu_seconds: Vec<f64>,
    /// Wall seconds they ran.
    ran_seconds: f64,
}

impl Miners {
    /// Starts `args.miners` miners, each with a fresh key of the mint
    /// shard written to the keys dir.
    fn start(
        args: &DevnetArgs,
        exe: &Path,
        dir: &Path,
        genesis: &Genesis,
        node_addr: impl Fn(u8) -> SocketAddr,
    ) -> Result<Miners, CliError> {
        let mut miners = Miners {
            children: Vec::new(),
            keys: Vec::new(),
            started: Instant::now(),
            cpu_seconds: Vec::new(),
            ran_seconds: 0.0,
        };
        for i in 0..args.miners {
            let key = loop {
                let key = SigningKey::generate(&mut rand::rng());
                if shard_of(&key.public_key(), genesis.params.shards) == genesis.params.mint_shard {
                    break key;
                }
            };
            let key_path = dir.join("keys").join(format!("miner-{i}.key"));
            crate::key_file::write(&key_path, &key, "miner")?;
            let log_path = dir.join(format!("miner-{i}.log"));
            let log = std::fs::File::create(&log_path)
                .map_err(|e| CliError::io(&log_path, "create miner log", e))?;
            let err = log
                .try_clone()
                .map_err(|e| CliError::io(&log_path, "open miner log", e))?;
            let child = Command::new(exe)
                .arg("mine")
                .arg("--node")
                .arg(node_addr(i % args.nodes).to_string())
                .arg("--key")
                .arg(&key_path)
                .args(["--threads", "1", "--status-interval", "5"])
                .arg("--max-hashes-per-second")
                .arg(args.miner_hashes_per_second.to_string())
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .spawn()
                .map_err(|e| CliError::io(exe, "start a miner", e))?;
            miners.children.push((child, log_path));
            miners.keys.push(key);
        }
        Ok(miners)
    }

    /// Stops every miner (SIGTERM), noting the CPU time each used.
    fn stop(&mut self) {
        if self.children.is_empty() || !self.cpu_seconds.is_empty() {
            return;
        }
        self.ran_seconds = self.started.elapsed().as_secs_f64();
        for (child, _) in &mut self.children {
            self.cpu_seconds
                .push(process_cpu_seconds(child.id()).unwrap_or(0.0));
            // SAFETY: kill only sends a signal to a child we started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = wait_exit(child, Duration::from_secs(10));
        }
    }
}

/// The own seq at which `--equivocate` makes the seat sign twice.
const EQUIVOCATE_SEQ: u64 = 20;

/// A node process and what its status lines said.
struct NodeProc {
    child: Option<Child>,
    dir: PathBuf,
    config: PathBuf,
    status: Arc<Mutex<NodeStatus>>,
    readers: Vec<std::thread::JoinHandle<()>>,
    restarts: u32,
    /// Where it serves `/metrics`.
    metrics: SocketAddr,
    /// Started with `--resume-seat` (a restored data dir).
    resume_seat: bool,
    /// Started with `--test-equivocate SHARD:SEQ`.
    equivocate: Option<(u16, u64)>,
}

#[derive(Debug, Default, Clone)]
struct ShardStatus {
    finalized_events: u64,
    last_round: i64,
    peers: u64,
    p50_us: u64,
    p99_us: u64,
    samples: u64,
    backlog: u64,
    backlog_bound: u64,
    retry_after_ms: u32,
    accepted_submissions: u64,
    finalized_submissions: u64,
    expired_submissions: u64,
    exported: u64,
    imported: u64,
    certified: u64,
    bundles_received: u64,
    imports_queued: u64,
    cross_final: (u64, u64, u64),
}

#[derive(Debug, Default)]
struct NodeStatus {
    shards: BTreeMap<u16, ShardStatus>,
    final_p50_us: BTreeMap<u16, (u64, u64, u64)>,
    /// Latest anonymous RSS the node reported, KiB.
    anon_rss_kib: u64,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// Runs the devnet; `Err` on any divergence or failure.
pub fn devnet(args: DevnetArgs) -> Result<(), CliError> {
    if args.nodes == 0 || args.nodes > 64 {
        return Err(usage(format!("--nodes {} is outside 1..=64", args.nodes)));
    }
    if args.shards == 0 {
        return Err(usage("--shards must be at least 1".into()));
    }
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(usage(format!(
            "--seconds {} must be positive",
            args.seconds
        )));
    }
    if !(args.load >= 0.0 && args.load.is_finite()) {
        return Err(usage(format!("--load {} must be at least 0", args.load)));
    }
    if !(0.0..=1.0).contains(&args.cross_shard) {
        return Err(usage(format!(
            "--cross-shard {} is outside 0..=1",
            args.cross_shard
        )));
    }
    if args.cores_per_node == 0 || args.cores_per_node > 64 {
        return Err(usage(format!(
            "--cores-per-node {} is outside 1..=64",
            args.cores_per_node
        )));
    }
    let profile = match &args.load_profile {
        Some(text) => {
            LoadProfile::parse(text).map_err(|e| usage(format!("--load-profile: {e}")))?
        }
        None => LoadProfile::constant(args.load, Duration::from_secs_f64(args.seconds)),
    };
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("phantom-devnet"));
    prepare_dir(&dir)?;
    // The single-verify rate of this host's cores, all at once, before
    // the nodes start and again after they stopped (as `bench` measures
    // its limit): the ideal the devnet's throughput is compared with.
    let cpus = pc_engine::runtime::host::usable_cpus();
    let verify_before = verify_rate_all_cores(cpus.len());
    let (genesis, clients) = write_genesis(&dir, &args, profile.total())?;
    let genesis_path = dir.join("genesis.toml");
    let exe = std::env::current_exe().map_err(|e| usage(format!("cannot find own binary: {e}")))?;
    if let Some(plan) = &args.restore_victim {
        let parsed = plan
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<f64>().ok()?, b.parse::<f64>().ok()?)));
        if !parsed.is_some_and(|(a, b)| a >= 0.0 && b > a) {
            return Err(usage(format!(
                "--restore-victim {plan}: expected A:B, seconds with A < B"
            )));
        }
    }
    if let Some(n) = args.equivocate.filter(|n| *n >= args.nodes) {
        return Err(usage(format!(
            "--equivocate {n}: there are {} nodes",
            args.nodes
        )));
    }
    if args.equivocate.is_some() && args.nodes < 4 {
        return Err(usage(format!(
            "--equivocate needs at least 4 nodes (one Byzantine seat of k = 3f + 1), not {}",
            args.nodes
        )));
    }
    let victim = args.victim.unwrap_or(args.nodes - 1);
    if victim >= args.nodes {
        return Err(usage(format!(
            "--victim {victim}: there are {} nodes",
            args.nodes
        )));
    }

    // Start the nodes.
    let node_addr = |n: u8| -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], args.base_port + 10 * u16::from(n)))
    };
    // Each node's metrics beside its ports: the last port of its ten.
    let metrics_addr =
        |n: u8| -> SocketAddr { SocketAddr::from(([127, 0, 0, 1], node_addr(n).port() + 9)) };
    let mut nodes = Vec::new();
    let mut signers: Vec<Child> = Vec::new();
    for n in 0..args.nodes {
        let node_dir = dir.join(format!("node-{n}"));
        std::fs::create_dir_all(&node_dir)
            .map_err(|e| CliError::io(&node_dir, "create directory", e))?;
        let key_path = dir.join("keys").join(format!("validator-{n:02}.key"));
        let signer = if args.signers {
            let socket = node_dir.join("signer.sock");
            signers.push(start_signer(
                &exe,
                &genesis_path,
                &key_path,
                &node_dir,
                &socket,
            )?);
            Some(format!("unix:{}", socket.display()))
        } else {
            None
        };
        let config = NodeConfig {
            key: signer.is_none().then_some(key_path),
            signer,
            cores: Some(
                (0..args.cores_per_node)
                    .map(|c| cpus[(usize::from(n) * args.cores_per_node + c) % cpus.len()])
                    .collect(),
            ),
            io_memory_bytes: Some(512 << 10),
            storage: StorageConfig {
                fsync: args.fsync,
                segment_bytes: args.segment_bytes,
                snapshot_interval_rounds: args.snapshot_interval_rounds,
                snapshot_interval_bytes: args.snapshot_interval_bytes,
                retain_rounds: args.retain_rounds,
                ..StorageConfig::default()
            },
            listen: Ipv4Addr::LOCALHOST.into(),
            base_port: node_addr(n).port(),
            metrics_address: metrics_addr(n),
            peers: (0..args.nodes)
                .filter(|m| *m != n)
                .map(&node_addr)
                .collect(),
            ..NodeConfig::defaults(node_dir.clone())
        };
        let config = format!("# devnet node {n}\n{}", config.to_toml());
        let config_path = node_dir.join("node.toml");
        std::fs::write(&config_path, config)
            .map_err(|e| CliError::io(&config_path, "write node config", e))?;
        let mut node = NodeProc {
            child: None,
            dir: node_dir,
            config: config_path,
            status: Arc::new(Mutex::new(NodeStatus::default())),
            readers: Vec::new(),
            restarts: 0,
            metrics: metrics_addr(n),
            resume_seat: false,
            equivocate: (args.equivocate == Some(n)).then_some((0, EQUIVOCATE_SEQ)),
        };
        let late = n == victim && args.late_by.is_some();
        if !late {
            let crash = if n == victim { args.crash_at } else { None };
            let env = if n == victim {
                args.crash_env.as_deref()
            } else {
                None
            };
            start_node(&exe, &genesis_path, &mut node, crash, env)?;
        }
        nodes.push(node);
    }
    eprintln!(
        "devnet: {} nodes, {} shards, k = {}, data dir {}",
        args.nodes,
        args.shards,
        args.nodes,
        dir.display()
    );
    for (n, node) in nodes.iter().enumerate() {
        eprintln!(
            "devnet: node {n} serves its metrics at http://{}/metrics",
            node.metrics
        );
    }

    let faults = Faults {
        victim: usize::from(victim),
        exe: exe.clone(),
        genesis_path: genesis_path.clone(),
        restart_on_exit: args.crash_at.is_some()
            || args.kill_after.is_some()
            || args.crash_env.is_some()
            || args.kill_loop > 0,
    };
    // The miners, and beside the load a watcher of their outputs: it
    // tries to spend an immature one (refused) and a matured one (final).
    let mut miners = Miners::start(&args, &exe, &dir, &genesis, node_addr)?;
    let load_over = Arc::new(AtomicBool::new(false));
    let watcher = (args.miners > 0).then(|| {
        let keys = miners.keys.clone();
        let (genesis, over) = (genesis.clone(), load_over.clone());
        let node = node_addr(0);
        std::thread::spawn(move || watch_mints(&genesis, &keys, node, &over))
    });
    let mut outcome = run_network(
        &args,
        &profile,
        &genesis,
        &clients,
        &mut nodes,
        node_addr,
        &faults,
        &mut || {
            load_over.store(true, Ordering::Relaxed);
            miners.stop();
        },
    );
    miners.stop();
    load_over.store(true, Ordering::Relaxed);
    let mints = watcher.map(|w| {
        w.join()
            .unwrap_or_else(|_| Err(usage("the mint watcher panicked".into())))
    });
    // The mint summary while the nodes still answer.
    if let (Some(mints), Ok(_)) = (mints, &outcome) {
        if let Err(error) =
            mints.and_then(|m| report_mints(&m, &miners, node_addr(0), &genesis, &args))
        {
            outcome = Err(error);
        }
    }
    let mut claimed = None;
    if let (Some(offender), Ok(_)) = (args.equivocate, &outcome) {
        match claim_after_slash(&dir, &genesis, offender, node_addr(0)) {
            Ok(claim) => claimed = Some(claim),
            Err(error) => outcome = Err(error),
        }
    }
    // Every node's metrics at the end of the load, before they stop.
    let scrapes: Vec<Option<Scrape>> = nodes
        .iter()
        .map(|node| Scrape::fetch(node.metrics).ok())
        .collect();
    // Stop the nodes (also after a failure: never leave them running).
    for node in nodes.iter_mut() {
        if let Some(child) = &node.child {
            // SAFETY: kill only sends a signal to a child we started.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
        }
    }
    let mut exits = Vec::new();
    for (n, node) in nodes.iter_mut().enumerate() {
        let code = node
            .child
            .as_mut()
            .map(|child| wait_exit(child, Duration::from_secs(30)));
        exits.push((n, code.flatten()));
        for reader in node.readers.drain(..) {
            let _ = reader.join();
        }
    }
    // The signers last: a stopping node may still sign.
    for mut signer in signers {
        let _ = signer.kill();
        let _ = signer.wait();
    }
    let load = outcome?;
    let verify_after = verify_rate_all_cores(cpus.len());
    print_summary(
        &args,
        &profile,
        &load,
        &nodes,
        (verify_before, verify_after, cpus.len()),
    )?;
    for (n, exit) in &exits {
        match exit {
            Some(0) => {}
            other => {
                return Err(usage(format!(
                    "node {n} exited with {other:?}; see {}",
                    nodes[*n].dir.join("node.log").display()
                )))
            }
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        let status = node.status.lock().expect("status lock");
        for (shard, (p50, p99, samples)) in &status.final_p50_us {
            println!(
                "node {n} shard {shard}: submit-to-final latency p50 {:.1} ms, p99 {:.1} ms over {samples} transfers",
                *p50 as f64 / 1000.0,
                *p99 as f64 / 1000.0
            );
            if let Some((x50, x99, xs)) = status
                .shards
                .get(shard)
                .map(|s| s.cross_final)
                .filter(|c| c.2 > 0)
            {
                println!(
                    "node {n} shard {shard}: cross-shard latency (submitted at another shard of this node's core, to imported and final here) p50 {:.1} ms, p99 {:.1} ms over {xs} transfers: p50 {:.1} x the intra-shard p50",
                    x50 as f64 / 1000.0,
                    x99 as f64 / 1000.0,
                    x50 as f64 / (*p50).max(1) as f64
                );
            }
        }
    }
    print_metrics(&scrapes, args.shards);
    if args.shards > 1 {
        for (n, node) in nodes.iter().enumerate() {
            let status = node.status.lock().expect("status lock");
            if status.shards.len() > 4 {
                let sum = |f: fn(&ShardStatus) -> u64| status.shards.values().map(f).sum::<u64>();
                println!(
                    "node {n} cross-shard over its {} shards: exported {}, imported {}, {} checkpoints certified, {} bundles received, {} imports carried",
                    status.shards.len(),
                    sum(|s| s.exported),
                    sum(|s| s.imported),
                    sum(|s| s.certified),
                    sum(|s| s.bundles_received),
                    sum(|s| s.imports_queued)
                );
                continue;
            }
            let line: Vec<String> = status
                .shards
                .iter()
                .map(|(shard, s)| {
                    format!(
                        "shard {shard}: exported {}, imported {}, {} checkpoints certified, {} bundles received, {} imports carried",
                        s.exported, s.imported, s.certified, s.bundles_received, s.imports_queued
                    )
                })
                .collect();
            println!("node {n} cross-shard: {}", line.join("; "));
        }
    }
    for (n, node) in nodes.iter().enumerate() {
        if node.restarts > 0 {
            println!(
                "node {n}: restarted {} time(s) on its data dir",
                node.restarts
            );
        }
    }
    let planted = args.equivocate.map(|n| {
        let seat = seat_of(&genesis, n, 0).expect("every validator holds a seat in shard 0");
        (seat, EQUIVOCATE_SEQ, n, claimed)
    });
    check_agreement(&dir, &nodes, &genesis, args.min_rounds, planted)
}

/// The planted equivocation as node `n`'s replayed state shows it: the
/// offender's seat in shard 0 slashed 100 % once (class equivocation, tier
/// 1), its seats in every other shard keeping their bonds.
fn check_planted_slash(
    n: usize,
    replayed: &[pc_engine::tools::replay::ReplayedShard],
    genesis: &Genesis,
    seat: u8,
    offender: u8,
    divergences: &mut Vec<String>,
) {
    for shard in replayed {
        let own = seat_of(genesis, offender, shard.shard);
        let Some(account) = own.and_then(|s| shard.seats.get(usize::from(s))) else {
            continue;
        };
        if shard.shard == 0 {
            debug_assert_eq!(own, Some(seat));
            match account.slashes.as_slice() {
                [(class, 1, amount, index)]
                    if class == "equivocation"
                        && *amount == account.bond
                        && account.remaining == 0
                        && account.slashed_out =>
                {
                    let owed: Vec<u64> = shard.seats.iter().map(|s| s.owed).collect();
                    println!(
                        "node {n} shard 0: seat {seat} (validator {offender}) slashed 100 % for equivocation: {amount} units at anchor index {index}, shared by the other seats; owed balances now {owed:?}"
                    );
                }
                other => divergences.push(format!(
                    "node {n} shard 0: seat {seat} (validator {offender}) equivocated but its slashes are {other:?}, {} of {} units left",
                    account.remaining, account.bond
                )),
            }
        } else if account.remaining != account.bond || !account.slashes.is_empty() {
            divergences.push(format!(
                "node {n} shard {}: validator {offender}'s seat there was slashed ({} of {} left) for an offence in shard 0",
                shard.shard, account.remaining, account.bond
            ));
        } else {
            println!(
                "node {n} shard {}: validator {offender}'s seat keeps its bond of {} units",
                shard.shard, account.bond
            );
        }
    }
}

/// The seat validator `n` holds in `shard`.
fn seat_of(genesis: &Genesis, n: u8, shard: u16) -> Option<u8> {
    genesis.validators[usize::from(n)]
        .seats
        .iter()
        .find(|s| s.shard == shard)
        .map(|s| s.seat)
}

/// A claim the devnet made after the planted equivocation was slashed.
#[derive(Debug, Clone, Copy)]
struct ClaimCheck {
    /// The claiming validator.
    claimer: u8,
    /// The owed balance claimed (fees and the slash share).
    owed: u64,
    /// Of it, the slash share the devnet computed from the genesis bonds.
    slash_share: u64,
    /// The claimer's balance before and after.
    before: u64,
    after: u64,
}

/// The slash share of every other eligible seat of a 100 % slash of
/// `offender`'s seat in shard 0, computed from the genesis bonds as DESIGN
/// §5.4 states it (not with the state's functions): the validator's bond
/// split over its seats in ascending shard order (`floor(bond / n) + 1`
/// for the first `bond mod n` seats), shared equally (floor) by the other
/// seats of the shard; the dust goes to the carrying anchor's creator,
/// which may be `claimer` (so its share is `floor` or `floor + dust`).
fn expected_slash_share(genesis: &Genesis, offender: u8) -> (u64, u64) {
    let validator = &genesis.validators[usize::from(offender)];
    let mut shards: Vec<u16> = validator.seats.iter().map(|s| s.shard).collect();
    shards.sort_unstable();
    let n = shards.len() as u64;
    let rank = shards
        .iter()
        .position(|s| *s == 0)
        .expect("a seat in shard 0") as u64;
    let bond = validator.bond / n + u64::from(rank < validator.bond % n);
    let others = u64::from(genesis.params.k) - 1;
    (bond / others, bond % others)
}

/// After the load of a run with `--equivocate`: waits until the offender's
/// slash reached the owed balance of another validator's seat in shard 0,
/// claims it through `node`, waits until the claimer's balance rose by it,
/// and checks that a second claim of the same leaf is refused.
fn claim_after_slash(
    dir: &Path,
    genesis: &Genesis,
    offender: u8,
    node: SocketAddr,
) -> Result<ClaimCheck, CliError> {
    use crate::node_cmd::{balance_of, claim_event, payout_proof, submit_event};
    let claimer: u8 = if offender == 0 { 1 } else { 0 };
    let key_path = dir.join("keys").join(format!("validator-{claimer:02}.key"));
    let key = crate::key_file::read(&key_path)?;
    let owner = key.public_key();
    // The fees a seat earns in a devnet run are a few hundred thousand
    // units, the slash share of a 5 000 PC seat bond hundreds of billions:
    // an owed balance past the share means the slash was applied.
    let (share, dust) = expected_slash_share(genesis, offender);
    let deadline = Instant::now() + Duration::from_secs(30);
    let proved = loop {
        let proved = payout_proof(node, 0, owner)?;
        if proved.1.amount >= share {
            break proved;
        }
        if Instant::now() > deadline {
            return Err(usage(format!(
                "devnet: validator {claimer} is owed {} units in shard 0 after the load, less than its share {share} of the slash of validator {offender}: the equivocation was not slashed",
                proved.1.amount
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let (round, leaf) = (proved.0, proved.1);
    let balance = || balance_of(node, owner).map(|(amount, _)| amount);
    let before = balance()?;
    let network = genesis.network();
    let claim = |aux: [u8; 32]| claim_event(&key, &network, 0, proved.clone(), &aux);
    let submit = |event: &MicroEvent| submit_event(node, 0, event).map(|receipt| receipt.outcome);
    let first = submit(&claim([3; 32]))?;
    if first != EventOutcome::Accepted {
        return Err(usage(format!("devnet: the claim was refused: {first:?}")));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let now = balance()?;
        if now != before {
            break now;
        }
        if Instant::now() > deadline {
            return Err(usage(format!(
                "devnet: validator {claimer}'s claim of {} units was accepted but its balance stayed {before} for 30 s",
                leaf.amount
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // A second claim of the same leaf (another signature, so another
    // event): refused at intake as stale, the seat claimed since.
    let second = submit(&claim([4; 32]))?;
    if second == EventOutcome::Accepted {
        return Err(usage(
            "devnet: a second claim of the same leaf was accepted".into(),
        ));
    }
    println!(
        "devnet: validator {claimer} claimed its owed {} units in shard 0 (round {round}); its slash share computed from the genesis bonds is {share} (+{dust} dust to the carrying anchor's creator); balance {before} -> {after}; a second claim of the same leaf: {second:?}",
        leaf.amount
    );
    Ok(ClaimCheck {
        claimer,
        owed: leaf.amount,
        slash_share: share,
        before,
        after,
    })
}

/// The fault plan of a run.
struct Faults {
    victim: usize,
    exe: PathBuf,
    genesis_path: PathBuf,
    restart_on_exit: bool,
}

/// Submits load and prints progress until the load profile ended; what
/// the load counted, and the finalized events per shard at its end.
#[allow(clippy::too_many_arguments)]
fn run_network(
    args: &DevnetArgs,
    profile: &LoadProfile,
    genesis: &Genesis,
    clients: &[SigningKey],
    nodes: &mut [NodeProc],
    node_addr: impl Fn(u8) -> SocketAddr,
    faults: &Faults,
    on_load_end: &mut dyn FnMut(),
) -> Result<LoadOutcome, CliError> {
    // Wait until every running node sees every other running one on every
    // shard (or 20 s).
    let running = nodes.iter().filter(|n| n.child.is_some()).count() as u64;
    let want_peers = running.saturating_sub(1);
    let waited = Instant::now();
    loop {
        for (n, node) in nodes.iter_mut().enumerate() {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) {
                // The node's own one-line error says what went wrong.
                let log = node.dir.join("node.log");
                let cause = std::fs::read_to_string(&log)
                    .ok()
                    .and_then(|text| {
                        text.lines()
                            .rev()
                            .find_map(|l| l.strip_prefix("error: ").map(str::to_string))
                    })
                    .map_or_else(String::new, |line| format!(": {line}"));
                let hint = if cause.contains("cannot bind") {
                    " (another process holds the port: pick others with --base-port)"
                } else {
                    ""
                };
                return Err(usage(format!(
                    "node {n} exited early ({status}){cause}{hint}; see {}",
                    log.display()
                )));
            }
        }
        let ready = nodes.iter().filter(|n| n.child.is_some()).all(|node| {
            let status = node.status.lock().expect("status lock");
            status.shards.len() == usize::from(args.shards)
                && status.shards.values().all(|s| s.peers >= want_peers)
        });
        if ready {
            break;
        }
        if waited.elapsed() > Duration::from_secs(20) {
            eprintln!("devnet: not every node connected to every other within 20 s; starting the load anyway");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    // Every transfer of the load, signed before it starts (one thread per
    // shard), so that signing takes no CPU from the nodes while they are
    // measured.
    let network = genesis.network();
    let per_shard_needed = (profile.total() / f64::from(args.shards)).ceil() as usize + 256;
    let signing = Instant::now();
    eprintln!(
        "devnet: signing {} transfers ahead of the load",
        per_shard_needed * usize::from(args.shards)
    );
    let mut signers = Vec::new();
    // The owners of each shard, for the transfers that pay across shards.
    let owners: Arc<Vec<Vec<pc_codec::PublicKeyBytes>>> = Arc::new(
        (0..args.shards)
            .map(|shard| {
                genesis
                    .allocations
                    .iter()
                    .map(|a| a.owner)
                    .filter(|owner| shard_of(owner, args.shards) == shard)
                    .collect()
            })
            .collect(),
    );
    let cross_share = if args.shards > 1 {
        args.cross_shard
    } else {
        0.0
    };
    for shard in 0..args.shards {
        let owners = owners.clone();
        let mut outputs = Vec::new();
        for (index, allocation) in genesis.allocations.iter().enumerate() {
            if shard_of(&allocation.owner, args.shards) != shard {
                continue;
            }
            let key = clients
                .iter()
                .find(|k| k.public_key() == allocation.owner)
                .expect("every allocation is a client's")
                .clone();
            for output in 0..allocation.outputs {
                outputs.push((key.clone(), index as u32, output as u16));
            }
        }
        signers.push(std::thread::spawn(move || {
            // Interleave the clients so consecutive transfers of a batch
            // come from different owners.
            outputs.sort_by_key(|(_, index, output)| (*output, *index));
            outputs.truncate(per_shard_needed);
            let (tx, rx) = crossbeam_channel::unbounded::<Vec<u8>>();
            let shards = owners.len() as u64;
            for (n, (key, index, output)) in outputs.into_iter().enumerate() {
                let out_point = Genesis::allocation_out_point(&network, index, output);
                let aux = blake3::hash(&[&index.to_le_bytes()[..], &output.to_le_bytes()].concat());
                // Which transfers pay across shards: an even spread of the
                // share (the n-th of every 1 024 below it), to the other
                // shards in turn.
                let n = n as u64;
                let cross = ((n * 461) % 1024) < (cross_share * 1024.0) as u64;
                let to = if cross {
                    let dest = (u64::from(shard) + 1 + n % (shards - 1).max(1)) % shards;
                    let list = &owners[dest as usize];
                    list[(n as usize / 7) % list.len()]
                } else {
                    key.public_key()
                };
                let transfer = pc_codec::TransferBuilder::new()
                    .input(out_point)
                    .output(PAYS_UNITS, to)
                    .sign(&network, &key, aux.as_bytes())
                    .expect("one input, one output");
                let _ = tx.send(MicroEvent::Transfer(transfer).to_bytes());
            }
            rx
        }));
    }
    let sources: Vec<client::EventSource> = signers
        .into_iter()
        .map(|signer| signer.join().expect("a signing thread"))
        .collect();
    eprintln!("devnet: signed in {:.1} s", signing.elapsed().as_secs_f64());
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<Vec<SocketAddr>> = (0..args.shards)
        .map(|_| (0..args.nodes).map(&node_addr).collect())
        .collect();
    let stats = Arc::new(LoadStats::default());
    let load = {
        let stats = stats.clone();
        let stop = stop.clone();
        let profile = profile.clone();
        let backoff = !args.no_backoff;
        std::thread::spawn(move || {
            client::run_load(targets, sources, profile, backoff, stop, stats)
        })
    };

    // Progress, once a second.
    let started = Instant::now();
    let mut last: Vec<u64> = vec![0; usize::from(args.shards)];
    let mut second = 0u64;
    println!(
        "   t  shard  events/s  finality_p50_ms  finality_p99_ms  last_round  offered/s  accepted/s  refused/s  backlog/bound  retry_ms"
    );
    let mut last_load = (0u64, 0u64, 0u64);
    let mut killed = false;
    let restore_plan: Option<(f64, f64)> = args.restore_victim.as_deref().and_then(|plan| {
        let (a, b) = plan.split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    });
    let (mut backed_up, mut restored) = (false, false);
    // The kill loop's moments: spread over the load's middle, jittered by
    // a fixed-seed generator (the same moments every run).
    let mut kill_at: std::collections::VecDeque<f64> = {
        let span = profile.duration().as_secs_f64();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        (0..args.kill_loop)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let slot = span * 0.8 / f64::from(args.kill_loop.max(1));
                span * 0.1 + slot * (f64::from(i) + (state % 1000) as f64 / 1000.0)
            })
            .collect()
    };
    let mut peer_rss_before: u64 = 0;
    let mut peer_rss_during: u64 = 0;
    let load_end = profile.duration();
    while started.elapsed() < load_end + Duration::from_secs(2) {
        // Faults come due between progress lines.
        let tick_end = Instant::now() + Duration::from_secs(1);
        while Instant::now() < tick_end {
            std::thread::sleep(Duration::from_millis(20));
            let elapsed = started.elapsed().as_secs_f64();
            let victim = &mut nodes[faults.victim];
            if let Some(late_by) = args.late_by {
                if victim.child.is_none() && victim.restarts == 0 && elapsed >= late_by {
                    println!("devnet: starting node {} {late_by} s late", faults.victim);
                    start_node(&faults.exe, &faults.genesis_path, victim, None, None)?;
                    victim.restarts = 0;
                }
            }
            if let Some(kill_after) = args.kill_after {
                if !killed && elapsed >= kill_after {
                    if let Some(child) = victim.child.as_mut() {
                        println!("devnet: SIGKILL node {} at {elapsed:.2} s", faults.victim);
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    killed = true;
                }
            }
            if let Some((backup_at, restore_at)) = restore_plan {
                let backup_file = faults.genesis_path.with_file_name("victim.backup");
                if !backed_up && elapsed >= backup_at {
                    pc_engine::tools::backup::backup(&victim.dir, &backup_file)
                        .map_err(|e| usage(format!("backup of the victim: {e}")))?;
                    println!("devnet: backed node {} up at {elapsed:.2} s", faults.victim);
                    backed_up = true;
                }
                if backed_up && !restored && elapsed >= restore_at {
                    if let Some(child) = victim.child.as_mut() {
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    let old = victim.dir.with_extension("before-restore");
                    std::fs::rename(&victim.dir, &old)
                        .map_err(|e| CliError::io(&victim.dir, "move aside", e))?;
                    pc_engine::tools::backup::restore(&backup_file, &victim.dir)
                        .map_err(|e| usage(format!("restore of the victim: {e}")))?;
                    for keep in ["node.toml", "node.log"] {
                        let _ = std::fs::copy(old.join(keep), victim.dir.join(keep));
                    }
                    println!(
                        "devnet: restored node {} from its backup at {elapsed:.2} s; it resumes its seats",
                        faults.victim
                    );
                    victim.resume_seat = true;
                    start_node(&faults.exe, &faults.genesis_path, victim, None, None)?;
                    restored = true;
                }
            }
            if kill_at.front().is_some_and(|at| elapsed >= *at) {
                kill_at.pop_front();
                if let Some(child) = victim.child.as_mut() {
                    println!(
                        "devnet: SIGKILL node {} at {elapsed:.2} s (loop)",
                        faults.victim
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
            for (n, node) in nodes.iter_mut().enumerate() {
                let Some(Ok(Some(status))) = node.child.as_mut().map(Child::try_wait) else {
                    continue;
                };
                if n == faults.victim
                    && faults.restart_on_exit
                    && node.restarts < 3 + args.kill_loop
                {
                    println!("devnet: node {n} died ({status}); restarting it on its data dir");
                    start_node(&faults.exe, &faults.genesis_path, node, None, None)?;
                    node.restarts += 1;
                    continue;
                }
                stop.store(true, Ordering::Relaxed);
                return Err(usage(format!(
                    "node {n} exited during the run ({status}); see {}",
                    node.dir.join("node.log").display()
                )));
            }
        }
        second += 1;
        let peers_rss = nodes
            .iter()
            .enumerate()
            .filter(|(n, _)| *n != faults.victim)
            .map(|(_, node)| node.status.lock().expect("lock").anon_rss_kib)
            .max()
            .unwrap_or(0);
        match args.late_by {
            Some(late_by) if (second as f64) <= late_by => {
                peer_rss_before = peer_rss_before.max(peers_rss)
            }
            Some(_) => peer_rss_during = peer_rss_during.max(peers_rss),
            None => {}
        }
        // Offered, accepted and refused in this second, over all shards.
        let now_load = (
            stats.submitted.load(Ordering::Relaxed),
            stats.accepted.load(Ordering::Relaxed),
            stats.rejected.load(Ordering::Relaxed),
        );
        let second_load = (
            now_load.0 - last_load.0,
            now_load.1 - last_load.1,
            now_load.2 - last_load.2,
        );
        last_load = now_load;
        for shard in 0..args.shards {
            // Node 0's view of the shard; latency over every node's
            // submissions (the median p50, the highest p99).
            let views: Vec<ShardStatus> = nodes
                .iter()
                .filter_map(|n| n.status.lock().expect("lock").shards.get(&shard).cloned())
                .collect();
            let Some(first) = views.first() else { continue };
            let finalized = first.finalized_events;
            let rate = finalized.saturating_sub(last[usize::from(shard)]);
            last[usize::from(shard)] = finalized;
            let mut p50s: Vec<u64> = views
                .iter()
                .filter(|v| v.samples > 0)
                .map(|v| v.p50_us)
                .collect();
            p50s.sort_unstable();
            let p50 = p50s.get(p50s.len() / 2).copied().unwrap_or(0);
            let p99 = views.iter().map(|v| v.p99_us).max().unwrap_or(0);
            let backlog = format!("{}/{}", first.backlog, first.backlog_bound);
            let retry = views.iter().map(|v| v.retry_after_ms).max().unwrap_or(0);
            println!(
                "{second:>4}  {shard:>5}  {rate:>8}  {:>15.1}  {:>15.1}  {:>10}  {:>9}  {:>10}  {:>9}  {backlog:>13}  {retry:>8}",
                p50 as f64 / 1000.0,
                p99 as f64 / 1000.0,
                first.last_round,
                second_load.0,
                second_load.1,
                second_load.2,
            );
        }
        let _ = std::io::stdout().flush();
    }
    if args.late_by.is_some() {
        println!(
            "late node {}: the other nodes' peak anonymous RSS was {:.1} MB before it started and {:.1} MB while it caught up",
            faults.victim,
            peer_rss_before as f64 / 1024.0,
            peer_rss_during as f64 / 1024.0
        );
    }
    stop.store(true, Ordering::Relaxed);
    let load_result = load
        .join()
        .map_err(|_| usage("the load thread panicked".into()))?;
    on_load_end();
    load_result?;
    let finalized_at_load_end = finalized_per_shard(nodes, args.shards);
    // Every accepted transfer must finalize: wait (at most 20 s) until each
    // node has finalized every submission it accepted.
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(20) && !all_submissions_final(nodes) {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every export must land: wait (at most 30 s more) until each running
    // node's shards imported what they exported to each other.
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(30) && !all_exports_imported(nodes) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if args.shards > 1 {
        println!(
            "devnet: {} s after the load, the exports {} imported (status lines; the data dirs are checked below)",
            drain.elapsed().as_secs(),
            if all_exports_imported(nodes) { "were all" } else { "were not all" }
        );
    }
    Ok(LoadOutcome {
        stats,
        finalized_at_load_end,
        faults: args.crash_at.is_some()
            || args.kill_after.is_some()
            || args.late_by.is_some()
            || args.crash_env.is_some()
            || args.kill_loop > 0
            || args.restore_victim.is_some(),
    })
}

/// What the load of a run did.
struct LoadOutcome {
    stats: Arc<LoadStats>,
    /// Node 0's finalized events per shard when the profile ended (+2 s).
    finalized_at_load_end: Vec<u64>,
    /// A fault was injected (a node may lose what it accepted).
    faults: bool,
}

/// The most finalized events any node reports per shard.
fn finalized_per_shard(nodes: &[NodeProc], shards: u16) -> Vec<u64> {
    (0..shards)
        .map(|shard| {
            nodes
                .iter()
                .filter_map(|n| {
                    let status = n.status.lock().expect("lock");
                    status.shards.get(&shard).map(|s| s.finalized_events)
                })
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// Every running node's shards imported as much value as they exported
/// (their status lines' counters).
fn all_exports_imported(nodes: &[NodeProc]) -> bool {
    nodes.iter().filter(|n| n.child.is_some()).all(|n| {
        let status = n.status.lock().expect("lock");
        let exported: u64 = status.shards.values().map(|s| s.exported).sum();
        let imported: u64 = status.shards.values().map(|s| s.imported).sum();
        exported == imported
    })
}

/// Every running node finalized every submission it accepted.
fn all_submissions_final(nodes: &[NodeProc]) -> bool {
    nodes.iter().filter(|n| n.child.is_some()).all(|n| {
        let status = n.status.lock().expect("lock");
        status
            .shards
            .values()
            .all(|s| s.finalized_submissions + s.expired_submissions >= s.accepted_submissions)
    })
}

/// BIP-340 verifies per second of one core, measured on every core at
/// once for a second over distinct signed messages (as `bench` does); the
/// mean over the cores.
fn verify_rate_all_cores(cores: usize) -> f64 {
    let samples =
        pc_engine::runtime::host::VerifySamples::new(pc_engine::runtime::host::CALIBRATION_SAMPLES);
    let threads: Vec<_> = (0..cores.max(1))
        .map(|_| {
            let samples = samples.clone();
            std::thread::spawn(move || samples.verify_rate_per_s(Duration::from_secs(1)))
        })
        .collect();
    let rates: Vec<f64> = threads.into_iter().filter_map(|t| t.join().ok()).collect();
    rates.iter().sum::<f64>() / rates.len().max(1) as f64
}

/// The run's summary: offered, accepted, refused and finalized per second,
/// the ideal (cores x single-verify rate / nodes) and the ratio, and the
/// check that every accepted transfer finalized.
/// One line per node from its `/metrics` at the end of the load.
fn print_metrics(scrapes: &[Option<Scrape>], shards: u16) {
    for (n, scrape) in scrapes.iter().enumerate() {
        let Some(m) = scrape else {
            println!("node {n} metrics: not scraped (the node did not answer)");
            continue;
        };
        let finalized: Vec<String> = (0..shards)
            .map(|shard| {
                let shard = shard.to_string();
                format!(
                    "{:.0}",
                    m.sum("pc_shard_finalized_events_total", &[("shard", &shard)])
                )
            })
            .collect();
        let hits = m.sum("pc_node_cache_payloads_hits_total", &[])
            + m.sum("pc_node_cache_headers_hits_total", &[]);
        let misses = m.sum("pc_node_cache_payloads_misses_total", &[])
            + m.sum("pc_node_cache_headers_misses_total", &[]);
        let hit_ratio = if hits + misses > 0.0 {
            hits / (hits + misses)
        } else {
            0.0
        };
        println!(
            "node {n} metrics: finalized events per shard [{}], rounds decided {:.0}, peers {:.0}, violations {:.0}, drops {:.0}, messages in/out {:.0}/{:.0}, cache hit ratio {hit_ratio:.2}, store reads {:.0}, verify share {:.2}, RSS {:.0} MiB",
            finalized.join(", "),
            m.sum("pc_shard_rounds_decided_total", &[]),
            m.sum("pc_p2p_connected_peers", &[]),
            m.sum("pc_p2p_violations_total", &[]),
            m.sum("pc_p2p_dropped_messages_total", &[]),
            m.sum("pc_p2p_inbound_messages_total", &[]),
            m.sum("pc_p2p_outbound_messages_total", &[]),
            m.sum("pc_node_store_payload_read_seconds_count", &[])
                + m.sum("pc_node_store_header_read_seconds_count", &[]),
            m.sum("pc_shard_verify_time_share", &[]),
            m.sum("pc_process_resident_memory_bytes", &[]) / f64::from(1u32 << 20),
        );
        if shards > 1 {
            let moved = |path: &str, kind: &str| {
                m.sum(
                    "pc_p2p_cross_shard_messages_total",
                    &[("path", path), ("kind", kind)],
                )
            };
            println!(
                "node {n} metrics: cross-shard over its rings {:.0} bundles, {:.0} certificates, {:.0} acks; between shards of one core {:.0} bundles; to peers {:.0} signatures, {:.0} bundles; {:.0} imports carried, {:.0} cross-shard violations",
                moved("ring_in", "exports"),
                moved("ring_in", "cert"),
                moved("ring_in", "ack"),
                moved("local", "exports"),
                moved("peer_out", "sig"),
                moved("peer_out", "exports"),
                m.sum("pc_shard_imports_carried_total", &[]),
                m.sum("pc_shard_cross_violations_total", &[]),
            );
        }
    }
}

fn print_summary(
    args: &DevnetArgs,
    profile: &LoadProfile,
    load: &LoadOutcome,
    nodes: &[NodeProc],
    (verify_before, verify_after, cores): (f64, f64, usize),
) -> Result<(), CliError> {
    let stats = &load.stats;
    let seconds = profile.duration().as_secs_f64();
    let per_s = |count: u64| count as f64 / seconds;
    let (submitted, accepted, rejected, overloaded, held, unsent) = (
        stats.submitted.load(Ordering::Relaxed),
        stats.accepted.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.overloaded.load(Ordering::Relaxed),
        stats.held_back.load(Ordering::Relaxed),
        stats.unsent.load(Ordering::Relaxed),
    );
    let finalized: u64 = load.finalized_at_load_end.iter().sum();
    println!(
        "load: offered {:.0}/s (sent {submitted}), accepted {:.0}/s ({accepted}), refused {:.0}/s ({rejected}; {overloaded} overloaded), held back by back-off {held}, not sent {unsent}; finalized {:.0}/s in total ({:.0}/s per shard) over {seconds:.0} s",
        per_s(submitted),
        per_s(accepted),
        per_s(rejected),
        per_s(finalized),
        per_s(finalized) / f64::from(args.shards),
    );
    let verify = (verify_before + verify_after) / 2.0;
    let ideal = cores as f64 * verify / f64::from(args.nodes);
    println!(
        "capacity: single-verify rate {verify_before:.0}/s before, {verify_after:.0}/s after; ideal {cores} cores x {verify:.0}/s / {} nodes = {ideal:.0} events/s; finalized {:.0}/s = {:.2} of it",
        args.nodes,
        per_s(finalized),
        per_s(finalized) / ideal.max(1.0)
    );
    // Every accepted transfer finalized: the nodes' own count of the
    // submissions they took and finalized against the load's receipts.
    let (mut taken, mut done, mut expired) = (0u64, 0u64, 0u64);
    for node in nodes {
        let status = node.status.lock().expect("lock");
        for s in status.shards.values() {
            taken += s.accepted_submissions;
            done += s.finalized_submissions;
            expired += s.expired_submissions;
        }
    }
    println!(
        "accepted transfers: {accepted} receipts; the nodes took {taken} and finalized {done} of them ({expired} not finalized within 30 s)"
    );
    // A receipt can be lost (the load generator stops listening shortly
    // after its last send, a full send queue drops one), so the nodes may
    // have taken more than the receipts say; never fewer.
    if !load.faults && (done != taken || accepted > taken) {
        return Err(usage(format!(
            "not every accepted transfer finalized: {accepted} accepted receipts, {taken} taken by the nodes, {done} finalized"
        )));
    }
    Ok(())
}

/// Refuses a dir that is not a devnet's; clears one that is.
fn prepare_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() {
        let is_devnet = dir.join(MARKER).exists();
        let is_empty = std::fs::read_dir(dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_devnet && !is_empty {
            return Err(usage(format!(
                "{}: exists and is not a devnet data dir (no {MARKER}); choose another --data-dir",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| CliError::io(dir, "remove old devnet", e))?;
    }
    std::fs::create_dir_all(dir.join("keys"))
        .map_err(|e| CliError::io(dir, "create directory", e))?;
    let marker = dir.join(MARKER);
    std::fs::write(
        &marker,
        "# a phantom-engine devnet data dir; devnet replaces it\n",
    )
    .map_err(|e| CliError::io(&marker, "write", e))
}

/// Writes the dev genesis (validator n holds seat n of every shard;
/// [`CLIENTS_PER_SHARD`] funded clients per shard with enough outputs for
/// the load) and its keys.
/// The dev genesis with enough client outputs for `transfers` (over all
/// shards): at least [`CLIENTS_PER_SHARD`] clients per shard, more when one
/// allocation's outputs would not do.
fn write_genesis(
    dir: &Path,
    args: &DevnetArgs,
    transfers: f64,
) -> Result<(Genesis, Vec<SigningKey>), CliError> {
    let per_shard = (transfers / f64::from(args.shards)).ceil() as u64 + 512;
    let most = u64::from(pc_codec::genesis::MAX_OUTPUTS_PER_ALLOCATION);
    let clients_per_shard = per_shard
        .div_ceil(most)
        .max(u64::from(CLIENTS_PER_SHARD))
        .min(u64::from(u16::MAX)) as u16;
    let outputs_per_client = per_shard
        .div_ceil(u64::from(clients_per_shard))
        .clamp(1, most) as u32;
    let written = dev_genesis::write(
        dir,
        &DevGenesis {
            params: devnet_params(args),
            bond: 10_000 * pc_codec::genesis::UNITS_PER_PC,
            clients: DevClients::PerShard(clients_per_shard),
            outputs_per_client,
            units_per_output: OUTPUT_UNITS,
        },
    )?;
    Ok((written.loaded.genesis, written.clients))
}

/// The devnet's consensus parameters: the defaults, with a mint target a
/// miner at `--miner-hashes-per-second` meets every 2 s or so, a mint
/// interval of 400 anchors and `--mint-maturity` for every tier.
fn devnet_params(args: &DevnetArgs) -> ConsensusParams {
    let mut params = ConsensusParams::v0(args.nodes, args.shards);
    let hashes_per_mint = 2 * u128::from(args.miner_hashes_per_second.max(1));
    params.mint_target_initial = (u128::MAX / hashes_per_mint).min(params.mint_target_max);
    params.mint_interval_anchors = 400;
    params.maturity_anchors = [args.mint_maturity.max(1); 3];
    params
}

/// Starts (or restarts) a node; its stderr is appended to `node.log` and
/// its status lines go into the shared status.
fn start_node(
    exe: &Path,
    genesis: &Path,
    node: &mut NodeProc,
    crash: Option<pc_engine::node::CrashPlan>,
    crash_env: Option<&str>,
) -> Result<(), CliError> {
    let mut command = Command::new(exe);
    match crash_env {
        Some(point) => command.env("PC_CRASH_AT", point),
        None => command.env_remove("PC_CRASH_AT"),
    };
    command
        .arg("node")
        .arg("--config")
        .arg(&node.config)
        .arg("--genesis")
        .arg(genesis)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(plan) = crash {
        command.arg("--crash-at").arg(plan.to_string());
    }
    if node.resume_seat {
        command.arg("--resume-seat");
    }
    if let Some((shard, seq)) = node.equivocate {
        command
            .arg("--test-equivocate")
            .arg(format!("{shard}:{seq}"));
    }
    let mut child = command
        .spawn()
        .map_err(|e| CliError::io(exe, "start a node", e))?;
    let stderr = child.stderr.take().expect("piped");
    let log_path = node.dir.join("node.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| CliError::io(&log_path, "open node log", e))?;
    let shared = node.status.clone();
    node.readers.push(std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(log, "{line}");
            parse_status_line(&line, &shared);
        }
    }));
    node.child = Some(child);
    Ok(())
}

fn parse_status_line(line: &str, status: &Mutex<NodeStatus>) {
    match Event::parse(line) {
        Some(Event::Status(line)) => {
            let mut status = status.lock().expect("status lock");
            status.shards.insert(
                line.shard,
                ShardStatus {
                    finalized_events: line.finalized_events,
                    last_round: line.last_round,
                    peers: line.peers as u64,
                    p50_us: line.finality_p50_us,
                    p99_us: line.finality_p99_us,
                    samples: line.finality_samples,
                    backlog: line.backlog,
                    backlog_bound: line.backlog_bound,
                    retry_after_ms: line.retry_after_ms,
                    accepted_submissions: line.accepted_submissions,
                    finalized_submissions: line.finalized_submissions,
                    expired_submissions: line.expired_submissions,
                    exported: line.exported,
                    imported: line.imported,
                    certified: line.certified,
                    bundles_received: line.bundles_received,
                    imports_queued: line.imports_queued,
                    cross_final: (
                        line.cross_final_p50_us,
                        line.cross_final_p99_us,
                        line.cross_final_samples,
                    ),
                },
            );
            status.anon_rss_kib = line.anon_rss_kib;
        }
        Some(Event::ShardStopped(line)) => {
            status.lock().expect("status lock").final_p50_us.insert(
                line.shard,
                (
                    line.event_finality_p50_us,
                    line.event_finality_p99_us,
                    line.event_finality_samples,
                ),
            );
        }
        _ => {}
    }
}

/// Waits for `child` to exit, killing it after `timeout`; its exit code.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                return child.wait().ok().and_then(|s| s.code());
            }
        }
    }
}

/// Compares every node's logged rounds, scans for equivocations and
/// replays each data dir.
fn check_agreement(
    dir: &Path,
    nodes: &[NodeProc],
    genesis: &Genesis,
    min_rounds: u64,
    planted: Option<(u8, u64, u8, Option<ClaimCheck>)>,
) -> Result<(), CliError> {
    let shards = genesis.params.shards;
    let dirs: Vec<PathBuf> = nodes.iter().map(|n| n.dir.clone()).collect();
    let mut divergences = Vec::new();
    let mut common_rounds: Vec<Option<u64>> = vec![None; usize::from(shards)];
    for shard in 0..shards {
        match agreement::compare_shard(&dirs, shard) {
            Ok(agreed) => {
                common_rounds[usize::from(shard)] = agreed.common_round;
                let most = agreed.rounds_per_node.iter().copied().max().unwrap_or(0);
                for (n, rounds) in agreed.rounds_per_node.iter().enumerate() {
                    if *rounds < min_rounds {
                        divergences.push(format!(
                            "node {n} shard {shard}: finalized {rounds} rounds, fewer than --min-rounds {min_rounds}"
                        ));
                    } else if rounds + (most / 10).max(50) < most {
                        divergences.push(format!(
                            "node {n} shard {shard}: finalized {rounds} rounds, the most ahead {most}: it did not catch up"
                        ));
                    }
                }
                if let Some(round) = agreed.common_round {
                    println!(
                        "shard {shard}: all {} nodes agree on rounds {}..={round}: {} anchors finalized, state root {}",
                        nodes.len(),
                        agreed.first_round,
                        agreed.finalized_anchors,
                        to_hex(&agreed.state_root)
                    );
                }
            }
            Err(divergence) => divergences.push(divergence.to_string()),
        }
        let planted_here = planted
            .filter(|_| shard == 0)
            .map(|(seat, seq, ..)| (seat, seq));
        match agreement::scan_for_planted_equivocation(&dirs, shard, planted_here) {
            Ok((anchors, true)) => println!(
                "shard {shard}: {anchors} logged anchors scanned; the planted equivocation (seat {} at seq {}) is in the logs, no other",
                planted_here.map_or(0, |p| p.0),
                planted_here.map_or(0, |p| p.1)
            ),
            Ok((anchors, false)) => println!(
                "shard {shard}: {anchors} logged anchors scanned, no seat signed two anchors at one seq"
            ),
            Err(equivocation) => divergences.push(format!("equivocation: {equivocation}")),
        }
    }
    // Replay every node's data dir: it must reproduce the last logged
    // round, and every node the same anchor order through the common round.
    let mut orders: Vec<Vec<(usize, String)>> = vec![Vec::new(); usize::from(shards)];
    for (n, node) in nodes.iter().enumerate() {
        let mut replayed = Vec::new();
        for shard in 0..shards {
            let through = common_rounds[usize::from(shard)];
            replayed.extend(
                pc_engine::tools::replay::replay_through(&node.dir, Some(shard), through).map_err(
                    |e| usage(format!("replay of node {n} ({}): {e}", node.dir.display())),
                )?,
            );
        }
        if let Some((seat, _, offender, _)) = planted {
            check_planted_slash(n, &replayed, genesis, seat, offender, &mut divergences);
        }
        // The supply equations from this node's data dir (DESIGN §5.1).
        let supplies: Vec<_> = replayed
            .iter()
            .filter_map(|r| r.supply.as_deref().cloned())
            .collect();
        let report = pc_engine::tools::supply::check(&supplies, shards);
        for line in report.render().lines() {
            if n == 0 || !line.contains(" -> ") {
                println!("node {n} {line}");
            }
        }
        if !report.holds() {
            divergences.push(format!(
                "node {n}: the supply equations do not hold: {}",
                report.errors[0]
            ));
        }
        if report.in_flight_leaves() > 0 {
            divergences.push(format!(
                "node {n}: {} exported outputs ({} units) were not imported after the network drained",
                report.in_flight_leaves(),
                report.in_flight
            ));
        }
        for shard in &replayed {
            if let Some(round) = shard.snapshot_round {
                // A pruned log replays from a snapshot: the re-derived
                // rounds after it must end at the logged state root; the
                // order digest covers only those rounds, so it is not
                // compared with the other nodes'.
                let rounds = agreement::logged_rounds(&node.dir, shard.shard)?;
                let logged_root = rounds.values().next_back().map(|r| to_hex(&r.state_root));
                if logged_root
                    .as_ref()
                    .is_some_and(|root| *root != shard.state_root)
                {
                    divergences.push(format!(
                        "node {n} shard {}: replay from the snapshot of round {round} derived root {}; the log says {:?}",
                        shard.shard, shard.state_root, logged_root
                    ));
                } else {
                    println!(
                        "node {n} shard {}: replay from its snapshot of round {round} reproduces {} more rounds, state root {}",
                        shard.shard, shard.rounds, shard.state_root
                    );
                }
                continue;
            }
            if let Some(through) = common_rounds[usize::from(shard.shard)] {
                if shard.order_digest_round == Some(through) {
                    orders[usize::from(shard.shard)].push((n, shard.order_digest.clone()));
                } else {
                    divergences.push(format!(
                        "node {n} shard {}: replay did not reach the common round {through}",
                        shard.shard
                    ));
                }
            }
            let rounds = agreement::logged_rounds(&node.dir, shard.shard)?;
            let last = rounds.values().next_back();
            let logged_root = last.map(|r| to_hex(&r.state_root));
            let logged_anchors = last.map_or(0, |r| r.first_global_index + r.anchor_count);
            if shard.rounds != rounds.len() as u64
                || shard.finalized_anchors != logged_anchors
                || (last.is_some() && Some(&shard.state_root) != logged_root.as_ref())
            {
                divergences.push(format!(
                    "node {n} shard {}: replay derived {} rounds, {} anchors, root {}; the log says {} rounds, {} anchors, root {:?}",
                    shard.shard,
                    shard.rounds,
                    shard.finalized_anchors,
                    shard.state_root,
                    rounds.len(),
                    logged_anchors,
                    logged_root
                ));
            } else {
                println!(
                    "node {n} shard {}: replay reproduces {} rounds, {} finalized events, state root {}",
                    shard.shard, shard.rounds, shard.finalized_events, shard.state_root
                );
            }
        }
    }
    for (shard, digests) in orders.iter().enumerate() {
        let Some((first, reference)) = digests.first() else {
            continue;
        };
        match digests.iter().find(|(_, digest)| digest != reference) {
            Some((n, digest)) => divergences.push(format!(
                "shard {shard}: node {n} finalized another anchor order through round {} (order digest {digest}, node {first} {reference})",
                common_rounds[shard].unwrap_or(0)
            )),
            None if digests.len() == nodes.len() => println!(
                "shard {shard}: all {} nodes finalized the same anchors in the same order through round {} (order digest {reference})",
                nodes.len(),
                common_rounds[shard].unwrap_or(0)
            ),
            None if digests.len() > 1 => println!(
                "shard {shard}: the {} nodes replayed from genesis finalized the same anchors in the same order through round {} (order digest {reference})",
                digests.len(),
                common_rounds[shard].unwrap_or(0)
            ),
            None => {}
        }
    }
    if let Some((_, _, _, Some(claim))) = planted {
        if claim.owed < claim.slash_share || claim.after != claim.before + claim.owed {
            divergences.push(format!(
                "claim by validator {}: owed {} (slash share {}), balance {} -> {}: not a rise by exactly the owed balance",
                claim.claimer, claim.owed, claim.slash_share, claim.before, claim.after
            ));
        }
    }
    if divergences.is_empty() {
        println!("AGREE");
        eprintln!(
            "devnet: data dirs kept in {}; replay one with: phantom-engine replay --data-dir {}",
            dir.display(),
            dir.join("node-0").display()
        );
        Ok(())
    } else {
        for line in &divergences {
            println!("DIVERGE: {line}");
        }
        Err(usage(format!(
            "devnet: {} divergence(s); the first: {}",
            divergences.len(),
            divergences[0]
        )))
    }
}
