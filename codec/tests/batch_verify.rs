//! The batch verifier against the single verifier (libsecp256k1): the
//! official BIP-340 vectors at every position of valid batches, a
//! differential property test over random batches with every kind of
//! corruption, the work of hostile batches against the bound of
//! `pc_codec::batch`, and determinism.

use pc_codec::batch::{cost, verify_batch, BatchEntry, BatchWork, MIN_BATCH, SPLIT_FLOOR};
use pc_codec::crypto::{Bip340, SignatureVerifier, SigningKey};
use pc_codec::{key_cache_counts, PublicKeyBytes, SignatureBytes};
use proptest::prelude::*;

const BIP340_CSV: &str = include_str!("vectors/bip340-test-vectors.csv");

/// The group order n, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

#[derive(Clone)]
struct Owned {
    key: PublicKeyBytes,
    message: Vec<u8>,
    signature: SignatureBytes,
}

impl Owned {
    fn entry(&self) -> BatchEntry<'_> {
        BatchEntry {
            key: &self.key,
            message: &self.message,
            signature: &self.signature,
        }
    }
}

fn signer(seed: u32) -> SigningKey {
    let mut secret = [7u8; 32];
    secret[..4].copy_from_slice(&seed.to_le_bytes());
    SigningKey::from_secret_bytes(&secret).expect("valid secret")
}

fn signed(key: &SigningKey, message: Vec<u8>, aux: u32) -> Owned {
    let mut aux_rand = [0u8; 32];
    aux_rand[..4].copy_from_slice(&aux.to_le_bytes());
    Owned {
        key: key.public_key(),
        signature: key.sign(&message, &aux_rand),
        message,
    }
}

fn vectors() -> Vec<(Owned, bool)> {
    BIP340_CSV
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.splitn(8, ',').collect();
            let key: PublicKeyBytes = hex::decode(fields[2]).unwrap().try_into().unwrap();
            let message = hex::decode(fields[4]).unwrap();
            let signature: SignatureBytes = hex::decode(fields[5]).unwrap().try_into().unwrap();
            let expected = fields[6] == "TRUE";
            (
                Owned {
                    key,
                    message,
                    signature,
                },
                expected,
            )
        })
        .collect()
}

fn batch_verdicts(items: &[Owned]) -> (Vec<bool>, BatchWork) {
    let entries: Vec<BatchEntry<'_>> = items.iter().map(Owned::entry).collect();
    let mut verdicts = vec![false; entries.len()];
    let work = verify_batch(&entries, &mut verdicts);
    (verdicts, work)
}

fn single_verdicts(items: &[Owned]) -> Vec<bool> {
    items
        .iter()
        .map(|item| Bip340.verify(&item.key, &item.message, &item.signature))
        .collect()
}

fn valid_batch(len: usize, keys: u32, salt: u32) -> Vec<Owned> {
    (0..len as u32)
        .map(|i| {
            let message = (salt ^ i).to_le_bytes().repeat(8);
            signed(&signer(i % keys), message, i)
        })
        .collect()
}

#[test]
fn every_official_vector_gives_the_single_verdict_alone_and_at_every_position() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 19);
    for (row, (vector, expected)) in vectors.iter().enumerate() {
        let alone = [vector.clone()];
        assert_eq!(batch_verdicts(&alone).0, vec![*expected], "row {row} alone");
        // Inside batches of valid signatures large enough to be batched, at
        // every position.
        let len = 64;
        let valid = valid_batch(len - 1, 3, row as u32);
        for position in 0..len {
            let mut batch = valid.clone();
            batch.insert(position, vector.clone());
            let (verdicts, work) = batch_verdicts(&batch);
            for (index, verdict) in verdicts.iter().enumerate() {
                let want = if index == position { *expected } else { true };
                assert_eq!(*verdict, want, "row {row} at {position}: entry {index}");
            }
            assert_eq!(verdicts, single_verdicts(&batch), "row {row} at {position}");
            if *expected {
                assert_eq!(
                    work.single_verifies, 0,
                    "row {row}: a valid batch is one batch"
                );
                assert_eq!(work.multiplications, 1);
            }
        }
    }
}

/// The ways an entry is spoiled in the property test.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    None,
    /// A bit of `s` flipped.
    S,
    /// A bit of `r` flipped (often not an x coordinate any more).
    R,
    /// The message changed, so the challenge `e` differs.
    Message,
    /// Another valid key.
    Key,
    /// `s >= n`.
    SOverOrder,
    /// `r` an x that is not on the curve.
    RNotOnCurve,
    /// `r >= p`.
    ROverField,
    /// The key an x that is not on the curve.
    KeyNotOnCurve,
    /// A copy of an earlier entry, as it is (valid or not).
    Duplicate,
}

fn corruption() -> impl Strategy<Value = Corruption> {
    prop_oneof![
        6 => Just(Corruption::None),
        1 => Just(Corruption::S),
        1 => Just(Corruption::R),
        1 => Just(Corruption::Message),
        1 => Just(Corruption::Key),
        1 => Just(Corruption::SOverOrder),
        1 => Just(Corruption::RNotOnCurve),
        1 => Just(Corruption::ROverField),
        1 => Just(Corruption::KeyNotOnCurve),
        1 => Just(Corruption::Duplicate),
    ]
}

/// The smallest x >= `from` that is not the x coordinate of a curve point.
fn not_on_curve(from: u8) -> [u8; 32] {
    (from..=255)
        .map(|x| {
            let mut bytes = [0u8; 32];
            bytes[31] = x;
            bytes
        })
        .find(|bytes| !pc_codec::crypto::is_valid_public_key(bytes))
        .expect("half of all x are not on the curve")
}

fn spoil(items: &mut [Owned], index: usize, corruption: Corruption, bit: u8) {
    let byte = usize::from(bit % 32);
    match corruption {
        Corruption::None => {}
        Corruption::S => items[index].signature[32 + byte] ^= 1 << (bit % 8),
        Corruption::R => items[index].signature[byte] ^= 1 << (bit % 8),
        Corruption::Message => items[index].message.push(bit),
        Corruption::Key => items[index].key = signer(10_000 + u32::from(bit)).public_key(),
        Corruption::SOverOrder => {
            let mut s = ORDER;
            s[31] = s[31].wrapping_add(bit % 100);
            items[index].signature[32..].copy_from_slice(&s);
        }
        Corruption::RNotOnCurve => {
            items[index].signature[..32].copy_from_slice(&not_on_curve(bit % 64))
        }
        Corruption::ROverField => items[index].signature[..32].copy_from_slice(&[0xff; 32]),
        Corruption::KeyNotOnCurve => items[index].key = not_on_curve(bit % 64),
        Corruption::Duplicate => {
            if index > 0 {
                let from = usize::from(bit) % index;
                items[index] = Owned {
                    key: items[from].key,
                    message: items[from].message.clone(),
                    signature: items[from].signature,
                };
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn batches_agree_with_the_single_verifier_on_every_signature(
        len in 1usize..=300,
        keys in 1u32..40,
        salt in any::<u32>(),
        spoils in proptest::collection::vec((any::<u16>(), corruption(), any::<u8>()), 0..12),
    ) {
        let mut items = valid_batch(len, keys, salt);
        for (at, corruption, bit) in spoils {
            spoil(&mut items, usize::from(at) % len, corruption, bit);
        }
        let (verdicts, work) = batch_verdicts(&items);
        prop_assert_eq!(&verdicts, &single_verdicts(&items));
        prop_assert!(work.cost_units <= 2 * cost::SINGLE * len as u64 || len < MIN_BATCH);
    }
}

/// Batches of 256 with 1, 10 %, 50 % and all signatures invalid (a bit of
/// `s` flipped: the entries prepare as well as valid ones, the hardest case
/// for the batch), signed by 256 different keys and by one key: the work
/// stays within twice the single verification of the batch.
#[test]
fn hostile_batches_cost_at_most_twice_single_verification() {
    const LEN: usize = 256;
    let budget = 2 * cost::SINGLE * LEN as u64;
    println!("keys invalid  multiplications points singles cost/single");
    for keys in [LEN as u32, 1] {
        for invalid in [0, 1, LEN / 10, LEN / 2, LEN] {
            let mut items = valid_batch(LEN, keys, invalid as u32);
            // Spread the invalid ones: every (LEN / invalid)-th entry.
            let bad: Vec<usize> = (0..invalid).map(|i| i * LEN / invalid.max(1)).collect();
            for &index in &bad {
                items[index].signature[40] ^= 0x10;
            }
            let (verdicts, work) = batch_verdicts(&items);
            for (index, verdict) in verdicts.iter().enumerate() {
                assert_eq!(*verdict, !bad.contains(&index), "entry {index}");
            }
            println!(
                "{keys:4} {invalid:7} {:15} {:6} {:7} {:11.2}",
                work.multiplications,
                work.points,
                work.single_verifies,
                work.cost_units as f64 / (cost::SINGLE * LEN as u64) as f64,
            );
            assert!(
                work.cost_units <= budget,
                "{invalid} invalid of {LEN}: cost {} > budget {budget}",
                work.cost_units
            );
            // The units charged are the work done: every multiplication's
            // points and every single verification.
            assert!(work.points >= work.multiplications * 2);
            assert!(work.single_verifies <= LEN as u64);
            match invalid {
                0 => {
                    assert_eq!(work.multiplications, 1);
                    assert_eq!(work.single_verifies, 0);
                }
                // One bad signature is found by bisection, not by verifying
                // the batch singly.
                1 if keys == 1 => {
                    assert!(work.single_verifies <= 2 * SPLIT_FLOOR as u64, "{work:?}")
                }
                _ => {}
            }
        }
    }
}

#[test]
fn the_same_batch_gives_the_same_verdicts_and_work_every_time() {
    let mut items = valid_batch(100, 7, 42);
    for index in [3, 50, 99] {
        items[index].signature[33] ^= 1;
    }
    let first = batch_verdicts(&items);
    for _ in 0..3 {
        assert_eq!(batch_verdicts(&items), first);
    }
    assert_eq!(first.0.iter().filter(|v| !**v).count(), 3);
}

#[test]
fn a_repeated_key_is_lifted_once() {
    let items = valid_batch(64, 1, 9);
    let before = key_cache_counts();
    let (verdicts, _) = batch_verdicts(&items);
    let after = key_cache_counts();
    assert!(verdicts.iter().all(|v| *v));
    assert!(after.misses - before.misses <= 1, "{before:?} -> {after:?}");
    assert!(after.hits - before.hits >= 63, "{before:?} -> {after:?}");
}

/// The verdicts and the work of a fixed batch (a fixed key set, three bad
/// signatures) are constants: the coefficients, the bisection and the
/// multiplications are pure functions of the bytes, so every machine — the
/// README runs this file on aarch64 under qemu — must report exactly these.
#[test]
fn a_fixed_batch_gives_the_recorded_verdicts_and_work_on_every_machine() {
    let mut items = valid_batch(200, 5, 7);
    for index in [0, 77, 199] {
        items[index].signature[45] ^= 4;
    }
    let (verdicts, work) = batch_verdicts(&items);
    let bad: Vec<usize> = (0..items.len()).filter(|&i| !verdicts[i]).collect();
    assert_eq!(bad, vec![0, 77, 199]);
    println!("{work:?}");
    assert_eq!(work, RECORDED_WORK);
}

/// Recorded on x86-64 (and the same under qemu-aarch64).
const RECORDED_WORK: BatchWork = BatchWork {
    batches: 1,
    batched_signatures: 200,
    multiplications: 6,
    points: 486,
    single_verifies: 175,
    refused_early: 0,
    cost_units: 55_142,
};
