//! Signed protocol objects from pc-codec survive pc-storage byte for byte:
//! anchors and finalized-round records are logged, the log is closed and
//! recovered, and every record decodes to the same value with the same id,
//! a valid signature and a payload that matches its header.

use pc_codec::{
    AnchorBuilder, Bip340, Decode, Encode, LogRecordKind, MicroEvent, OutPoint, RoundFinalized,
    SignedAnchor, SigningKey, TransferBuilder,
};
use pc_storage::{Durability, Log, LogConfig};

const NETWORK: [u8; 8] = *b"pc-tests";

fn chain_of_anchors(count: u64) -> (SigningKey, Vec<SignedAnchor>) {
    let seat = SigningKey::from_secret_bytes(&[5; 32]).unwrap();
    let client = SigningKey::from_secret_bytes(&[6; 32]).unwrap();
    let mut anchors: Vec<SignedAnchor> = Vec::new();
    for seq in 0..count {
        let transfers = (0..(seq % 5)).map(|i| {
            MicroEvent::Transfer(
                TransferBuilder::new()
                    .input(OutPoint {
                        tx_id: [seq as u8; 32],
                        index: i as u16,
                    })
                    .output(1 + i, client.public_key())
                    .sign(&NETWORK, &client, &[i as u8; 32])
                    .unwrap(),
            )
        });
        let mut builder = AnchorBuilder::new(NETWORK, 0, 0, seq).birth_round(seq);
        if let Some(previous) = anchors.last() {
            builder = builder.parent_anchor(previous);
        }
        anchors.push(
            builder
                .events(transfers)
                .sign(&seat, &[seq as u8; 32])
                .unwrap(),
        );
    }
    (seat, anchors)
}

#[test]
fn anchors_and_rounds_read_back_identical_after_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 16 * 1024,
        durability: Durability::Always,
        max_record_bytes: 8 * 1024,
    };
    let (seat, anchors) = chain_of_anchors(60);
    {
        let (mut log, _) = Log::open(dir.path(), config).unwrap();
        for (round, anchor) in anchors.iter().enumerate() {
            log.append(LogRecordKind::AnchorAccepted as u8, &anchor.to_bytes())
                .unwrap();
            let finalized = RoundFinalized {
                round: round as u64,
                first_global_index: round as u64,
                anchor_count: 1,
                state_root: anchor.anchor_id(),
                payout_root: [0; 32],
            };
            log.append(LogRecordKind::RoundFinalized as u8, &finalized.to_bytes())
                .unwrap();
        }
        log.sync().unwrap();
    }
    let (log, report) = Log::open(dir.path(), config).unwrap();
    assert_eq!(report.records, 120);
    assert!(
        report.segments > 1,
        "the anchors span several 16 KiB segments"
    );
    let mut anchors_read = 0;
    for record in log.iter_from(0) {
        let record = record.unwrap();
        match LogRecordKind::from_u8(record.kind) {
            Some(LogRecordKind::AnchorAccepted) => {
                let anchor = SignedAnchor::from_bytes(record.body).unwrap();
                let original = &anchors[anchors_read];
                assert_eq!(&anchor, original);
                assert_eq!(anchor.anchor_id(), original.anchor_id());
                assert!(anchor.header.verify_signature(&Bip340, &seat.public_key()));
                assert!(anchor.payload_matches_header());
                anchors_read += 1;
            }
            Some(LogRecordKind::RoundFinalized) => {
                let finalized = RoundFinalized::from_bytes(record.body).unwrap();
                assert_eq!(finalized.state_root, anchors[anchors_read - 1].anchor_id());
            }
            Some(
                kind @ (LogRecordKind::SnapshotWritten
                | LogRecordKind::CheckpointCertified
                | LogRecordKind::ExportsReceived
                | LogRecordKind::ExportsBuilt),
            ) => panic!("only anchors and rounds are written here, not {kind:?}"),
            None => panic!("unknown record kind {} at seq {}", record.kind, record.seq),
        }
    }
    assert_eq!(anchors_read, anchors.len());
}
