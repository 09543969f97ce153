//! Helpers shared by the integration tests.

use pc_storage::{Durability, Log, LogConfig};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Small segments so that a few hundred records span several of them.
pub fn small_config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 10,
        durability,
        max_record_bytes: 8 << 10,
    }
}

/// The record every test writes at `seq`: kind and body (0..1024 bytes)
/// derived from the seq alone, so a reader can check any record it finds.
pub fn record_for(seq: u64) -> (u8, Vec<u8>) {
    let kind = (seq % 251) as u8;
    let body_bytes = (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
    let mut state = seq ^ 0xD1B5_4A32_D192_ED03;
    let body = (0..body_bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    (kind, body)
}

/// Appends `record_for(seq)` for every seq from the log's next one up to `end_seq`.
pub fn append_records_until(log: &mut Log, end_seq: u64) {
    while log.next_seq() < end_seq {
        let seq = log.next_seq();
        let (kind, body) = record_for(seq);
        assert_eq!(log.append(kind, &body).expect("append"), seq);
    }
}

/// Asserts that the log holds exactly `record_for(0..end_seq)`, by iteration.
pub fn assert_holds_records(log: &Log, end_seq: u64) {
    assert_eq!(log.next_seq(), end_seq, "record count");
    let mut expected_seq = 0;
    for record in log.iter_from(0) {
        let record = record.expect("verified record");
        let (kind, body) = record_for(expected_seq);
        assert_eq!(
            (record.seq, record.kind, record.body),
            (expected_seq, kind, &body[..])
        );
        expected_seq += 1;
    }
    assert_eq!(expected_seq, end_seq, "records yielded");
}

/// A seeded RNG; the seed comes from `PC_STORAGE_SEED` or is drawn, and is
/// printed (shown when the test fails) so a failure can be replayed.
pub fn seeded_rng(test_name: &str) -> (StdRng, u64) {
    let seed = std::env::var("PC_STORAGE_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test_name}: PC_STORAGE_SEED={seed}");
    (StdRng::seed_from_u64(seed), seed)
}
