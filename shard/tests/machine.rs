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

/// Records as an in-memory log holds them: (kind, body).
type Records = Vec<(LogRecordKind, Vec<u8>)>;

/// The machine's record source over an in-memory log shared with the test,
/// which plays the driver: it appends every record the machine emits.
struct SharedLog(std::rc::Rc<std::cell::RefCell<Records>>);

impl pc_shard::machine::RecordSource for SharedLog {
    fn record_body(&self, token: u64) -> Option<Vec<u8>> {
        let log = self.0.borrow();
        let (kind, body) = log.get(usize::try_from(token).ok()?)?;
        (*kind == LogRecordKind::AnchorAccepted).then(|| body.clone())
    }
}

#[test]
fn spilled_payloads_read_back_from_the_log_give_the_same_rounds() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.submit_spread(&genesis, 40, 990);
    network.run(200_000);
    let anchors: Vec<Vec<u8>> = network.nodes[SEATS]
        .log
        .iter()
        .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
        .map(|(_, body)| body.clone())
        .collect();
    let observer = || -> Machine {
        Shard::new(
            &genesis,
            0,
            Role::Observer,
            FastVerifier,
            ShardLimits::default(),
        )
    };
    let mut plain = observer();
    let mut spilling = observer();
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    spilling.set_record_source(Box::new(SharedLog(log.clone())));
    let (mut plain_rounds, mut spilled_rounds) = (Vec::new(), Vec::new());
    for bytes in &anchors {
        plain.handle_anchor(None, bytes).unwrap();
        while plain.poll_persist().is_some() {}
        while let Some(report) = plain.poll_finalized() {
            plain_rounds.push(report);
        }
        spilling.handle_anchor(None, bytes).unwrap();
        while let Some(record) = spilling.poll_persist() {
            assert_eq!(record.token as usize, log.borrow().len());
            log.borrow_mut().push((record.kind, record.body));
        }
        let appended = log.borrow().len() as u64;
        spilling.handle_appended(appended);
        while let Some(report) = spilling.poll_finalized() {
            spilled_rounds.push(report);
        }
    }
    assert!(
        plain_rounds.len() >= 2,
        "only {} rounds",
        plain_rounds.len()
    );
    assert_eq!(spilled_rounds, plain_rounds);
    assert_eq!(
        spilled_rounds,
        network.nodes[SEATS].finalized[..spilled_rounds.len()]
    );
    assert_eq!(
        outcomes(&spilled_rounds)
            .iter()
            .filter(|o| **o == Outcome::Applied)
            .count(),
        40
    );
    assert_eq!(spilling.state().state_root(), plain.state().state_root());
}

/// A fork of seat `creator` at seq 0: two headers claiming different
/// rounds, signed with the seat's (fast) key, or `forged` with another.
fn fork_evidence(genesis: &Genesis, creator: u8, forged: bool) -> pc_codec::Evidence {
    use pc_codec::{AnchorBuilder, SigningKey};
    use pc_shard::sim_crypto::FastSigner;
    let header = |round: u64, signer: u8| {
        let unsigned = AnchorBuilder::new(genesis.network(), 0, creator, 0)
            .birth_round(round)
            .sign(&SigningKey::from_secret_bytes(&[1; 32]).unwrap(), &[0; 32])
            .unwrap()
            .header
            .header;
        FastSigner.sign_header(&public(10 + signer), unsigned)
    };
    pc_codec::Evidence {
        first: header(0, creator),
        second: header(1, if forged { creator + 1 } else { creator }),
    }
}

#[test]
fn relayed_evidence_is_queued_once_per_accused_seat_and_forgeries_are_refused() {
    use pc_codec::MicroEvent;
    use pc_shard::machine::SubmitRejected;
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    let seat = &mut network.nodes[0].machine;
    let evidence = |creator, forged| MicroEvent::Evidence(fork_evidence(&genesis, creator, forged));
    assert_eq!(seat.handle_micro_event(evidence(2, false)), Ok(()));
    assert_eq!(
        seat.handle_micro_event(evidence(2, false)),
        Err(SubmitRejected::EvidenceQueued { seat: 2 })
    );
    assert!(
        matches!(
            seat.handle_micro_event(evidence(1, true)),
            Err(SubmitRejected::Invalid(_))
        ),
        "forged evidence is invalid"
    );
    // Forged evidence against a seat already accused is still a forgery.
    assert!(matches!(
        seat.handle_micro_event(evidence(2, true)),
        Err(SubmitRejected::Invalid(_))
    ));
    // A forgery does not use up the seat's slot: real evidence still goes in.
    assert_eq!(seat.handle_micro_event(evidence(1, false)), Ok(()));
    let observer = &mut network.nodes[SEATS].machine;
    assert_eq!(
        observer.handle_micro_event(evidence(3, false)),
        Err(SubmitRejected::NotASeat)
    );
}
