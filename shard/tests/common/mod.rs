//! A four-seat shard plus an observer on an instant in-memory network with
//! in-memory logs, shared by the machine-level integration tests.
#![allow(dead_code)]

use std::collections::VecDeque;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::{Decode, LogRecordKind, MicroEvent, SignedAnchor, SigningKey, Transfer, TxOut};
use pc_shard::machine::{
    Destination, FastSeatKey, FinalizedReport, Role, Shard, ShardLimits, ShardMessage,
};
use pc_shard::sim_crypto::{FastSigner, FastVerifier};

pub const SEATS: usize = 4;
pub type Machine = Shard<FastVerifier, FastSeatKey>;

pub fn public(seed: u8) -> [u8; 32] {
    SigningKey::from_secret_bytes(&[seed; 32])
        .unwrap()
        .public_key()
}

pub fn client() -> [u8; 32] {
    public(90)
}

pub fn genesis() -> Genesis {
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

pub fn transfer(genesis: &Genesis, output: u16, amount: u64) -> MicroEvent {
    let network = genesis.network();
    spend_to_client(
        genesis,
        Genesis::allocation_out_point(&network, 0, output),
        amount,
    )
}

/// A transfer of the client's `input` to the client, `amount` units.
pub fn spend_to_client(genesis: &Genesis, input: pc_codec::OutPoint, amount: u64) -> MicroEvent {
    let network = genesis.network();
    let mut transfer = Transfer {
        inputs: vec![input],
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

pub struct Node {
    pub machine: Machine,
    pub log: Vec<(LogRecordKind, Vec<u8>)>,
    pub finalized: Vec<FinalizedReport>,
}

pub struct Network {
    pub nodes: Vec<Node>,
}

impl Network {
    /// Seats 0..SEATS, then an observer at index SEATS.
    pub fn new(genesis: &Genesis) -> Self {
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

    /// Anchors of birth round `from_round` and above in `server`'s log,
    /// lowest round first, log order within a round, at most `max_count`.
    fn logged_range(&self, server: usize, from_round: u64, max_count: u32) -> Vec<Vec<u8>> {
        let mut anchors: Vec<(u64, Vec<u8>)> = self.nodes[server]
            .log
            .iter()
            .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
            .filter_map(|(_, body)| {
                let round = SignedAnchor::from_bytes(body)
                    .ok()?
                    .header
                    .header
                    .birth_round;
                (round >= from_round).then(|| (round, body.clone()))
            })
            .collect();
        anchors.sort_by_key(|(round, _)| *round);
        anchors
            .into_iter()
            .take(max_count as usize)
            .map(|(_, body)| body)
            .collect()
    }

    /// Submits `count` client transfers (genesis outputs `0..count`, paying
    /// back `amount`), spread round-robin over the seats.
    pub fn submit_spread(&mut self, genesis: &Genesis, count: u16, amount: u64) {
        for output in 0..count {
            let seat = usize::from(output) % SEATS;
            self.nodes[seat]
                .machine
                .handle_micro_event(transfer(genesis, output, amount))
                .unwrap();
        }
    }

    /// Delivers everything until the network is quiet; returns steps taken.
    pub fn run(&mut self, max_steps: usize) -> usize {
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
                ShardMessage::Announce(ids) => {
                    self.nodes[target].machine.handle_announce(from, &ids);
                }
                ShardMessage::Evidence(bytes) => {
                    if let Ok(event) = MicroEvent::from_bytes(&bytes) {
                        let _ = self.nodes[target].machine.handle_micro_event(event);
                    }
                }
                ShardMessage::GetRange {
                    from_round,
                    max_count,
                } => {
                    let requester = from.expect("ranges come from nodes") as usize;
                    for bytes in self.logged_range(target, from_round, max_count) {
                        inbox.push_back((
                            requester,
                            Some(target as u32),
                            ShardMessage::Anchor(bytes),
                        ));
                    }
                }
            }
        }
        panic!("the network did not go quiet within {max_steps} steps");
    }
}
