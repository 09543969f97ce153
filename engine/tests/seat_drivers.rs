//! Four seat drivers of one shard on one small glommio executor, each with
//! its own log, wired together by hand the way the node's network layer
//! wires them: every transmit is routed (broadcast anchors, pulls answered
//! from the serving driver's log index, announces), clients' transfers are
//! submitted to the seats; one link loses pushes for a while, so its
//! receiver pulls what it missed. All four finalize every transfer with the same
//! state root, each seat measures the finality of the transfers it took,
//! and a driver serves any logged anchor by id.

use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use pc_codec::genesis::Genesis;
use pc_codec::{Decode, MicroEvent, SignedAnchor, TransferBuilder};
use pc_engine::runtime::driver::ShardDriver;
use pc_engine::tools::workload::{bench_genesis, bench_key, client_key, WorkloadParams};
use pc_shard::machine::{Destination, Role, ShardLimits, ShardMessage};
use pc_storage::{Durability, LogConfig};

const SEATS: usize = 4;
const TRANSFERS: u32 = 64;
/// Driver passes before the test gives up (a hang fails instead).
const MAX_PASSES: u64 = 20_000;

fn transfers(genesis: &Genesis) -> Vec<MicroEvent> {
    let network = genesis.network();
    let client = client_key(0, 1);
    (0..TRANSFERS)
        .map(|output| {
            let input = Genesis::allocation_out_point(&network, 0, output as u16);
            MicroEvent::Transfer(
                TransferBuilder::new()
                    .input(input)
                    .output(900_000, client.public_key())
                    .sign(&network, &client, &[output as u8; 32])
                    .unwrap(),
            )
        })
        .collect()
}

#[test]
fn four_seat_drivers_finalize_the_same_transfers_and_serve_pulls_from_their_logs() {
    let root = tempfile::tempdir().unwrap();
    let root_path = root.path().to_path_buf();
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("seat-drivers")
        .io_memory(256 << 10)
        .ring_depth(32)
        .spawn(move || async move {
            let (genesis, _) = bench_genesis(&WorkloadParams {
                shards: 1,
                committee: SEATS as u8,
                tx_per_anchor: 16,
                events_per_shard: TRANSFERS,
                cross_per_mille: 0,
            });
            let config = LogConfig {
                segment_bytes: 4 << 20,
                durability: Durability::Batch,
                max_record_bytes: pc_engine::runtime::data_dir::MAX_RECORD_BYTES,
            };
            let mut drivers: Vec<ShardDriver> = (0..SEATS)
                .map(|seat| {
                    ShardDriver::open_as(
                        &genesis,
                        0,
                        0,
                        &root_path.join(format!("seat-{seat}")),
                        config,
                        Role::Seat {
                            seat: seat as u8,
                            signer: pc_shard::machine::SharedSigner::local(bench_key(
                                "seat",
                                seat as u32,
                            )),
                        },
                        ShardLimits {
                            ack_interval_ticks: 2,
                            ..ShardLimits::default()
                        },
                        pc_node::SnapshotPolicy::OFF,
                    )
                    .unwrap()
                })
                .collect();
            for (index, event) in transfers(&genesis).into_iter().enumerate() {
                drivers[index % SEATS]
                    .submit_micro_event(event)
                    .unwrap()
                    .expect("a fresh transfer is taken");
            }
            let mut pulls_served = 0u64;
            let mut pass = 0u64;
            while drivers
                .iter()
                .any(|d| d.counters().finalized_events < u64::from(TRANSFERS))
            {
                pass += 1;
                assert!(pass < MAX_PASSES, "no agreement after {MAX_PASSES} passes");
                for driver in &mut drivers {
                    driver.handle_tick(pass).unwrap();
                    driver.after_input().await.unwrap();
                }
                let mut outbox = Vec::new();
                for (from, driver) in drivers.iter_mut().enumerate() {
                    while let Some(transmit) = driver.poll_transmit() {
                        outbox.push((from, transmit));
                    }
                }
                for (from, transmit) in outbox {
                    let targets: Vec<usize> = match transmit.destination {
                        Destination::Broadcast => (0..SEATS).filter(|t| *t != from).collect(),
                        Destination::Peer(peer) => vec![peer as usize],
                    };
                    for target in targets {
                        match &transmit.message {
                            // Seat 0's pushes to seat 3 are lost for a
                            // while: seat 3 must pull them from a log.
                            ShardMessage::Anchor(_) if from == 0 && target == 3 && pass < 30 => {}
                            ShardMessage::Anchor(bytes) => {
                                let _ = drivers[target]
                                    .handle_peer_anchor(from as u32, bytes)
                                    .unwrap();
                            }
                            ShardMessage::Get(ids) => {
                                for id in ids {
                                    if let Some(bytes) = drivers[target].anchor_bytes(id) {
                                        pulls_served += 1;
                                        let status = drivers[from]
                                            .handle_peer_anchor(target as u32, &bytes)
                                            .unwrap();
                                        assert!(status.is_ok(), "a served anchor is accepted");
                                    }
                                }
                            }
                            ShardMessage::Announce(ids) => {
                                drivers[target].handle_announce(from as u32, ids).unwrap();
                            }
                            // These drivers serve pulls by id only; a
                            // catch-up range goes unanswered (pulls still
                            // bring every anchor), and honest seats relay
                            // no evidence.
                            ShardMessage::GetRange { .. } | ShardMessage::Evidence(_) => {}
                        }
                    }
                }
                glommio::timer::sleep(Duration::from_micros(100)).await;
            }
            let roots: Vec<_> = drivers
                .iter()
                .map(|d| d.machine().state().state_root())
                .collect();
            assert!(roots.windows(2).all(|w| w[0] == w[1]), "one state root");
            let measured: u64 = drivers.iter().map(|d| d.event_finality_us().len()).sum();
            assert_eq!(
                measured,
                u64::from(TRANSFERS),
                "each seat timed its own transfers"
            );
            // Every anchor a seat made is in its log and, once durable (a
            // node serves durable records only), served by id.
            for driver in &mut drivers {
                driver.sync_all().await.unwrap();
            }
            let tips = drivers[1].machine().consensus().tips();
            assert!(!tips.is_empty());
            for tip in tips {
                let holder = drivers
                    .iter()
                    .find_map(|d| d.anchor_bytes(&tip))
                    .expect("some seat's log holds every tip");
                assert_eq!(SignedAnchor::from_bytes(&holder).unwrap().anchor_id(), tip);
            }
            assert!(pulls_served > 0, "the lost pushes were pulled");
            eprintln!("finalized after {pass} passes, {pulls_served} pulls served");
        })
        .unwrap()
        .join()
        .unwrap();
}
