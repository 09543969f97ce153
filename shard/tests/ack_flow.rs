//! Flow control of acknowledgement-only anchors: a seat answers only once
//! a supermajority of seats (itself included) moved on since its last own
//! anchor, or once `ACK_PATIENCE_INTERVALS` acknowledgement intervals
//! passed since it (so a quiet committee stays live).

mod common;

use common::{genesis, public, transfer, Machine, SEATS};
use pc_shard::machine::{
    FastSeatKey, Role, Shard, ShardLimits, ShardMessage, ACK_PATIENCE_INTERVALS,
};
use pc_shard::sim_crypto::FastVerifier;

const INTERVAL: u64 = 2;

fn seat(seat: u8) -> Machine {
    Shard::new(
        &genesis(),
        0,
        Role::Seat {
            seat,
            signer: FastSeatKey(public(10 + seat)),
        },
        FastVerifier,
        ShardLimits {
            ack_interval_ticks: INTERVAL,
            ..ShardLimits::default()
        },
    )
}

/// Makes what `machine` persisted durable; the own anchors it sends.
fn sent_anchors(machine: &mut Machine) -> Vec<Vec<u8>> {
    while let Some(record) = machine.poll_persist() {
        machine.handle_durable(record.token);
    }
    let mut anchors = Vec::new();
    while let Some(transmit) = machine.poll_transmit() {
        if let ShardMessage::Anchor(bytes) = transmit.message {
            anchors.push(bytes);
        }
    }
    anchors
}

/// Seat 0 carries a transfer; seats 1-3 answer its anchor with their
/// first (acknowledgement-only) anchors at tick 0. Every machine and the
/// anchors: `[a0, b0, c0, d0]`.
fn first_anchors() -> (Vec<Machine>, Vec<Vec<u8>>) {
    let mut seats: Vec<Machine> = (0..SEATS as u8).map(seat).collect();
    for machine in &mut seats {
        machine.handle_tick(0);
    }
    seats[0]
        .handle_micro_event(transfer(&genesis(), 0, 10))
        .unwrap();
    let a0 = sent_anchors(&mut seats[0]);
    assert_eq!(a0.len(), 1, "a payload anchor is made at once");
    let mut anchors = vec![a0[0].clone()];
    for (index, machine) in seats.iter_mut().enumerate().skip(1) {
        machine.handle_anchor(Some(0), &a0[0]).unwrap();
        let own = sent_anchors(machine);
        assert_eq!(own.len(), 1, "seat {index}'s first anchor acknowledges a0");
        anchors.push(own[0].clone());
    }
    (seats, anchors)
}

#[test]
fn an_acknowledgement_waits_for_a_supermajority_to_move_on() {
    let (mut seats, anchors) = first_anchors();
    let b = &mut seats[1];
    // Past the pacing interval, one other seat's new anchor (c0) is not
    // enough at k = 4 (q = 3: seat 1 and one other).
    b.handle_tick(INTERVAL + 1);
    b.handle_anchor(Some(2), &anchors[2]).unwrap();
    assert!(
        sent_anchors(b).is_empty(),
        "one seat moved on: no acknowledgement-only anchor yet"
    );
    // The second (d0) makes a supermajority: seat 1 answers.
    b.handle_anchor(Some(3), &anchors[3]).unwrap();
    assert_eq!(sent_anchors(b).len(), 1, "a supermajority moved on");
}

#[test]
fn a_seat_answers_anyway_once_its_patience_is_over() {
    let (mut seats, anchors) = first_anchors();
    let b = &mut seats[1];
    b.handle_tick(INTERVAL + 1);
    b.handle_anchor(Some(2), &anchors[2]).unwrap();
    assert!(sent_anchors(b).is_empty());
    let patience_over = INTERVAL * ACK_PATIENCE_INTERVALS;
    assert!(
        b.poll_timeout().is_some_and(|at| at <= patience_over),
        "the machine asks to be woken by the time its patience is over"
    );
    b.handle_tick(patience_over - 1);
    assert!(sent_anchors(b).is_empty(), "still patient one tick before");
    b.handle_tick(patience_over);
    assert_eq!(
        sent_anchors(b).len(),
        1,
        "after {ACK_PATIENCE_INTERVALS} intervals the seat acknowledges c0 alone"
    );
}
