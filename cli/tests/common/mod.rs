//! Helpers the process tests share: the binary under test, an output for
//! a failure message, and a guard that kills what runs on a test's files.
#![allow(dead_code)] // each test file uses what it needs

use std::path::PathBuf;
use std::process::{Command, Output};

/// The `phantom-engine` binary under test.
pub fn engine() -> Command {
    Command::new(env!("CARGO_BIN_EXE_phantom-engine"))
}

/// A finished command's status and output, for a failure message.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Kills (SIGKILL) every process whose command line names this path when
/// dropped: a devnet that dies half-way leaves its node processes running.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .arg("-KILL")
            .arg("-f")
            .arg(self.0.as_os_str())
            .status();
    }
}

/// Checks `consensus export-headers` and the consensus tools against a data
/// dir's shard: the headers file's DAG finalizes the rounds the log holds
/// (same anchor counts and first indexes), and the per-anchor shares of
/// `payout-root` (the library function behind it), summed round by round
/// onto the owed balances, give every logged `payout_root`. Each anchor's
/// fee comes from its logged payload, priced here by a small apply in the
/// finalized order (genesis outputs and the outputs of applied transfers
/// and imports; a transfer whose inputs are not unspent applies nothing),
/// not by the state. For runs without slashes (every seat eligible).
/// Returns (rounds checked, rounds that paid fees, the headers file, an
/// anchor that paid a fee with its fee and shares).
pub fn check_payout_roots(
    data_dir: &std::path::Path,
    shard: u16,
    out: &std::path::Path,
) -> (
    usize,
    usize,
    std::path::PathBuf,
    Option<(String, u64, pc_engine::tools::consensus::PayoutShares)>,
) {
    use std::collections::{BTreeMap, HashMap};

    use pc_codec::genesis::Genesis;
    use pc_codec::{to_hex, Decode, LogRecordKind, MicroEvent, OutPoint, SignedAnchor};
    use pc_engine::tools::agreement::{log_bodies, logged_rounds};
    use pc_engine::tools::consensus::{
        add_shares, payout_shares, read_headers, replay_dag, DagParams,
    };
    use pc_shard::economics::{payout_leaves, payout_root, FeeParams};

    let genesis: Genesis = pc_engine::genesis_file::load(&data_dir.join("genesis.toml"))
        .unwrap()
        .genesis;
    let headers_file = out.join(format!("headers-{shard}.bin"));
    let exported = engine()
        .args(["consensus", "export-headers", "--data-dir"])
        .arg(data_dir)
        .args(["--shard", &shard.to_string(), "--out"])
        .arg(&headers_file)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{}", text(&exported));
    let headers = read_headers(&headers_file).unwrap();
    let dag = replay_dag(&headers, DagParams::of(&genesis));
    let mut anchors: HashMap<String, SignedAnchor> = HashMap::new();
    for body in log_bodies(data_dir, shard, LogRecordKind::AnchorAccepted).unwrap() {
        let anchor = SignedAnchor::from_bytes(&body).unwrap();
        anchors.insert(to_hex(&anchor.header.anchor_id()), anchor);
    }
    let network = genesis.network();
    let mut unspent: HashMap<OutPoint, u64> = HashMap::new();
    for (index, allocation) in genesis.allocations.iter().enumerate() {
        for output in 0..allocation.outputs {
            let out_point = Genesis::allocation_out_point(&network, index as u32, output as u16);
            unspent.insert(out_point, allocation.amount);
        }
    }
    let committee = genesis.committee(shard).unwrap();
    let fee_params = FeeParams::of(&genesis);
    let mut owed = BTreeMap::new();
    let rounds = logged_rounds(data_dir, shard).unwrap();
    let (mut paid_rounds, mut example) = (0, None);
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
        for anchor in received {
            let mut fee = 0;
            for event in &anchors[&anchor.anchor_id].payload.events {
                match event {
                    MicroEvent::Transfer(t) => {
                        let inputs: Option<Vec<u64>> =
                            t.inputs.iter().map(|i| unspent.get(i).copied()).collect();
                        let Some(inputs) = inputs else { continue };
                        for input in &t.inputs {
                            unspent.remove(input);
                        }
                        let tx_id = t.tx_id(&network);
                        for (i, output) in t.outputs.iter().enumerate() {
                            unspent.insert(
                                OutPoint {
                                    tx_id,
                                    index: i as u16,
                                },
                                output.amount,
                            );
                        }
                        fee += inputs.iter().sum::<u64>()
                            - t.outputs.iter().map(|o| o.amount).sum::<u64>();
                    }
                    MicroEvent::Import(import) => {
                        let leaf = &import.leaf;
                        unspent.insert(
                            OutPoint {
                                tx_id: leaf.tx_id,
                                index: leaf.output_index,
                            },
                            leaf.amount,
                        );
                    }
                    _ => {}
                }
            }
            round_fees += fee;
            let shares =
                payout_shares(&fee_params, anchor, fee, &committee, anchor.creator).unwrap();
            add_shares(&mut owed, &committee, &shares);
            if fee > 0 && example.is_none() {
                example = Some((anchor.anchor_id.clone(), fee, shares));
            }
        }
        paid_rounds += usize::from(round_fees > 0);
        let (root, _) = payout_root(&payout_leaves(owed.iter().map(|(k, v)| (*k, *v))));
        assert_eq!(
            to_hex(&root),
            to_hex(&logged.payout_root),
            "shard {shard} round {round}: the shares summed onto the previous owed balances give the logged root"
        );
    }
    (rounds.len(), paid_rounds, headers_file, example)
}
