//! The cross-shard link with real BIP-340 keys: four seats of a source
//! shard certify a round's checkpoint at q, push its bundle, and a
//! destination seat takes it; forged signatures, certificates and bundles
//! from a peer are violations that change nothing; a forged certificate in
//! an Import makes the micro-event invalid.

use std::sync::Arc;

use pc_codec::cross::{
    leaf_proofs, leaves_root, CheckpointSig, DestEntry, ExportLeaf, RoundExports, NO_ROUND,
};
use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::ids::shard_of;
use pc_codec::{Bip340, LogRecordKind, MicroEvent, PublicKeyBytes, SigningKey};
use pc_shard::crosslink::{CrossLink, CrossMessage, CrossTarget, CrossViolation, SeenImport};
use pc_shard::state::{RoundOutcome, ShardState};
use pc_shard::validate::{validate_micro_event, MicroEventError, ShardContext};

const K: u8 = 4;

fn key(shard: u16, seat: u8) -> SigningKey {
    let mut secret = [0x3c; 32];
    secret[0] = shard as u8 + 1;
    secret[1] = seat + 1;
    SigningKey::from_secret_bytes(&secret).unwrap()
}

/// An owner key of `shard` among 2.
fn owner_in(shard: u16) -> PublicKeyBytes {
    (1..=255u8)
        .map(|n| {
            SigningKey::from_secret_bytes(&[n; 32])
                .unwrap()
                .public_key()
        })
        .find(|k| shard_of(k, 2) == shard)
        .unwrap()
}

fn genesis() -> Genesis {
    let mut validators = Vec::new();
    for shard in 0..2 {
        for seat in 0..K {
            validators.push(GenesisValidator {
                key: key(shard, seat).public_key(),
                bond: 10,
                seats: vec![SeatAssignment { shard, seat }],
            });
        }
    }
    Genesis {
        params: ConsensusParams::v0(K, 2),
        note_commitment: [0; 32],
        validators,
        allocations: vec![GenesisAllocation {
            owner: owner_in(1),
            amount: 100,
            outputs: 2,
        }],
    }
}

type Link = CrossLink<Bip340, SigningKey>;

fn committees(genesis: &Genesis) -> Arc<Vec<Vec<PublicKeyBytes>>> {
    Arc::new((0..2).map(|s| genesis.committee(s).unwrap()).collect())
}

fn link(genesis: &Genesis, shard: u16, seat: u8) -> Link {
    CrossLink::new(
        genesis.network(),
        shard,
        committees(genesis),
        Some((seat, key(shard, seat))),
        Bip340,
    )
}

/// Round 5 of shard 0 with three exports to shard 1.
fn outcome() -> RoundOutcome {
    outcome_with(3)
}

/// Round 5 of shard 0 with `count` exports to shard 1.
fn outcome_with(count: u16) -> RoundOutcome {
    let leaves: Vec<ExportLeaf> = (0..count)
        .map(|n| {
            let mut tx_id = [0; 32];
            tx_id[..2].copy_from_slice(&(n + 1).to_le_bytes());
            ExportLeaf {
                dest: 1,
                tx_id,
                output_index: 0,
                amount: 10 + u64::from(n),
                owner: owner_in(1),
            }
        })
        .collect();
    let exports = RoundExports {
        entries: vec![(
            DestEntry {
                dest: 1,
                count: u32::from(count),
                root: leaves_root(&leaves),
                prev_round: NO_ROUND,
            },
            leaves,
        )],
    };
    RoundOutcome {
        round: 5,
        outcomes: Vec::new(),
        fees: 0,
        payout_root: [0; 32],
        exports_root: exports.root(),
        exports,
        imported: Vec::new(),
        slashes: Vec::new(),
        claims: Vec::new(),
        payout_leaves: 0,
        mints: Vec::new(),
        mint_win: None,
        state_root: [9; 32],
    }
}

/// Seats 0..4 of shard 0 finalize the round and sign it; their
/// signatures, not yet exchanged.
fn signed_source() -> (Genesis, Vec<Link>, Vec<CheckpointSig>) {
    signed_source_with(3)
}

/// [`signed_source`] of a round with `count` exports.
fn signed_source_with(count: u16) -> (Genesis, Vec<Link>, Vec<CheckpointSig>) {
    let genesis = genesis();
    let mut seats: Vec<Link> = (0..K).map(|seat| link(&genesis, 0, seat)).collect();
    let outcome = outcome_with(count);
    let mut sigs = Vec::new();
    for seat in seats.iter_mut() {
        seat.on_round(&outcome);
        while let Some(transmit) = seat.poll_transmit() {
            if let CrossMessage::Sig(sig) = transmit.message {
                assert_eq!(transmit.to, CrossTarget::Committee);
                sigs.push(sig);
            }
        }
    }
    assert_eq!(sigs.len(), usize::from(K), "every seat signs the round");
    (genesis, seats, sigs)
}

/// Seats 0..4 of shard 0 finalize the round and exchange signatures.
fn certified_source() -> (Genesis, Vec<Link>) {
    certified_source_with(3)
}

/// [`certified_source`] of a round with `count` exports.
fn certified_source_with(count: u16) -> (Genesis, Vec<Link>) {
    let (genesis, mut seats, sigs) = signed_source_with(count);
    for (index, seat) in seats.iter_mut().enumerate() {
        for sig in &sigs {
            if usize::from(sig.seat) != index {
                seat.on_sig(
                    CrossTarget::Seat {
                        shard: 0,
                        seat: sig.seat,
                    },
                    *sig,
                )
                .unwrap();
            }
        }
    }
    (genesis, seats)
}

/// The bundle seat 0 of a certified source pushes when its next round
/// (6, no exports) is finalized.
fn pushed_by_seat_0(seats: &mut [Link]) -> pc_codec::ExportsBundle {
    let mut next = outcome();
    next.round = 6;
    next.exports = RoundExports::default();
    next.exports_root = [0; 32];
    seats[0].on_round(&next);
    std::iter::from_fn(|| seats[0].poll_transmit())
        .find_map(|t| match t.message {
            CrossMessage::Exports(bundle) => Some(*bundle),
            _ => None,
        })
        .expect("seat 0 pushes")
}

#[test]
fn seats_certify_at_q_and_push_to_f_plus_one_destination_seats() {
    let (genesis, mut seats) = certified_source();
    for seat in seats.iter_mut() {
        let cert = seat.certificate(5).expect("q signatures certify").clone();
        cert.verify(&genesis.network(), &genesis.committee(0).unwrap(), &Bip340)
            .unwrap();
        let mut logged = Vec::new();
        while let Some(record) = seat.poll_record() {
            logged.push(record.kind);
        }
        assert_eq!(
            logged,
            vec![
                LogRecordKind::ExportsBuilt,
                LogRecordKind::CheckpointCertified
            ]
        );
    }
    // Seat 2 pushes to seats 2 and 3 of shard 1 (f = 1) on its next round.
    let mut next = outcome();
    next.round = 6;
    next.exports = RoundExports::default();
    next.exports_root = [0; 32];
    seats[2].on_round(&next);
    let mut targets = Vec::new();
    while let Some(transmit) = seats[2].poll_transmit() {
        if let CrossMessage::Exports(bundle) = transmit.message {
            assert_eq!(bundle.leaves.len(), 3);
            targets.push(transmit.to);
        }
    }
    assert_eq!(
        targets,
        vec![
            CrossTarget::Seat { shard: 1, seat: 2 },
            CrossTarget::Seat { shard: 1, seat: 3 }
        ]
    );
    // An ack stops that target's retries.
    seats[2].on_ack(2, 0, 5, 1);
    assert_eq!(seats[2].counters().acked, 1);
}

#[test]
fn forged_signatures_and_certificates_are_violations_that_change_nothing() {
    let (genesis, mut seats, sigs) = signed_source();
    let from = CrossTarget::Seat { shard: 0, seat: 1 };
    let mut forged = sigs[1];
    forged.signature[5] ^= 1;
    assert!(matches!(
        seats[0].on_sig(from, forged),
        Err(CrossViolation::BadSig(_))
    ));
    let mut past = sigs[1];
    past.seat = K;
    assert!(matches!(
        seats[0].on_sig(from, past),
        Err(CrossViolation::BadSig(_))
    ));
    let mut other = sigs[1];
    other.checkpoint.state_root[0] ^= 1;
    other.signature = key(0, 1).sign(&other.checkpoint.id(&genesis.network()), &[0; 32]);
    assert_eq!(
        seats[0].on_sig(from, other),
        Err(CrossViolation::ConflictingSig { seat: 1, round: 5 })
    );
    // A signature of seat 1 made by another key.
    let mut stolen = sigs[1];
    stolen.signature = key(0, 2).sign(&stolen.checkpoint.id(&genesis.network()), &[0; 32]);
    assert!(seats[0].on_sig(from, stolen).is_err());
    assert!(
        seats[0].certificate(5).is_none(),
        "no forged signature counts"
    );
    // An under-signed and a badly signed certificate.
    let cert = pc_codec::CertifiedCheckpoint {
        checkpoint: sigs[0].checkpoint,
        mask: 0b11,
        signatures: vec![sigs[0].signature, sigs[1].signature],
    };
    assert!(seats[0].on_cert(cert).is_err());
    let cert = pc_codec::CertifiedCheckpoint {
        checkpoint: sigs[0].checkpoint,
        mask: 0b111,
        signatures: vec![sigs[0].signature, sigs[1].signature, sigs[1].signature],
    };
    assert!(seats[0].on_cert(cert).is_err());
    assert!(seats[0].certificate(5).is_none());
    // The genuine ones still certify.
    seats[0].on_sig(from, sigs[1]).unwrap();
    seats[0]
        .on_sig(CrossTarget::Seat { shard: 0, seat: 2 }, sigs[2])
        .unwrap();
    assert!(seats[0].certificate(5).is_some());
    assert_eq!(seats[0].counters().violations, 6);
}

#[test]
fn a_destination_logs_a_good_bundle_before_acking_and_refuses_a_forged_one() {
    let (genesis, mut seats) = certified_source();
    let bundle = pushed_by_seat_0(&mut seats);
    let state = ShardState::from_genesis(&genesis, 1);
    let mut dest = link(&genesis, 1, 0);
    let from = CrossTarget::Seat { shard: 0, seat: 0 };
    for forge in 0..4 {
        let mut forged = bundle.clone();
        match forge {
            0 => forged.leaves[1].amount += 1,
            1 => forged.cert.signatures[0][3] ^= 1,
            2 => {
                forged.cert.mask = 0b11;
                forged.cert.signatures.pop();
            }
            _ => forged.entry.count = 2,
        }
        assert!(
            dest.on_exports(from, forged, &state).is_err(),
            "forgery {forge}"
        );
        assert!(dest.poll_record().is_none(), "nothing logged");
        assert!(dest.poll_transmit().is_none(), "nothing acked or forwarded");
    }
    dest.on_exports(from, bundle.clone(), &state).unwrap();
    let record = dest.poll_record().expect("the bundle is logged");
    assert_eq!(record.kind, LogRecordKind::ExportsReceived);
    let ack = record.ack.expect("acked once durable");
    assert_eq!(ack.to, from);
    // Round 5 from source 0: carrier seat (0 + 5) mod 4 = 1.
    let forward = dest.poll_transmit().expect("forwarded to the carrier");
    assert_eq!(forward.to, CrossTarget::Seat { shard: 1, seat: 1 });
    // The carrier includes every leaf at once, the first Certified.
    let mut carrier = link(&genesis, 1, 1);
    carrier
        .on_exports(
            CrossTarget::Seat { shard: 1, seat: 0 },
            bundle.clone(),
            &state,
        )
        .unwrap();
    let imports = carrier.take_imports(&state);
    assert_eq!(imports.len(), 3);
    let context = ShardContext::from_genesis(&genesis, 1).unwrap();
    for (n, event) in imports.iter().enumerate() {
        let MicroEvent::Import(import) = event else {
            panic!("imports only")
        };
        assert_eq!(import.certificate().is_some(), n == 0);
        validate_micro_event(&context, &Bip340, event).unwrap();
    }
    // A second copy of the bundle is acked unlogged.
    dest.on_exports(from, bundle.clone(), &state).unwrap();
    assert!(dest.poll_record().is_none());
    assert!(matches!(
        dest.poll_transmit().map(|t| t.message),
        Some(CrossMessage::Ack { .. })
    ));
    // An Import whose certificate is forged is an invalid micro-event.
    let mut forged = bundle.import(0, leaf_proofs(&bundle.leaves)[0].clone(), true);
    if let pc_codec::Origin::Certified(origin) = &mut forged.origin {
        origin.cert.signatures[1][0] ^= 1;
    }
    assert!(matches!(
        validate_micro_event(&context, &Bip340, &MicroEvent::Import(Box::new(forged))),
        Err(MicroEventError::Import(_))
    ));
}

/// The (form, leaf index) of imports: `true` for the Certified form.
fn forms(imports: &[MicroEvent]) -> Vec<(bool, u64)> {
    imports
        .iter()
        .map(|event| match event {
            MicroEvent::Import(import) => (import.certificate().is_some(), import.leaf_proof.index),
            other => panic!("imports only, not {other:?}"),
        })
        .collect()
}

#[test]
fn a_round_of_many_exports_is_carried_in_chunks_by_turns() {
    use pc_shard::crosslink::{BACKUP_DELAY_ROUNDS, CARRY_CHUNK_LEAVES, RETRY_TICK_MS};
    let count = CARRY_CHUNK_LEAVES as u16 + 44;
    let (genesis, mut seats) = certified_source_with(count);
    let bundle = pushed_by_seat_0(&mut seats);
    assert_eq!(bundle.leaves.len(), usize::from(count));
    let state = ShardState::from_genesis(&genesis, 1);
    let from = CrossTarget::Seat { shard: 0, seat: 0 };
    // Source 0, round 5: chunk 0 is carried by seat (0 + 5) mod 4 = 1,
    // chunk 1 by seat 2.
    let mut dest: Vec<Link> = (0..K).map(|seat| link(&genesis, 1, seat)).collect();
    for seat in dest.iter_mut() {
        seat.on_exports(from, bundle.clone(), &state).unwrap();
    }
    let first = forms(&dest[1].take_imports(&state));
    assert_eq!(first.len(), CARRY_CHUNK_LEAVES, "chunk 0 at once");
    assert_eq!(first[0], (true, 0), "the round's first import is Certified");
    assert!(first[1..].iter().all(|(certified, _)| !certified));
    assert!(first
        .iter()
        .all(|(_, index)| *index < CARRY_CHUNK_LEAVES as u64));
    // Chunk 1's carrier carries it at once too, its first import
    // Certified (the round is not registered in its state).
    let second = forms(&dest[2].take_imports(&state));
    assert_eq!(second.len(), 44);
    assert_eq!(second[0], (true, CARRY_CHUNK_LEAVES as u64));
    assert!(second[1..]
        .iter()
        .all(|(certified, index)| !certified && *index > CARRY_CHUNK_LEAVES as u64));
    // Nobody else has a turn yet.
    for seat in [0, 3] {
        assert!(dest[seat].take_imports(&state).is_empty(), "seat {seat}");
    }
    // Seat 2 saw chunk 0 in seat 1's unfinalized anchor. When the first
    // backup turns come (8 decided rounds on), seat 2 (rank 1 for chunk 0)
    // leaves chunk 0 to it and does not carry its own chunk again; seat 3
    // (rank 1 for chunk 1, rank 2 for chunk 0) backs up chunk 1; seat 0
    // (ranks 3 and 2) still waits.
    let seen: Vec<SeenImport> = first
        .iter()
        .map(|(_, index)| SeenImport {
            source: 0,
            round: 5,
            index: *index,
            tx_id: bundle.leaves[*index as usize].tx_id,
            creator: 1,
        })
        .collect();
    // A hint with another leaf, or from a seat whose turn is not earlier,
    // is ignored: seat 0 (rank 3 for chunk 0) "seen" carrying leaf 0, and
    // a forged leaf 1 from seat 1, change nothing.
    let mut ignored = vec![SeenImport {
        creator: 0,
        ..seen[0]
    }];
    ignored.push(SeenImport {
        tx_id: [0xee; 32],
        ..seen[1]
    });
    dest[2].on_seen_imports(&ignored);
    dest[2].on_seen_imports(&seen[2..]);
    for tick in 0..=BACKUP_DELAY_ROUNDS {
        for seat in dest.iter_mut() {
            seat.handle_tick(tick * RETRY_TICK_MS);
        }
    }
    // Seat 2 backs up leaves 0 and 1 (the hints about them were ignored)
    // and leaves the rest of chunk 0 to seat 1.
    let mine = forms(&dest[2].take_imports(&state));
    assert_eq!(mine, vec![(true, 0), (false, 1)]);
    let backup = forms(&dest[3].take_imports(&state));
    assert_eq!(backup.len(), 44);
    assert_eq!(backup[0], (true, CARRY_CHUNK_LEAVES as u64));
    assert!(dest[0].take_imports(&state).is_empty());
}
