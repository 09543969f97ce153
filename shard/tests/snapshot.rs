//! Local snapshots (DESIGN §6.1): a machine loaded from a snapshot of
//! round s and replaying only the log after it is, section by section, the
//! machine a full replay from genesis rebuilds — and both agree with the
//! live seat on every later round, whose transfers spend outputs created
//! before s. The file format refuses a flipped byte and a foreign scope.

mod common;

use common::{genesis, public, spend_to_client, transfer, Machine, Network, SEATS};
use pc_codec::{MicroEvent, OutPoint};
use pc_shard::machine::{FastSeatKey, Role, Shard, ShardLimits};
use pc_shard::sim_crypto::FastVerifier;
use pc_shard::snapshot::{
    decode_snapshot, encode_snapshot, ShardImage, SnapshotError, SnapshotScope,
};
use pc_shard::state::Outcome;

/// A transfer spending output 0 of `previous` (a transfer).
fn spend(genesis: &pc_codec::genesis::Genesis, previous: &MicroEvent, amount: u64) -> MicroEvent {
    let MicroEvent::Transfer(previous) = previous else {
        panic!("a transfer")
    };
    let input = OutPoint {
        tx_id: previous.tx_id(&genesis.network()),
        index: 0,
    };
    spend_to_client(genesis, input, amount)
}

/// Deliveries per phase: enough for every submitted transfer to finalize.
const STEPS: usize = 200_000;

fn machine(role: Option<u8>) -> Machine {
    let genesis = genesis();
    let role = match role {
        Some(seat) => Role::Seat {
            seat,
            signer: FastSeatKey(public(10 + seat)),
        },
        None => Role::Observer,
    };
    Shard::new(&genesis, 0, role, FastVerifier, ShardLimits::default())
}

fn scope() -> SnapshotScope {
    let genesis = genesis();
    SnapshotScope {
        network: genesis.network(),
        genesis: genesis.hash(),
        shard: 0,
    }
}

#[test]
fn a_machine_from_a_snapshot_is_the_machine_a_full_replay_rebuilds() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    let first: Vec<MicroEvent> = (0..12u16).map(|o| transfer(&genesis, o, 1_000)).collect();
    for (n, event) in first.iter().enumerate() {
        network.nodes[n % SEATS]
            .machine
            .handle_micro_event(event.clone())
            .unwrap();
    }
    network.run(STEPS);
    // Snapshots of a seat and of the observer, through the file format.
    let mut taken: Vec<(usize, ShardImage)> = Vec::new();
    for index in [0, SEATS] {
        let live = &network.nodes[index];
        assert!(live.machine.snapshot_ready());
        let mut image = live.machine.snapshot_image();
        assert_eq!(image.next_token, live.log.len() as u64);
        let (file, decoded) = decode_snapshot(&encode_snapshot(scope(), &mut image), scope())
            .expect("a written snapshot reads back");
        assert_eq!(decoded, image, "the archive round-trips every section");
        assert_eq!(file.round, image.round);
        taken.push((index, decoded));
    }
    let snapshot_round = taken[0].1.round;
    assert!(
        snapshot_round != u64::MAX,
        "rounds were finalized before it"
    );
    assert!(
        !taken[0].1.state.utxos.is_empty(),
        "outputs created before the snapshot are in it"
    );

    // Later rounds spend the outputs created before the snapshot.
    for (n, event) in first.iter().enumerate() {
        network.nodes[(n + 1) % SEATS]
            .machine
            .handle_micro_event(spend(&genesis, event, 900))
            .unwrap();
    }
    network.run(STEPS);
    let later_applied = network.nodes[SEATS]
        .finalized
        .iter()
        .filter(|report| report.round.round > snapshot_round)
        .flat_map(|report| report.outcome.outcomes.iter())
        .filter(|(_, outcome)| *outcome == Outcome::Applied)
        .count();
    assert_eq!(later_applied, first.len(), "every later spend applied");

    for (index, image) in taken {
        let live = &network.nodes[index];
        let seat = (index < SEATS).then_some(index as u8);
        let after = image.next_token as usize;
        let mut from_snapshot = machine(seat);
        from_snapshot.load_image(image).expect("the image loads");
        from_snapshot
            .restore(live.log[after..].iter().map(|(k, b)| (*k, b.as_slice())))
            .expect("the log after the snapshot replays and matches every logged round");
        let mut from_genesis = machine(seat);
        from_genesis
            .restore(live.log.iter().map(|(k, b)| (*k, b.as_slice())))
            .expect("the whole log replays");
        let mut a = from_snapshot.snapshot_image();
        let mut b = from_genesis.snapshot_image();
        a.normalize();
        b.normalize();
        assert_eq!(a.state, b.state, "UTXOs and roots agree");
        assert_eq!(a.consensus, b.consensus, "frontier and window agree");
        let (am, bm) = (&a.machine, &b.machine);
        assert!(
            am.unfinalized == bm.unfinalized,
            "unfinalized anchors agree"
        );
        assert!(am.reincluded == bm.reincluded, "reincluded agree");
        assert!(am.first_headers == bm.first_headers, "fork headers agree");
        assert_eq!(am.evidence_queued, bm.evidence_queued);
        assert_eq!(am.pruned_floor, bm.pruned_floor);
        assert_eq!(am.top_round, bm.top_round);
        assert_eq!(am.seat, bm.seat, "the seat's chain agrees");
        assert!(a == b);
    }
}

#[test]
fn a_damaged_or_foreign_snapshot_is_refused_and_a_seat_needs_its_chain() {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.submit_spread(&genesis, 8, 990);
    network.run(STEPS);
    let mut image = network.nodes[1].machine.snapshot_image();
    let bytes = encode_snapshot(scope(), &mut image);
    // Any single flipped byte is caught (archive validation, header
    // checks or the recomputed root).
    for position in (0..bytes.len()).step_by(bytes.len() / 48 + 1) {
        let mut damaged = bytes.clone();
        damaged[position] ^= 0x10;
        assert!(
            decode_snapshot(&damaged, scope()).is_err(),
            "byte {position} flipped was not noticed"
        );
    }
    assert!(decode_snapshot(&bytes[..bytes.len() / 2], scope()).is_err());
    let other_shard = SnapshotScope {
        shard: 1,
        ..scope()
    };
    assert!(matches!(
        decode_snapshot(&bytes, other_shard),
        Err(SnapshotError::Foreign { what: "shard", .. })
    ));
    let other_genesis = SnapshotScope {
        genesis: [9; 32],
        ..scope()
    };
    assert!(matches!(
        decode_snapshot(&bytes, other_genesis),
        Err(SnapshotError::Foreign {
            what: "genesis",
            ..
        })
    ));
    // An observer's image has no seat chain: a seat refuses it.
    let observer_image = network.nodes[SEATS].machine.snapshot_image();
    assert!(matches!(
        machine(Some(2)).load_image(observer_image),
        Err(SnapshotError::Image(_))
    ));
    // Another seat's image is refused by seat 2 as well.
    assert!(machine(Some(2)).load_image(image.clone()).is_err());
    // The seat's own last seq comes back from the snapshot.
    let mut restarted = machine(Some(1));
    let own_last = image.own_last_seq();
    assert!(own_last.is_some());
    restarted.load_image(image).unwrap();
    assert_eq!(
        restarted.snapshot_image().own_last_seq(),
        own_last,
        "the seat continues after its last own seq"
    );
}
