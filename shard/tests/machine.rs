//! Four seats and an observer of one shard, wired by an instant in-memory
//! network and in-memory logs: the sans-IO machines take client transfers,
//! create, persist and gossip anchors, pull missing parents, finalize and
//! apply — and all agree. Restart from a seat's log reproduces its state.

mod common;

use common::{genesis, public, transfer, Machine, Network, SEATS};
use pc_codec::genesis::Genesis;
use pc_codec::{LogRecordKind, OutPoint};
use pc_shard::machine::{FastSeatKey, FinalizedReport, Role, Shard, ShardLimits};
use pc_shard::sim_crypto::FastVerifier;
use pc_shard::state::Outcome;

fn outcomes(reports: &[FinalizedReport]) -> Vec<Outcome> {
    reports
        .iter()
        .flat_map(|r| r.outcome.outcomes.iter().map(|(_, o)| *o))
        .collect()
}

#[test]
fn seats_and_observer_finalize_the_same_rounds_and_state() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.submit_spread(&genesis, 40, 990);
    network.run(200_000);
    let reference = &network.nodes[SEATS].finalized;
    assert!(
        reference.len() >= 2,
        "only {} rounds finalized",
        reference.len()
    );
    let applied = outcomes(reference)
        .iter()
        .filter(|o| **o == Outcome::Applied)
        .count();
    assert_eq!(applied, 40, "every transfer is finalized and applied once");
    for node in &network.nodes[..SEATS] {
        let common = node.finalized.len().min(reference.len());
        assert_eq!(
            node.finalized[..common],
            reference[..common],
            "finalized prefixes agree"
        );
    }
    let observer_state = network.nodes[SEATS].machine.state();
    assert_eq!(
        observer_state.accounted_value(),
        observer_state.genesis_supply(),
        "supply conserved"
    );
    let spent = Genesis::allocation_out_point(&genesis.network(), 0, 0);
    assert!(observer_state.utxo(&spent).is_none());
    let untouched = OutPoint {
        index: 199,
        ..spent
    };
    assert!(observer_state.utxo(&untouched).is_some());
}

#[test]
fn a_double_spend_across_seats_applies_once_everywhere() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.nodes[0]
        .machine
        .handle_micro_event(transfer(&genesis, 7, 900))
        .unwrap();
    network.nodes[1]
        .machine
        .handle_micro_event(transfer(&genesis, 7, 800))
        .unwrap();
    network.run(200_000);
    let reference = outcomes(&network.nodes[SEATS].finalized);
    assert_eq!(
        reference.iter().filter(|o| **o == Outcome::Applied).count(),
        1
    );
    assert_eq!(
        reference
            .iter()
            .filter(|o| **o == Outcome::UnknownOrSpentInput)
            .count(),
        1
    );
    for node in &network.nodes[..SEATS] {
        assert_eq!(outcomes(&node.finalized), reference);
    }
}

#[test]
fn restart_from_the_log_restores_the_same_state_and_continues() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    for output in 0..12u16 {
        network.nodes[usize::from(output) % SEATS]
            .machine
            .handle_micro_event(transfer(&genesis, output, 1_000))
            .unwrap();
    }
    network.run(200_000);
    let live = &network.nodes[0];
    let mut restarted: Machine = Shard::new(
        &genesis,
        0,
        Role::Seat {
            seat: 0,
            signer: FastSeatKey(public(10)),
        },
        FastVerifier,
        ShardLimits::default(),
    );
    restarted
        .restore(live.log.iter().map(|(kind, body)| (*kind, body.as_slice())))
        .expect("a seat's own log replays");
    assert_eq!(
        restarted.state().state_root(),
        live.machine.state().state_root()
    );
    assert_eq!(restarted.consensus().len(), live.machine.consensus().len());

    // A logged round that disagrees with the re-derived one is refused.
    let mut tampered = live.log.clone();
    let position = tampered
        .iter()
        .position(|(kind, _)| *kind == LogRecordKind::RoundFinalized)
        .unwrap();
    let last = tampered[position].1.len() - 1;
    tampered[position].1[last] ^= 1;
    let mut fresh: Machine = Shard::new(
        &genesis,
        0,
        Role::Observer,
        FastVerifier,
        ShardLimits::default(),
    );
    let error = fresh
        .restore(tampered.iter().map(|(kind, body)| (*kind, body.as_slice())))
        .unwrap_err();
    assert!(error.to_string().starts_with("round "), "{error}");
}
