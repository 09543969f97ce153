//! Catch-up is the machine's decision: a machine whose DAG ends rounds
//! below its committee, or that holds many anchors whose parents it lacks,
//! asks one peer at a time (round-robin over the peers that sent it valid
//! anchors) for a range of rounds from where its DAG ends, at most once
//! per `catch_up_interval_ticks` of the time it is given, and a seat too
//! far behind to sign anchors its peers could still insert signs nothing
//! until it caught up. A missing parent below the rounds being decided
//! (a seat's chain that peers never received) is asked for as a range of
//! the peer that sent its child, and a seat whose own unheard chain would
//! turn ancient at its peers extends it no further (it signs only an
//! anchor that cuts it) unless the committee stands still.

mod common;

use common::{Machine, SEATS};
use pc_codec::genesis::{ConsensusParams, Genesis, GenesisValidator, SeatAssignment};
use pc_codec::{Decode, Encode, LogRecordKind, SignedAnchor};
use pc_shard::machine::{
    AnchorStatus, Destination, FastSeatKey, PeerId, Role, Shard, ShardLimits, ShardMessage,
};
use pc_shard::sim_crypto::FastVerifier;

/// Rounds of DAG a range request may lag by (the limit under test).
const LAG_ROUNDS: u64 = 3;
/// Pending anchors per seat (times k in all) at which a range is asked
/// for however few rounds the machine lags (the limit under test).
const PENDING_PER_SEAT: usize = 3;
/// Ticks between two range requests (the limit under test).
const INTERVAL_TICKS: u64 = 10;
/// Anchors one range request asks for.
const RANGE_ANCHORS: u32 = 100;

/// Waves of a recorded run: each seat hears the anchors of the wave
/// before, takes one tick and answers; one client transfer a wave.
const WAVES: u16 = 60;

/// Seats in the genesis: four run, the fifth joins late (a committee of
/// five makes progress with four).
const GENESIS_SEATS: u8 = 5;

/// A five-seat genesis with a short non-ancient window (`G = 4`), so that
/// a run long enough to leave a machine `G` rounds behind stays short.
fn genesis() -> Genesis {
    let mut genesis = common::genesis();
    genesis.params = ConsensusParams::v0(GENESIS_SEATS, 1);
    genesis.params.ancient_window_rounds = 4;
    genesis.validators = (0..GENESIS_SEATS)
        .map(|seat| GenesisValidator {
            key: common::public(10 + seat),
            bond: 100,
            seats: vec![SeatAssignment { shard: 0, seat }],
        })
        .collect();
    genesis
}

/// Pull retries (and so announces) far apart: the only timer left within
/// a few intervals is catch-up's.
fn limits() -> ShardLimits {
    ShardLimits {
        pull_retry_ticks: 1_000,
        catch_up_lag_rounds: LAG_ROUNDS,
        catch_up_pending_per_seat: PENDING_PER_SEAT,
        catch_up_interval_ticks: INTERVAL_TICKS,
        catch_up_anchors: RANGE_ANCHORS,
        ..ShardLimits::default()
    }
}

/// The anchors of a run of the first four seats in lock-step waves, in the order they
/// were made (parents first), with their creators and birth rounds.
fn recorded_anchors(genesis: &Genesis) -> Vec<(u8, u64, Vec<u8>)> {
    let mut seats: Vec<Machine> = (0..SEATS as u8)
        .map(|seat| {
            let role = Role::Seat {
                seat,
                signer: FastSeatKey(common::public(10 + seat)),
            };
            let limits = ShardLimits {
                ack_interval_ticks: 1,
                ..ShardLimits::default()
            };
            Shard::new(genesis, 0, role, FastVerifier, limits)
        })
        .collect();
    let mut made: Vec<(u8, u64, Vec<u8>)> = Vec::new();
    let mut last_wave = 0;
    for wave in 0..WAVES {
        let seat = usize::from(wave) % SEATS;
        seats[seat]
            .handle_micro_event(common::transfer(genesis, wave, 990))
            .unwrap();
        let heard = made.len();
        for (index, machine) in seats.iter_mut().enumerate() {
            for (creator, _, bytes) in &made[last_wave..] {
                if usize::from(*creator) != index {
                    machine
                        .handle_anchor(Some(u32::from(*creator)), bytes)
                        .unwrap();
                }
            }
            machine.handle_tick(u64::from(wave));
            while let Some(record) = machine.poll_persist() {
                machine.handle_durable(record.token);
            }
            while let Some(transmit) = machine.poll_transmit() {
                if let ShardMessage::Anchor(bytes) = transmit.message {
                    let header = SignedAnchor::from_bytes(&bytes).unwrap().header.header;
                    made.push((header.creator, header.birth_round, bytes));
                }
            }
        }
        last_wave = heard;
    }
    made
}

fn observer(genesis: &Genesis, limits: ShardLimits) -> Machine {
    Shard::new(genesis, 0, Role::Observer, FastVerifier, limits)
}

/// A fresh machine hears, from peers 7, 8 and 9 in turn, the anchors of
/// seats other than `skip_seat` born in the run's last `rounds` rounds:
/// its DAG is empty, its committee that many rounds ahead.
fn hear_the_newest(
    machine: &mut Machine,
    anchors: &[(u8, u64, Vec<u8>)],
    rounds: u64,
    skip_seat: Option<u8>,
) {
    let top = anchors.iter().map(|(_, round, _)| *round).max().unwrap();
    let newest = anchors
        .iter()
        .filter(|(creator, round, _)| *round + rounds > top && Some(*creator) != skip_seat);
    for (index, (_, _, bytes)) in newest.enumerate() {
        let peer = 7 + (index % 3) as PeerId;
        machine.handle_anchor(Some(peer), bytes).unwrap();
    }
}

/// The range requests among the machine's transmits: (peer, from round,
/// anchors asked for).
fn ranges_sent(machine: &mut Machine) -> Vec<(PeerId, u64, u32)> {
    std::iter::from_fn(|| machine.poll_transmit())
        .filter_map(|transmit| match (transmit.destination, transmit.message) {
            (
                Destination::Peer(peer),
                ShardMessage::GetRange {
                    from_round,
                    max_count,
                },
            ) => Some((peer, from_round, max_count)),
            (_, ShardMessage::GetRange { .. }) => panic!("a range request goes to one peer"),
            _ => None,
        })
        .collect()
}

#[test]
fn a_machine_behind_its_committee_asks_one_peer_per_interval_in_turn() {
    let genesis = genesis();
    let anchors = recorded_anchors(&genesis);
    let mut machine = observer(&genesis, limits());
    hear_the_newest(&mut machine, &anchors, 2, None);
    assert!(
        machine.lag_rounds() >= 10,
        "the run is long enough: {} rounds behind",
        machine.lag_rounds()
    );
    machine.handle_tick(100);
    // The DAG is empty: the range starts at round 0.
    assert_eq!(ranges_sent(&mut machine), vec![(7, 0, RANGE_ANCHORS)]);
    assert_eq!(machine.poll_timeout(), Some(100 + INTERVAL_TICKS));
    for now in 101..110 {
        machine.handle_tick(now);
        assert_eq!(ranges_sent(&mut machine), vec![], "tick {now}");
    }
    let mut asked = Vec::new();
    for now in [110, 115, 120, 130, 140] {
        machine.handle_tick(now);
        asked.extend(
            ranges_sent(&mut machine)
                .into_iter()
                .map(|(peer, ..)| (now, peer)),
        );
    }
    assert_eq!(asked, vec![(110, 8), (120, 9), (130, 7), (140, 8)]);
    assert_eq!(machine.catch_up_requests(), 5);
    assert_eq!(machine.sync_stats().catch_up_requests, 5);
}

#[test]
fn a_range_starts_where_the_dag_ends_and_stops_once_caught_up() {
    let genesis = genesis();
    let anchors = recorded_anchors(&genesis);
    let top = anchors.iter().map(|(_, round, _)| *round).max().unwrap();
    let mut machine = observer(&genesis, limits());
    // The answer to a first range: every anchor up to round 5, in order.
    for (_, _, bytes) in anchors.iter().filter(|(_, round, _)| *round <= 5) {
        machine.handle_anchor(Some(8), bytes).unwrap();
    }
    hear_the_newest(&mut machine, &anchors, 2, None);
    machine.handle_tick(1);
    let asked = ranges_sent(&mut machine);
    assert_eq!(asked.len(), 1);
    let (_, from_round, _) = asked[0];
    assert!(
        (4..=5).contains(&from_round),
        "from round {from_round}: where the DAG ends (5), or the round before the lowest undecided"
    );
    // Everything else arrives: in step with the committee, it asks no more.
    for (_, _, bytes) in &anchors {
        machine.handle_anchor(Some(8), bytes).unwrap();
    }
    assert_eq!(machine.lag_rounds(), 0, "caught up to round {top}");
    for now in (2..200).step_by(5) {
        machine.handle_tick(now);
        assert_eq!(ranges_sent(&mut machine), vec![], "tick {now}");
    }
    assert_eq!(machine.catch_up_requests(), 1);
}

/// An observer whose DAG ends `LAG_ROUNDS - 1` rounds below the run's top,
/// holding the anchors of the top round pending.
fn a_few_rounds_behind(genesis: &Genesis, limits: ShardLimits) -> Machine {
    let anchors = recorded_anchors(genesis);
    let top = anchors.iter().map(|(_, round, _)| *round).max().unwrap();
    let mut machine = observer(genesis, limits);
    let cut = top + 2 - LAG_ROUNDS;
    for (_, _, bytes) in anchors.iter().filter(|(_, round, _)| *round < cut) {
        machine.handle_anchor(Some(8), bytes).unwrap();
    }
    hear_the_newest(&mut machine, &anchors, 1, None);
    assert_eq!(machine.lag_rounds(), LAG_ROUNDS - 1);
    machine
}

#[test]
fn a_machine_a_few_rounds_behind_pulls_and_asks_no_range() {
    let genesis = genesis();
    let mut machine = a_few_rounds_behind(&genesis, limits());
    assert!(machine.pending_anchors() < PENDING_PER_SEAT * usize::from(GENESIS_SEATS));
    for now in (0..200).step_by(5) {
        machine.handle_tick(now);
        assert_eq!(ranges_sent(&mut machine), vec![], "tick {now}");
    }
}

#[test]
fn k_times_the_pending_limit_per_seat_asks_for_a_range_however_few_rounds_behind() {
    let genesis = genesis();
    let k = usize::from(GENESIS_SEATS);
    let pending = a_few_rounds_behind(&genesis, limits()).pending_anchors();
    assert!(pending >= k, "{pending} pending");
    // `per_seat * k <= pending < (per_seat + 1) * k`.
    let per_seat = pending / k;
    let mut machine = a_few_rounds_behind(
        &genesis,
        ShardLimits {
            catch_up_pending_per_seat: per_seat,
            ..limits()
        },
    );
    machine.handle_tick(0);
    assert_eq!(ranges_sent(&mut machine).len(), 1);
    let mut machine = a_few_rounds_behind(
        &genesis,
        ShardLimits {
            catch_up_pending_per_seat: per_seat + 1,
            ..limits()
        },
    );
    machine.handle_tick(0);
    assert_eq!(ranges_sent(&mut machine), vec![]);
}

#[test]
fn no_range_is_asked_with_catch_up_anchors_zero() {
    let genesis = genesis();
    let anchors = recorded_anchors(&genesis);
    let mut machine = observer(
        &genesis,
        ShardLimits {
            catch_up_anchors: 0,
            ..limits()
        },
    );
    hear_the_newest(&mut machine, &anchors, 2, None);
    assert!(machine.lag_rounds() >= LAG_ROUNDS);
    for now in (0..200).step_by(5) {
        machine.handle_tick(now);
        assert_eq!(ranges_sent(&mut machine), vec![], "tick {now}");
    }
    assert_eq!(machine.catch_up_requests(), 0);
}

#[test]
fn a_seat_more_than_the_window_behind_signs_nothing_until_it_caught_up() {
    let genesis = genesis();
    let window = u64::from(genesis.params.ancient_window_rounds);
    let anchors = recorded_anchors(&genesis);
    let top = anchors.iter().map(|(_, round, _)| *round).max().unwrap();
    let late = GENESIS_SEATS - 1;
    let mut seat = Shard::new(
        &genesis,
        0,
        Role::Seat {
            seat: late,
            signer: FastSeatKey(common::public(10 + late)),
        },
        FastVerifier,
        limits(),
    );
    hear_the_newest(&mut seat, &anchors, 2, None);
    assert!(seat.lag_rounds() > window);
    seat.handle_micro_event(common::transfer(&genesis, WAVES + 1, 990))
        .unwrap();
    seat.handle_tick(1);
    let own_rounds = |seat: &mut Machine| -> Vec<u64> {
        std::iter::from_fn(|| seat.poll_persist())
            .filter(|record| record.kind == LogRecordKind::AnchorAccepted)
            .map(|record| {
                SignedAnchor::from_bytes(&record.body)
                    .unwrap()
                    .header
                    .header
            })
            .filter(|header| header.creator == late)
            .map(|header| header.birth_round)
            .collect()
    };
    assert_eq!(
        own_rounds(&mut seat),
        Vec::<u64>::new(),
        "no own anchor while far behind"
    );
    assert_eq!(seat.mempool_len(), 1);
    // Catching up, it signs again once at most G rounds behind: the
    // transfer leaves the mempool in its first own anchor.
    for (_, _, bytes) in &anchors {
        seat.handle_anchor(Some(8), bytes).unwrap();
    }
    assert_eq!(seat.lag_rounds(), 0);
    let signed = own_rounds(&mut seat);
    assert_eq!(signed.len(), 1, "own anchors born in rounds {signed:?}");
    assert!(
        signed[0] + window >= top,
        "born in round {}, the committee at {top}",
        signed[0]
    );
    assert_eq!(seat.mempool_len(), 0);
}

/// The late fifth seat's machine.
fn late_seat(genesis: &Genesis) -> Machine {
    let late = GENESIS_SEATS - 1;
    Shard::new(
        genesis,
        0,
        Role::Seat {
            seat: late,
            signer: FastSeatKey(common::public(10 + late)),
        },
        FastVerifier,
        limits(),
    )
}

/// The late seat's own anchors among its records: (seq, birth round,
/// self-parent's birth round, bytes).
fn own_anchors(seat: &mut Machine) -> Vec<(u64, u64, Option<u64>, Vec<u8>)> {
    let late = GENESIS_SEATS - 1;
    std::iter::from_fn(|| seat.poll_persist())
        .filter(|record| record.kind == LogRecordKind::AnchorAccepted)
        .filter_map(|record| {
            let header = SignedAnchor::from_bytes(&record.body)
                .unwrap()
                .header
                .header;
            let self_parent = header
                .parents
                .first()
                .filter(|p| p.creator == late)
                .map(|p| p.birth_round);
            (header.creator == late).then_some((
                header.seq,
                header.birth_round,
                self_parent,
                record.body,
            ))
        })
        .collect()
}

/// Hands the machine `anchors` of birth rounds in `rounds` from peer 8.
fn hear_rounds(
    machine: &mut Machine,
    anchors: &[(u8, u64, Vec<u8>)],
    rounds: std::ops::RangeInclusive<u64>,
) {
    for (_, _, bytes) in anchors
        .iter()
        .filter(|(_, round, _)| rounds.contains(round))
    {
        machine.handle_anchor(Some(8), bytes).unwrap();
    }
}

/// The late seat hears rounds up to 5 and takes a transfer; its anchors
/// become durable (so it signs on) until the one carrying the transfer,
/// which it keeps waiting for durability: it signs nothing more until the
/// test says so. Returns the seat and that anchor, the foot of its chain
/// (its self-parent, if any, is relatively ancient).
fn late_seat_with_a_first_anchor(
    genesis: &Genesis,
    anchors: &[(u8, u64, Vec<u8>)],
) -> (Machine, (u64, u64, Option<u64>, Vec<u8>)) {
    let window = u64::from(genesis.params.ancient_window_rounds);
    let mut seat = late_seat(genesis);
    hear_rounds(&mut seat, anchors, 0..=5);
    seat.handle_micro_event(common::transfer(genesis, WAVES + 1, 990))
        .unwrap();
    seat.handle_tick(1);
    for _ in 0..16 {
        for anchor in own_anchors(&mut seat) {
            let carried = SignedAnchor::from_bytes(&anchor.3)
                .unwrap()
                .payload
                .events
                .len();
            if carried > 0 {
                let (_, birth, self_parent, _) = &anchor;
                assert!(
                    self_parent.is_none_or(|parent| parent + window + 1 < *birth),
                    "the transfer's anchor (round {birth}) starts its chain"
                );
                while seat.poll_transmit().is_some() {}
                return (seat, anchor);
            }
        }
        seat.handle_durable(u64::MAX);
    }
    panic!("the late seat never carried its transfer");
}

#[test]
fn a_seat_whose_unheard_chain_would_turn_ancient_signs_only_an_anchor_that_cuts_it() {
    let genesis = genesis();
    let window = u64::from(genesis.params.ancient_window_rounds);
    let anchors = recorded_anchors(&genesis);
    // Its first anchor no other seat names as a parent (a partition).
    let (mut seat, (_, first_birth, _, _)) = late_seat_with_a_first_anchor(&genesis, &anchors);
    // The committee moves more than G rounds past it: the DAG to round
    // first + G + 1, the newest anchors of two seats two rounds above
    // (pending, but they set the committee's round).
    let top = first_birth + window + 1;
    hear_rounds(&mut seat, &anchors, 6..=top - 1);
    for (_, _, bytes) in anchors
        .iter()
        .filter(|(creator, round, _)| *round == top + 1 && *creator < 2)
    {
        seat.handle_anchor(Some(8), bytes).unwrap();
    }
    assert!(
        seat.lag_rounds() <= window,
        "not too far behind to sign at all"
    );
    seat.handle_micro_event(common::transfer(&genesis, WAVES + 2, 990))
        .unwrap();
    // Its first anchor becomes durable: it may sign again.
    seat.handle_durable(u64::MAX);
    seat.handle_tick(2);
    // Its next anchor would be born at most G + 1 rounds above the first
    // (so it would need it, and peers past first + 2G + 1 refuse that as
    // ancient): it holds.
    assert_eq!(own_anchors(&mut seat), vec![], "held");
    assert_eq!(seat.mempool_len(), 1);
    // Once its next anchor cuts the chain, it signs.
    hear_rounds(&mut seat, &anchors, top..=top + 1);
    let signed = own_anchors(&mut seat);
    assert_eq!(signed.len(), 1);
    let (_, birth, self_parent, _) = &signed[0];
    assert_eq!(*self_parent, Some(first_birth));
    assert!(
        *birth > first_birth + window + 1,
        "born in round {birth}: the chain is cut above {first_birth}"
    );
    assert_eq!(seat.mempool_len(), 0);
}

#[test]
fn a_held_seat_signs_once_the_committee_stands_still() {
    let genesis = genesis();
    let window = u64::from(genesis.params.ancient_window_rounds);
    let anchors = recorded_anchors(&genesis);
    let (mut seat, (_, first_birth, _, _)) = late_seat_with_a_first_anchor(&genesis, &anchors);
    let top = first_birth + window + 1;
    hear_rounds(&mut seat, &anchors, 6..=top - 1);
    for (_, _, bytes) in anchors
        .iter()
        .filter(|(creator, round, _)| *round == top + 1 && *creator < 2)
    {
        seat.handle_anchor(Some(8), bytes).unwrap();
    }
    seat.handle_micro_event(common::transfer(&genesis, WAVES + 2, 990))
        .unwrap();
    seat.handle_durable(u64::MAX);
    seat.handle_tick(2);
    assert_eq!(own_anchors(&mut seat), vec![], "held");
    // The committee's round has not moved since tick 1 (its anchors came
    // then): after the patience (10 pull retries) the seat signs anyway,
    // extending its chain (no peer decides rounds, so its foot stays
    // insertable).
    let patience = limits().pull_retry_ticks * pc_shard::machine::CHAIN_HOLD_PATIENCE_RETRIES;
    let due = seat.poll_timeout().expect("a held seat has a timer");
    assert!(due <= 1 + patience, "due at {due}");
    seat.handle_tick(1 + patience - 1);
    assert_eq!(
        own_anchors(&mut seat),
        vec![],
        "held until the patience ran out"
    );
    seat.handle_tick(1 + patience);
    let signed = own_anchors(&mut seat);
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0].2, Some(first_birth), "the chain is extended");
    assert!(signed[0].1 <= first_birth + window + 1);
}

#[test]
fn a_missing_parent_below_the_decided_rounds_asks_the_sender_for_a_range_from_it() {
    let genesis = genesis();
    let window = u64::from(genesis.params.ancient_window_rounds);
    let anchors = recorded_anchors(&genesis);
    let (mut seat, (_, first_birth, _, first_bytes)) =
        late_seat_with_a_first_anchor(&genesis, &anchors);
    // The late seat hears up to G rounds past its first anchor and, once
    // that is durable, signs a second on top of it (no hold: the
    // committee is within G of it).
    let top = first_birth + window;
    hear_rounds(&mut seat, &anchors, 6..=top);
    seat.handle_micro_event(common::transfer(&genesis, WAVES + 2, 990))
        .unwrap();
    seat.handle_durable(u64::MAX);
    seat.handle_tick(2);
    let second = own_anchors(&mut seat);
    assert_eq!(second.len(), 1);
    let (_, second_birth, self_parent, second_bytes) = second.into_iter().next().unwrap();
    assert_eq!(self_parent, Some(first_birth));
    // An observer in step with the committee (rounds decided past the
    // first anchor's) gets the second one from peer 9, but never the first.
    let mut observer = observer(&genesis, limits());
    hear_rounds(&mut observer, &anchors, 0..=second_birth + 2);
    assert!(observer.consensus().next_undecided_round() > first_birth);
    while observer.poll_transmit().is_some() {}
    observer.handle_tick(3);
    while observer.poll_transmit().is_some() {}
    observer.handle_anchor(Some(9), &second_bytes).unwrap();
    // One round trip: a range from the round below the missing parent's,
    // asked of the peer that sent the child.
    assert_eq!(
        ranges_sent(&mut observer),
        vec![(9, first_birth - 1, RANGE_ANCHORS)]
    );
    observer.handle_anchor(Some(9), &first_bytes).unwrap();
    assert_eq!(observer.pending_anchors(), 0, "the chain is inserted");
    assert_eq!(observer.catch_up_requests(), 1, "one range in all");
}

/// `bytes` with its signature changed: a forgery with the same id.
fn forged(bytes: &[u8]) -> Vec<u8> {
    let mut anchor = SignedAnchor::from_bytes(bytes).unwrap();
    anchor.header.signature[0] ^= 1;
    anchor.to_bytes()
}

#[test]
fn a_full_pending_set_defers_an_anchor_ranked_above_it_unchecked() {
    let genesis = genesis();
    let anchors = recorded_anchors(&genesis);
    let top = anchors.iter().map(|(_, round, _)| *round).max().unwrap();
    let limits = ShardLimits {
        max_pending_anchors: 10,
        ..limits()
    };
    let mut machine = observer(&genesis, limits);
    // An empty DAG: the anchors of rounds top - 3 .. top - 1 all miss
    // parents; each of the four running seats fills its share (2 of 10).
    hear_rounds(&mut machine, &anchors, top - 3..=top - 1);
    assert_eq!(machine.pending_anchors(), 8);
    // A forgery ranked above every pending anchor is not even checked
    // (nor were the later anchors of the rounds heard).
    let deferred = machine.sync_stats().deferred;
    assert!(deferred > 0);
    let (_, _, newest) = anchors
        .iter()
        .rev()
        .find(|(_, round, _)| *round == top)
        .unwrap();
    assert_eq!(
        machine.handle_anchor(Some(8), &forged(newest)),
        Ok(AnchorStatus::Deferred)
    );
    assert_eq!(machine.sync_stats().deferred, deferred + 1);
    // One ranked below them is checked (and refused), as is any anchor
    // while the pending set has room.
    let (_, _, low) = anchors.iter().find(|(_, round, _)| *round == 2).unwrap();
    assert!(machine.handle_anchor(Some(8), &forged(low)).is_err());
    let mut roomy = observer(&genesis, limits);
    assert!(roomy.handle_anchor(Some(8), &forged(newest)).is_err());
    assert_eq!(machine.sync_stats().deferred, deferred + 1);
}
