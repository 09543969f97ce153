//! No input makes the state machine panic: valid anchors from a real run,
//! mutated (bit flips, truncations, extensions, spliced bytes, random
//! garbage), re-signed with the creator's key or not, and arbitrary
//! announces and micro-events, are fed to a fresh observer, to an observer
//! that holds the whole DAG and to a seat. Every call returns; afterwards
//! the machines still accept the original anchors and agree on the
//! finalized rounds.

mod common;

use common::{genesis, Machine, Network, SEATS};
use pc_codec::wire::{Decode, Encode};
use pc_codec::{LogRecordKind, MicroEvent, SignedAnchor};
use pc_shard::machine::{FastSeatKey, Role, Shard, ShardLimits};
use pc_shard::sim_crypto::FastVerifier;
use proptest::prelude::*;

/// The anchors of a four-seat run, in the observer's log order (made once).
fn recorded_anchors() -> &'static [Vec<u8>] {
    static ANCHORS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    ANCHORS.get_or_init(record_anchors)
}

fn record_anchors() -> Vec<Vec<u8>> {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.submit_spread(&genesis, 24, 990);
    network.run(200_000);
    network.nodes[SEATS]
        .log
        .iter()
        .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
        .map(|(_, body)| body.clone())
        .collect()
}

fn observer() -> Machine {
    Shard::new(
        &genesis(),
        0,
        Role::Observer,
        FastVerifier,
        ShardLimits {
            max_pending_anchors: 64,
            max_outstanding_pulls: 32,
            ..ShardLimits::default()
        },
    )
}

fn seat() -> Machine {
    Shard::new(
        &genesis(),
        0,
        Role::Seat {
            seat: 1,
            signer: FastSeatKey(common::public(11)),
        },
        FastVerifier,
        ShardLimits::default(),
    )
}

fn drain(machine: &mut Machine) -> usize {
    let mut finalized = 0;
    while let Some(record) = machine.poll_persist() {
        machine.handle_durable(record.token);
    }
    while machine.poll_transmit().is_some() {}
    while machine.poll_finalized().is_some() {
        finalized += 1;
    }
    finalized
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { len: usize },
    Extend { bytes: Vec<u8> },
    Splice { at: usize, bytes: Vec<u8> },
    Garbage { bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        prop::collection::vec(any::<u8>(), 1..16).prop_map(|bytes| Mutation::Extend { bytes }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(at, bytes)| Mutation::Splice { at, bytes }),
        prop::collection::vec(any::<u8>(), 0..600).prop_map(|bytes| Mutation::Garbage { bytes }),
    ]
}

fn apply(original: &[u8], mutation: &Mutation) -> Vec<u8> {
    let mut bytes = original.to_vec();
    match mutation {
        Mutation::FlipBit { at, bit } => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Mutation::Truncate { len } => bytes.truncate(len % bytes.len()),
        Mutation::Extend { bytes: extra } => bytes.extend_from_slice(extra),
        Mutation::Splice { at, bytes: spliced } => {
            let at = at % bytes.len();
            let end = (at + spliced.len()).min(bytes.len());
            bytes[at..end].copy_from_slice(&spliced[..end - at]);
        }
        Mutation::Garbage { bytes: garbage } => return garbage.clone(),
    }
    bytes
}

/// A decodable mutant re-signed by its claimed creator's key (the fast
/// scheme's signer needs only the public key): it passes the signature
/// check, so the deeper rules (parents, birth round, payload) meet it.
fn resigned(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut anchor = SignedAnchor::from_bytes(bytes).ok()?;
    let creator = anchor.header.header.creator;
    if usize::from(creator) >= SEATS {
        return None;
    }
    let key = common::public(10 + creator);
    anchor.header.signature =
        pc_shard::sim_crypto::FastSigner.sign(&key, &anchor.header.header.id());
    Some(anchor.to_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn mutated_anchors_never_panic_and_never_disturb_agreement(
        mutations in prop::collection::vec((any::<prop::sample::Index>(), mutation()), 1..24),
        announces in prop::collection::vec(any::<[u8; 32]>(), 0..8),
    ) {
        let anchors = recorded_anchors();
        let mut fresh = observer();
        let mut full = observer();
        let mut seat_machine = seat();
        for anchor in anchors {
            let _ = full.handle_anchor(Some(0), anchor);
        }
        let reference_rounds = drain(&mut full);
        for (index, mutation) in &mutations {
            let original = &anchors[index.index(anchors.len())];
            let mutant = apply(original, mutation);
            let resigned = resigned(&mutant);
            for machine in [&mut fresh, &mut full, &mut seat_machine] {
                let _ = machine.handle_anchor(Some(3), &mutant);
                if let Some(resigned) = &resigned {
                    let _ = machine.handle_anchor(Some(3), resigned);
                }
                machine.handle_announce(Some(3), &announces);
                if let Ok(event) = MicroEvent::from_bytes(&mutant) {
                    let _: Result<(), _> = machine.handle_micro_event(event);
                }
                let _: Result<(), _> = machine.handle_micro_event(MicroEvent::Evidence(
                    pc_codec::Evidence {
                        first: SignedAnchor::from_bytes(original).unwrap().header,
                        second: SignedAnchor::from_bytes(original).unwrap().header,
                    },
                ));
                machine.handle_tick(1_000);
                drain(machine);
            }
        }
        // The originals still go in, and the fresh observer finalizes the
        // same number of rounds as the one that never saw a mutant.
        for anchor in anchors {
            let _ = fresh.handle_anchor(Some(0), anchor);
        }
        let fresh_rounds = drain(&mut fresh);
        prop_assert!(reference_rounds >= 2, "the run finalized {reference_rounds} rounds");
        prop_assert_eq!(
            fresh.state().state_root(),
            full.state().state_root(),
            "hostile input changed the state"
        );
        prop_assert!(fresh_rounds <= reference_rounds);
    }
}
