//! The Offence micro-event (DESIGN §5.4) with real BIP-340 keys: every kind
//! with a proof that holds is valid, and each forged or unproven variant is
//! refused with its reason (never a panic); kind 2 is judged at apply
//! against the shard's own checkpoint; an offence slashes its class's rate
//! once, and an oversized one does not decode.

use pc_codec::cross::{Checkpoint, CheckpointSig};
use pc_codec::genesis::{ConsensusParams, Genesis, GenesisValidator, SeatAssignment};
use pc_codec::{
    AnchorBuilder, AnchorHeader, AnchorPayload, Bip340, Decode, Encode, EventDigest, MerkleProof,
    MicroEvent, Offence, OutPoint, ParentRef, SignedAnchor, SignedAnchorHeader, SigningKey,
    Transfer, TxOut, Why,
};
use pc_shard::state::{FinalizedPayload, Outcome, ShardState};
use pc_shard::validate::{validate_micro_event, MicroEventError, ShardContext};

const K: u8 = 4;

fn key(seat: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[seat + 1; 32]).unwrap()
}

/// k = 4, 2 shards, each validator one seat per shard, bond 1 000.
fn genesis() -> Genesis {
    Genesis {
        params: ConsensusParams::v0(K, 2),
        note_commitment: [0; 32],
        validators: (0..K)
            .map(|seat| GenesisValidator {
                key: key(seat).public_key(),
                bond: 2_000,
                seats: vec![
                    SeatAssignment { shard: 0, seat },
                    SeatAssignment { shard: 1, seat },
                ],
            })
            .collect(),
        allocations: vec![],
    }
}

fn context() -> ShardContext {
    ShardContext::from_genesis(&genesis(), 0).unwrap()
}

fn check(offence: Offence) -> Result<(), MicroEventError> {
    validate_micro_event(&context(), &Bip340, &MicroEvent::Offence(Box::new(offence)))
}

fn refused(offence: Offence) -> String {
    match check(offence) {
        Err(MicroEventError::Offence { reason, .. }) => reason.to_string(),
        other => panic!("expected a refused offence, got {other:?}"),
    }
}

fn sign(seat: u8, header: AnchorHeader) -> SignedAnchorHeader {
    let signature = key(seat).sign(&header.id(), &[0; 32]);
    SignedAnchorHeader { header, signature }
}

/// Seat `seat`'s genesis anchor (seq 0, no parents) of shard 0.
fn genesis_anchor(seat: u8) -> SignedAnchor {
    AnchorBuilder::new(genesis().network(), 0, seat, 0)
        .sign(&key(seat), &[0; 32])
        .unwrap()
}

fn parent_ref(anchor: &SignedAnchor) -> ParentRef {
    let h = &anchor.header.header;
    ParentRef {
        anchor_id: anchor.anchor_id(),
        creator: h.creator,
        seq: h.seq,
        birth_round: h.birth_round,
    }
}

/// Seat 1 at seq 1 on its genesis anchor and seat 2's.
fn valid_header() -> AnchorHeader {
    AnchorBuilder::new(genesis().network(), 0, 1, 1)
        .parent_anchor(&genesis_anchor(1))
        .parent_anchor(&genesis_anchor(2))
        .sign(&key(1), &[0; 32])
        .unwrap()
        .header
        .header
}

fn checkpoint(shard: u16, round: u64, root: u8) -> Checkpoint {
    Checkpoint {
        shard,
        round,
        state_root: [root; 32],
        exports_root: [0; 32],
        export_count: 0,
        dest_count: 0,
        snapshot_root: [0; 32],
    }
}

fn checkpoint_sig(seat: u8, checkpoint: Checkpoint) -> CheckpointSig {
    CheckpointSig {
        checkpoint,
        seat,
        signature: key(seat).sign(&checkpoint.id(&genesis().network()), &[0; 32]),
    }
}

#[test]
fn an_invalid_header_of_this_shard_is_provable_and_a_valid_or_foreign_one_is_not() {
    // No other-parent at seq 1: a header rule.
    let mut header = valid_header();
    header.parents.truncate(1);
    let offence = |anchor| Offence::InvalidAnchor {
        anchor,
        why: Why::Header,
    };
    assert_eq!(check(offence(sign(1, header.clone()))), Ok(()));
    assert_eq!(
        refused(offence(sign(1, valid_header()))),
        "the header breaks no rule"
    );
    // Signed by another key than the creator's.
    assert_eq!(
        refused(offence(sign(2, header.clone()))),
        "the accused header's signature does not verify"
    );
    // The same key's data of shard 1 never slashes it in shard 0.
    let mut foreign = header.clone();
    foreign.shard = 1;
    assert_eq!(
        refused(offence(sign(1, foreign))),
        "the accused header is not of this shard"
    );
    // An unsatisfiable commitment is kind 4, not kind 0.
    let mut unsatisfiable = valid_header();
    unsatisfiable.payload_bytes = 2_000_000;
    assert_eq!(
        refused(offence(sign(1, unsatisfiable.clone()))),
        "an unsatisfiable commitment is kind 4"
    );
    assert_eq!(
        check(Offence::Unsatisfiable {
            anchor: sign(1, unsatisfiable)
        }),
        Ok(())
    );
    assert_eq!(
        refused(Offence::Unsatisfiable {
            anchor: sign(1, valid_header())
        }),
        "the commitment is satisfiable"
    );
}

#[test]
fn an_invalid_micro_event_is_proved_by_its_bytes_under_the_payload_root() {
    let network = genesis().network();
    let forged = MicroEvent::Transfer(Transfer {
        inputs: vec![OutPoint {
            tx_id: [5; 32],
            index: 0,
        }],
        outputs: vec![TxOut {
            amount: 1,
            owner: key(9).public_key(),
        }],
        owner: key(9).public_key(),
        signature: [0x11; 64],
    });
    let good = MicroEvent::Offence(Box::new(Offence::Unsatisfiable {
        anchor: {
            let mut h = valid_header();
            h.payload_bytes = 2_000_000;
            sign(1, h)
        },
    }));
    let mut header = valid_header();
    let payload = AnchorPayload {
        events: vec![good.clone(), forged.clone()],
    };
    header.payload_root = payload.root();
    header.payload_count = 2;
    header.payload_bytes = payload.to_bytes().len() as u32;
    let accused = sign(1, header);
    let ids: Vec<[u8; 32]> = payload
        .events
        .iter()
        .map(|e| EventDigest::of(e, &network).id)
        .collect();
    let why = |index: usize, bytes: Vec<u8>| Why::Event {
        bytes,
        proof: MerkleProof::build(&ids, index).unwrap(),
    };
    let offence = |why| Offence::InvalidAnchor {
        anchor: accused.clone(),
        why,
    };
    assert_eq!(check(offence(why(1, forged.to_bytes()))), Ok(()));
    // A valid offence at position 0: not provable as invalid (nested
    // offence proofs are not followed).
    assert_eq!(
        refused(offence(why(0, good.to_bytes()))),
        "an offence is not proved invalid inside another offence"
    );
    // The forged event's bytes at the other position: not under the root.
    assert_eq!(
        refused(offence(why(0, forged.to_bytes()))),
        "the event proof does not fit the payload root"
    );
    // Acknowledging it is kind 1: a voter that names the invalid anchor.
    let invalid = SignedAnchor {
        header: accused.clone(),
        payload,
    };
    let voter = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent(parent_ref(&invalid))
        .sign(&key(3), &[0; 32])
        .unwrap()
        .header;
    let kind1 = |voter: SignedAnchorHeader| Offence::InvalidParent {
        voter,
        parent: accused.clone(),
        why: why(1, forged.to_bytes()),
    };
    assert_eq!(check(kind1(voter)), Ok(()));
    let bystander = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent_anchor(&genesis_anchor(2))
        .sign(&key(3), &[0; 32])
        .unwrap()
        .header;
    assert_eq!(
        refused(kind1(bystander)),
        "the voter does not name the parent"
    );
}

#[test]
fn a_parent_with_a_bad_signature_and_a_wrong_ref_are_provable() {
    let network = genesis().network();
    // Kind 1, why = Header: the parent's signature is the breach.
    let mut parent = genesis_anchor(2);
    parent.header.signature[0] ^= 1;
    let voter = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent(parent_ref(&parent))
        .sign(&key(3), &[0; 32])
        .unwrap()
        .header;
    assert_eq!(
        check(Offence::InvalidParent {
            voter: voter.clone(),
            parent: parent.header.clone(),
            why: Why::Header,
        }),
        Ok(())
    );
    assert_eq!(
        refused(Offence::InvalidParent {
            voter: voter.clone(),
            parent: genesis_anchor(1).header,
            why: Why::Header,
        }),
        "the voter does not name the parent"
    );
    // It names its own valid self-parent: no breach.
    assert_eq!(
        refused(Offence::InvalidParent {
            voter,
            parent: genesis_anchor(3).header,
            why: Why::Header,
        }),
        "the parent breaks no rule"
    );
    // Kind 3: a ref with the parent's id but another seq.
    let honest = genesis_anchor(2);
    let mut wrong = parent_ref(&honest);
    wrong.seq = 7;
    let voter = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent(wrong)
        .sign(&key(3), &[0; 32])
        .unwrap()
        .header;
    assert_eq!(
        check(Offence::ConflictingRef {
            voter,
            parent: honest.header.clone(),
        }),
        Ok(())
    );
    let matching = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent_anchor(&honest)
        .sign(&key(3), &[0; 32])
        .unwrap()
        .header;
    assert_eq!(
        refused(Offence::ConflictingRef {
            voter: matching,
            parent: honest.header
        }),
        "no ref of the voter names the parent wrongly"
    );
}

#[test]
fn checkpoint_offences_need_valid_signatures_of_this_shard() {
    let a = checkpoint_sig(2, checkpoint(0, 5, 1));
    let b = checkpoint_sig(2, checkpoint(0, 5, 2));
    assert_eq!(check(Offence::CheckpointFork { a, b }), Ok(()));
    assert_eq!(
        refused(Offence::CheckpointFork { a, b: a }),
        "one checkpoint, not two"
    );
    let other_seat = checkpoint_sig(3, checkpoint(0, 5, 2));
    assert_eq!(
        refused(Offence::CheckpointFork { a, b: other_seat }),
        "not one seat at one round"
    );
    let mut forged = b;
    forged.signature[3] ^= 1;
    assert_eq!(
        refused(Offence::CheckpointFork { a, b: forged }),
        "a checkpoint signature does not verify"
    );
    assert_eq!(check(Offence::WrongCheckpoint { sig: b }), Ok(()));
    assert_eq!(
        refused(Offence::WrongCheckpoint {
            sig: checkpoint_sig(2, checkpoint(1, 5, 2))
        }),
        "the checkpoint is not by a seat of this shard about it"
    );
}

fn apply_round(state: &mut ShardState, round: u64, events: &[MicroEvent]) -> Vec<Outcome> {
    let network = genesis().network();
    let digests: Vec<EventDigest> = events
        .iter()
        .map(|e| EventDigest::of(e, &network))
        .collect();
    let distances = vec![None; usize::from(K)];
    let anchor = FinalizedPayload {
        creator: 0,
        events,
        digests: &digests,
        ack_distances: &distances,
    };
    let outcome = state.apply_round(round, &[anchor], &[0]);
    outcome.outcomes.iter().map(|(_, o)| *o).collect()
}

#[test]
fn a_wrong_checkpoint_is_judged_against_the_shards_own_and_slashes_half_then_all() {
    let genesis = genesis();
    let mut state = ShardState::from_genesis(&genesis, 0);
    // Round 0 finalized: its own checkpoint is known from round 1 on.
    let round0 = state.apply_round(0, &[], &[0]);
    let own = round0.checkpoint(0);
    let own_sig = checkpoint_sig(2, own);
    let mut other = own;
    other.state_root[0] ^= 1;
    let wrong = checkpoint_sig(2, other);
    let event = |sig| MicroEvent::Offence(Box::new(Offence::WrongCheckpoint { sig }));
    let later = checkpoint_sig(2, checkpoint(0, 9, 1));
    assert_eq!(
        apply_round(
            &mut state,
            1,
            &[event(own_sig), event(later), event(wrong), event(wrong)]
        ),
        vec![
            Outcome::EvidenceUnfounded,
            Outcome::EvidenceExpired,
            Outcome::EvidenceRecorded,
            Outcome::EvidenceDuplicate
        ]
    );
    // Bond 2 000 over two seats: 1 000 here; VFI tier 1 takes 50 %.
    let seat = &state.economics().seats()[2];
    assert_eq!(
        (seat.bond, seat.remaining, seat.slashed_out),
        (1_000, 500, false)
    );
    // Another round's wrong checkpoint: tier 2, the rest.
    let mut other1 = own;
    other1.round = 1;
    other1.state_root = [7; 32];
    apply_round(&mut state, 2, &[event(checkpoint_sig(2, other1))]);
    let seat = &state.economics().seats()[2];
    assert_eq!((seat.remaining, seat.slashed_out), (0, true));
    assert_eq!(state.accounted_value(), state.genesis_supply());
}

#[test]
fn the_largest_offence_round_trips_and_a_malformed_one_does_not_decode() {
    let mut header = valid_header();
    header.parents.truncate(1);
    let offence = MicroEvent::Offence(Box::new(Offence::InvalidParent {
        voter: sign(1, header.clone()),
        parent: sign(1, header),
        why: Why::Event {
            bytes: vec![7; 8_192],
            proof: MerkleProof {
                index: 0,
                leaf_count: 1,
                siblings: vec![[0; 32]; 8],
            },
        },
    }));
    let bytes = offence.to_bytes();
    assert!(bytes.len() < 12_288, "{}", bytes.len());
    assert_eq!(
        MicroEvent::decode(&mut pc_codec::Reader::new(&bytes)).unwrap(),
        offence
    );
    // An event of 8 193 bytes in a proof, or an unknown kind: no decode.
    let mut over = vec![5u8, 0];
    sign(1, valid_header()).encode(&mut over);
    over.push(1);
    pc_codec::wire::put_count(&mut over, 8_193);
    over.extend_from_slice(&[7; 8_193]);
    MerkleProof {
        index: 0,
        leaf_count: 1,
        siblings: vec![],
    }
    .encode(&mut over);
    assert!(MicroEvent::decode(&mut pc_codec::Reader::new(&over)).is_err());
    let mut unknown = vec![5u8, 6];
    sign(1, valid_header()).encode(&mut unknown);
    assert!(MicroEvent::decode(&mut pc_codec::Reader::new(&unknown)).is_err());
}

#[test]
fn forged_headers_cannot_push_a_signed_invalid_anchor_out_of_a_seats_memory() {
    // Seat 0's machine refuses seat 1's validly signed anchor that breaks a
    // header rule (no other-parent at seq 1), then 1 000 headers claiming
    // seat 2 with signatures that do not verify; seat 3's anchor naming
    // the first as its parent is still a provable kind-1 offence.
    use pc_shard::machine::{Role, Shard, ShardLimits, ShardMessage};
    let network = genesis().network();
    let mut machine: Shard<Bip340, SigningKey> = Shard::new(
        &genesis(),
        0,
        Role::Seat {
            seat: 0,
            signer: key(0),
        },
        Bip340,
        ShardLimits::default(),
    );
    let invalid = AnchorBuilder::new(network, 0, 1, 1)
        .parent_anchor(&genesis_anchor(1))
        .sign(&key(1), &[0; 32])
        .unwrap();
    assert!(machine.handle_anchor(Some(1), &invalid.to_bytes()).is_err());
    for n in 0..1_000u32 {
        let mut forged = AnchorBuilder::new(network, 0, 2, 1)
            .parent_anchor(&genesis_anchor(2))
            .sign(&key(2), &[0; 32])
            .unwrap();
        forged.header.header.parents.truncate(1);
        forged.header.signature[..4].copy_from_slice(&n.to_le_bytes());
        assert!(machine.handle_anchor(Some(2), &forged.to_bytes()).is_err());
    }
    while machine.poll_transmit().is_some() {}
    let voter = AnchorBuilder::new(network, 0, 3, 1)
        .parent_anchor(&genesis_anchor(3))
        .parent_anchor(&invalid)
        .sign(&key(3), &[0; 32])
        .unwrap();
    let _ = machine.handle_anchor(Some(3), &voter.to_bytes());
    let relayed: Vec<Offence> = std::iter::from_fn(|| machine.poll_transmit())
        .filter_map(|t| match t.message {
            ShardMessage::Evidence(bytes) => match MicroEvent::from_bytes(&bytes) {
                Ok(MicroEvent::Offence(offence)) => Some(*offence),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(
        relayed.iter().any(|o| matches!(o,
            Offence::InvalidParent { voter: v, parent, .. }
                if v.header.creator == 3 && parent.anchor_id() == invalid.anchor_id())),
        "seat 3's acknowledgement of the invalid anchor is reported: {relayed:?}"
    );
}
