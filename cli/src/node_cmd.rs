//! `phantom-engine node` (the validator) and `phantom-engine tx` (a minimal
//! client: sign and submit a transfer, query a balance).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use pc_codec::genesis::Genesis;
use pc_codec::ids::shard_of;
use pc_codec::{to_hex, Encode, MicroEvent, OutPoint, TransferBuilder};
use pc_engine::config::{self, NodeConfig};
use pc_engine::genesis_file;
use pc_engine::node::{CrashPlan, NodeOptions};
use pc_engine::runtime::host;
use pc_net::frame::EventOutcome;
use pc_net::NetMessage;
use pc_storage::Durability;

use crate::error::CliError;
use crate::key_file;

/// Flags of `node`; the seed's spellings are aliases (DESIGN §1).
#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node config TOML (DESIGN §9); flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The genesis TOML.
    #[arg(long)]
    pub genesis: PathBuf,
    /// Data dir (logs, peer book); alias `--store_dir`.
    #[arg(long, visible_alias = "store-dir", alias = "store_dir")]
    pub data_dir: Option<PathBuf>,
    /// The validator key file (none: an observer).
    #[arg(long, conflicts_with = "signer")]
    pub key: Option<PathBuf>,
    /// A signer process holding the validator key instead, `unix:PATH`
    /// (over `[node] signer`; see `phantom-engine signer`).
    #[arg(long)]
    pub signer: Option<String>,
    /// Listen address of core 0 as IP:PORT (core c listens on PORT + c).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// A peer to dial (its core 0's address); repeatable.
    #[arg(long = "peer")]
    pub peers: Vec<SocketAddr>,
    /// Log durability: always, batch or never (the seed's true = always,
    /// false = never).
    #[arg(long)]
    pub fsync: Option<String>,
    /// Write this node's TLS certificate (DER) here at start-up; alias
    /// `--cert_out`.
    #[arg(long, alias = "cert_out")]
    pub cert_out: Option<PathBuf>,
    /// Header cache capacity per shard, in headers (0: off); over
    /// `[node.cache] header_cap`; alias `--cache_hdr_cap`.
    #[arg(long, alias = "cache_hdr_cap")]
    pub cache_hdr_cap: Option<usize>,
    /// Payload cache capacity per shard, in payloads (0: off); over
    /// `[node.cache] payload_cap`; alias `--cache_pl_cap`.
    #[arg(long, alias = "cache_pl_cap")]
    pub cache_pl_cap: Option<usize>,
    /// Serve `/metrics` here (IP:PORT; port 0 picks one; `off`: not at
    /// all); over `[metrics] address`; alias `--metrics_addr`.
    #[arg(long, alias = "metrics_addr")]
    pub metrics_addr: Option<String>,
    /// Log filter: `error`, `warn`, `info`, `debug` or a `tracing`
    /// directive (default: `RUST_LOG`, else `info`).
    #[arg(long, alias = "log_level")]
    pub log_level: Option<String>,
    /// Stop after this many seconds (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 1.0)]
    pub status_interval: f64,
    /// Crash on purpose at an injected point (tests): after-signing:N,
    /// after-persisting:N or before-sending:N.
    #[arg(long, hide = true)]
    pub crash_at: Option<CrashPlan>,
    /// Equivocate on purpose (tests): SHARD:SEQ makes this node's seat in
    /// SHARD sign its own anchor at SEQ twice and send both.
    #[arg(long, hide = true, value_parser = parse_equivocate)]
    pub test_equivocate: Option<(u16, u64)>,
    /// On a data dir restored from a backup: resume the seats (each signs
    /// again only after G decided rounds without an own anchor above the
    /// highest seq it has seen) instead of running them as observers.
    #[arg(long, alias = "resume_seat")]
    pub resume_seat: bool,
}

fn parse_equivocate(text: &str) -> Result<(u16, u64), String> {
    let parsed = text
        .split_once(':')
        .and_then(|(shard, seq)| Some((shard.parse().ok()?, seq.parse().ok()?)));
    parsed.ok_or_else(|| format!("{text:?}: expected SHARD:SEQ"))
}

fn parse_fsync(text: &str) -> Result<Durability, CliError> {
    match text {
        "true" => Ok(Durability::Always),
        "false" => Ok(Durability::Never),
        other => other.parse().map_err(|_| {
            CliError::Usage(format!(
                "--fsync {other}: expected always, batch, never, true or false"
            ))
        }),
    }
}

fn positive_seconds(flag: &str, seconds: f64) -> Result<Duration, CliError> {
    if seconds > 0.0 && seconds.is_finite() {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(CliError::Usage(format!(
            "{flag} {seconds} must be positive"
        )))
    }
}

/// The node's settings: the config file's (or, without one, the defaults
/// on loopback), with the flags over them.
fn settings(args: &NodeArgs) -> Result<NodeConfig, CliError> {
    let mut config = match (&args.config, &args.data_dir) {
        (Some(path), _) => config::load(path)?,
        (None, Some(data_dir)) => NodeConfig {
            listen: Ipv4Addr::LOCALHOST.into(),
            ..NodeConfig::defaults(data_dir.clone())
        },
        (None, None) => {
            return Err(CliError::Usage(
                "node: give --config (with [node] data_dir) or --data-dir".into(),
            ))
        }
    };
    if let Some(data_dir) = &args.data_dir {
        config.data_dir = data_dir.clone();
    }
    if let Some(key) = &args.key {
        config.key = Some(key.clone());
        config.signer = None;
    }
    if let Some(signer) = &args.signer {
        if !signer.starts_with("unix:") {
            return Err(CliError::Usage(format!(
                "--signer {signer}: expected unix:PATH"
            )));
        }
        config.signer = Some(signer.clone());
        config.key = None;
    }
    if let Some(fsync) = &args.fsync {
        config.storage.fsync = parse_fsync(fsync)?;
    }
    if let Some(addr) = args.addr {
        (config.listen, config.base_port) = (addr.ip(), addr.port());
    }
    config.peers.extend(args.peers.iter().copied());
    if let Some(cap) = args.cache_hdr_cap {
        config.header_cache_cap = cap;
    }
    if let Some(cap) = args.cache_pl_cap {
        config.payload_cache_cap = cap;
    }
    Ok(config)
}

/// `--metrics-addr`: an address, or `off`.
fn metrics_address(flag: Option<&str>, config: SocketAddr) -> Result<Option<SocketAddr>, CliError> {
    match flag {
        None => Ok(Some(config)),
        Some("off") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            CliError::Usage(format!(
                "--metrics-addr {text}: expected IP:PORT (like 127.0.0.1:9100) or off"
            ))
        }),
    }
}

/// Runs the validator until a signal (or `--seconds`).
pub fn node(args: NodeArgs) -> Result<(), CliError> {
    pc_engine::logging::init(args.log_level.as_deref())?;
    let config = settings(&args)?;
    let metrics = metrics_address(args.metrics_addr.as_deref(), config.metrics_address)?;
    let key = match (&config.key, &config.signer) {
        (Some(_), Some(_)) => {
            return Err(CliError::Usage(
                "both a key and a signer are configured: a node with a signer holds no key".into(),
            ))
        }
        (Some(path), None) => Some(pc_engine::node::ValidatorKey::Local(key_file::read(path)?)),
        (None, Some(signer)) => Some(pc_engine::node::ValidatorKey::Remote(signer.clone())),
        (None, None) => None,
    };
    if config.shards.is_some() {
        let genesis = genesis_file::load(&args.genesis)?.genesis;
        config.check_genesis_shards(&args.genesis, genesis.params.shards)?;
    }
    let runtime = config.runtime(host::usable_cpus);
    let options = NodeOptions {
        runtime,
        genesis_path: args.genesis.clone(),
        key,
        listen: config.listen,
        base_port: config.base_port,
        peers: config.peers,
        status_interval: positive_seconds("--status-interval", args.status_interval)?,
        max_run: args
            .seconds
            .map(|s| positive_seconds("--seconds", s))
            .transpose()?,
        crash: args.crash_at,
        equivocate: args.test_equivocate,
        resume_seat: args.resume_seat,
        cert_out: args.cert_out.clone(),
        metrics,
        cache: pc_node::CacheCaps {
            header_cap: config.header_cache_cap,
            payload_cap: config.payload_cache_cap,
        },
    };
    pc_engine::node::run(options)?;
    Ok(())
}

/// Flags of `metrics-serve` (the seed's `P2pMetricsServe`).
#[derive(clap::Args)]
pub struct MetricsServeArgs {
    /// The running node's data dir; alias `--store_dir`.
    #[arg(long, visible_alias = "store-dir", alias = "store_dir")]
    pub data_dir: PathBuf,
    /// The seed's listen address: not used (the node serves its metrics
    /// itself).
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

/// Says where the data dir's running node serves `/metrics` and whether
/// it answers; exit 1 when no running node serves them.
pub fn metrics_serve(args: MetricsServeArgs) -> Result<(), CliError> {
    let path = args.data_dir.join(pc_engine::node::METRICS_ADDR_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        CliError::Usage(format!(
            "{}: no running node serves metrics for this data dir (a node serves /metrics itself, at [metrics] address or --metrics-addr, default 127.0.0.1:9100, while it runs)",
            path.display()
        ))
    })?;
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        CliError::Usage(format!(
            "{}: {:?} is not an address",
            path.display(),
            text.trim()
        ))
    })?;
    let live = pc_engine::metrics::scrape::get(addr, "GET", "/metrics")
        .map(|answer| answer.status == 200)
        .unwrap_or(false);
    if !live {
        return Err(CliError::Usage(format!(
            "the node of {} noted http://{addr}/metrics but does not answer there (stopped?)",
            args.data_dir.display()
        )));
    }
    println!(
        "the node of {} serves its metrics itself at http://{addr}/metrics (it answers); nothing else to serve",
        args.data_dir.display()
    );
    Ok(())
}

/// `health`: one JSON line; healthy iff the node's metrics answer and
/// every shard decided a round within `max_age` seconds (the shard's
/// decided age plus the age of its core's snapshot).
pub fn health(node: SocketAddr, max_age: f64) -> Result<(), CliError> {
    use pc_engine::metrics::scrape::Scrape;
    let scrape = match Scrape::fetch(node) {
        Ok(scrape) => scrape,
        Err(error) => {
            let line = serde_json::json!({
                "type": "health",
                "node": node.to_string(),
                "healthy": false,
                "reason": format!("no answer on http://{node}/metrics: {error}"),
            });
            println!("{line}");
            return Err(CliError::Unhealthy);
        }
    };
    let snapshot_age = scrape
        .samples
        .iter()
        .filter(|s| s.name == "pc_node_snapshot_age_seconds")
        .map(|s| s.value)
        .fold(0.0, f64::max);
    let mut shards = Vec::new();
    let mut healthy = true;
    for sample in scrape
        .samples
        .iter()
        .filter(|s| s.name == "pc_shard_last_decided_age_seconds")
    {
        let shard = sample.labels.get("shard").cloned().unwrap_or_default();
        let age = sample.value + snapshot_age;
        let round = scrape.sum("pc_shard_last_decided_round", &[("shard", &shard)]);
        let ok = age <= max_age;
        healthy &= ok;
        shards.push(serde_json::json!({
            "shard": shard.parse::<u16>().ok(),
            "last_decided_round": round,
            "decided_age_s": (age * 1000.0).round() / 1000.0,
            "healthy": ok,
        }));
    }
    if shards.is_empty() {
        healthy = false;
    }
    let line = serde_json::json!({
        "type": "health",
        "node": node.to_string(),
        "healthy": healthy,
        "max_age_s": max_age,
        "shards": shards,
    });
    println!("{line}");
    if healthy {
        Ok(())
    } else {
        Err(CliError::Unhealthy)
    }
}

/// Flags of `claim` / `tx claim`.
#[derive(clap::Args)]
pub struct ClaimArgs {
    /// The genesis TOML.
    #[arg(long)]
    pub genesis: PathBuf,
    /// The seat's key file (validator key).
    #[arg(long)]
    pub key: PathBuf,
    /// A node's address.
    #[arg(long, default_value = "127.0.0.1:7100")]
    pub node: SocketAddr,
    /// Only this shard.
    #[arg(long)]
    pub shard: Option<u16>,
}

/// `tx` subcommands.
#[derive(clap::Subcommand)]
pub enum TxCommand {
    /// Build, sign and submit a transfer; print the receipt.
    Send {
        /// The genesis TOML (network id, shards, genesis outputs).
        #[arg(long)]
        genesis: PathBuf,
        /// The key file that owns the input.
        #[arg(long)]
        key: PathBuf,
        /// A node's address (its core 0, or the core of the shard).
        #[arg(long, default_value = "127.0.0.1:7100")]
        node: SocketAddr,
        /// Recipient: an address (`pc1…`) or an x-only public key (hex).
        #[arg(long)]
        to: String,
        /// Units to pay.
        #[arg(long)]
        amount: u64,
        /// Spend output N of the key's genesis allocation.
        #[arg(long, default_value_t = 0, conflicts_with = "input")]
        genesis_output: u32,
        /// Spend this output instead, as TXID:INDEX (needs --input-amount).
        #[arg(long, requires = "input_amount")]
        input: Option<String>,
        /// Units held by --input.
        #[arg(long)]
        input_amount: Option<u64>,
        /// Fee in units (the rest of the input comes back as change).
        #[arg(long, default_value_t = 0)]
        fee: u64,
    },
    /// List what a seat key is owed, per shard where it holds a seat
    /// (claimable with `tx claim`).
    Payouts {
        /// The genesis TOML (the seats of the key).
        #[arg(long)]
        genesis: PathBuf,
        /// A node's address.
        #[arg(long, default_value = "127.0.0.1:7100")]
        node: SocketAddr,
        /// The seat's address (`pc1…`) or public key (hex).
        #[arg(long, conflicts_with = "key")]
        owner: Option<String>,
        /// Or the seat's key file.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Only this shard.
        #[arg(long)]
        shard: Option<u16>,
    },
    /// Fetch a seat's payout proof and submit its Claim (DESIGN §5.3), per
    /// shard where the key holds a seat and is owed something.
    Claim(ClaimArgs),
    /// Query the finalized balance of a key.
    Balance {
        /// The genesis TOML (for the shard count).
        #[arg(long)]
        genesis: PathBuf,
        /// A node's address.
        #[arg(long, default_value = "127.0.0.1:7100")]
        node: SocketAddr,
        /// The owner: an address (`pc1…`) or public key (hex).
        #[arg(long, conflicts_with = "key")]
        owner: Option<String>,
        /// Or the owner's key file.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

/// Times `tx send` submits again after an `Overloaded` refusal with a
/// retry-after hint.
const OVERLOADED_RETRIES: u32 = 5;
const TX_TIMEOUT: Duration = Duration::from_secs(10);

/// An owner given as an address (`pc1…`, bech32m) or 64 hex digits.
pub(crate) fn owner_of(text: &str, flag: &str) -> Result<[u8; 32], CliError> {
    pc_codec::address::parse_owner(text).map_err(|e| CliError::Usage(format!("{flag} {text}: {e}")))
}

/// The key `--owner` names, or else the public key of `--key`'s file.
pub(crate) fn owner_or_key(
    owner: Option<String>,
    key: Option<PathBuf>,
) -> Result<[u8; 32], CliError> {
    match (owner, key) {
        (Some(text), _) => owner_of(&text, "--owner"),
        (None, Some(path)) => Ok(key_file::read(&path)?.public_key()),
        (None, None) => Err(CliError::Usage("give --owner or --key".into())),
    }
}

fn hex32(text: &str, flag: &str) -> Result<[u8; 32], CliError> {
    Ok(genesis_file::hex_array(text, flag)?)
}

fn genesis_input(
    genesis: &Genesis,
    owner: &[u8; 32],
    output: u32,
) -> Result<(OutPoint, u64), CliError> {
    let (index, allocation) = genesis
        .allocations
        .iter()
        .enumerate()
        .find(|(_, a)| &a.owner == owner)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "key {} has no genesis allocation; give --input TXID:INDEX and --input-amount",
                to_hex(owner)
            ))
        })?;
    if output >= allocation.outputs {
        return Err(CliError::Usage(format!(
            "--genesis-output {output}: the allocation has {} outputs",
            allocation.outputs
        )));
    }
    Ok((
        Genesis::allocation_out_point(&genesis.network(), index as u32, output as u16),
        allocation.amount,
    ))
}

/// Submits one micro-event to `shard` through `node` and returns its
/// receipt line. An `Overloaded` refusal with a retry-after hint is retried
/// after the hint, at most [`OVERLOADED_RETRIES`] times.
pub(crate) fn submit_event(
    node: SocketAddr,
    shard: u16,
    event: &MicroEvent,
) -> Result<pc_net::frame::EventReceipt, CliError> {
    let mut attempt = 0;
    loop {
        let answer = pc_engine::client::request(
            node,
            NetMessage::SubmitMicroEvents {
                request: 1,
                shard,
                events: vec![event.to_bytes()],
            },
            TX_TIMEOUT,
            |m| matches!(m, NetMessage::Receipt { request: 1, .. }),
        )?;
        let NetMessage::Receipt {
            results,
            retry_after_ms,
            ..
        } = answer
        else {
            unreachable!("filtered to receipts")
        };
        let receipt = results
            .into_iter()
            .next()
            .ok_or_else(|| CliError::Usage(format!("{node}: an empty receipt")))?;
        let overloaded = matches!(
            &receipt.outcome,
            EventOutcome::Rejected {
                reason: pc_net::frame::RejectReason::Overloaded,
                ..
            }
        );
        if !overloaded || retry_after_ms == 0 || attempt >= OVERLOADED_RETRIES {
            return Ok(receipt);
        }
        attempt += 1;
        eprintln!(
            "{node}: overloaded; retrying in {retry_after_ms} ms (attempt {attempt} of {OVERLOADED_RETRIES})"
        );
        std::thread::sleep(Duration::from_millis(u64::from(retry_after_ms)));
    }
}

/// The shards where `key` holds a seat, ascending (`only`: just that one,
/// refused if the key holds no seat there).
fn seat_shards(genesis: &Genesis, key: &[u8; 32], only: Option<u16>) -> Result<Vec<u16>, CliError> {
    let mut shards: Vec<u16> = genesis
        .validators
        .iter()
        .filter(|v| &v.key == key)
        .flat_map(|v| v.seats.iter().map(|s| s.shard))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    if shards.is_empty() {
        return Err(CliError::Usage(format!(
            "key {} holds no seat in the genesis: only seats are paid",
            to_hex(key)
        )));
    }
    match only {
        Some(shard) if !shards.contains(&shard) => Err(CliError::Usage(format!(
            "--shard {shard}: key {} holds no seat there (its shards: {shards:?})",
            to_hex(key)
        ))),
        Some(shard) => Ok(vec![shard]),
        None => Ok(shards),
    }
}

/// The payout leaf and proof of `recipient` in `shard`, as `node` serves
/// them: (round, leaf, proof); amount 0 when nothing is owed.
pub(crate) fn payout_proof(
    node: SocketAddr,
    shard: u16,
    recipient: [u8; 32],
) -> Result<(u64, pc_codec::PayoutLeaf, pc_codec::MerkleProof), CliError> {
    let answer = pc_engine::client::query(
        node,
        NetMessage::PayoutQuery {
            request: 1,
            shard,
            recipient,
        },
        TX_TIMEOUT,
        |m| matches!(m, NetMessage::PayoutProof { request: 1, .. }),
    )?;
    let NetMessage::PayoutProof {
        round, leaf, proof, ..
    } = answer
    else {
        unreachable!("filtered to payout proofs")
    };
    if leaf.recipient != recipient {
        return Err(CliError::Usage(format!(
            "{node}: answered a payout proof for another recipient"
        )));
    }
    Ok((round, leaf, proof))
}

/// The finalized balance of `owner` on its shard, as `node` serves it.
pub(crate) fn balance_of(node: SocketAddr, owner: [u8; 32]) -> Result<(u64, u64), CliError> {
    let answer = pc_engine::client::query(
        node,
        NetMessage::BalanceQuery { request: 1, owner },
        TX_TIMEOUT,
        |m| matches!(m, NetMessage::Balance { request: 1, .. }),
    )?;
    let NetMessage::Balance {
        amount,
        finalized_round,
        ..
    } = answer
    else {
        unreachable!("filtered to balances")
    };
    Ok((amount, finalized_round))
}

/// A Claim of `leaf` against `round`'s payout root of `shard`, signed by
/// `key` (the leaf's recipient) with auxiliary randomness `aux`.
pub(crate) fn claim_event(
    key: &pc_codec::SigningKey,
    network: &[u8; 8],
    shard: u16,
    (round, leaf, proof): (u64, pc_codec::PayoutLeaf, pc_codec::MerkleProof),
    aux: &[u8; 32],
) -> MicroEvent {
    let mut claim = pc_codec::Claim {
        round,
        leaf,
        proof,
        owner: key.public_key(),
        signature: [0; 64],
    };
    claim.signature = key.sign(&claim.signing_message(network, shard), aux);
    MicroEvent::Claim(claim)
}

/// Runs a `tx` subcommand.
pub fn tx(command: TxCommand) -> Result<(), CliError> {
    match command {
        TxCommand::Send {
            genesis,
            key,
            node,
            to,
            amount,
            genesis_output,
            input,
            input_amount,
            fee,
        } => {
            let genesis = genesis_file::load(&genesis)?.genesis;
            let key = key_file::read(&key)?;
            let owner = key.public_key();
            let recipient = owner_of(&to, "--to")?;
            let (out_point, held) = match input {
                Some(text) => {
                    let (tx, index) = text.split_once(':').ok_or_else(|| {
                        CliError::Usage(format!("--input {text}: expected TXID:INDEX"))
                    })?;
                    let index: u16 = index.parse().map_err(|_| {
                        CliError::Usage(format!("--input {text}: index is not a number"))
                    })?;
                    (
                        OutPoint {
                            tx_id: hex32(tx, "--input")?,
                            index,
                        },
                        input_amount.expect("clap requires it"),
                    )
                }
                None => genesis_input(&genesis, &owner, genesis_output)?,
            };
            let change = held
                .checked_sub(amount)
                .and_then(|rest| rest.checked_sub(fee))
                .ok_or_else(|| {
                    CliError::Usage(format!(
                        "the input holds {held} units, less than --amount {amount} plus --fee {fee}"
                    ))
                })?;
            let network = genesis.network();
            let mut builder = TransferBuilder::new()
                .input(out_point)
                .output(amount, recipient);
            if change > 0 {
                builder = builder.output(change, owner);
            }
            let aux: [u8; 32] = rand::random();
            let transfer = builder.sign(&network, &key, &aux)?;
            let tx_id = transfer.tx_id(&network);
            let event = MicroEvent::Transfer(transfer);
            let shard = shard_of(&owner, genesis.params.shards);
            let receipt = submit_event(node, shard, &event)?;
            let receipt = &receipt;
            let (outcome, reason) = match &receipt.outcome {
                EventOutcome::Accepted => ("accepted", String::new()),
                EventOutcome::Rejected { reason, detail } => {
                    ("rejected", format!("{reason:?}: {detail}"))
                }
            };
            // A payment to an owner of another shard leaves this shard as an
            // export once final and lands there as an import (DESIGN §5.2):
            // the same out point, spendable once `tx balance` shows it.
            let to_shard = shard_of(&recipient, genesis.params.shards);
            let crossing = (to_shard != shard).then(|| {
                format!(
                    "exported by shard {shard} once final; imported by shard {to_shard} as {}:0 (tx balance --owner {} shows it there)",
                    to_hex(&tx_id),
                    to_hex(&recipient)
                )
            });
            let line = serde_json::json!({
                "type": "receipt",
                "node": node.to_string(),
                "shard": shard,
                "to_shard": to_shard,
                "cross_shard": crossing,
                "event_id": to_hex(&receipt.event_id),
                "tx_id": to_hex(&tx_id),
                "outcome": outcome,
                "reason": reason,
                "payment": format!("{}:0", to_hex(&tx_id)),
                "change": (change > 0).then(|| format!("{}:1", to_hex(&tx_id))),
            });
            println!("{line}");
            if outcome == "rejected" {
                return Err(CliError::Usage(format!(
                    "{node}: transfer rejected: {reason}"
                )));
            }
            Ok(())
        }
        TxCommand::Payouts {
            genesis,
            node,
            owner,
            key,
            shard,
        } => {
            let genesis = genesis_file::load(&genesis)?.genesis;
            let owner = owner_or_key(owner, key)?;
            for shard in seat_shards(&genesis, &owner, shard)? {
                let (round, leaf, _) = payout_proof(node, shard, owner)?;
                let line = serde_json::json!({
                    "type": "payout",
                    "owner": to_hex(&owner),
                    "shard": shard,
                    "round": round,
                    "owed": leaf.amount,
                    "claimable": leaf.amount > 0,
                });
                println!("{line}");
            }
            Ok(())
        }
        TxCommand::Claim(ClaimArgs {
            genesis,
            key,
            node,
            shard,
        }) => {
            let genesis = genesis_file::load(&genesis)?.genesis;
            let key = key_file::read(&key)?;
            let owner = key.public_key();
            let network = genesis.network();
            let mut rejected = Vec::new();
            for shard in seat_shards(&genesis, &owner, shard)? {
                let (round, leaf, proof) = payout_proof(node, shard, owner)?;
                if leaf.amount == 0 {
                    println!(
                        "{}",
                        serde_json::json!({
                            "type": "claim", "shard": shard, "round": round,
                            "amount": 0, "outcome": "nothing owed",
                        })
                    );
                    continue;
                }
                let aux: [u8; 32] = rand::random();
                let event = claim_event(&key, &network, shard, (round, leaf, proof), &aux);
                let receipt = submit_event(node, shard, &event)?;
                let (outcome, reason) = match &receipt.outcome {
                    EventOutcome::Accepted => ("accepted", String::new()),
                    EventOutcome::Rejected { reason, detail } => {
                        ("rejected", format!("{reason:?}: {detail}"))
                    }
                };
                // The claimed value becomes output (claim id, 0) of the
                // owner, in the owner's shard (an export when that is
                // another shard).
                let line = serde_json::json!({
                    "type": "claim",
                    "node": node.to_string(),
                    "shard": shard,
                    "round": round,
                    "amount": leaf.amount,
                    "event_id": to_hex(&receipt.event_id),
                    "output": format!("{}:0", to_hex(&event.id())),
                    "owner_shard": shard_of(&owner, genesis.params.shards),
                    "outcome": outcome,
                    "reason": reason,
                });
                println!("{line}");
                if outcome == "rejected" {
                    rejected.push(format!("shard {shard}: {reason}"));
                }
            }
            if rejected.is_empty() {
                Ok(())
            } else {
                Err(CliError::Usage(format!(
                    "{node}: claim rejected: {}",
                    rejected.join("; ")
                )))
            }
        }
        TxCommand::Balance {
            genesis,
            node,
            owner,
            key,
        } => {
            let genesis = genesis_file::load(&genesis)?.genesis;
            let owner = owner_or_key(owner, key)?;
            let (amount, finalized_round) = balance_of(node, owner)?;
            let line = serde_json::json!({
                "type": "balance",
                "owner": to_hex(&owner),
                "shard": shard_of(&owner, genesis.params.shards),
                "amount": amount,
                "finalized_round": finalized_round,
            });
            println!("{line}");
            Ok(())
        }
    }
}
