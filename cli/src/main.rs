//! `phantom-engine`, the Phantom-Coin validator node: one binary with a
//! subcommand per job. This crate owns the command line, reading genesis and
//! key files, and turning every expected error into one line for the
//! operator; the protocol lives in `pc-codec`, the log in `pc-storage`.
#![warn(missing_docs)]

mod consensus_cmd;
mod dev_genesis;
mod devnet;
mod error;
mod key_file;
mod miner;
mod node_cmd;
mod wallet;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pc_codec::genesis::{ConsensusParams, Genesis, UNITS_PER_PC};
use pc_codec::{to_hex, SigningKey};

use pc_engine::genesis_file;

use crate::dev_genesis::{DevClients, DevGenesis};
use crate::error::CliError;

/// The Phantom-Coin validator node.
#[derive(Parser)]
#[command(name = "phantom-engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new BIP-340 key file (mode 0600; never overwrites).
    Keygen {
        /// Where to write the key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Create and check genesis files.
    Genesis {
        #[command(subcommand)]
        command: GenesisCommand,
    },
    /// Run the engine on a pre-generated signed workload and report
    /// per-shard rates against this host's BIP-340 verify limit.
    Bench(BenchArgs),
    /// Probe this host (cores, io_uring, memlock, verify rate, log append
    /// rate per fsync policy) and print a recommended node config.
    Tune {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Scratch dir for the log probes (default: a temporary dir).
        #[arg(long)]
        scratch: Option<PathBuf>,
    },
    /// Run a validator node: every core's shards, logs and QUIC endpoint
    /// (alias: the seed's `P2pQuicListen`, with its flags).
    #[command(alias = "P2pQuicListen")]
    Node(node_cmd::NodeArgs),
    /// Say where a data dir's running node serves its metrics (alias: the
    /// seed's `P2pMetricsServe`). The node serves `/metrics` itself; this
    /// prints that address and whether it answers.
    #[command(name = "metrics-serve", alias = "P2pMetricsServe")]
    MetricsServe(node_cmd::MetricsServeArgs),
    /// Read a sample of a (stopped) data dir's anchors through the node's
    /// header/payload cache and log reads; print one JSON object (alias:
    /// the seed's `CacheBench`).
    #[command(name = "cache-bench", alias = "CacheBench")]
    CacheBench(CacheBenchArgs),
    /// Print this build: version, commit, protocol version, features (one
    /// JSON line).
    Version,
    /// Copy a running or stopped node's data dir into one file: its
    /// settings and every shard's log, with a checksummed manifest.
    Backup {
        /// The data dir.
        #[arg(long)]
        data_dir: PathBuf,
        /// The backup file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a backup and unpack it into a new (or empty) data dir; a node
    /// there runs its seats as observers.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The data dir to create.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Time how long a stopped node's data dir takes to restore, shard by
    /// shard, as `node` restores it at start-up (one JSON line).
    RestartTime {
        /// The data dir.
        #[arg(long)]
        data_dir: PathBuf,
        /// First make a snapshot of each shard (as an observer) at the
        /// last anchor boundary with this many log bytes after it, so the
        /// restart replays that tail: the worst point is one snapshot
        /// interval (`[storage] snapshot_interval_bytes`).
        #[arg(long)]
        snapshot_tail_bytes: Option<u64>,
    },
    /// Ask a node whether it is healthy: its metrics answer and every
    /// shard decided a round within --max-age seconds (one JSON line; exit
    /// 0 when healthy, 1 otherwise).
    Health {
        /// The node's metrics address (`[metrics] address`, default
        /// 127.0.0.1:9100).
        #[arg(long, default_value = "127.0.0.1:9100")]
        node: std::net::SocketAddr,
        /// Most seconds since a shard last decided a round (plus the age
        /// of the core's metrics snapshot).
        #[arg(long, default_value_t = 10.0)]
        max_age: f64,
    },
    /// Run a local network of node processes on loopback with transfer
    /// load, then check that all nodes agree (prints AGREE).
    Devnet(devnet::DevnetArgs),
    /// A minimal client: sign and submit a transfer, query a balance,
    /// list and claim a seat's payouts.
    Tx {
        #[command(subcommand)]
        command: node_cmd::TxCommand,
    },
    /// The consensus tools: ack distances, payout shares, headers files.
    Consensus {
        #[command(subcommand)]
        command: consensus_cmd::ConsensusCommand,
    },
    /// The seed's `ConsensusAckDists` (`consensus ack-dists`).
    #[command(name = "ConsensusAckDists", hide = true)]
    ConsensusAckDists(consensus_cmd::DagArgs),
    /// The seed's `ConsensusPayoutRoot` (`consensus payout-root`).
    #[command(name = "ConsensusPayoutRoot", hide = true)]
    ConsensusPayoutRoot(consensus_cmd::PayoutArgs),
    /// Fetch a seat's payout proof and submit its Claim (`tx claim`).
    Claim(node_cmd::ClaimArgs),
    /// Mine: fetch mint templates from a node, search nonces, submit
    /// solutions (also `miner`, and the `phantom-miner` binary).
    #[command(alias = "miner")]
    Mine(miner::MineArgs),
    /// Hold a validator key in its own process and sign over a Unix socket
    /// only own anchor headers (one per shard, seat and seq), checkpoint ids
    /// (one per shard and round) and the TLS binding, each decision synced
    /// to its state file before the answer.
    Signer {
        /// The validator key file.
        #[arg(long)]
        key: PathBuf,
        /// The genesis TOML (the key's seats, the network id).
        #[arg(long)]
        genesis: PathBuf,
        /// Where to listen: `unix:PATH`.
        #[arg(long)]
        listen: String,
        /// The state file of its high-water marks (default: the key file's
        /// path with `.signer-state` appended).
        #[arg(long)]
        state: Option<PathBuf>,
        /// Seconds between latency lines.
        #[arg(long, default_value_t = 10.0)]
        stats_interval: f64,
    },
    /// A wallet over the client protocol: new key, address, balance, send.
    Wallet {
        #[command(subcommand)]
        command: wallet::WalletCommand,
    },
    /// Re-derive every finalized round of a data dir's logs and compare.
    Replay {
        /// The data dir (holds genesis.toml and shard-NNN/ logs).
        #[arg(long)]
        data_dir: PathBuf,
        /// Only this shard.
        #[arg(long)]
        shard: Option<u16>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// Start from the newest valid snapshot (default: from genesis
        /// while the log reaches back, else from the oldest valid snapshot).
        #[arg(long, conflicts_with = "from_genesis")]
        from_snapshot: bool,
        /// Start from genesis; refused when the log was pruned.
        #[arg(long)]
        from_genesis: bool,
    },
    /// Check the supply equations of DESIGN §5.1 from data dirs: replays
    /// every shard (each from the first data dir that holds its log), sums
    /// the unspent outputs, and takes the value in flight per shard pair
    /// from the logged export leaves and the destinations' dedupe state.
    /// Exit 1 if an equation does not hold.
    Supply {
        /// A data dir (repeat it for nodes that hold different shards).
        #[arg(long, required = true)]
        data_dir: Vec<PathBuf>,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Shards, one per core round-robin (default: one per usable core).
    #[arg(long)]
    shards: Option<u16>,
    /// Seats per shard.
    #[arg(long, default_value_t = 21)]
    committee: u8,
    /// Target duration in seconds: the workload holds what one core can
    /// verify in this time, so the run lasts at least about this long.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Transfers per anchor (1..=256).
    #[arg(long, default_value_t = 256)]
    tx_per_anchor: u16,
    /// Log durability: always, batch or never.
    #[arg(long, default_value = "batch")]
    fsync: pc_storage::Durability,
    /// Data dir (default: a temporary dir, removed unless --keep).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Keep the temporary data dir.
    #[arg(long)]
    keep: bool,
    /// Finalized rounds between local snapshots (0: none by rounds; the
    /// node's default).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_SNAPSHOT_INTERVAL_ROUNDS)]
    snapshot_interval_rounds: u64,
    /// Log bytes between local snapshots (0: none by bytes).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_SNAPSHOT_INTERVAL_BYTES)]
    snapshot_interval_bytes: u64,
    /// Rounds of log kept below the last finalized one (older segments
    /// are pruned once a snapshot covers them).
    #[arg(long, default_value_t = pc_engine::config::DEFAULT_RETAIN_ROUNDS)]
    retain_rounds: u64,
    /// Fixed workload size in transfers per shard (default: sized from
    /// the verify rate and --seconds).
    #[arg(long)]
    events_per_shard: Option<u32>,
    /// Feed every shard's input through the first core and the SPSC rings.
    #[arg(long)]
    single_intake: bool,
    /// Wait this many milliseconds before the first anchor.
    #[arg(long, default_value_t = 0)]
    start_delay_ms: u64,
    /// Share of the transfers that pay into another shard (0..=1; above 0
    /// needs --shards 2 or more): the workload's exports are certified and
    /// carried back in as imports, which the run applies beside the
    /// transfers. The same-size workload without them runs first (unless
    /// --no-baseline) and the ratio of transfers/s is printed.
    #[arg(long, default_value_t = 0.0)]
    cross_shard: f64,
    /// With --cross-shard: skip the run without cross-shard transfers.
    #[arg(long)]
    no_baseline: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// `quic`: run the workload in process, then again fed over loopback
    /// QUIC to one endpoint per core, and report the ratio.
    #[arg(long, default_value = "in-process")]
    network: pc_engine::tools::bench::BenchNetwork,
    /// First port of the engine's QUIC endpoints (core c: port + c).
    #[arg(long, default_value_t = 7400)]
    quic_port: u16,
    /// Collect the shards' metrics and serve them on /metrics here while
    /// the bench runs (IP:PORT); off by default.
    #[arg(long, alias = "metrics_addr")]
    metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(clap::Args)]
struct CacheBenchArgs {
    /// The data dir; alias `--store_dir`.
    #[arg(long, visible_alias = "store-dir", alias = "store_dir")]
    data_dir: PathBuf,
    /// The shard whose log is read.
    #[arg(long, default_value_t = 0)]
    shard: u16,
    /// `headers` or `payloads`.
    #[arg(long, default_value = "headers")]
    mode: pc_engine::tools::cache_bench::Mode,
    /// Anchors read per iteration, spread evenly over the log.
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    /// Passes over the sample.
    #[arg(long, default_value_t = 5)]
    iterations: usize,
    /// Header cache capacity (0: off); alias `--cache_hdr_cap`.
    #[arg(long, alias = "cache_hdr_cap", default_value_t = 0)]
    cache_hdr_cap: usize,
    /// Payload cache capacity (0: off); alias `--cache_pl_cap`.
    #[arg(long, alias = "cache_pl_cap", default_value_t = 0)]
    cache_pl_cap: usize,
}

#[derive(Subcommand)]
enum GenesisCommand {
    /// Write a new genesis with fresh validator and funded client keys.
    New {
        /// Committee seats per shard (1..=64).
        #[arg(long, default_value_t = 4)]
        k: u8,
        /// Number of shards.
        #[arg(long, default_value_t = 2)]
        shards: u16,
        /// Funded client keys to create.
        #[arg(long, default_value_t = 4)]
        clients: u16,
        /// Genesis outputs per client (1..=65536).
        #[arg(long, default_value_t = 1000)]
        outputs_per_client: u32,
        /// Units per genesis output.
        #[arg(long, default_value_t = 1000 * UNITS_PER_PC)]
        units_per_output: u64,
        /// Bond of each validator in units.
        #[arg(long, default_value_t = 10_000 * UNITS_PER_PC)]
        bond: u64,
        /// Directory to create (genesis.toml and keys/).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a genesis file; exit 0 and print the genesis_loaded line if it is valid.
    Verify {
        /// The genesis TOML file.
        #[arg(long)]
        genesis: PathBuf,
        /// Also check that this validator key file holds seats in the
        /// genesis, and print them.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The node's output is JSON lines through `tracing`, its last error
    // included; other commands print for a terminal.
    let node = matches!(cli.command, Command::Node(_));
    if !node {
        // Tools log the node's events they cause (genesis loaded, shards
        // restored) the same way; the node sets its own filter.
        let _ = pc_engine::logging::init(None);
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if node => {
            pc_engine::logging::emit_fatal(&pc_node::telemetry::Event::Fatal(
                pc_node::telemetry::Fatal {
                    error: error.to_string(),
                },
            ));
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Keygen { out } => {
            let key = SigningKey::generate(&mut rand::rng());
            key_file::write(&out, &key, "validator")?;
            // The public key on stdout (what scripts read); its wallet
            // address beside it on stderr.
            println!("{}", to_hex(&key.public_key()));
            eprintln!(
                "address {}",
                pc_codec::address::encode_address(&key.public_key())
            );
            Ok(())
        }
        Command::Bench(args) => bench(args),
        Command::Node(args) => node_cmd::node(args),
        Command::MetricsServe(args) => node_cmd::metrics_serve(args),
        Command::Version => {
            let build = pc_engine::metrics::BuildInfo::current();
            let line = serde_json::json!({
                "type": "version",
                "version": build.version,
                "commit": build.commit,
                "protocol_version": pc_codec::PROTOCOL_VERSION,
                "alpn": String::from_utf8_lossy(pc_net::tls::ALPN),
                "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
                "features": [
                    "io_uring (glommio, fdatasync)",
                    "quic (quinn-proto, rustls with ring)",
                    "bip340-batch (k256 Pippenger)",
                    "prometheus-metrics",
                    "json-logs (tracing)",
                ],
            });
            println!("{line}");
            Ok(())
        }
        Command::Health { node, max_age } => node_cmd::health(node, max_age),
        Command::Backup { data_dir, out } => {
            let manifest = pc_engine::tools::backup::backup(&data_dir, &out)?;
            let line = serde_json::json!({
                "type": "backup",
                "data_dir": data_dir.display().to_string(),
                "out": out.display().to_string(),
                "files": manifest.files.len(),
                "bytes": manifest.files.iter().map(|f| f.bytes).sum::<u64>(),
            });
            println!("{line}");
            Ok(())
        }
        Command::Restore { from, data_dir } => {
            let manifest = pc_engine::tools::backup::restore(&from, &data_dir)?;
            let line = serde_json::json!({
                "type": "restored",
                "from": from.display().to_string(),
                "data_dir": data_dir.display().to_string(),
                "files": manifest.files.len(),
                "note": "a node on this data dir runs its seats as observers",
            });
            println!("{line}");
            Ok(())
        }
        Command::RestartTime {
            data_dir,
            snapshot_tail_bytes,
        } => {
            if let Some(tail) = snapshot_tail_bytes {
                let made = pc_engine::tools::restart::make_snapshots(&data_dir, tail)?;
                let line = serde_json::json!({ "type": "snapshot_made", "shards": made });
                println!("{line}");
            }
            let shards = pc_engine::tools::restart::measure(&data_dir)?;
            let line = serde_json::json!({
                "type": "restart_time",
                "data_dir": data_dir.display().to_string(),
                "shards": shards,
            });
            println!("{line}");
            Ok(())
        }
        Command::CacheBench(args) => {
            use pc_engine::tools::cache_bench;
            let report = cache_bench::run(&cache_bench::CacheBenchOptions {
                data_dir: args.data_dir,
                shard: args.shard,
                mode: args.mode,
                sample: args.sample,
                iterations: args.iterations,
                caps: pc_node::CacheCaps {
                    header_cap: args.cache_hdr_cap,
                    payload_cap: args.cache_pl_cap,
                },
            })?;
            println!(
                "{}",
                serde_json::to_string(&report).expect("the report serializes")
            );
            Ok(())
        }
        Command::Devnet(args) => devnet::devnet(args),
        Command::Tx { command } => node_cmd::tx(command),
        Command::Consensus { command } => consensus_cmd::consensus(command),
        Command::ConsensusAckDists(args) => {
            consensus_cmd::consensus(consensus_cmd::ConsensusCommand::AckDists(args))
        }
        Command::ConsensusPayoutRoot(args) => {
            consensus_cmd::consensus(consensus_cmd::ConsensusCommand::PayoutRoot(args))
        }
        Command::Claim(args) => node_cmd::tx(node_cmd::TxCommand::Claim(args)),
        Command::Mine(args) => miner::mine(args),
        Command::Signer {
            key,
            genesis,
            listen,
            state,
            stats_interval,
        } => {
            let Some(socket) = listen.strip_prefix("unix:") else {
                return Err(CliError::Usage(format!(
                    "--listen {listen}: expected unix:PATH"
                )));
            };
            let genesis = genesis_file::load(&genesis)?.genesis;
            let state = state.unwrap_or_else(|| {
                let mut name = key.clone().into_os_string();
                name.push(".signer-state");
                PathBuf::from(name)
            });
            let signer = pc_engine::signer::Signer::open(key_file::read(&key)?, &genesis, &state)
                .map_err(|e| CliError::Usage(e.to_string()))?;
            pc_engine::signer::serve(
                signer,
                Path::new(socket),
                std::time::Duration::from_secs_f64(stats_interval.max(0.1)),
            )
            .map_err(|e| CliError::Usage(e.to_string()))
        }
        Command::Wallet { command } => wallet::wallet(command),
        Command::Tune { seconds, scratch } => tune(seconds, scratch),
        Command::Replay {
            data_dir,
            shard,
            json,
            from_snapshot,
            from_genesis,
        } => {
            use pc_engine::tools::replay::ReplayStart;
            let start = match (from_snapshot, from_genesis) {
                (true, _) => ReplayStart::FromSnapshot,
                (_, true) => ReplayStart::FromGenesis,
                _ => ReplayStart::Auto,
            };
            let shards = pc_engine::tools::replay::replay_from(&data_dir, shard, start)?;
            if json {
                println!("{}", pc_engine::tools::replay::render_json(&shards));
            } else {
                print!("{}", pc_engine::tools::replay::render_text(&shards));
            }
            Ok(())
        }
        Command::Supply { data_dir, json } => supply(&data_dir, json),
        Command::Genesis {
            command: GenesisCommand::Verify { genesis, key },
        } => {
            let loaded = genesis_file::load(&genesis)?;
            println!("{}", loaded.loaded_line());
            if let Some(key_path) = key {
                print_seats(&loaded.genesis, &key_path)?;
            }
            Ok(())
        }
        Command::Genesis {
            command:
                GenesisCommand::New {
                    k,
                    shards,
                    clients,
                    outputs_per_client,
                    units_per_output,
                    bond,
                    out,
                },
        } => genesis_new(
            &out,
            &DevGenesis {
                params: ConsensusParams::v0(k, shards),
                bond,
                clients: DevClients::Total(clients),
                outputs_per_client,
                units_per_output,
            },
        ),
    }
}

fn bench(args: BenchArgs) -> Result<(), CliError> {
    use pc_engine::tools::bench;
    if !(args.seconds > 0.0 && args.seconds.is_finite()) {
        return Err(CliError::Usage(format!(
            "--seconds {} must be positive",
            args.seconds
        )));
    }
    if !(0.0..=1.0).contains(&args.cross_shard)
        || (args.cross_shard > 0.0 && args.cross_shard < 0.0005)
    {
        return Err(CliError::Usage(format!(
            "--cross-shard {} must be 0 or a share between 0.001 and 1 (per mille)",
            args.cross_shard
        )));
    }
    let mut options = bench::BenchOptions::new(bench::default_cache_dir());
    options.cross_per_mille = (args.cross_shard * 1000.0).round() as u16;
    options.baseline = !args.no_baseline;
    options.shards = args.shards;
    options.committee = args.committee;
    options.seconds = args.seconds;
    options.tx_per_anchor = args.tx_per_anchor;
    options.storage.fsync = args.fsync;
    options.storage.snapshot_interval_rounds = args.snapshot_interval_rounds;
    options.storage.snapshot_interval_bytes = args.snapshot_interval_bytes;
    options.storage.retain_rounds = args.retain_rounds;
    options.data_dir = args.data_dir;
    options.keep = args.keep;
    options.events_per_shard = args.events_per_shard;
    options.progress = std::io::IsTerminal::is_terminal(&std::io::stderr());
    options.start_delay = std::time::Duration::from_millis(args.start_delay_ms);
    options.network = args.network;
    options.quic_port = args.quic_port;
    options.metrics = args.metrics_addr;
    if args.single_intake {
        options.intake = pc_engine::tools::engine::Intake::FirstCore;
    }
    let result = bench::run(&options)?;
    if args.json {
        println!("{}", bench::render_json(&result));
    } else {
        print!("{}", bench::render_table(&result));
    }
    if result.quic.as_ref().is_some_and(|q| !q.same_state) {
        return Err(CliError::Usage(
            "the QUIC run finalized a different count or state root than the in-process run of the same workload".to_string(),
        ));
    }
    Ok(())
}

fn tune(seconds: f64, scratch: Option<PathBuf>) -> Result<(), CliError> {
    if !(seconds > 0.0 && seconds.is_finite()) {
        return Err(CliError::Usage(format!(
            "--seconds {seconds} must be positive"
        )));
    }
    let temp = tempfile::Builder::new()
        .prefix("phantom-tune-")
        .tempdir_in(scratch.unwrap_or_else(std::env::temp_dir))
        .map_err(|e| CliError::io(&std::env::temp_dir(), "create scratch dir", e))?;
    let probe = pc_engine::tools::tune::probe(temp.path(), seconds)?;
    eprint!("{}", pc_engine::tools::tune::render(&probe));
    print!("{}", pc_engine::tools::tune::recommend(&probe));
    Ok(())
}

/// Prints the seats the key in `key_path` holds in `genesis`.
fn print_seats(genesis: &Genesis, key_path: &Path) -> Result<(), CliError> {
    let public_key = key_file::read(key_path)?.public_key();
    let validator = genesis
        .validators
        .iter()
        .find(|v| v.key == public_key)
        .ok_or_else(|| CliError::Input {
            file: key_path.display().to_string(),
            message: format!(
                "key {} is not a validator of this genesis",
                to_hex(&public_key)
            ),
        })?;
    for seat in &validator.seats {
        println!("shard {} seat {}", seat.shard, seat.seat);
    }
    Ok(())
}

/// Writes `out/genesis.toml` and the keys of a new dev genesis
/// ([`dev_genesis::write`]) and prints its `genesis_loaded` line.
fn genesis_new(out: &Path, spec: &DevGenesis) -> Result<(), CliError> {
    let params = spec.params;
    if params.k == 0 || params.k > 64 {
        return Err(CliError::Usage(format!(
            "--k {} is outside 1..=64",
            params.k
        )));
    }
    if params.shards == 0 {
        return Err(CliError::Usage("--shards must be at least 1".to_string()));
    }
    let written = dev_genesis::write(out, spec)?;
    println!("{}", written.loaded.loaded_line());
    eprintln!(
        "wrote {} (network {}), {} validator and {} client keys in {}",
        written.path.display(),
        to_hex(&written.loaded.genesis.network()),
        params.k,
        written.clients.len(),
        written.keys_dir.display()
    );
    Ok(())
}

/// `supply`: the supply equations from data dirs.
fn supply(dirs: &[PathBuf], json: bool) -> Result<(), CliError> {
    use pc_engine::tools::supply;
    let mut shards = Vec::new();
    let mut count = None;
    let mut from = Vec::new();
    for dir in dirs {
        let genesis = genesis_file::load(&dir.join("genesis.toml"))?.genesis;
        let total = genesis.params.shards;
        if count.is_some_and(|c| c != total) {
            return Err(CliError::Usage(format!(
                "{}: its genesis has {total} shards, an earlier data dir's another count",
                dir.display()
            )));
        }
        count = Some(total);
        for shard in 0..total {
            let held = pc_engine::runtime::driver::shard_log_dir(dir, shard).is_dir();
            if !held
                || shards
                    .iter()
                    .any(|s: &supply::ShardSupply| s.shard == shard)
            {
                continue;
            }
            eprintln!("supply: replaying shard {shard} of {}", dir.display());
            let replayed = pc_engine::tools::replay::replay(dir, Some(shard))?;
            for r in replayed {
                if let Some(s) = r.supply {
                    from.push((shard, dir.display().to_string(), r.rounds));
                    shards.push(*s);
                }
            }
        }
    }
    let report = supply::check(&shards, count.unwrap_or(0));
    if json {
        println!(
            "{}",
            serde_json::json!({ "report": report, "holds": report.holds() })
        );
    } else {
        for (shard, dir, rounds) in &from {
            println!("supply: shard {shard} from {dir} ({rounds} rounds replayed)");
        }
        print!("{}", report.render());
    }
    if report.holds() {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "the supply equations do not hold: {}",
            report.errors[0]
        )))
    }
}
