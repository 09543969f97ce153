//! Properties of the wire messages and the frame decoder: every variant
//! round-trips; any byte string that decodes re-encodes to itself; random
//! bytes never panic the decoder; a stream of frames decodes the same
//! whatever its chunking, down to a split at every byte.

use pc_codec::wire::{Decode, Encode};
use pc_codec::{Checkpoint, CheckpointSig};
use pc_net::frame::{
    encode_frame, EventOutcome, EventReceipt, FrameDecoder, NetMessage, RejectReason, Violation,
    MAX_IDS_PER_MESSAGE, MAX_RANGE_ANCHORS, MAX_REJECT_DETAIL_BYTES, MAX_SUBMITTED_EVENTS,
};
use pc_net::identity::{Hello, ShardPort};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn hash32() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn sig64() -> impl Strategy<Value = [u8; 64]> {
    (hash32(), hash32()).prop_map(|(a, b)| {
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&a);
        signature[32..].copy_from_slice(&b);
        signature
    })
}

fn byte_string(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..=max)
}

fn hello() -> impl Strategy<Value = Hello> {
    (
        hash32(),
        prop::collection::btree_map(any::<u16>(), 1..=u16::MAX, 0..8),
        sig64(),
    )
        .prop_map(|(validator_key, ports, binding_signature)| Hello {
            validator_key,
            ports: ports
                .into_iter()
                .map(|(shard, port)| ShardPort { shard, port })
                .collect(),
            binding_signature,
        })
}

fn ids() -> impl Strategy<Value = Vec<[u8; 32]>> {
    prop::collection::vec(hash32(), 1..=8)
}

fn reject_reason() -> impl Strategy<Value = RejectReason> {
    (1u8..=7).prop_map(|code| RejectReason::from_code(code).unwrap())
}

fn event_receipt() -> impl Strategy<Value = EventReceipt> {
    let outcome = prop_oneof![
        Just(EventOutcome::Accepted),
        (reject_reason(), "[a-z é]{0,40}")
            .prop_map(|(reason, detail)| EventOutcome::Rejected { reason, detail }),
    ];
    (hash32(), outcome).prop_map(|(event_id, outcome)| EventReceipt { event_id, outcome })
}

fn checkpoint_sig() -> impl Strategy<Value = CheckpointSig> {
    (
        any::<u16>(),
        any::<u64>(),
        hash32(),
        hash32(),
        any::<u8>(),
        sig64(),
    )
        .prop_map(
            |(shard, round, state_root, exports_root, seat, signature)| CheckpointSig {
                checkpoint: Checkpoint {
                    shard,
                    round,
                    state_root,
                    exports_root,
                    export_count: u32::from(seat) * 7,
                    dest_count: u16::from(seat) % 5,
                    snapshot_root: [seat; 32],
                },
                seat,
                signature,
            },
        )
}

/// Every variant of [`NetMessage`], with small sizes (the bounds have
/// their own tests).
fn message() -> impl Strategy<Value = NetMessage> {
    prop_oneof![
        hello().prop_map(NetMessage::Hello),
        (any::<u16>(), ids()).prop_map(|(shard, ids)| NetMessage::Announce { shard, ids }),
        (any::<u16>(), ids()).prop_map(|(shard, ids)| NetMessage::Get { shard, ids }),
        (any::<u16>(), any::<u64>(), 1..=MAX_RANGE_ANCHORS).prop_map(
            |(shard, from_round, max_count)| NetMessage::GetRange {
                shard,
                from_round,
                max_count
            }
        ),
        (any::<u16>(), prop::collection::vec(byte_string(300), 0..4))
            .prop_map(|(shard, anchors)| NetMessage::Anchors { shard, anchors }),
        checkpoint_sig().prop_map(NetMessage::CheckpointSig),
        (any::<u16>(), byte_string(700))
            .prop_map(|(shard, bytes)| NetMessage::Evidence { shard, bytes }),
        (
            any::<u64>(),
            any::<u16>(),
            prop::collection::vec(byte_string(200), 1..5)
        )
            .prop_map(|(request, shard, events)| NetMessage::SubmitMicroEvents {
                request,
                shard,
                events
            }),
        (
            any::<u64>(),
            any::<u16>(),
            any::<u32>(),
            prop::collection::vec(event_receipt(), 1..5)
        )
            .prop_map(
                |(request, shard, retry_after_ms, results)| NetMessage::Receipt {
                    request,
                    shard,
                    retry_after_ms,
                    results
                }
            ),
        (any::<u64>(), hash32())
            .prop_map(|(request, owner)| NetMessage::BalanceQuery { request, owner }),
        (any::<u64>(), hash32(), any::<u64>(), any::<u64>()).prop_map(
            |(request, owner, amount, finalized_round)| NetMessage::Balance {
                request,
                owner,
                amount,
                finalized_round
            }
        ),
        any::<u64>().prop_map(|request| NetMessage::GetMintTemplate { request }),
        (
            any::<u64>(),
            hash32(),
            any::<u128>(),
            any::<u64>(),
            any::<bool>()
        )
            .prop_map(
                |(request, tip, target, count, open)| NetMessage::MintTemplate {
                    request,
                    network: [tip[0]; 8],
                    mint_shard: u16::from(tip[1]),
                    prev_mint_id: tip,
                    target,
                    mint_count: count,
                    reward: count / 3,
                    race_open: u8::from(open),
                    race_best_pow: [u8::from(open) * 7; 32],
                    finalized_round: count ^ 5,
                    next_anchor_index: request ^ count,
                }
            ),
        (any::<u64>(), hash32(), hash32(), any::<u64>()).prop_map(
            |(request, prev_mint_id, miner, nonce)| NetMessage::SubmitMintSolution {
                request,
                prev_mint_id,
                miner,
                nonce
            }
        ),
        (any::<u64>(), hash32(), any::<u8>()).prop_map(|(request, mint_id, outcome)| {
            NetMessage::MintSubmitted {
                request,
                mint_id,
                outcome,
            }
        }),
        (any::<u64>(), hash32())
            .prop_map(|(request, mint_id)| NetMessage::MintStatusQuery { request, mint_id }),
        (any::<u64>(), hash32(), 0u8..6, any::<u64>()).prop_map(
            |(request, mint_id, status, round)| NetMessage::MintStatus {
                request,
                mint_id,
                status,
                round,
                reward: round / 7,
                mature_at: round / 3,
            }
        ),
        (
            any::<u64>(),
            hash32(),
            prop::option::of((hash32(), any::<u16>())),
            any::<u16>()
        )
            .prop_map(|(request, owner, after, max)| NetMessage::UnspentQuery {
                request,
                owner,
                after: after.map(|(tx_id, index)| pc_codec::OutPoint { tx_id, index }),
                max,
            }),
        (any::<u64>(), hash32(), 0usize..5, any::<bool>()).prop_map(|(request, owner, n, more)| {
            NetMessage::Unspent {
                request,
                owner,
                finalized_round: request / 2,
                next_anchor_index: request / 3,
                outputs: (0..n)
                    .map(|i| pc_net::frame::UnspentOutput {
                        out_point: pc_codec::OutPoint {
                            tx_id: [i as u8; 32],
                            index: i as u16,
                        },
                        amount: 1 + i as u64,
                        mature_at: i as u64 * 9,
                    })
                    .collect(),
                more: u8::from(more),
            }
        }),
        (any::<u16>(), any::<u64>(), any::<u64>()).prop_map(
            |(shard, oldest_round, snapshot_round)| NetMessage::Pruned {
                shard,
                oldest_round,
                snapshot_round
            }
        ),
        (any::<u16>(), any::<u64>(), any::<u16>()).prop_map(|(source, round, dest)| {
            NetMessage::ExportsAck {
                source,
                round,
                dest,
            }
        }),
        (any::<u16>(), any::<u64>(), any::<u16>()).prop_map(|(source, round, dest)| {
            NetMessage::GetExports {
                source,
                round,
                dest,
            }
        }),
        (checkpoint_sig(), 1usize..4).prop_map(|(sig, n)| NetMessage::CheckpointCert(
            pc_codec::CertifiedCheckpoint {
                checkpoint: sig.checkpoint,
                mask: (1u64 << n) - 1,
                signatures: vec![sig.signature; n],
            }
        )),
        (checkpoint_sig(), any::<u16>(), 1usize..5).prop_map(|(sig, dest, n)| {
            let leaves: Vec<pc_codec::ExportLeaf> = (0..n)
                .map(|i| pc_codec::ExportLeaf {
                    dest,
                    tx_id: [i as u8; 32],
                    output_index: i as u16,
                    amount: 1 + i as u64,
                    owner: [sig.seat; 32],
                })
                .collect();
            NetMessage::Exports(Box::new(pc_codec::ExportsBundle {
                cert: pc_codec::CertifiedCheckpoint {
                    checkpoint: sig.checkpoint,
                    mask: 1,
                    signatures: vec![sig.signature],
                },
                entry: pc_codec::DestEntry {
                    dest,
                    count: n as u32,
                    root: pc_codec::cross::leaves_root(&leaves),
                    prev_round: u64::MAX,
                },
                entry_proof: pc_codec::MerkleProof {
                    index: 0,
                    leaf_count: 1,
                    siblings: Vec::new(),
                },
                leaves,
            }))
        }),
    ]
}

fn frames_of(messages: &[NetMessage]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        encode_frame(message, &mut out).unwrap();
    }
    out
}

/// Feeds `chunks` in order; all frames, or the first violation.
fn decode_chunks<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<NetMessage>, Violation> {
    let mut decoder = FrameDecoder::new();
    let mut messages = Vec::new();
    for mut chunk in chunks {
        while let Some(message) = decoder.decode(&mut chunk)? {
            messages.push(message);
        }
        assert!(chunk.is_empty());
    }
    Ok(messages)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_round_trips(message in message()) {
        let bytes = message.to_bytes();
        prop_assert_eq!(NetMessage::from_bytes(&bytes), Ok(message.clone()));
        let frame = frames_of(std::slice::from_ref(&message));
        prop_assert_eq!(decode_chunks([frame.as_slice()]), Ok(vec![message]));
    }

    #[test]
    fn mutants_either_fail_or_reencode_to_themselves(
        message in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = message.to_bytes();
        for (index, value) in flips {
            let at = index.index(bytes.len());
            bytes[at] = value;
        }
        if let Ok(decoded) = NetMessage::from_bytes(&bytes) {
            prop_assert_eq!(decoded.to_bytes(), bytes.clone());
        }
        let truncated = &bytes[..cut.index(bytes.len())];
        if let Ok(decoded) = NetMessage::from_bytes(truncated) {
            prop_assert_eq!(decoded.to_bytes(), truncated.to_vec());
        }
    }

    #[test]
    fn random_bytes_never_panic_the_decoder(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        chunk_len in 1usize..64,
    ) {
        let _ = NetMessage::from_bytes(&bytes);
        let _ = Hello::from_bytes(&bytes);
        let outcome = decode_chunks(bytes.chunks(chunk_len));
        // Whatever decoded re-encodes to a prefix of the input.
        if let Ok(messages) = outcome {
            let encoded = frames_of(&messages);
            prop_assert!(bytes.starts_with(&encoded));
        }
    }

    #[test]
    fn random_chunking_decodes_the_same(
        messages in prop::collection::vec(message(), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let bytes = frames_of(&messages);
        let mut offsets: Vec<usize> = cuts.iter().map(|cut| cut.index(bytes.len() + 1)).collect();
        offsets.push(0);
        offsets.push(bytes.len());
        offsets.sort_unstable();
        let chunks = offsets.windows(2).map(|pair| &bytes[pair[0]..pair[1]]);
        prop_assert_eq!(decode_chunks(chunks), Ok(messages));
    }
}

#[test]
fn a_frame_split_at_every_byte_boundary_decodes_the_same() {
    let messages = vec![
        NetMessage::Receipt {
            request: 1,
            shard: 2,
            retry_after_ms: 3,
            results: vec![EventReceipt {
                event_id: [3; 32],
                outcome: EventOutcome::rejected(RejectReason::Duplicate, "seen"),
            }],
        },
        NetMessage::GetRange {
            shard: 1,
            from_round: 9,
            max_count: 3,
        },
    ];
    let bytes = frames_of(&messages);
    for split in 0..=bytes.len() {
        let (head, tail) = bytes.split_at(split);
        assert_eq!(
            decode_chunks([head, tail]),
            Ok(messages.clone()),
            "split at {split}"
        );
    }
    // And one byte at a time.
    assert_eq!(decode_chunks(bytes.chunks(1)), Ok(messages));
}

#[test]
fn messages_at_their_bounds_fit_a_frame_and_round_trip() {
    let at_bounds = vec![
        NetMessage::Announce {
            shard: u16::MAX,
            ids: vec![[0xff; 32]; MAX_IDS_PER_MESSAGE],
        },
        NetMessage::SubmitMicroEvents {
            request: u64::MAX,
            shard: u16::MAX,
            events: vec![vec![0xff; pc_net::frame::MAX_MICRO_EVENT_BYTES]; MAX_SUBMITTED_EVENTS],
        },
        NetMessage::Receipt {
            request: u64::MAX,
            shard: u16::MAX,
            retry_after_ms: u32::MAX,
            results: vec![
                EventReceipt {
                    event_id: [0xff; 32],
                    outcome: EventOutcome::rejected(
                        RejectReason::Invalid,
                        &"x".repeat(MAX_REJECT_DETAIL_BYTES)
                    ),
                };
                MAX_SUBMITTED_EVENTS
            ],
        },
        NetMessage::Anchors {
            shard: 0,
            anchors: vec![vec![1; pc_net::frame::MAX_ANCHOR_BYTES]; 3],
        },
    ];
    let bytes = frames_of(&at_bounds);
    assert_eq!(decode_chunks([bytes.as_slice()]), Ok(at_bounds));
}

#[test]
fn an_exports_frame_naming_another_round_than_its_bundle_is_refused() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let message = loop {
        let candidate = message().new_tree(&mut runner).unwrap().current();
        if matches!(candidate, NetMessage::Exports(_)) {
            break candidate;
        }
    };
    let mut bytes = message.to_bytes();
    assert_eq!(NetMessage::from_bytes(&bytes), Ok(message));
    // Tag, source u16, then the round the frame names.
    bytes[3] ^= 1;
    assert!(matches!(
        NetMessage::from_bytes(&bytes),
        Err(pc_codec::DecodeError::InvalidValue { .. })
    ));
}
