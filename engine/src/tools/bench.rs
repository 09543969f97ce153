//! `phantom-engine bench` (DESIGN §8): sizes and loads (or generates) the
//! workload outside the timed region, runs the real engine on it with one
//! observer shard per core by default, and reports per-shard rates against
//! the same run's BIP-340 verify limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::{ConfigError, RuntimeConfig, StorageConfig};
use crate::runtime::host::{usable_cpus, VerifySamples, CALIBRATION_SAMPLES};
use crate::tools::engine::{self, EngineConfig, EngineReport, Intake};
use crate::tools::workload::{load_or_generate, Workload, WorkloadParams};
use crate::EngineError;

/// Workload sizes are rounded up to this many transfers per shard, so that
/// runs with slightly different measured verify rates share a cached workload.
pub const EVENTS_GRANULE: u32 = 32768;

/// Options of `bench`.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Shards (default: one per usable CPU).
    pub shards: Option<u16>,
    /// Seats per shard.
    pub committee: u8,
    /// Target duration: the workload holds as many transfers as one core
    /// can verify in this time, so the run lasts at least about this long.
    pub seconds: f64,
    /// Transfers per anchor.
    pub tx_per_anchor: u16,
    /// Log durability and segment size.
    pub storage: StorageConfig,
    /// Data dir (default: a temporary dir).
    pub data_dir: Option<PathBuf>,
    /// Keep a temporary data dir.
    pub keep: bool,
    /// Fixed workload size per shard (default: sized from the verify rate).
    pub events_per_shard: Option<u32>,
    /// Per mille of the transfers that pay into another shard (the
    /// workload's exports, carried back in as imports).
    pub cross_per_mille: u16,
    /// With `cross_per_mille > 0`: first run the workload of the same size
    /// without cross-shard transfers, and report the ratio of transfers/s.
    pub baseline: bool,
    /// Where workloads are cached.
    pub cache_dir: PathBuf,
    /// Progress on stderr.
    pub progress: bool,
    /// Duration of the verify-limit measurement on all cores at once.
    pub calibration: Duration,
    /// Where input enters.
    pub intake: Intake,
    /// Pause before the first anchor (for supervisors and tests).
    pub start_delay: Duration,
    /// How the workload reaches the engine.
    pub network: BenchNetwork,
    /// First port of the engine's endpoints with [`BenchNetwork::Quic`]
    /// (core `c` listens on `127.0.0.1:quic_port + c`).
    pub quic_port: u16,
    /// Collect the shards' metrics and serve them here while running
    /// (`None`: none are collected).
    pub metrics: Option<std::net::SocketAddr>,
}

/// How `bench` feeds the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BenchNetwork {
    /// Straight from the mapped workload files (see [`Intake`]).
    #[default]
    InProcess,
    /// First in process, then the same workload again over loopback QUIC
    /// from a feeder thread ([`crate::tools::quic_intake`]); the result is the
    /// QUIC run's, with the in-process figures and the ratio beside it.
    Quic,
}

impl std::str::FromStr for BenchNetwork {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "none" | "in-process" => Ok(BenchNetwork::InProcess),
            "quic" => Ok(BenchNetwork::Quic),
            other => Err(format!(
                "unknown network {other:?} (expected quic or in-process)"
            )),
        }
    }
}

impl BenchOptions {
    /// The defaults of the command line.
    pub fn new(cache_dir: PathBuf) -> BenchOptions {
        BenchOptions {
            shards: None,
            committee: 21,
            seconds: 10.0,
            tx_per_anchor: 256,
            storage: StorageConfig::default(),
            data_dir: None,
            keep: false,
            events_per_shard: None,
            cross_per_mille: 0,
            baseline: true,
            cache_dir,
            progress: false,
            calibration: Duration::from_secs(1),
            intake: Intake::PerCore,
            start_delay: Duration::ZERO,
            network: BenchNetwork::InProcess,
            quic_port: 7400,
            metrics: None,
        }
    }
}

/// The default workload cache: `$PHANTOM_BENCH_CACHE`, else
/// `$XDG_CACHE_HOME/phantom-engine/bench`, else `~/.cache/phantom-engine/bench`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PHANTOM_BENCH_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("phantom-engine").join("bench")
}

/// One shard's line of the bench result.
#[derive(Debug, Clone, Serialize)]
pub struct BenchShard {
    /// The shard.
    pub shard: u16,
    /// The CPU it ran on.
    pub core: usize,
    /// Anchors taken in per second.
    pub anchors_per_s: f64,
    /// Applied micro-events per second (transfers and imports).
    pub events_per_s: f64,
    /// Applied transfers per second (micro-events that are not imports).
    pub transfers_per_s: f64,
    /// Applied imports per second: value carried in from other shards.
    pub imports_per_s: f64,
    /// Imports applied.
    pub applied_imports: u64,
    /// BIP-340 signatures checked (singly or in batches).
    pub signature_verifies: u64,
    /// Batches verified with one multi-scalar multiplication.
    pub signature_batches: u64,
    /// Mean signatures per batch.
    pub mean_batch_size: f64,
    /// Signatures verified one at a time: anchor headers, and the next.
    pub single_signature_verifies: u64,
    /// Payload (batched) signatures verified one at a time: batches too
    /// small to pay, bisection of failing batches, budget fallbacks.
    pub payload_single_verifies: u64,
    /// Parsed-key cache lookups of this shard's core that hit (the cache
    /// is per core, shared by its shards).
    pub key_cache_hits: u64,
    /// Lookups that lifted the key.
    pub key_cache_misses: u64,
    /// Finality latency percentiles, µs.
    pub finality_p50_us: u64,
    /// 95th percentile.
    pub finality_p95_us: u64,
    /// 99th percentile.
    pub finality_p99_us: u64,
    /// Median finality in rounds.
    pub finality_p50_rounds: u64,
    /// Log append rate, MB/s.
    pub log_mb_per_s: f64,
    /// Micro-events finalized.
    pub finalized_events: u64,
    /// State root after the last round, hex.
    pub state_root: String,
    /// With `--network quic`: this shard's events/s of the in-process run
    /// of the same workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_process_events_per_s: Option<f64>,
}

/// The bench result (`--json` prints exactly this object).
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Per shard.
    pub shards: Vec<BenchShard>,
    /// Sum of the shards' events/s.
    pub total_events_per_s: f64,
    /// BIP-340 verifies/s per core one at a time, same run, all cores at
    /// once: the single-verify limit.
    pub verify_limit_per_s: f64,
    /// Mean per-shard events/s divided by the single-verify limit.
    pub ratio_to_limit: f64,
    /// The same samples verified in batches of 256, signatures/s per core,
    /// same run, all cores at once.
    pub batch_verify_per_s: f64,
    /// Mean per-shard events/s divided by the batch rate.
    pub ratio_to_batch: f64,
    /// Peak anonymous RSS during the run, MB.
    pub peak_anon_rss_mb: f64,
    /// The data dir.
    pub data_dir: String,
    /// `in-process` or `quic`.
    pub network: String,
    /// With `--network quic`: the comparison with the in-process run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic: Option<QuicComparison>,
    /// Per mille of the workload's transfers that pay into another shard.
    pub cross_per_mille: u16,
    /// Mean per-shard applied transfers/s.
    pub transfers_per_s: f64,
    /// Mean per-shard applied imports/s.
    pub imports_per_s: f64,
    /// Mean per-shard transfers/s divided by the single-verify limit.
    pub transfer_ratio_to_limit: f64,
    /// With `--cross-shard` above 0: the same-size workload without
    /// cross-shard transfers, run first in the same sitting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<CrossComparison>,
}

/// `--cross-shard F` beside the run of a same-size workload without
/// cross-shard transfers.
#[derive(Debug, Clone, Serialize)]
pub struct CrossComparison {
    /// Mean per-shard transfers/s without cross-shard transfers.
    pub baseline_transfers_per_s: f64,
    /// Mean per-shard transfers/s with them (imports counted apart).
    pub transfers_per_s: f64,
    /// Cross-shard / baseline (target >= 0.9).
    pub ratio: f64,
    /// The baseline run's single-verify limit (it is measured per run).
    pub baseline_verify_limit_per_s: f64,
    /// The baseline run's data dir.
    pub baseline_data_dir: String,
}

/// `--network quic` beside the in-process run of the same workload.
#[derive(Debug, Clone, Serialize)]
pub struct QuicComparison {
    /// Mean per-shard events/s, in process.
    pub in_process_events_per_s: f64,
    /// Mean per-shard events/s over QUIC.
    pub quic_events_per_s: f64,
    /// QUIC / in process (target >= 0.8).
    pub ratio: f64,
    /// Both runs ended with the same finalized count and state root in
    /// every shard.
    pub same_state: bool,
    /// Anchors the feeder sent.
    pub anchors_sent: u64,
    /// Encoded anchor bytes the feeder sent.
    pub bytes_sent: u64,
    /// Datagrams the feeder's socket sent.
    pub datagrams_sent: u64,
    /// The in-process run's data dir.
    pub in_process_data_dir: String,
}

fn round1(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Transfers per shard for a run of `seconds` at `verify_rate_per_s`.
pub fn events_for(seconds: f64, verify_rate_per_s: f64) -> u32 {
    let wanted = (seconds * verify_rate_per_s).ceil().max(1.0) as u64;
    let granules = wanted.div_ceil(u64::from(EVENTS_GRANULE));
    (granules * u64::from(EVENTS_GRANULE)).min(u64::from(u32::MAX)) as u32
}

/// Runs the bench.
pub fn run(options: &BenchOptions) -> Result<BenchResult, EngineError> {
    let cpus = usable_cpus();
    let shards = options.shards.unwrap_or(cpus.len() as u16);
    let max_events = pc_codec::MAX_PAYLOAD_EVENTS as u64;
    for (flag, value, range) in [
        ("--shards", u64::from(shards), 1..=u64::from(u16::MAX)),
        ("--committee", u64::from(options.committee), 1..=64),
        (
            "--tx-per-anchor",
            u64::from(options.tx_per_anchor),
            1..=max_events,
        ),
    ] {
        if !range.contains(&value) {
            return Err(ConfigError::OutOfRange { flag, value, range }.into());
        }
    }
    if options.cross_per_mille > 1000 {
        return Err(ConfigError::OutOfRange {
            flag: "--cross-shard (per mille)",
            value: u64::from(options.cross_per_mille),
            range: 0..=1000,
        }
        .into());
    }
    if options.cross_per_mille > 0 && shards < 2 {
        return Err(ConfigError::OutOfRange {
            flag: "--shards (with --cross-shard above 0)",
            value: u64::from(shards),
            range: 2..=u64::from(u16::MAX),
        }
        .into());
    }
    let events_per_shard = match options.events_per_shard {
        Some(events) => events,
        None => {
            // A first estimate on one core, only to size the workload.
            let rate = VerifySamples::new(CALIBRATION_SAMPLES)
                .verify_rate_per_s(Duration::from_millis(300));
            events_for(options.seconds, rate)
        }
    };
    let params = WorkloadParams {
        shards,
        committee: options.committee,
        tx_per_anchor: options.tx_per_anchor,
        events_per_shard,
        cross_per_mille: options.cross_per_mille,
    };
    let workload = load_or_generate(&options.cache_dir, params, options.progress)?;
    // Generation memory goes back to the OS before peak RSS is sampled.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
    let mut result = match options.network {
        BenchNetwork::InProcess if options.cross_per_mille > 0 && options.baseline => {
            run_with_baseline(options, &workload)?
        }
        BenchNetwork::InProcess => {
            let (report, data_dir) = run_once(options, &workload, options.intake, "")?;
            summarize(&report, &data_dir, "in-process")
        }
        BenchNetwork::Quic => run_quic(options, &workload)?,
    };
    result.cross_per_mille = params.cross_per_mille;
    Ok(result)
}

/// The same-size workload without cross-shard transfers, then `workload`
/// (with them), one after the other in this process.
fn run_with_baseline(
    options: &BenchOptions,
    workload: &Workload,
) -> Result<BenchResult, EngineError> {
    let baseline_workload = load_or_generate(
        &options.cache_dir,
        WorkloadParams {
            cross_per_mille: 0,
            ..workload.params
        },
        options.progress,
    )?;
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
    if options.progress {
        eprintln!("baseline run: no cross-shard transfers");
    }
    let (report, data_dir) = run_once(options, &baseline_workload, options.intake, "baseline")?;
    let baseline = summarize(&report, &data_dir, "in-process");
    if options.progress {
        eprintln!(
            "cross-shard run: {} per mille of the transfers pay into another shard",
            options.cross_per_mille
        );
    }
    let (report, data_dir) = run_once(options, workload, options.intake, "cross-shard")?;
    let mut result = summarize(&report, &data_dir, "in-process");
    result.baseline = Some(CrossComparison {
        baseline_transfers_per_s: baseline.transfers_per_s,
        transfers_per_s: result.transfers_per_s,
        ratio: if baseline.transfers_per_s > 0.0 {
            round3(result.transfers_per_s / baseline.transfers_per_s)
        } else {
            0.0
        },
        baseline_verify_limit_per_s: baseline.verify_limit_per_s,
        baseline_data_dir: baseline.data_dir,
    });
    Ok(result)
}

/// The in-process run, then the QUIC run of the same workload.
fn run_quic(options: &BenchOptions, workload: &Workload) -> Result<BenchResult, EngineError> {
    if options.progress {
        eprintln!("in-process run");
    }
    let (reference, reference_dir) = run_once(options, workload, Intake::PerCore, "in-process")?;
    let reference = summarize(&reference, &reference_dir, "in-process");
    if options.progress {
        eprintln!("QUIC run: feeder -> 127.0.0.1:{}+core", options.quic_port);
    }
    let (_, placement) = cores_and_placement(workload);
    let feeder =
        crate::tools::quic_intake::spawn_feeder(workload.clone(), placement, options.quic_port)?;
    let engine_run = run_once(
        options,
        workload,
        Intake::Quic {
            base_port: options.quic_port,
        },
        "quic",
    );
    let fed = feeder
        .join()
        .map_err(|e| crate::tools::quic_intake::FeedError::Executor(e.into()))?;
    let (report, data_dir) = engine_run?;
    let fed = fed?;
    let mut result = summarize(&report, &data_dir, "quic");
    for (shard, reference) in result.shards.iter_mut().zip(&reference.shards) {
        shard.in_process_events_per_s = Some(reference.events_per_s);
    }
    let mean = |r: &BenchResult| r.total_events_per_s / r.shards.len().max(1) as f64;
    let same_state =
        result.shards.len() == reference.shards.len()
            && result.shards.iter().zip(&reference.shards).all(|(a, b)| {
                a.finalized_events == b.finalized_events && a.state_root == b.state_root
            });
    let (quic_mean, reference_mean) = (mean(&result), mean(&reference));
    result.quic = Some(QuicComparison {
        in_process_events_per_s: round1(reference_mean),
        quic_events_per_s: round1(quic_mean),
        ratio: if reference_mean > 0.0 {
            round3(quic_mean / reference_mean)
        } else {
            0.0
        },
        same_state,
        anchors_sent: fed.anchors,
        bytes_sent: fed.bytes,
        datagrams_sent: fed.datagrams_sent,
        in_process_data_dir: reference.data_dir.clone(),
    });
    Ok(result)
}

/// The bench's CPUs (one per shard, at most every usable one) and its
/// shard placement on them, round-robin; the QUIC feeder dials by it.
fn cores_and_placement(workload: &Workload) -> (Vec<usize>, Vec<usize>) {
    let cpus = usable_cpus();
    let shards = workload.params.shards;
    let cores = cpus.len().min(usize::from(shards));
    (
        cpus[..cores].to_vec(),
        crate::runtime::round_robin(shards, cores),
    )
}

/// One engine run over `workload` in a fresh data dir (`options.data_dir`,
/// or under it in `label` when the bench makes two runs).
fn run_once(
    options: &BenchOptions,
    workload: &Workload,
    intake: Intake,
    label: &str,
) -> Result<(EngineReport, PathBuf), EngineError> {
    let (data_dir, temp) = match &options.data_dir {
        Some(dir) if label.is_empty() => (dir.clone(), None),
        Some(dir) => (dir.join(label), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("phantom-bench-")
                .tempdir()
                .map_err(|e| EngineError::io(&std::env::temp_dir(), e))?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let (cpus, placement) = cores_and_placement(workload);
    let config = EngineConfig {
        runtime: RuntimeConfig {
            data_dir: data_dir.clone(),
            cpus,
            placement: Some(placement),
            storage: options.storage,
            io_memory_bytes: None,
        },
        ring_capacity: 64,
        workload: workload.clone(),
        intake,
        max_run: Some(Duration::from_secs_f64(options.seconds * 3.0 + 10.0)),
        verify_calibration: Some(options.calibration),
        snapshot_interval: Duration::from_millis(100),
        handle_signals: true,
        progress: options.progress,
        start_delay: options.start_delay,
        metrics: options.metrics,
    };
    let report = engine::run(config)?;
    if let Some(temp) = temp {
        if options.keep {
            let _ = temp.keep();
        }
    }
    Ok((report, data_dir))
}

fn summarize(report: &EngineReport, data_dir: &Path, network: &str) -> BenchResult {
    let shards: Vec<BenchShard> = report
        .shards
        .iter()
        .map(|s| {
            let seconds = s.busy.as_secs_f64().max(1e-9);
            let c = &s.counters;
            BenchShard {
                shard: s.shard,
                core: s.core,
                anchors_per_s: round1(c.anchors as f64 / seconds),
                events_per_s: round1(c.applied_events as f64 / seconds),
                transfers_per_s: round1(
                    c.applied_events.saturating_sub(c.applied_imports) as f64 / seconds,
                ),
                imports_per_s: round1(c.applied_imports as f64 / seconds),
                applied_imports: c.applied_imports,
                signature_verifies: c.signature_verifies,
                signature_batches: c.signature_batches,
                mean_batch_size: if c.signature_batches > 0 {
                    round1(c.batched_signatures as f64 / c.signature_batches as f64)
                } else {
                    0.0
                },
                single_signature_verifies: c.single_signature_verifies,
                payload_single_verifies: c.batch_single_verifies,
                key_cache_hits: c.key_cache_hits,
                key_cache_misses: c.key_cache_misses,
                finality_p50_us: s.finality_us.value_at_quantile(0.5),
                finality_p95_us: s.finality_us.value_at_quantile(0.95),
                finality_p99_us: s.finality_us.value_at_quantile(0.99),
                finality_p50_rounds: s.finality_rounds.value_at_quantile(0.5),
                log_mb_per_s: round3(c.log_bytes as f64 / seconds / 1e6),
                finalized_events: c.finalized_events,
                state_root: pc_codec::to_hex(&s.state_root),
                in_process_events_per_s: None,
            }
        })
        .collect();
    let total: f64 = shards.iter().map(|s| s.events_per_s).sum();
    let limit = report.verify_limit_per_s.unwrap_or(0.0);
    let batch = report.batch_verify_per_s.unwrap_or(0.0);
    let mean = total / shards.len().max(1) as f64;
    let ratio = |rate: f64| if rate > 0.0 { round3(mean / rate) } else { 0.0 };
    let per_shard = |rate: fn(&BenchShard) -> f64| {
        shards.iter().map(rate).sum::<f64>() / shards.len().max(1) as f64
    };
    let transfers_per_s = per_shard(|s| s.transfers_per_s);
    let imports_per_s = per_shard(|s| s.imports_per_s);
    BenchResult {
        total_events_per_s: round1(total),
        verify_limit_per_s: round1(limit),
        ratio_to_limit: ratio(limit),
        batch_verify_per_s: round1(batch),
        ratio_to_batch: ratio(batch),
        peak_anon_rss_mb: round1(report.peak_anon_rss_kib as f64 / 1024.0),
        data_dir: data_dir.display().to_string(),
        network: network.to_string(),
        quic: None,
        cross_per_mille: 0,
        transfers_per_s: round1(transfers_per_s),
        imports_per_s: round1(imports_per_s),
        transfer_ratio_to_limit: if limit > 0.0 {
            round3(transfers_per_s / limit)
        } else {
            0.0
        },
        baseline: None,
        shards,
    }
}

/// The human table.
pub fn render_table(result: &BenchResult) -> String {
    let mut out = format!(
        "{:>5} {:>4} {:>10} {:>11} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8} {:>10}  state_root\n",
        "shard",
        "core",
        "anchors/s",
        "events/s",
        "verifies",
        "p50_us",
        "p95_us",
        "p99_us",
        "p50_rd",
        "log_MB/s",
        "finalized"
    );
    for s in &result.shards {
        out += &format!(
            "{:>5} {:>4} {:>10.1} {:>11.1} {:>10} {:>9} {:>9} {:>9} {:>7} {:>8.3} {:>10}  {}\n",
            s.shard,
            s.core,
            s.anchors_per_s,
            s.events_per_s,
            s.signature_verifies,
            s.finality_p50_us,
            s.finality_p95_us,
            s.finality_p99_us,
            s.finality_p50_rounds,
            s.log_mb_per_s,
            s.finalized_events,
            &s.state_root[..16]
        );
    }
    out += &format!(
        "total {:.1} events/s; verify limit {:.1} verifies/s per core (ratio {:.3}); batch rate {:.1} signatures/s per core (ratio {:.3}); peak anon RSS {:.1} MB; data dir {}\n",
        result.total_events_per_s,
        result.verify_limit_per_s,
        result.ratio_to_limit,
        result.batch_verify_per_s,
        result.ratio_to_batch,
        result.peak_anon_rss_mb,
        result.data_dir
    );
    let batches: u64 = result.shards.iter().map(|s| s.signature_batches).sum();
    let single: u64 = result
        .shards
        .iter()
        .map(|s| s.single_signature_verifies)
        .sum();
    let payload_single: u64 = result
        .shards
        .iter()
        .map(|s| s.payload_single_verifies)
        .sum();
    // The key cache is per core: each core's counts once.
    let per_core: std::collections::BTreeMap<usize, (u64, u64)> = result
        .shards
        .iter()
        .map(|s| (s.core, (s.key_cache_hits, s.key_cache_misses)))
        .collect();
    let key_hits: u64 = per_core.values().map(|(hits, _)| hits).sum();
    let key_misses: u64 = per_core.values().map(|(_, misses)| misses).sum();
    let verifies: u64 = result.shards.iter().map(|s| s.signature_verifies).sum();
    let batched: f64 = result
        .shards
        .iter()
        .map(|s| s.mean_batch_size * s.signature_batches as f64)
        .sum();
    out += &format!(
        "signatures {verifies}: {batches} batches (mean {:.1} signatures), {single} verified singly ({payload_single} of them payload signatures); key cache {key_hits} hits, {key_misses} misses\n",
        batched / batches.max(1) as f64
    );
    if result.cross_per_mille > 0 {
        out += &format!(
            "cross-shard {:.1}%: {:.1} transfers/s and {:.1} imports/s per shard (imports counted apart); transfers/s to the verify limit {:.3}\n",
            f64::from(result.cross_per_mille) / 10.0,
            result.transfers_per_s,
            result.imports_per_s,
            result.transfer_ratio_to_limit
        );
    }
    if let Some(baseline) = &result.baseline {
        out += &format!(
            "beside the same-size workload without cross-shard transfers (run first, same process): {:.1} vs {:.1} transfers/s per shard, ratio {:.3} (target >= 0.9); baseline verify limit {:.1}\n",
            baseline.transfers_per_s,
            baseline.baseline_transfers_per_s,
            baseline.ratio,
            baseline.baseline_verify_limit_per_s
        );
    }
    if let Some(quic) = &result.quic {
        for s in &result.shards {
            if let Some(reference) = s.in_process_events_per_s {
                out += &format!(
                    "shard {}: {:.1} events/s over QUIC, {:.1} in process, ratio {:.3}\n",
                    s.shard,
                    s.events_per_s,
                    reference,
                    if reference > 0.0 {
                        s.events_per_s / reference
                    } else {
                        0.0
                    }
                );
            }
        }
        out += &format!(
            "network quic: {:.1} events/s per shard over loopback QUIC vs {:.1} in process: ratio {:.3} (target >= 0.8); same finalized counts and state roots: {}; feeder sent {} anchors, {:.1} MB in {} datagrams\n",
            quic.quic_events_per_s,
            quic.in_process_events_per_s,
            quic.ratio,
            if quic.same_state { "yes" } else { "NO" },
            quic.anchors_sent,
            quic.bytes_sent as f64 / 1e6,
            quic.datagrams_sent
        );
    }
    out
}

/// The `--json` line.
pub fn render_json(result: &BenchResult) -> String {
    serde_json::to_string(result).expect("plain data serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_size_rounds_up_to_the_granule() {
        assert_eq!(events_for(10.0, 15_000.0), 163_840);
        assert_eq!(events_for(0.001, 1.0), EVENTS_GRANULE);
        assert_eq!(events_for(1.0, 32_768.0), 32_768);
    }
}
