//! What the host offers the engine: CPUs, the locked-memory limit and the
//! glommio sizing that fits it, anonymous memory in use, and the BIP-340
//! verify rate of a core.

use std::time::{Duration, Instant};

use pc_codec::{BatchEntry, Bip340, PublicKeyBytes, SignatureBytes, SignatureVerifier};

/// glommio's floor for its registered I/O memory, in bytes.
pub const MIN_IO_MEMORY_BYTES: usize = 64 << 10;
/// glommio's default I/O memory (more than an 8 MiB memlock allows for two cores).
pub const DEFAULT_IO_MEMORY_BYTES: usize = 10 << 20;

/// The soft `RLIMIT_MEMLOCK` in bytes (`None`: unlimited).
pub fn memlock_limit_bytes() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    assert_eq!(status, 0, "getrlimit(RLIMIT_MEMLOCK) cannot fail");
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// The CPUs this process may run on, in ascending order.
pub fn usable_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let status =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if status != 0 {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        return (0..count).collect();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: the index is below CPU_SETSIZE.
        .filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) })
        .collect()
}

/// glommio memory settings of one executor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorSizing {
    /// Registered I/O buffer memory per executor, in bytes.
    pub io_memory_bytes: usize,
    /// Submission depth of each of the executor's io_uring rings.
    pub ring_depth: usize,
}

/// Sizes glommio for `executors` executors under a memlock limit: all of
/// them together take at most a quarter of the limit (io_uring charges
/// registered memory to the user, so the rest is left to the rings
/// themselves and to other processes of the same user, e.g. a second
/// engine in a test), each at least glommio's 64 KiB floor and at most its
/// 10 MiB default. The engine does no DMA file I/O (the log is mapped), so
/// a small share costs nothing.
pub fn executor_sizing(memlock_bytes: Option<u64>, executors: usize) -> ExecutorSizing {
    let executors = executors.max(1) as u64;
    let io_memory_bytes = match memlock_bytes {
        None => DEFAULT_IO_MEMORY_BYTES,
        Some(limit) => {
            let share = limit / 4 / executors;
            let aligned = (share / 4096 * 4096) as usize;
            aligned.clamp(MIN_IO_MEMORY_BYTES, DEFAULT_IO_MEMORY_BYTES)
        }
    };
    // Each ring entry costs a few hundred bytes of locked memory on older
    // kernels; the engine has at most a few syncs in flight per shard.
    let ring_depth = if io_memory_bytes < (1 << 20) { 32 } else { 128 };
    ExecutorSizing {
        io_memory_bytes,
        ring_depth,
    }
}

/// The highest `RssAnon` (KiB) any thread sampled in this process.
static PEAK_ANON_RSS_KIB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Samples `RssAnon` and raises the process-wide peak; returns the peak.
pub fn sample_peak_anon_rss() -> u64 {
    let now = proc_status_kib("RssAnon").unwrap_or(0);
    PEAK_ANON_RSS_KIB
        .fetch_max(now, std::sync::atomic::Ordering::Relaxed)
        .max(now)
}

/// One field of `/proc/self/status` in KiB (e.g. `RssAnon`), if present.
pub fn proc_status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// Samples the verify rate is measured over: distinct messages, so the
/// rate is that of fresh signatures. (Looping over a few dozen signatures
/// overstates it: on this project's AMD EPYC VM 64 samples verified at
/// 29 100/s but 4 096 at 27 500/s, as the CPU learns the branches of inputs
/// it sees again and again.)
pub const CALIBRATION_SAMPLES: usize = 4096;

/// Keys the samples are signed by: few enough to stay in the verifier's
/// parsed-key cache, as a shard's seat keys and busy clients do.
const CALIBRATION_KEYS: u32 = 16;

/// Signed messages to verify when measuring the verify rate.
#[derive(Debug, Clone)]
pub struct VerifySamples {
    samples: Vec<(PublicKeyBytes, [u8; 32], SignatureBytes)>,
}

impl VerifySamples {
    /// `count` distinct messages signed round-robin by
    /// [`CALIBRATION_KEYS`] deterministic keys.
    pub fn new(count: usize) -> VerifySamples {
        let keys: Vec<_> = (0..CALIBRATION_KEYS)
            .map(|index| crate::tools::workload::bench_key("verify-sample", index))
            .collect();
        let samples = (0..count)
            .map(|index| {
                let key = &keys[index % keys.len()];
                let message = *blake3::hash(&(index as u64).to_le_bytes()).as_bytes();
                (key.public_key(), message, key.sign(&message, &[0; 32]))
            })
            .collect();
        VerifySamples { samples }
    }

    /// Verifies the samples round-robin with the node's own verifier for
    /// `duration`; returns verifies per second.
    pub fn verify_rate_per_s(&self, duration: Duration) -> f64 {
        let start = Instant::now();
        let mut verifies = 0u64;
        while start.elapsed() < duration {
            for (key, message, signature) in &self.samples {
                assert!(
                    Bip340.verify(key, message, signature),
                    "a sample signature verifies"
                );
            }
            verifies += self.samples.len() as u64;
        }
        verifies as f64 / start.elapsed().as_secs_f64()
    }

    /// Verifies the same samples as batches of [`CALIBRATION_BATCH`]
    /// through [`SignatureVerifier::verify_batch`] for `duration`; returns
    /// signatures per second.
    pub fn batch_rate_per_s(&self, duration: Duration) -> f64 {
        let entries: Vec<BatchEntry<'_>> = self
            .samples
            .iter()
            .map(|(key, message, signature)| BatchEntry {
                key,
                message,
                signature,
            })
            .collect();
        let mut verdicts = vec![false; CALIBRATION_BATCH];
        let start = Instant::now();
        let mut verifies = 0u64;
        while start.elapsed() < duration {
            for batch in entries.chunks(CALIBRATION_BATCH) {
                let verdicts = &mut verdicts[..batch.len()];
                Bip340.verify_batch(batch, verdicts);
                assert!(verdicts.iter().all(|v| *v), "a sample signature verifies");
            }
            verifies += entries.len() as u64;
        }
        verifies as f64 / start.elapsed().as_secs_f64()
    }

    /// Both rates, one after the other.
    pub fn rates(&self, duration: Duration) -> VerifyRates {
        VerifyRates {
            single_per_s: self.verify_rate_per_s(duration),
            batch_per_s: self.batch_rate_per_s(duration),
        }
    }
}

/// Signatures per calibration batch: a full anchor's payload.
pub const CALIBRATION_BATCH: usize = 256;

/// A core's BIP-340 rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VerifyRates {
    /// One signature at a time, per second.
    pub single_per_s: f64,
    /// In batches of [`CALIBRATION_BATCH`], signatures per second.
    pub batch_per_s: f64,
}

impl VerifyRates {
    /// The mean of two measurements.
    pub fn mean(&self, other: &VerifyRates) -> VerifyRates {
        VerifyRates {
            single_per_s: (self.single_per_s + other.single_per_s) / 2.0,
            batch_per_s: (self.batch_per_s + other.batch_per_s) / 2.0,
        }
    }
}

/// After a core applied finalized rounds: applying a round frees a round's
/// worth of decoded payloads, and glibc keeps freed pages of its arenas
/// resident until trimmed, which would let anonymous RSS drift above the
/// live heap; it is also when a shard's memory peaks, so the peak is
/// sampled here too, not only on the control thread's period.
pub fn after_rounds_applied() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free arena pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
    sample_peak_anon_rss();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizing_fits_an_8_mib_memlock_for_two_executors() {
        let sizing = executor_sizing(Some(8 << 20), 2);
        assert_eq!(sizing.io_memory_bytes, 1 << 20);
        assert!(2 * sizing.io_memory_bytes as u64 <= 8 << 20);
        let tight = executor_sizing(Some(64 << 10), 4);
        assert_eq!(tight.io_memory_bytes, MIN_IO_MEMORY_BYTES);
        assert_eq!(tight.ring_depth, 32);
        assert_eq!(
            executor_sizing(None, 2).io_memory_bytes,
            DEFAULT_IO_MEMORY_BYTES
        );
    }

    #[test]
    fn usable_cpus_are_listed_and_rss_is_read() {
        assert!(!usable_cpus().is_empty());
        assert!(proc_status_kib("RssAnon").is_some_and(|kib| kib > 0));
        assert_eq!(proc_status_kib("NoSuchField"), None);
    }
}
