//! Log benches: appending full anchor records (256 transfers, ~53 KB each)
//! with `fsync = never` (no sync) and `batch` (a blocking `fdatasync` every
//! 32 records), and recovering a log of 1000 such records at start-up. Each
//! append iteration writes 256 records into a fresh, pre-allocated segment,
//! so the figures are the mmap copy, framing and checksum (plus the syncs),
//! not segment creation.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pc_benches::full_anchor;
use pc_codec::{Encode, LogRecordKind};
use pc_storage::{Durability, Log, LogConfig};

const RECORDS_PER_ITERATION: usize = 256;
const BATCH_RECORDS: usize = 32;
const KIND: u8 = LogRecordKind::AnchorAccepted as u8;

fn fresh_log(durability: Durability) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LogConfig {
        segment_bytes: 64 << 20,
        durability,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(dir.path(), config).expect("open log");
    (dir, log)
}

fn append(c: &mut Criterion) {
    let body = full_anchor(256).to_bytes();
    let mut group = c.benchmark_group("log_append_anchor_records");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(
        (body.len() * RECORDS_PER_ITERATION) as u64,
    ));
    group.bench_function("fsync_never", |b| {
        b.iter_batched(
            || fresh_log(Durability::Never),
            |(dir, mut log)| {
                for _ in 0..RECORDS_PER_ITERATION {
                    log.append(KIND, &body).expect("append");
                }
                (dir, log)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("fsync_batch_32", |b| {
        b.iter_batched(
            || fresh_log(Durability::Batch),
            |(dir, mut log)| {
                for chunk in 0..RECORDS_PER_ITERATION / BATCH_RECORDS {
                    for _ in 0..BATCH_RECORDS {
                        log.append(KIND, &body).expect("append");
                    }
                    log.sync()
                        .unwrap_or_else(|e| panic!("sync of batch {chunk}: {e}"));
                }
                (dir, log)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let body = full_anchor(256).to_bytes();
    let (dir, mut log) = fresh_log(Durability::Batch);
    for _ in 0..1000 {
        log.append(KIND, &body).expect("append");
    }
    log.sync().expect("sync");
    let config = *log.config();
    drop(log);
    let mut group = c.benchmark_group("log_recovery");
    group.sample_size(10);
    group.throughput(Throughput::Bytes((body.len() * 1000) as u64));
    group.bench_function("open_1000_anchor_records", |b| {
        b.iter(|| {
            let (log, report) = Log::open(dir.path(), config).expect("recover");
            assert_eq!(report.records, 1000);
            log
        })
    });
    group.finish();
}

criterion_group!(benches, append, recovery);
criterion_main!(benches);
