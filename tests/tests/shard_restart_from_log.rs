//! A seat's state machine writes its records to a real pc-storage log; after
//! the log is closed and recovered, a fresh machine restored from it reaches
//! exactly the same state root, and the seat goes on signing at the next seq.

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::{
    Bip340, Decode, LogRecordKind, MicroEvent, SignedAnchor, SigningKey, TransferBuilder,
};
use pc_shard::machine::{Role, Shard, ShardLimits, ShardMessage};
use pc_storage::{Durability, Log, LogConfig};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
}

fn genesis() -> Genesis {
    Genesis {
        params: ConsensusParams::v0(1, 1),
        note_commitment: [2; 32],
        validators: vec![GenesisValidator {
            key: key(1).public_key(),
            bond: 10,
            seats: vec![SeatAssignment { shard: 0, seat: 0 }],
        }],
        allocations: vec![GenesisAllocation {
            owner: key(2).public_key(),
            amount: 500,
            outputs: 16,
        }],
    }
}

fn seat(genesis: &Genesis) -> Shard<Bip340, SigningKey> {
    Shard::new(
        genesis,
        0,
        Role::Seat {
            seat: 0,
            signer: key(1),
        },
        Bip340,
        ShardLimits::default(),
    )
}

/// Feeds `machine`'s records to `log`, reporting durability after each sync;
/// returns the own anchors it sent.
fn drive(machine: &mut Shard<Bip340, SigningKey>, log: &mut Log) -> usize {
    let mut sent = 0;
    loop {
        let mut progressed = false;
        while let Some(record) = machine.poll_persist() {
            log.append(record.kind as u8, &record.body).unwrap();
            log.sync().unwrap();
            machine.handle_durable(record.token);
            progressed = true;
        }
        while let Some(transmit) = machine.poll_transmit() {
            assert!(matches!(transmit.message, ShardMessage::Anchor(_)));
            sent += 1;
            progressed = true;
        }
        while machine.poll_finalized().is_some() {}
        if !progressed {
            return sent;
        }
    }
}

#[test]
fn restored_seat_matches_the_live_one_and_continues() {
    let genesis = genesis();
    let network = genesis.network();
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024,
        durability: Durability::Always,
        max_record_bytes: 16 * 1024,
    };
    let mut live = seat(&genesis);
    let (mut log, _) = Log::open(dir.path(), config).unwrap();
    for output in 0..10u16 {
        let transfer = TransferBuilder::new()
            .input(Genesis::allocation_out_point(&network, 0, output))
            .output(490, key(2).public_key())
            .sign(&network, &key(2), &[0; 32])
            .unwrap();
        live.handle_micro_event(MicroEvent::Transfer(transfer))
            .unwrap();
        assert!(
            drive(&mut live, &mut log) >= 1,
            "each transfer leads to an own anchor"
        );
    }
    let live_root = live.state().state_root();
    assert_ne!(live_root, genesis.hash(), "rounds were finalized");
    // The allocations and the lone seat's bond of 10.
    assert_eq!(live.state().accounted_value(), 8_000 + 10);
    // A lone seat keeps making (empty) anchors until every payload is final:
    // all ten transfers are applied.
    let spent = (0..10u16).filter(|o| {
        live.state()
            .utxo(&Genesis::allocation_out_point(&network, 0, *o))
            .is_none()
    });
    assert_eq!(spent.count(), 10);
    drop(log);

    let (mut log, report) = Log::open(dir.path(), config).unwrap();
    assert!(report.records > 10);
    let records: Vec<(LogRecordKind, Vec<u8>)> = log
        .iter_from(0)
        .map(|record| {
            let record = record.unwrap();
            (
                LogRecordKind::from_u8(record.kind).unwrap(),
                record.body.to_vec(),
            )
        })
        .collect();
    let mut restored = seat(&genesis);
    restored
        .restore(records.iter().map(|(kind, body)| (*kind, body.as_slice())))
        .unwrap();
    assert_eq!(restored.state().state_root(), live_root);
    assert_eq!(restored.consensus().len(), live.consensus().len());

    // The restored seat signs its next anchor at the next unused seq.
    let used_seqs = records
        .iter()
        .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
        .map(|(_, body)| SignedAnchor::from_bytes(body).unwrap().header.header.seq);
    let next_seq = used_seqs.max().unwrap() + 1;
    let transfer = TransferBuilder::new()
        .input(Genesis::allocation_out_point(&network, 0, 15))
        .output(1, key(2).public_key())
        .sign(&network, &key(2), &[0; 32])
        .unwrap();
    restored
        .handle_micro_event(MicroEvent::Transfer(transfer))
        .unwrap();
    let first_new = restored.poll_persist().expect("an own anchor record");
    assert_eq!(first_new.kind, LogRecordKind::AnchorAccepted);
    assert_eq!(
        SignedAnchor::from_bytes(&first_new.body)
            .unwrap()
            .header
            .header
            .seq,
        next_seq
    );
    log.append(first_new.kind as u8, &first_new.body).unwrap();
}
