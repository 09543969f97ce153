//! `cache-bench` (the seed's `CacheBench`): reads a sample of a data dir's
//! anchors through the node's own header/payload cache
//! ([`pc_node::CachedStore`]) and log-read function (`ShardStore` of
//! `pc_storage::Log`), `iterations` times, and reports hits, misses, the
//! time taken and the latency of a lookup and of a store read. Run it on a
//! stopped node's data dir (`bench --keep` leaves one): the log is opened
//! as the node opens it.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Instant;

use hdrhistogram::Histogram;
use pc_codec::LogRecordKind;
use pc_node::{CacheCaps, CachedStore, ShardStore};
use pc_storage::Log;
use serde::Serialize;

use crate::runtime::data_dir::{read_log_config, ENGINE_FILE};
use crate::runtime::driver::shard_log_dir;
use crate::EngineError;

/// What is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Signed headers.
    Headers,
    /// Payloads.
    Payloads,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(text: &str) -> Result<Mode, String> {
        match text {
            "headers" => Ok(Mode::Headers),
            "payloads" => Ok(Mode::Payloads),
            other => Err(format!("{other}: expected headers or payloads")),
        }
    }
}

/// A run's settings.
#[derive(Debug, Clone)]
pub struct CacheBenchOptions {
    /// The data dir.
    pub data_dir: PathBuf,
    /// The shard whose log is read.
    pub shard: u16,
    /// Headers or payloads.
    pub mode: Mode,
    /// Anchors read per iteration (spread evenly over the log).
    pub sample: usize,
    /// Passes over the sample.
    pub iterations: usize,
    /// The cache's capacities.
    pub caps: CacheCaps,
}

/// The JSON object `cache-bench` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheBenchReport {
    /// Headers or payloads.
    pub mode: Mode,
    /// The shard read.
    pub shard: u16,
    /// Anchors in the sample.
    pub sample: usize,
    /// Passes.
    pub iterations: usize,
    /// The capacities.
    pub cache_hdr_cap: usize,
    /// The capacities.
    pub cache_pl_cap: usize,
    /// Header lookups answered by the cache.
    pub hdr_hits: u64,
    /// Header lookups that read the log.
    pub hdr_misses: u64,
    /// Payload lookups answered by the cache.
    pub pl_hits: u64,
    /// Payload lookups that read the log.
    pub pl_misses: u64,
    /// Wall time of all lookups, ms.
    pub elapsed_ms: f64,
    /// Bytes returned by all lookups.
    pub bytes: u64,
    /// Latency of one lookup (hit or miss), µs.
    pub lookup_p50_us: f64,
    /// Its 99th percentile.
    pub lookup_p99_us: f64,
    /// Its maximum.
    pub lookup_max_us: f64,
    /// Log reads behind the cache.
    pub store_reads: u64,
    /// Their mean latency, µs.
    pub store_read_mean_us: f64,
}

/// Why a data dir cannot be benchmarked (one line).
fn unusable(dir: &Path, why: &str) -> EngineError {
    EngineError::Config(format!("{}: {why}", dir.display()))
}

/// Runs the benchmark.
pub fn run(options: &CacheBenchOptions) -> Result<CacheBenchReport, EngineError> {
    let dir = &options.data_dir;
    if !dir.is_dir() {
        return Err(unusable(dir, "no such data dir"));
    }
    if !dir.join("genesis.toml").is_file() || !dir.join(ENGINE_FILE).is_file() {
        return Err(unusable(
            dir,
            "not a phantom-engine data dir (no genesis.toml and engine.toml)",
        ));
    }
    let log_dir = shard_log_dir(dir, options.shard);
    if !log_dir.is_dir() {
        return Err(unusable(
            dir,
            &format!(
                "no log of shard {} ({} is missing)",
                options.shard,
                log_dir.display()
            ),
        ));
    }
    if options.sample == 0 || options.iterations == 0 {
        return Err(unusable(
            dir,
            "--sample and --iterations must be at least 1",
        ));
    }
    let (log, _) = Log::open(&log_dir, read_log_config(dir)?)?;
    let anchors: Vec<u64> = log
        .iter_from(0)
        .filter_map(Result::ok)
        .filter(|record| record.kind == LogRecordKind::AnchorAccepted as u8)
        .map(|record| record.seq)
        .collect();
    if anchors.is_empty() {
        return Err(unusable(
            dir,
            &format!(
                "the log of shard {} holds no anchors (empty data dir)",
                options.shard
            ),
        ));
    }
    // The sample: evenly spread over the log's anchors (all of them if
    // there are fewer).
    let sample: Vec<u64> = if anchors.len() <= options.sample {
        anchors.clone()
    } else {
        (0..options.sample)
            .map(|i| anchors[i * anchors.len() / options.sample])
            .collect()
    };
    let log: Rc<RefCell<dyn ShardStore>> = Rc::new(RefCell::new(log));
    let cache = CachedStore::new(log, options.caps);
    let started = Instant::now();
    cache.set_stopwatch(Rc::new(move || started.elapsed().as_nanos() as u64));
    let mut lookups =
        Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds");
    let mut bytes = 0u64;
    let begin = Instant::now();
    for _ in 0..options.iterations {
        for &seq in &sample {
            let at = Instant::now();
            let part = match options.mode {
                Mode::Headers => cache.header(seq),
                Mode::Payloads => cache.payload(seq),
            };
            lookups.saturating_record(at.elapsed().as_nanos() as u64);
            bytes += part.map_or(0, |p| p.len() as u64);
        }
    }
    let elapsed = begin.elapsed();
    let counts = cache.counts();
    let reads = cache.reads();
    let store = match options.mode {
        Mode::Headers => reads.header,
        Mode::Payloads => reads.payload,
    };
    let us = |ns: u64| ns as f64 / 1000.0;
    Ok(CacheBenchReport {
        mode: options.mode,
        shard: options.shard,
        sample: sample.len(),
        iterations: options.iterations,
        cache_hdr_cap: options.caps.header_cap,
        cache_pl_cap: options.caps.payload_cap,
        hdr_hits: counts.header_hits,
        hdr_misses: counts.header_misses,
        pl_hits: counts.payload_hits,
        pl_misses: counts.payload_misses,
        elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        bytes,
        lookup_p50_us: us(lookups.value_at_quantile(0.5)),
        lookup_p99_us: us(lookups.value_at_quantile(0.99)),
        lookup_max_us: us(lookups.max()),
        store_reads: store.count(),
        store_read_mean_us: if store.count() > 0 {
            store.sum_seconds() * 1e6 / store.count() as f64
        } else {
            0.0
        },
    })
}
