//! `phantom-engine tune`: probes the host — usable cores, whether io_uring
//! works under the memlock limit, the BIP-340 verify rate of one core alone
//! and of every core at once, and the log append rate of each fsync policy
//! through the engine's own path (pc-storage appends, io_uring
//! `fdatasync`) — and recommends a node config.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use glommio::io::BufferedFile;
use glommio::{LocalExecutorBuilder, Placement};
use pc_storage::{Durability, Log, LogConfig};

use crate::config::{NodeConfig, StorageConfig, DEFAULT_SEGMENT_BYTES};
use crate::runtime::data_dir::MAX_RECORD_BYTES;
use crate::runtime::host::{
    executor_sizing, memlock_limit_bytes, usable_cpus, VerifyRates, VerifySamples,
    CALIBRATION_SAMPLES,
};
use crate::EngineError;

/// Bytes of one appended record in the log probe: about a full anchor of
/// 256 one-input transfers.
pub const PROBE_RECORD_BYTES: usize = 44 * 1024;

/// The log append rate of one fsync policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendRate {
    /// The policy.
    pub fsync: Durability,
    /// Records appended (and made durable as the policy says) per second.
    pub records_per_s: f64,
    /// The same in MB/s.
    pub mb_per_s: f64,
}

/// What `tune` found.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Usable CPUs.
    pub cpus: Vec<usize>,
    /// Soft memlock limit, bytes (`None`: unlimited).
    pub memlock_bytes: Option<u64>,
    /// glommio I/O memory per executor chosen for that limit.
    pub io_memory_bytes: usize,
    /// Whether an executor started and an io_uring fdatasync completed.
    pub io_uring_usable: Result<(), String>,
    /// Verifies/s of one core alone.
    pub verify_one_core_per_s: f64,
    /// Verifies/s per core with every core verifying at once.
    pub verify_all_cores_per_s: f64,
    /// The same samples in batches of 256: signatures/s of one core alone.
    pub batch_one_core_per_s: f64,
    /// Batches of 256, signatures/s per core with every core at once.
    pub batch_all_cores_per_s: f64,
    /// Log append rates, one per policy (empty if io_uring is unusable).
    pub append: Vec<AppendRate>,
}

/// Probes the host, writing log probes under `scratch`.
pub fn probe(scratch: &Path, seconds_per_probe: f64) -> Result<Probe, EngineError> {
    let cpus = usable_cpus();
    let memlock_bytes = memlock_limit_bytes();
    let sizing = executor_sizing(memlock_bytes, cpus.len());
    let duration = Duration::from_secs_f64(seconds_per_probe);
    let samples = VerifySamples::new(CALIBRATION_SAMPLES);
    let one_core = samples.rates(duration);
    let all_cores = std::thread::scope(|scope| {
        let handles: Vec<_> = cpus
            .iter()
            .map(|_| scope.spawn(|| samples.rates(duration)))
            .collect();
        let rates: Vec<VerifyRates> = handles
            .into_iter()
            .map(|h| h.join().expect("verify thread"))
            .collect();
        let cores = rates.len().max(1) as f64;
        VerifyRates {
            single_per_s: rates.iter().map(|r| r.single_per_s).sum::<f64>() / cores,
            batch_per_s: rates.iter().map(|r| r.batch_per_s).sum::<f64>() / cores,
        }
    });
    let dir = scratch.to_path_buf();
    let cpu = cpus[0];
    let outcome = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name("pc-tune")
        .io_memory(sizing.io_memory_bytes)
        .ring_depth(sizing.ring_depth)
        .spawn(move || async move { probe_logs(&dir, duration).await })
        .map_err(|e| e.to_string())
        .and_then(|handle| handle.join().map_err(|e| e.to_string()));
    let (io_uring_usable, append) = match outcome {
        Ok(Ok(rates)) => (Ok(()), rates),
        Ok(Err(error)) => (Err(error.to_string()), Vec::new()),
        Err(error) => (Err(error), Vec::new()),
    };
    Ok(Probe {
        cpus,
        memlock_bytes,
        io_memory_bytes: sizing.io_memory_bytes,
        io_uring_usable,
        verify_one_core_per_s: one_core.single_per_s,
        verify_all_cores_per_s: all_cores.single_per_s,
        batch_one_core_per_s: one_core.batch_per_s,
        batch_all_cores_per_s: all_cores.batch_per_s,
        append,
    })
}

/// Appends records of [`PROBE_RECORD_BYTES`] for `duration` under each
/// policy: `always` syncs after each record, `batch` keeps one sync in
/// flight and groups whatever was appended meanwhile, `never` only at the end.
async fn probe_logs(dir: &Path, duration: Duration) -> Result<Vec<AppendRate>, EngineError> {
    let mut rates = Vec::new();
    let body = vec![0x5a_u8; PROBE_RECORD_BYTES];
    for fsync in [Durability::Always, Durability::Batch, Durability::Never] {
        let log_dir = dir.join(format!("log-{fsync}"));
        let config = LogConfig {
            segment_bytes: 64 << 20,
            durability: fsync,
            max_record_bytes: MAX_RECORD_BYTES,
        };
        let (mut log, _) = Log::open(&log_dir, config)?;
        let start = Instant::now();
        let mut records = 0u64;
        let mut in_flight: Option<SyncSlot> = None;
        while start.elapsed() < duration {
            log.append(1, &body)?;
            records += 1;
            match fsync {
                Durability::Always => {
                    if let Some(upto) = sync_ranges(&log).await? {
                        log.mark_durable(upto);
                    }
                }
                Durability::Batch => {
                    let finished = in_flight.as_ref().and_then(|slot| slot.borrow_mut().take());
                    if let Some(result) = finished {
                        in_flight = None;
                        log.mark_durable(result?);
                    }
                    if in_flight.is_none() {
                        in_flight = spawn_sync(&log);
                    }
                }
                Durability::Never => {}
            }
            pc_net::driver::yield_if_needed().await;
        }
        while let Some(slot) = &in_flight {
            let finished = slot.borrow_mut().take();
            match finished {
                Some(result) => {
                    log.mark_durable(result?);
                    in_flight = None;
                }
                None => glommio::timer::sleep(Duration::from_micros(100)).await,
            }
        }
        if let Some(upto) = sync_ranges(&log).await? {
            log.mark_durable(upto);
        }
        let seconds = start.elapsed().as_secs_f64();
        rates.push(AppendRate {
            fsync,
            records_per_s: records as f64 / seconds,
            mb_per_s: (records * PROBE_RECORD_BYTES as u64) as f64 / seconds / 1e6,
        });
        drop(log);
        std::fs::remove_dir_all(&log_dir).map_err(|e| EngineError::io(&log_dir, e))?;
    }
    Ok(rates)
}

/// The outcome of one background sync: the seq made durable.
type SyncSlot = std::rc::Rc<std::cell::RefCell<Option<Result<u64, EngineError>>>>;

/// fdatasyncs every dirty range of `log` through io_uring; returns the seq
/// then durable.
async fn sync_ranges(log: &Log) -> Result<Option<u64>, EngineError> {
    let ranges = log.dirty();
    let mut upto = None;
    for range in ranges {
        sync_file(&range.path).await?;
        upto = upto.max(Some(range.upto_seq));
    }
    Ok(upto)
}

/// One io_uring fdatasync of `path`.
async fn sync_file(path: &Path) -> Result<(), EngineError> {
    let synced = async {
        let file = BufferedFile::open(path).await?;
        file.fdatasync().await?;
        file.close().await
    };
    synced
        .await
        .map_err(|error| EngineError::io(path, error.into()))
}

/// Starts a background io_uring sync of every dirty range of `log`.
fn spawn_sync(log: &Log) -> Option<SyncSlot> {
    let ranges = log.dirty();
    let upto = ranges.iter().map(|r| r.upto_seq).max()?;
    let paths: Vec<_> = ranges.into_iter().map(|r| r.path).collect();
    let slot: SyncSlot = Default::default();
    let done = slot.clone();
    glommio::spawn_local(async move {
        let mut result = Ok(upto);
        for path in paths {
            if let Err(error) = sync_file(&path).await {
                result = Err(error);
                break;
            }
        }
        *done.borrow_mut() = Some(result);
    })
    .detach();
    Some(slot)
}

/// The recommended node config for what `probe` found: every core, one
/// shard per core.
pub fn recommend(probe: &Probe) -> String {
    let cores = probe.cpus.len();
    let batch = probe.append.iter().find(|r| r.fsync == Durability::Batch);
    let always = probe.append.iter().find(|r| r.fsync == Durability::Always);
    // One shard's log needs about (verify rate / 256) full anchors/s.
    let anchors_needed_per_s = probe.verify_all_cores_per_s / 256.0 * cores as f64;
    let fsync = match (always, batch) {
        (Some(always), _) if always.records_per_s >= anchors_needed_per_s * 2.0 => {
            Durability::Always
        }
        (_, Some(_)) => Durability::Batch,
        _ => Durability::Never,
    };
    let config = NodeConfig {
        cores: Some(probe.cpus.clone()),
        shards: Some(cores as u16),
        placement: Some((0..cores).collect()),
        io_memory_bytes: Some(probe.io_memory_bytes as u64),
        storage: StorageConfig {
            fsync,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            ..StorageConfig::default()
        },
        ..NodeConfig::defaults(PathBuf::from("./pc-data"))
    };
    format!(
        "# phantom-engine node config recommended by `phantom-engine tune`:\n\
         # one pinned executor per core and one shard per core (verification is\n\
         # the per-core limit), shard i on core placement[i]; io_memory_bytes is\n\
         # glommio's registered memory per core, within memlock {}.\n{}",
        probe
            .memlock_bytes
            .map_or("unlimited".to_string(), |b| format!("{} KiB", b / 1024)),
        config.to_toml()
    )
}

/// The probe's findings, one line each.
pub fn render(probe: &Probe) -> String {
    let mut out = format!(
        "cores: {} usable ({:?})\nmemlock: {}; glommio io_memory per core: {} KiB\nio_uring: {}\nverify: {:.0}/s on one core alone, {:.0}/s per core with all {} cores at once\nbatch verify (256 signatures of 16 keys per batch): {:.0}/s on one core alone, {:.0}/s per core with all cores at once\n",
        probe.cpus.len(),
        probe.cpus,
        probe
            .memlock_bytes
            .map_or("unlimited".to_string(), |b| format!("{} KiB", b / 1024)),
        probe.io_memory_bytes / 1024,
        match &probe.io_uring_usable {
            Ok(()) => "usable (executor started, fdatasync completed)".to_string(),
            Err(error) => format!("NOT usable: {error}"),
        },
        probe.verify_one_core_per_s,
        probe.verify_all_cores_per_s,
        probe.cpus.len(),
        probe.batch_one_core_per_s,
        probe.batch_all_cores_per_s,
    );
    for rate in &probe.append {
        out += &format!(
            "log append, fsync {:<6}: {:>9.0} records/s, {:>8.1} MB/s ({} KiB records)\n",
            rate.fsync.as_str(),
            rate.records_per_s,
            rate.mb_per_s,
            PROBE_RECORD_BYTES / 1024
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_with(always_records_per_s: f64) -> Probe {
        Probe {
            cpus: vec![0, 1],
            memlock_bytes: Some(8 << 20),
            io_memory_bytes: 1 << 20,
            io_uring_usable: Ok(()),
            verify_one_core_per_s: 20_000.0,
            verify_all_cores_per_s: 19_000.0,
            batch_one_core_per_s: 50_000.0,
            batch_all_cores_per_s: 48_000.0,
            append: [
                (Durability::Always, always_records_per_s),
                (Durability::Batch, 9_000.0),
                (Durability::Never, 12_000.0),
            ]
            .into_iter()
            .map(|(fsync, records_per_s)| AppendRate {
                fsync,
                records_per_s,
                mb_per_s: records_per_s * PROBE_RECORD_BYTES as f64 / 1e6,
            })
            .collect(),
        }
    }

    #[test]
    fn recommendation_uses_always_only_when_the_disk_keeps_up() {
        // Two shards at 19k verifies/s need about 150 full anchors/s.
        let fast = recommend(&probe_with(1_500.0));
        assert!(fast.contains("fsync = \"always\""), "{fast}");
        assert!(fast.contains("cores = [0, 1]") && fast.contains("shards = 2"));
        let slow = recommend(&probe_with(200.0));
        assert!(slow.contains("fsync = \"batch\""), "{slow}");
        let parsed: toml::Table = toml::from_str(&slow).expect("the recommendation is TOML");
        assert_eq!(
            parsed["storage"]["segment_bytes"].as_integer(),
            Some(64 << 20)
        );
    }

    #[test]
    fn the_recommendation_is_a_node_config_of_every_core() {
        let config = crate::config::parse(&recommend(&probe_with(200.0))).unwrap();
        assert_eq!(config.cores, Some(vec![0, 1]));
        assert_eq!(config.placement, Some(vec![0, 1]));
        assert_eq!(config.storage.fsync, Durability::Batch);
        let no_disk = Probe {
            append: Vec::new(),
            ..probe_with(0.0)
        };
        let config = crate::config::parse(&recommend(&no_disk)).unwrap();
        assert_eq!(config.storage.fsync, Durability::Never);
    }

    #[test]
    fn findings_name_every_probe() {
        let text = render(&probe_with(1_500.0));
        for fragment in [
            "cores: 2",
            "memlock: 8192 KiB",
            "io_uring: usable",
            "fsync always",
            "fsync batch",
            "fsync never",
        ] {
            assert!(text.contains(fragment), "{fragment} missing from {text}");
        }
    }
}
