//! One targeted test per rejection rule of the canonical decoder, each on a
//! real protocol type built from a valid encoding.

use pc_codec::wire::{Decode, DecodeError, Encode};
use pc_codec::*;

fn key() -> SigningKey {
    SigningKey::from_secret_bytes(&[7; 32]).unwrap()
}

fn transfer() -> Transfer {
    TransferBuilder::new()
        .input(OutPoint {
            tx_id: [1; 32],
            index: 3,
        })
        .output(10, [2; 32])
        .sign(&[5; 8], &key(), &[0; 32])
        .unwrap()
}

fn anchor_with_parents(parents: usize) -> SignedAnchor {
    let mut builder = AnchorBuilder::new([5; 8], 0, 1, 9).birth_round(4);
    for creator in 0..parents {
        builder = builder.parent(ParentRef {
            anchor_id: [creator as u8; 32],
            creator: creator as u8,
            seq: 3,
            birth_round: 3,
        });
    }
    builder
        .event(MicroEvent::Transfer(transfer()))
        .sign(&key(), &[0; 32])
        .unwrap()
}

const PARENTS_COUNT_OFFSET: usize = 32;

#[test]
fn overlong_varint_count_is_rejected() {
    let bytes = anchor_with_parents(2).header.header.to_bytes();
    // Re-encode the parents count 2 as the two-byte form 0x82 0x00.
    let mut overlong = bytes[..PARENTS_COUNT_OFFSET].to_vec();
    overlong.extend_from_slice(&[0x82, 0x00]);
    overlong.extend_from_slice(&bytes[PARENTS_COUNT_OFFSET + 1..]);
    assert_eq!(
        AnchorHeader::from_bytes(&overlong),
        Err(DecodeError::OverlongVarint {
            offset: PARENTS_COUNT_OFFSET
        })
    );
}

#[test]
fn parent_count_over_four_is_rejected() {
    let mut anchor = anchor_with_parents(4);
    anchor
        .header
        .header
        .parents
        .push(anchor.header.header.parents[0]);
    let bytes = anchor.header.header.to_bytes();
    assert!(matches!(
        AnchorHeader::from_bytes(&bytes),
        Err(DecodeError::CountOutOfBounds {
            what: "parents",
            count: 5,
            max: 4,
            ..
        })
    ));
}

#[test]
fn payload_over_256_events_is_rejected() {
    let payload = AnchorPayload {
        events: vec![MicroEvent::Transfer(transfer()); 257],
    };
    assert!(matches!(
        AnchorPayload::from_bytes(&payload.to_bytes()),
        Err(DecodeError::CountOutOfBounds {
            what: "payload events",
            count: 257,
            ..
        })
    ));
    let mut header = anchor_with_parents(1).header.header;
    header.payload_count = 257;
    assert!(matches!(
        AnchorHeader::from_bytes(&header.to_bytes()),
        Err(DecodeError::InvalidValue {
            what: "payload count",
            ..
        })
    ));
}

#[test]
fn transfer_without_inputs_or_with_seventeen_outputs_is_rejected() {
    let mut empty = transfer();
    empty.inputs.clear();
    assert!(matches!(
        MicroEvent::from_bytes(&MicroEvent::Transfer(empty).to_bytes()),
        Err(DecodeError::CountOutOfBounds {
            what: "transfer inputs",
            count: 0,
            min: 1,
            ..
        })
    ));
    let mut wide = transfer();
    wide.outputs = vec![wide.outputs[0]; 17];
    assert!(matches!(
        MicroEvent::from_bytes(&MicroEvent::Transfer(wide).to_bytes()),
        Err(DecodeError::CountOutOfBounds {
            what: "transfer outputs",
            count: 17,
            ..
        })
    ));
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = anchor_with_parents(1).to_bytes();
    let len = bytes.len();
    bytes.push(0);
    assert_eq!(
        SignedAnchor::from_bytes(&bytes),
        Err(DecodeError::TrailingBytes {
            offset: len,
            len: 1
        })
    );
}

#[test]
fn unknown_micro_event_tag_is_rejected() {
    let mut bytes = MicroEvent::Transfer(transfer()).to_bytes();
    bytes[0] = 6;
    assert_eq!(
        MicroEvent::from_bytes(&bytes),
        Err(DecodeError::UnknownTag {
            offset: 0,
            what: "micro-event",
            tag: 6
        })
    );
}

#[test]
fn unknown_header_version_is_rejected() {
    let mut bytes = anchor_with_parents(0).to_bytes();
    for version in [0u8, 2] {
        bytes[0] = version;
        assert!(matches!(
            SignedAnchor::from_bytes(&bytes),
            Err(DecodeError::UnsupportedVersion { version: v, .. }) if v == version
        ));
    }
}

#[test]
fn every_proper_prefix_of_an_anchor_is_rejected_as_truncated() {
    let bytes = anchor_with_parents(3).to_bytes();
    for len in 0..bytes.len() {
        match SignedAnchor::from_bytes(&bytes[..len]) {
            Err(DecodeError::Truncated { .. }) => {}
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
}

#[test]
fn huge_count_with_little_input_is_rejected_before_allocation() {
    // A genesis claiming 2^24 allocations in a few bytes: the count is within
    // its bound but the input cannot hold it, so nothing is allocated.
    let genesis = Genesis {
        params: ConsensusParams::v0(4, 1),
        note_commitment: [0; 32],
        validators: vec![],
        allocations: vec![],
    };
    let mut bytes = genesis.to_bytes();
    bytes.pop();
    bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x08]);
    assert!(matches!(
        Genesis::from_bytes(&bytes),
        Err(DecodeError::Truncated {
            what: "allocations",
            ..
        })
    ));
}

#[test]
fn certified_checkpoint_with_signature_count_not_matching_mask_is_rejected() {
    let certified = CertifiedCheckpoint {
        checkpoint: Checkpoint {
            shard: 1,
            round: 2,
            state_root: [3; 32],
            exports_root: [4; 32],
            export_count: 1,
            dest_count: 1,
            snapshot_root: [0; 32],
        },
        mask: 0b111,
        signatures: vec![[9; 64]; 2],
    };
    assert!(matches!(
        CertifiedCheckpoint::from_bytes(&certified.to_bytes()),
        Err(DecodeError::InvalidValue { .. })
    ));
}

#[test]
fn anchor_id_commits_to_the_signature() {
    let anchor = anchor_with_parents(1);
    let resigned = SignedAnchorHeader {
        header: anchor.header.header.clone(),
        signature: key().sign(&anchor.header.header.id(), &[1; 32]),
    };
    assert_ne!(resigned.signature, anchor.header.signature);
    assert!(resigned.verify_signature(&Bip340, &key().public_key()));
    assert_ne!(resigned.anchor_id(), anchor.anchor_id());
}

#[test]
fn coin_period_below_three_and_window_below_two_are_refused() {
    // Virtual voting needs a normal round between coin rounds (c > 2).
    let mut params = ConsensusParams::v0(4, 1);
    params.coin_round_period = 2;
    let genesis = Genesis {
        params,
        note_commitment: [0; 32],
        validators: vec![],
        allocations: vec![],
    };
    assert!(matches!(
        genesis.validate(),
        Err(genesis::GenesisError::ParameterTooSmall {
            name: "coin_round_period",
            value: 2,
            min: 3
        })
    ));
    let mut params = ConsensusParams::v0(4, 1);
    params.ancient_window_rounds = 1;
    let genesis = Genesis { params, ..genesis };
    assert!(matches!(
        genesis.validate(),
        Err(genesis::GenesisError::ParameterTooSmall {
            name: "ancient_window_rounds",
            ..
        })
    ));
}
