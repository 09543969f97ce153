//! The consensus tools over a real data dir: the engine runs a signed
//! 1-shard workload (k = 4, transfers paying fees); `consensus
//! export-headers` writes its headers file; replaying that file through the
//! tools' consensus gives every finalized round's anchors with the round
//! and anchor indexes the log recorded; and the per-anchor shares of
//! `payout-root`, summed over each round's anchors onto the previous owed
//! balances, give every round's logged payout root (the root is per round
//! and cumulative). The fee of each anchor is computed here from the
//! logged payloads (inputs minus outputs), not by the state.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use common::{engine, text};
use pc_codec::genesis::Genesis;
use pc_codec::wire::{Decode, Reader};
use pc_codec::{to_hex, LogRecordKind, MicroEvent, OutPoint, SignedAnchor};
use pc_engine::config::{RuntimeConfig, StorageConfig};
use pc_engine::runtime::host::usable_cpus;
use pc_engine::tools::agreement::{log_bodies, logged_rounds};
use pc_engine::tools::consensus::{add_shares, payout_shares, read_headers, replay_dag, DagParams};
use pc_engine::tools::engine::{self as bench_engine, EngineConfig, Intake};
use pc_engine::tools::workload::{load_or_generate, WorkloadParams};
use pc_shard::economics::{payout_leaves, payout_root, FeeParams};
use pc_storage::Durability;
use serde_json::Value;

fn run_engine(root: &Path, data_dir: &Path) {
    let workload = load_or_generate(
        &root.join("cache"),
        WorkloadParams {
            shards: 1,
            committee: 4,
            tx_per_anchor: 1,
            events_per_shard: 1_024,
            cross_per_mille: 0,
        },
        false,
    )
    .unwrap();
    bench_engine::run(EngineConfig {
        runtime: RuntimeConfig {
            data_dir: data_dir.to_path_buf(),
            cpus: usable_cpus()[..1].to_vec(),
            placement: Some(vec![0]),
            storage: StorageConfig {
                fsync: Durability::Never,
                ..StorageConfig::default()
            },
            io_memory_bytes: None,
        },
        ring_capacity: 4,
        workload,
        intake: Intake::PerCore,
        max_run: None,
        verify_calibration: None,
        snapshot_interval: Duration::from_millis(10),
        handle_signals: false,
        progress: false,
        start_delay: Duration::ZERO,
        metrics: None,
    })
    .unwrap();
}

fn json(output: &std::process::Output) -> Value {
    assert!(output.status.success(), "{}", text(output));
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(output)))
}

#[test]
fn the_consensus_tools_reproduce_ack_distances_and_every_rounds_payout_root() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    run_engine(temp.path(), &data_dir);
    let genesis_path = data_dir.join("genesis.toml");
    let genesis: Genesis = pc_engine::genesis_file::load(&genesis_path)
        .unwrap()
        .genesis;
    let headers_file = temp.path().join("headers.bin");
    let exported = json(
        &engine()
            .args(["consensus", "export-headers", "--data-dir"])
            .arg(&data_dir)
            .arg("--out")
            .arg(&headers_file)
            .output()
            .unwrap(),
    );
    let headers = read_headers(&headers_file).unwrap();
    assert_eq!(exported["headers"].as_u64(), Some(headers.len() as u64));
    let dag = replay_dag(&headers, DagParams::of(&genesis));
    assert_eq!(dag.left_out, 0, "every logged header enters the DAG");

    // The logged anchors' payloads, and the value of every output they or
    // the genesis create (to price each anchor's fee).
    let mut anchors: HashMap<String, SignedAnchor> = HashMap::new();
    for body in log_bodies(&data_dir, 0, LogRecordKind::AnchorAccepted).unwrap() {
        let anchor = SignedAnchor::decode(&mut Reader::new(&body)).unwrap();
        anchors.insert(to_hex(&anchor.header.anchor_id()), anchor);
    }
    let network = genesis.network();
    let mut values: HashMap<OutPoint, u64> = HashMap::new();
    for (index, allocation) in genesis.allocations.iter().enumerate() {
        for output in 0..allocation.outputs {
            let out_point = Genesis::allocation_out_point(&network, index as u32, output as u16);
            values.insert(out_point, allocation.amount);
        }
    }
    for anchor in anchors.values() {
        for event in &anchor.payload.events {
            if let MicroEvent::Transfer(transfer) = event {
                let tx_id = transfer.tx_id(&network);
                for (i, output) in transfer.outputs.iter().enumerate() {
                    values.insert(
                        OutPoint {
                            tx_id,
                            index: i as u16,
                        },
                        output.amount,
                    );
                }
            }
        }
    }
    let fee_of = |anchor: &SignedAnchor| -> u64 {
        anchor
            .payload
            .events
            .iter()
            .map(|event| match event {
                MicroEvent::Transfer(t) => {
                    let inputs: u64 = t.inputs.iter().map(|i| values[i]).sum();
                    inputs - t.outputs.iter().map(|o| o.amount).sum::<u64>()
                }
                _ => 0,
            })
            .sum()
    };

    // Every round: the tools' anchors match the log's count and first
    // index, and the cumulative shares give its payout root.
    let committee = genesis.committee(0).unwrap();
    let fee_params = FeeParams::of(&genesis);
    let mut owed = BTreeMap::new();
    let rounds = logged_rounds(&data_dir, 0).unwrap();
    assert!(rounds.len() > 20, "{} rounds", rounds.len());
    let mut paid_rounds = 0;
    let mut checked_anchor = None;
    for (round, logged) in &rounds {
        let received: Vec<_> = dag.round(*round).collect();
        assert_eq!(received.len() as u64, logged.anchor_count, "round {round}");
        if let Some(first) = received.first() {
            assert_eq!(
                first.anchor_index, logged.first_global_index,
                "round {round}"
            );
        }
        let mut round_fees = 0;
        for anchor in &received {
            let fee = fee_of(&anchors[&anchor.anchor_id]);
            round_fees += fee;
            let shares =
                payout_shares(&fee_params, anchor, fee, &committee, anchor.creator).unwrap();
            add_shares(&mut owed, &committee, &shares);
            if fee > 0 && checked_anchor.is_none() {
                checked_anchor = Some((anchor.anchor_id.clone(), fee, shares));
            }
        }
        paid_rounds += usize::from(round_fees > 0);
        let (root, _) = payout_root(&payout_leaves(owed.iter().map(|(k, v)| (*k, *v))));
        assert_eq!(
            to_hex(&root),
            to_hex(&logged.payout_root),
            "round {round}: the shares summed onto the previous owed balances give the logged root"
        );
    }
    assert!(paid_rounds > 5, "{paid_rounds} rounds paid fees");

    // The CLI prints what the library computed: ack distances (under the
    // seed's spellings too) and the shares of one anchor's fee.
    let (anchor_id, fee, shares) = checked_anchor.expect("an anchor paid a fee");
    let genesis_arg = genesis_path.to_str().unwrap();
    let headers_arg = headers_file.to_str().unwrap();
    let acks = json(
        &engine()
            .args(["ConsensusAckDists", "--ack_id", &anchor_id])
            .args(["--headers_file", headers_arg, "--genesis", genesis_arg])
            .output()
            .unwrap(),
    );
    assert_eq!(acks, serde_json::to_value(&shares.anchor).unwrap());
    let recipients: Vec<String> = committee.iter().map(|k| to_hex(k)).collect();
    let payout = json(
        &engine()
            .args(["consensus", "payout-root", "--ack-id", &anchor_id])
            .args(["--headers-file", headers_arg, "--genesis", genesis_arg])
            .args(["--fees", &fee.to_string()])
            .args(["--recipients", &recipients.join(",")])
            .args(["--proposer-index", &shares.proposer_index.to_string()])
            .output()
            .unwrap(),
    );
    assert_eq!(payout, serde_json::to_value(&shares).unwrap());
    // Without a genesis, k comes from --k with a warning.
    let output = engine()
        .args(["consensus", "ack-dists", "--ack-id", &anchor_id])
        .args(["--headers-file", headers_arg, "--k", "4"])
        .output()
        .unwrap();
    assert_eq!(json(&output), acks);
    assert!(text(&output).contains("warning: no --genesis"));
}
