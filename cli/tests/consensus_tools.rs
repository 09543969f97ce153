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

use std::path::Path;
use std::time::Duration;

use common::{engine, text};
use pc_codec::genesis::Genesis;
use pc_codec::to_hex;
use pc_engine::config::{RuntimeConfig, StorageConfig};
use pc_engine::runtime::host::usable_cpus;
use pc_engine::tools::consensus::{read_headers, replay_dag, DagParams};
use pc_engine::tools::engine::{self as bench_engine, EngineConfig, Intake};
use pc_engine::tools::workload::{load_or_generate, WorkloadParams};
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
    let (rounds, paid_rounds, headers_file, example) =
        common::check_payout_roots(&data_dir, 0, temp.path());
    assert!(rounds > 20, "{rounds} rounds");
    assert!(paid_rounds > 5, "{paid_rounds} rounds paid fees");
    let committee = genesis.committee(0).unwrap();
    let headers = read_headers(&headers_file).unwrap();
    let dag = replay_dag(&headers, DagParams::of(&genesis));
    assert_eq!(dag.left_out, 0, "every logged header enters the DAG");
    let checked_anchor = example;

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
