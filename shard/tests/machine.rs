//! Four seats and an observer of one shard, wired by an instant in-memory
//! network and in-memory logs: the sans-IO machines take client transfers,
//! create, persist and gossip anchors, pull missing parents, finalize and
//! apply — and all agree. Restart from a seat's log reproduces its state.

use std::collections::VecDeque;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::{
    Decode, LogRecordKind, MicroEvent, OutPoint, SignedAnchor, SigningKey, Transfer, TxOut,
};
use pc_shard::machine::{
    Destination, FastSeatKey, FinalizedReport, Role, Shard, ShardLimits, ShardMessage,
};
use pc_shard::sim_crypto::{FastSigner, FastVerifier};
use pc_shard::state::Outcome;

const SEATS: usize = 4;
type Machine = Shard<FastVerifier, FastSeatKey>;

fn public(seed: u8) -> [u8; 32] {
    SigningKey::from_secret_bytes(&[seed; 32])
        .unwrap()
        .public_key()
}

fn client() -> [u8; 32] {
    public(90)
}

fn genesis() -> Genesis {
    Genesis {
        params: ConsensusParams::v0(SEATS as u8, 1),
        note_commitment: [1; 32],
        validators: (0..SEATS as u8)
            .map(|seat| GenesisValidator {
                key: public(10 + seat),
                bond: 100,
                seats: vec![SeatAssignment { shard: 0, seat }],
            })
            .collect(),
        allocations: vec![GenesisAllocation {
            owner: client(),
            amount: 1_000,
            outputs: 200,
        }],
    }
}

fn transfer(genesis: &Genesis, output: u16, amount: u64) -> MicroEvent {
    let network = genesis.network();
    let mut transfer = Transfer {
        inputs: vec![Genesis::allocation_out_point(&network, 0, output)],
        outputs: vec![TxOut {
            amount,
            owner: client(),
        }],
        owner: client(),
        signature: [0; 64],
    };
    transfer.signature = FastSigner.sign(&client(), &transfer.tx_id(&network));
    MicroEvent::Transfer(transfer)
}

struct Node {
    machine: Machine,
    log: Vec<(LogRecordKind, Vec<u8>)>,
    finalized: Vec<FinalizedReport>,
}

struct Network {
    nodes: Vec<Node>,
}

impl Network {
    /// Seats 0..SEATS, then an observer at index SEATS.
    fn new(genesis: &Genesis) -> Self {
        let mut nodes: Vec<Node> = (0..SEATS as u8)
            .map(|seat| Node {
                machine: Shard::new(
                    genesis,
                    0,
                    Role::Seat {
                        seat,
                        signer: FastSeatKey(public(10 + seat)),
                    },
                    FastVerifier,
                    ShardLimits::default(),
                ),
                log: Vec::new(),
                finalized: Vec::new(),
            })
            .collect();
        nodes.push(Node {
            machine: Shard::new(
                genesis,
                0,
                Role::Observer,
                FastVerifier,
                ShardLimits::default(),
            ),
            log: Vec::new(),
            finalized: Vec::new(),
        });
        Network { nodes }
    }

    fn find_logged(&self, id: &[u8; 32]) -> Option<Vec<u8>> {
        self.nodes
            .iter()
            .flat_map(|n| &n.log)
            .find_map(|(kind, body)| {
                (*kind == LogRecordKind::AnchorAccepted
                    && SignedAnchor::from_bytes(body).ok()?.anchor_id() == *id)
                    .then(|| body.clone())
            })
    }

    /// Delivers everything until the network is quiet; returns steps taken.
    fn run(&mut self, max_steps: usize) -> usize {
        let mut inbox: VecDeque<(usize, Option<u32>, ShardMessage)> = VecDeque::new();
        for step in 0..max_steps {
            let count = self.nodes.len();
            for index in 0..count {
                let node = &mut self.nodes[index];
                while let Some(record) = node.machine.poll_persist() {
                    node.log.push((record.kind, record.body));
                    node.machine.handle_durable(record.token);
                }
                while let Some(report) = node.machine.poll_finalized() {
                    node.finalized.push(report);
                }
                while let Some(transmit) = node.machine.poll_transmit() {
                    let targets: Vec<usize> = match transmit.destination {
                        Destination::Broadcast => (0..count).filter(|t| *t != index).collect(),
                        Destination::Peer(peer) => vec![peer as usize],
                    };
                    for target in targets {
                        inbox.push_back((target, Some(index as u32), transmit.message.clone()));
                    }
                }
            }
            let Some((target, from, message)) = inbox.pop_front() else {
                return step;
            };
            match message {
                ShardMessage::Anchor(bytes) => {
                    self.nodes[target]
                        .machine
                        .handle_anchor(from, &bytes)
                        .expect("honest anchors are accepted");
                }
                ShardMessage::Get(ids) => {
                    let requester = from.expect("gets come from nodes") as usize;
                    for id in ids {
                        if let Some(bytes) = self.find_logged(&id) {
                            inbox.push_back((
                                requester,
                                Some(target as u32),
                                ShardMessage::Anchor(bytes),
                            ));
                        }
                    }
                }
            }
        }
        panic!("the network did not go quiet within {max_steps} steps");
    }
}

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
    for output in 0..40u16 {
        let seat = usize::from(output) % SEATS;
        network.nodes[seat]
            .machine
            .handle_micro_event(transfer(&genesis, output, 990))
            .unwrap();
    }
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
