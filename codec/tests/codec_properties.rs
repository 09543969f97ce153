//! Properties of the canonical codec: every type round-trips, and mutants of
//! valid encodings (bit flips, truncation, extension, count changes) either
//! decode to a value that re-encodes to exactly the mutant, or are rejected
//! with a typed error. Each type's mutants must still decode at a stated
//! minimum share, so the property cannot hold vacuously by rejecting all.

use std::fmt::Debug;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::merkle::MerkleProof;
use pc_codec::wire::{Decode, Encode};
use pc_codec::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

fn hash32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}
fn sig64() -> impl Strategy<Value = [u8; 64]> {
    (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
        let mut s = [0u8; 64];
        s[..32].copy_from_slice(&a);
        s[32..].copy_from_slice(&b);
        s
    })
}

fn parent_ref() -> impl Strategy<Value = ParentRef> {
    (hash32(), any::<u8>(), any::<u64>(), any::<u64>()).prop_map(
        |(anchor_id, creator, seq, birth_round)| ParentRef {
            anchor_id,
            creator,
            seq,
            birth_round,
        },
    )
}

fn header() -> impl Strategy<Value = AnchorHeader> {
    (
        any::<[u8; 8]>(),
        any::<u16>(),
        any::<u32>(),
        any::<u8>(),
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(parent_ref(), 0..=MAX_PARENTS),
        hash32(),
        0..=MAX_PAYLOAD_EVENTS as u16,
        any::<u32>(),
    )
        .prop_map(
            |(
                network,
                shard,
                epoch,
                creator,
                seq,
                birth_round,
                parents,
                payload_root,
                payload_count,
                payload_bytes,
            )| {
                AnchorHeader {
                    version: PROTOCOL_VERSION,
                    network,
                    shard,
                    epoch,
                    creator,
                    seq,
                    birth_round,
                    parents,
                    payload_root,
                    payload_count,
                    payload_bytes,
                }
            },
        )
}

fn signed_header() -> impl Strategy<Value = SignedAnchorHeader> {
    (header(), sig64()).prop_map(|(header, signature)| SignedAnchorHeader { header, signature })
}

fn out_point() -> impl Strategy<Value = OutPoint> {
    (hash32(), any::<u16>()).prop_map(|(tx_id, index)| OutPoint { tx_id, index })
}

fn tx_out() -> impl Strategy<Value = TxOut> {
    (any::<u64>(), hash32()).prop_map(|(amount, owner)| TxOut { amount, owner })
}

fn merkle_proof() -> impl Strategy<Value = MerkleProof> {
    (
        any::<u64>(),
        any::<u64>(),
        prop::collection::vec(hash32(), 0..6),
    )
        .prop_map(|(index, leaf_count, siblings)| MerkleProof {
            index,
            leaf_count,
            siblings,
        })
}

fn payout_leaf() -> impl Strategy<Value = PayoutLeaf> {
    (hash32(), any::<u64>()).prop_map(|(recipient, amount)| PayoutLeaf { recipient, amount })
}

fn micro_event() -> impl Strategy<Value = MicroEvent> {
    prop_oneof![
        4 => (
            prop::collection::vec(out_point(), 1..=MAX_TRANSFER_INPUTS),
            prop::collection::vec(tx_out(), 1..=MAX_TRANSFER_OUTPUTS),
            hash32(),
            sig64()
        )
            .prop_map(|(inputs, outputs, owner, signature)| MicroEvent::Transfer(Transfer {
                inputs,
                outputs,
                owner,
                signature
            })),
        1 => (hash32(), hash32(), any::<u64>())
            .prop_map(|(prev_mint_id, miner, nonce)| MicroEvent::Mint(Mint { prev_mint_id, miner, nonce })),
        1 => (signed_header(), signed_header())
            .prop_map(|(first, second)| MicroEvent::Evidence(Evidence { first, second })),
        1 => (any::<u64>(), payout_leaf(), merkle_proof(), hash32(), sig64()).prop_map(
            |(round, leaf, proof, owner, signature)| MicroEvent::Claim(Claim { round, leaf, proof, owner, signature })
        ),
        1 => import().prop_map(|import| MicroEvent::Import(Box::new(import))),
    ]
}

fn payload() -> impl Strategy<Value = AnchorPayload> {
    prop::collection::vec(micro_event(), 0..8).prop_map(|events| AnchorPayload { events })
}

fn anchor() -> impl Strategy<Value = SignedAnchor> {
    (signed_header(), payload()).prop_map(|(header, payload)| SignedAnchor { header, payload })
}

fn checkpoint() -> impl Strategy<Value = Checkpoint> {
    (
        any::<u16>(),
        any::<u64>(),
        hash32(),
        hash32(),
        any::<u32>(),
        any::<u16>(),
        hash32(),
    )
        .prop_map(
            |(shard, round, state_root, exports_root, export_count, dest_count, snapshot_root)| {
                Checkpoint {
                    shard,
                    round,
                    state_root,
                    exports_root,
                    export_count,
                    dest_count,
                    snapshot_root,
                }
            },
        )
}

fn export_leaf() -> impl Strategy<Value = ExportLeaf> {
    (any::<u16>(), hash32(), any::<u16>(), any::<u64>(), hash32()).prop_map(
        |(dest, tx_id, output_index, amount, owner)| ExportLeaf {
            dest,
            tx_id,
            output_index,
            amount,
            owner,
        },
    )
}

fn dest_entry() -> impl Strategy<Value = DestEntry> {
    (any::<u16>(), any::<u32>(), hash32(), any::<u64>()).prop_map(
        |(dest, count, root, prev_round)| DestEntry {
            dest,
            count,
            root,
            prev_round,
        },
    )
}

fn import() -> impl Strategy<Value = Import> {
    let origin = prop_oneof![
        Just(Origin::Registered),
        (certified_checkpoint(), dest_entry(), merkle_proof()).prop_map(
            |(cert, entry, entry_proof)| Origin::Certified(Box::new(CertifiedOrigin {
                cert,
                entry,
                entry_proof
            }))
        ),
    ];
    (
        any::<u16>(),
        any::<u64>(),
        origin,
        export_leaf(),
        merkle_proof(),
    )
        .prop_map(|(source, round, origin, leaf, leaf_proof)| Import {
            source,
            round,
            origin,
            leaf,
            leaf_proof,
        })
}

fn exports_bundle() -> impl Strategy<Value = ExportsBundle> {
    (
        certified_checkpoint(),
        dest_entry(),
        merkle_proof(),
        prop::collection::vec(export_leaf(), 1..6),
    )
        .prop_map(|(cert, entry, entry_proof, leaves)| ExportsBundle {
            cert,
            entry,
            entry_proof,
            leaves,
        })
}

fn checkpoint_sig() -> impl Strategy<Value = CheckpointSig> {
    (checkpoint(), any::<u8>(), sig64()).prop_map(|(checkpoint, seat, signature)| CheckpointSig {
        checkpoint,
        seat,
        signature,
    })
}

fn certified_checkpoint() -> impl Strategy<Value = CertifiedCheckpoint> {
    (
        checkpoint(),
        any::<u64>().prop_map(|m| m & 0x0000_0f0f_00ff_00f0),
    )
        .prop_flat_map(|(checkpoint, mask)| {
            prop::collection::vec(sig64(), mask.count_ones() as usize).prop_map(move |signatures| {
                CertifiedCheckpoint {
                    checkpoint,
                    mask,
                    signatures,
                }
            })
        })
}

fn round_finalized() -> impl Strategy<Value = RoundFinalized> {
    (any::<u64>(), any::<u64>(), any::<u64>(), hash32(), hash32()).prop_map(
        |(round, first_global_index, anchor_count, state_root, payout_root)| RoundFinalized {
            round,
            first_global_index,
            anchor_count,
            state_root,
            payout_root,
        },
    )
}

fn genesis() -> impl Strategy<Value = Genesis> {
    let validator = (
        hash32(),
        any::<u64>(),
        prop::collection::vec((any::<u16>(), any::<u8>()), 0..4),
    )
        .prop_map(|(key, bond, seats)| GenesisValidator {
            key,
            bond,
            seats: seats
                .into_iter()
                .map(|(shard, seat)| SeatAssignment { shard, seat })
                .collect(),
        });
    let allocation = (hash32(), any::<u64>(), any::<u32>()).prop_map(|(owner, amount, outputs)| {
        GenesisAllocation {
            owner,
            amount,
            outputs,
        }
    });
    (
        any::<u8>(),
        any::<u16>(),
        hash32(),
        prop::collection::vec(validator, 0..5),
        prop::collection::vec(allocation, 0..5),
    )
        .prop_map(
            |(k, shards, note_commitment, validators, allocations)| Genesis {
                params: ConsensusParams::v0(k, shards),
                note_commitment,
                validators,
                allocations,
            },
        )
}

/// One mutation of a valid encoding.
fn mutate(bytes: &[u8], count_offsets: &[usize], rng: &mut TestRng) -> Vec<u8> {
    let mut mutant = bytes.to_vec();
    match rng.random_range(0..4u8) {
        0 if !mutant.is_empty() => {
            let position = rng.random_range(0..mutant.len());
            mutant[position] ^= 1 << rng.random_range(0..8u32);
        }
        1 if !mutant.is_empty() => mutant.truncate(rng.random_range(0..mutant.len())),
        2 => {
            let extra = rng.random_range(1..40usize);
            mutant.extend((0..extra).map(|_| rng.random::<u8>()));
        }
        _ if !count_offsets.is_empty() => {
            let offset = count_offsets[rng.random_range(0..count_offsets.len())];
            mutant[offset] = match rng.random_range(0..3u8) {
                0 => mutant[offset].wrapping_add(1),
                1 => mutant[offset].wrapping_sub(1),
                _ => rng.random(),
            };
        }
        _ => mutant.push(0),
    }
    mutant
}

/// Shares observed over all mutants of one type.
#[derive(Debug, Default)]
struct MutantStats {
    decoded: usize,
    rejected: usize,
}

fn check_type<T, S>(
    name: &str,
    strategy: S,
    count_offsets: fn(&T) -> Vec<usize>,
    min_decoded_share: f64,
) where
    T: Encode + Decode + Debug + PartialEq,
    S: Strategy<Value = T>,
{
    const CASES: u32 = 128;
    const MUTANTS_PER_CASE: usize = 24;
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: CASES,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let mut mutation_rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
    let mut stats = MutantStats::default();
    for _ in 0..CASES {
        let value = strategy.new_tree(&mut runner).expect("strategy").current();
        let bytes = value.to_bytes();
        assert_eq!(
            T::from_bytes(&bytes).as_ref(),
            Ok(&value),
            "{name}: round trip"
        );
        let offsets = count_offsets(&value);
        for _ in 0..MUTANTS_PER_CASE {
            let mutant = mutate(&bytes, &offsets, &mut mutation_rng);
            match T::from_bytes(&mutant) {
                Ok(decoded) => {
                    assert_eq!(
                        decoded.to_bytes(),
                        mutant,
                        "{name}: a decoded mutant must be canonical"
                    );
                    stats.decoded += 1;
                }
                Err(_) => stats.rejected += 1,
            }
        }
    }
    let total = (stats.decoded + stats.rejected) as f64;
    let share = stats.decoded as f64 / total;
    println!("{name}: {stats:?}, decoded share {share:.2}");
    assert!(
        share >= min_decoded_share,
        "{name}: only {share:.2} of mutants decoded, expected >= {min_decoded_share}"
    );
    assert!(stats.rejected > 0, "{name}: no mutant was rejected");
}

/// Offset of the parents count inside an encoded header.
const HEADER_PARENTS_COUNT_OFFSET: usize = 1 + 8 + 2 + 4 + 1 + 8 + 8;

fn header_encoded_len(header: &AnchorHeader) -> usize {
    header.to_bytes().len()
}

fn no_counts<T>(_: &T) -> Vec<usize> {
    Vec::new()
}

// Bit flips in ids, keys, amounts and signatures keep a value decodable, so
// a quarter of all mutants (flips are a quarter of the mix) is a floor that
// holds for every type; fixed-size types with no counts decode far more.
const MIN_SHARE: f64 = 0.20;

#[test]
fn parent_ref_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type("ParentRef", parent_ref(), no_counts, MIN_SHARE);
}

#[test]
fn anchor_header_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type(
        "AnchorHeader",
        header(),
        |_| vec![HEADER_PARENTS_COUNT_OFFSET],
        MIN_SHARE,
    );
}

#[test]
fn signed_header_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type(
        "SignedAnchorHeader",
        signed_header(),
        |_| vec![HEADER_PARENTS_COUNT_OFFSET],
        MIN_SHARE,
    );
}

#[test]
fn out_point_and_tx_out_round_trip_and_mutants_are_canonical_or_rejected() {
    check_type("OutPoint", out_point(), no_counts, MIN_SHARE);
    check_type("TxOut", tx_out(), no_counts, MIN_SHARE);
    check_type("PayoutLeaf", payout_leaf(), no_counts, MIN_SHARE);
}

#[test]
fn micro_event_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type(
        "MicroEvent",
        micro_event(),
        |event| match event {
            MicroEvent::Transfer(t) => vec![0, 1, 1 + 1 + t.inputs.len() * 34],
            MicroEvent::Evidence(_) => vec![0, 1 + HEADER_PARENTS_COUNT_OFFSET],
            _ => vec![0],
        },
        MIN_SHARE,
    );
}

#[test]
fn payload_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type("AnchorPayload", payload(), |_| vec![0], MIN_SHARE);
}

#[test]
fn signed_anchor_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type(
        "SignedAnchor",
        anchor(),
        |anchor| {
            vec![
                HEADER_PARENTS_COUNT_OFFSET,
                header_encoded_len(&anchor.header.header) + 64,
            ]
        },
        MIN_SHARE,
    );
}

#[test]
fn merkle_proof_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type("MerkleProof", merkle_proof(), |_| vec![16], MIN_SHARE);
}

#[test]
fn checkpoints_round_trip_and_mutants_are_canonical_or_rejected() {
    check_type("Checkpoint", checkpoint(), no_counts, MIN_SHARE);
    check_type("CheckpointSig", checkpoint_sig(), no_counts, MIN_SHARE);
    check_type(
        "CertifiedCheckpoint",
        certified_checkpoint(),
        |_| vec![112, 120],
        MIN_SHARE,
    );
    check_type("Import", import(), no_counts, MIN_SHARE);
    check_type("ExportsBundle", exports_bundle(), no_counts, MIN_SHARE);
    check_type("RoundFinalized", round_finalized(), no_counts, MIN_SHARE);
}

#[test]
fn genesis_round_trips_and_mutants_are_canonical_or_rejected() {
    check_type("Genesis", genesis(), |_| vec![1 + 56 + 32], MIN_SHARE);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = SignedAnchor::from_bytes(&bytes);
        let _ = AnchorHeader::from_bytes(&bytes);
        let _ = MicroEvent::from_bytes(&bytes);
        let _ = AnchorPayload::from_bytes(&bytes);
        let _ = CertifiedCheckpoint::from_bytes(&bytes);
        let _ = Import::from_bytes(&bytes);
        let _ = ExportsBundle::from_bytes(&bytes);
        let _ = BuiltExports::from_bytes(&bytes);
        let _ = Genesis::from_bytes(&bytes);
        let _ = MerkleProof::from_bytes(&bytes);
    }
}
