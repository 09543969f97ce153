//! `phantom-engine bench` (DESIGN §8): sizes and loads (or generates) the
//! workload outside the timed region, runs the real engine on it with one
//! observer shard per core by default, and reports per-shard rates against
//! the same run's BIP-340 verify limit.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pc_storage::Durability;
use serde::Serialize;

use crate::engine::{self, EngineConfig, EngineReport, Intake};
use crate::host::{usable_cpus, VerifySamples, CALIBRATION_SAMPLES};
use crate::workload::{load_or_generate, WorkloadParams};
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
    /// Log durability.
    pub fsync: Durability,
    /// Data dir (default: a temporary dir).
    pub data_dir: Option<PathBuf>,
    /// Keep a temporary data dir.
    pub keep: bool,
    /// Fixed workload size per shard (default: sized from the verify rate).
    pub events_per_shard: Option<u32>,
    /// Where workloads are cached.
    pub cache_dir: PathBuf,
    /// Progress on stderr.
    pub progress: bool,
    /// Duration of the verify-limit measurement on all cores at once.
    pub calibration: Duration,
    /// Log segment size.
    pub segment_bytes: u64,
    /// Where input enters.
    pub intake: Intake,
    /// Pause before the first anchor (for supervisors and tests).
    pub start_delay: Duration,
}

impl BenchOptions {
    /// The defaults of the command line.
    pub fn new(cache_dir: PathBuf) -> BenchOptions {
        BenchOptions {
            shards: None,
            committee: 21,
            seconds: 10.0,
            tx_per_anchor: 256,
            fsync: Durability::Batch,
            data_dir: None,
            keep: false,
            events_per_shard: None,
            cache_dir,
            progress: false,
            calibration: Duration::from_secs(1),
            segment_bytes: 64 << 20,
            intake: Intake::PerCore,
            start_delay: Duration::ZERO,
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
    /// Applied micro-events per second.
    pub events_per_s: f64,
    /// BIP-340 verifications performed.
    pub signature_verifies: u64,
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
}

/// The bench result (`--json` prints exactly this object).
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// Per shard.
    pub shards: Vec<BenchShard>,
    /// Sum of the shards' events/s.
    pub total_events_per_s: f64,
    /// BIP-340 verifies/s per core, same run, all cores at once.
    pub verify_limit_per_s: f64,
    /// Mean per-shard events/s divided by the limit.
    pub ratio_to_limit: f64,
    /// Peak anonymous RSS during the run, MB.
    pub peak_anon_rss_mb: f64,
    /// The data dir.
    pub data_dir: String,
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
    if shards == 0 || options.committee == 0 || options.committee > 64 {
        return Err(EngineError::Config(
            "--shards must be at least 1 and --committee within 1..=64".to_string(),
        ));
    }
    if options.tx_per_anchor == 0
        || usize::from(options.tx_per_anchor) > pc_codec::MAX_PAYLOAD_EVENTS
    {
        return Err(EngineError::Config(format!(
            "--tx-per-anchor {} is outside 1..={}",
            options.tx_per_anchor,
            pc_codec::MAX_PAYLOAD_EVENTS
        )));
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
    };
    let workload = load_or_generate(&options.cache_dir, params, options.progress)?;
    // Generation memory goes back to the OS before peak RSS is sampled.
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
    let (data_dir, temp) = match &options.data_dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("phantom-bench-")
                .tempdir()
                .map_err(|e| EngineError::io(&std::env::temp_dir(), e))?;
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let cores = cpus.len().min(usize::from(shards));
    let config = EngineConfig {
        data_dir: data_dir.clone(),
        cpus: cpus[..cores].to_vec(),
        placement: engine::round_robin(shards, cores),
        fsync: options.fsync,
        segment_bytes: options.segment_bytes,
        ring_capacity: 64,
        workload,
        intake: options.intake,
        max_run: Some(Duration::from_secs_f64(options.seconds * 3.0 + 10.0)),
        verify_calibration: Some(options.calibration),
        snapshot_interval: Duration::from_millis(100),
        handle_signals: true,
        progress: options.progress,
        start_delay: options.start_delay,
    };
    let report = engine::run(config)?;
    let result = summarize(&report, &data_dir);
    if let Some(temp) = temp {
        if options.keep {
            let _ = temp.keep();
        }
    }
    Ok(result)
}

fn summarize(report: &EngineReport, data_dir: &Path) -> BenchResult {
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
                signature_verifies: c.signature_verifies,
                finality_p50_us: s.finality_us.value_at_quantile(0.5),
                finality_p95_us: s.finality_us.value_at_quantile(0.95),
                finality_p99_us: s.finality_us.value_at_quantile(0.99),
                finality_p50_rounds: s.finality_rounds.value_at_quantile(0.5),
                log_mb_per_s: round3(c.log_bytes as f64 / seconds / 1e6),
                finalized_events: c.finalized_events,
                state_root: pc_codec::to_hex(&s.state_root),
            }
        })
        .collect();
    let total: f64 = shards.iter().map(|s| s.events_per_s).sum();
    let limit = report.verify_limit_per_s.unwrap_or(0.0);
    let mean = total / shards.len().max(1) as f64;
    BenchResult {
        total_events_per_s: round1(total),
        verify_limit_per_s: round1(limit),
        ratio_to_limit: if limit > 0.0 {
            round3(mean / limit)
        } else {
            0.0
        },
        peak_anon_rss_mb: round1(report.peak_anon_rss_kib as f64 / 1024.0),
        data_dir: data_dir.display().to_string(),
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
        "total {:.1} events/s; verify limit {:.1} verifies/s per core; ratio {:.3}; peak anon RSS {:.1} MB; data dir {}\n",
        result.total_events_per_s,
        result.verify_limit_per_s,
        result.ratio_to_limit,
        result.peak_anon_rss_mb,
        result.data_dir
    );
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
