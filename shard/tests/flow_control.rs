//! Flow control of own anchors: micro-events go into at most
//! `MAX_OWN_PER_ROUND` own anchors per birth round, with payloads that
//! halve from the fifth on; past the bound the mempool waits for the
//! round to advance and the seat makes only acknowledgement-only anchors.

mod common;

use common::{client, public, Machine};
use pc_codec::genesis::{Genesis, GenesisAllocation};
use pc_codec::{Decode, MicroEvent, SignedAnchor, Transfer, TxOut};
use pc_shard::machine::{
    payload_cap, Destination, FastSeatKey, Role, Shard, ShardLimits, ShardMessage,
    MAX_OWN_PER_ROUND, MIN_PAYLOAD_CAP,
};
use pc_shard::sim_crypto::{FastSigner, FastVerifier};

const RETRY_TICKS: u64 = 10;
const OUTPUTS: u16 = 3_000;

fn genesis() -> Genesis {
    let mut genesis = common::genesis();
    genesis.allocations = vec![GenesisAllocation {
        owner: client(),
        amount: u64::from(OUTPUTS) * 10,
        outputs: u32::from(OUTPUTS),
    }];
    genesis
}

fn transfer(genesis: &Genesis, output: u16) -> MicroEvent {
    let network = genesis.network();
    let mut transfer = Transfer {
        inputs: vec![Genesis::allocation_out_point(&network, 0, output)],
        outputs: vec![TxOut {
            amount: 10,
            owner: client(),
        }],
        owner: client(),
        signature: [0; 64],
    };
    transfer.signature = FastSigner.sign(&client(), &transfer.tx_id(&network));
    MicroEvent::Transfer(transfer)
}

fn seat(genesis: &Genesis, seat: u8) -> Machine {
    Shard::new(
        genesis,
        0,
        Role::Seat {
            seat,
            signer: FastSeatKey(public(10 + seat)),
        },
        FastVerifier,
        ShardLimits {
            ack_interval_ticks: 1,
            pull_retry_ticks: RETRY_TICKS,
            ..ShardLimits::default()
        },
    )
}

/// An own anchor as sent: (seq, birth round, payload events, bytes).
type Sent = (u64, u64, u16, Vec<u8>);

fn decode(bytes: &[u8]) -> (u8, u64, u64, u16) {
    let header = SignedAnchor::from_bytes(bytes).unwrap().header.header;
    (
        header.creator,
        header.seq,
        header.birth_round,
        header.payload_count,
    )
}

/// Makes `machine`'s records durable until it stops making anchors; the
/// anchors it sent, each with where it went.
fn run(machine: &mut Machine) -> Vec<(Destination, Sent)> {
    let mut sent = Vec::new();
    loop {
        let mut progressed = false;
        while let Some(record) = machine.poll_persist() {
            machine.handle_durable(record.token);
            progressed = true;
        }
        while let Some(transmit) = machine.poll_transmit() {
            if let ShardMessage::Anchor(bytes) = transmit.message {
                let (_, seq, birth_round, count) = decode(&bytes);
                sent.push((transmit.destination, (seq, birth_round, count, bytes)));
            }
        }
        if !progressed {
            return sent;
        }
    }
}

#[test]
fn payload_caps_halve_after_the_fourth_anchor_of_a_round() {
    let caps: Vec<usize> = (0..8).map(payload_cap).collect();
    assert_eq!(caps, vec![256, 256, 256, 256, 128, 64, 32, 32]);
    assert_eq!(payload_cap(MAX_OWN_PER_ROUND - 1), MIN_PAYLOAD_CAP);
    assert_eq!(payload_cap(MAX_OWN_PER_ROUND), 0);
    assert_eq!(payload_cap(u32::MAX), 0);
}

#[test]
fn a_seat_makes_at_most_the_bound_of_anchors_at_one_birth_round() {
    let genesis = genesis();
    // Seat 1's first anchor, for seat 0 to reference.
    let mut other = seat(&genesis, 1);
    other.handle_micro_event(transfer(&genesis, 0)).unwrap();
    let first = run(&mut other);
    assert_eq!(first.len(), 1);
    let mut machine = seat(&genesis, 0);
    machine.handle_tick(1);
    machine.handle_anchor(Some(1), &first[0].1 .3).unwrap();
    // A mempool far deeper than a round's worth, and no other seat moving.
    for output in 1..=1_500 {
        machine
            .handle_micro_event(transfer(&genesis, output))
            .unwrap();
    }
    let sent = run(&mut machine);
    let own: Vec<&Sent> = sent.iter().map(|(_, s)| s).collect();
    assert_eq!(own.len(), MAX_OWN_PER_ROUND as usize, "{own:?}");
    assert!(own.iter().all(|(_, round, ..)| *round == own[0].1));
    let payloads: Vec<usize> = own
        .iter()
        .map(|(_, _, count, _)| usize::from(*count))
        .collect();
    // The first acknowledged seat 1's anchor before the mempool filled;
    // the rest carry what the caps allow.
    let mut expected: Vec<usize> = (0..MAX_OWN_PER_ROUND).map(payload_cap).collect();
    expected[0] = 0;
    assert_eq!(payloads, expected);
    let carried: usize = payloads.iter().sum();
    assert_eq!(machine.mempool_len(), 1_500 - carried);
    // The round is full: the rest waits in the mempool however long, with
    // nothing new to acknowledge.
    for now in [2, 100, 10_000] {
        machine.handle_tick(now);
        assert!(run(&mut machine).is_empty(), "tick {now}");
    }
    assert_eq!(machine.mempool_len(), 1_500 - carried);
    // A new anchor of seat 1 that does not advance the round is answered
    // by an acknowledgement only.
    for (.., bytes) in &own {
        other.handle_anchor(Some(0), bytes).unwrap();
    }
    other.handle_tick(10_000);
    let answer = run(&mut other);
    assert_eq!(answer.len(), 1);
    machine.handle_anchor(Some(1), &answer[0].1 .3).unwrap();
    let ack = run(&mut machine);
    assert!(!ack.is_empty(), "seat 1's new anchor is acknowledged");
    assert!(ack
        .iter()
        .all(|(_, (_, round, count, _))| *count == 0 && *round == own[0].1));
    assert_eq!(machine.mempool_len(), 1_500 - carried);
}
