//! `phantom-engine wallet`: a thin layer over the client protocol for a
//! key holder — a new key and its address, the address of a key, the
//! finalized balance with the outputs behind it, and a payment whose inputs
//! the wallet picks itself from the owner's unspent outputs the node serves
//! (`UnspentQuery`, a page at a time), with change back to the owner and
//! the outputs sorted deterministically by (amount, owner).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use pc_codec::address::encode_address;
use pc_codec::ids::shard_of;
use pc_codec::{to_hex, MicroEvent, OutPoint, SigningKey, TransferBuilder, TxOut};
use pc_engine::genesis_file;
use pc_net::frame::{EventOutcome, UnspentOutput, MAX_UNSPENT_PER_PAGE};
use pc_net::NetMessage;

use crate::error::CliError;
use crate::key_file;
use crate::node_cmd::{owner_of, owner_or_key, submit_event};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Most pages of unspent outputs the wallet reads for one payment or
/// listing (256 outputs each).
const MAX_PAGES: usize = 64;

/// `wallet` subcommands.
#[derive(clap::Subcommand)]
pub enum WalletCommand {
    /// Make a new key file and print its address.
    New {
        /// Where to write the key (refused if the file exists).
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the address (`pc1…`) of a key file or a hex public key.
    Address {
        /// The key file.
        #[arg(long, conflicts_with = "owner")]
        key: Option<PathBuf>,
        /// Or a public key (hex) or address.
        #[arg(long)]
        owner: Option<String>,
    },
    /// The finalized balance: spendable and immature units and the outputs.
    Balance {
        /// A node's address.
        #[arg(long, default_value = "127.0.0.1:7100")]
        node: SocketAddr,
        /// The owner's key file.
        #[arg(long, conflicts_with = "owner")]
        key: Option<PathBuf>,
        /// Or its address or public key.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Pay an address: inputs picked from the key's spendable outputs,
    /// change back to the key.
    Send {
        /// The genesis TOML (network id, shard count).
        #[arg(long)]
        genesis: PathBuf,
        /// The paying key file.
        #[arg(long)]
        key: PathBuf,
        /// A node's address.
        #[arg(long, default_value = "127.0.0.1:7100")]
        node: SocketAddr,
        /// Recipient: an address (`pc1…`) or an x-only public key (hex).
        #[arg(long)]
        to: String,
        /// Units to pay.
        #[arg(long)]
        amount: u64,
        /// Fee in units.
        #[arg(long, default_value_t = 0)]
        fee: u64,
    },
}

/// Every unspent output of `owner` in the finalized state `node` serves,
/// and the next anchor index (maturity is counted in it).
pub(crate) fn unspent(
    node: SocketAddr,
    owner: [u8; 32],
) -> Result<(Vec<UnspentOutput>, u64), CliError> {
    let mut all = Vec::new();
    let mut after: Option<OutPoint> = None;
    let mut next_index = 0;
    for _ in 0..MAX_PAGES {
        let answer = pc_engine::client::query(
            node,
            NetMessage::UnspentQuery {
                request: 1,
                owner,
                after,
                max: MAX_UNSPENT_PER_PAGE as u16,
            },
            REQUEST_TIMEOUT,
            |m| matches!(m, NetMessage::Unspent { request: 1, .. }),
        )?;
        let NetMessage::Unspent {
            owner: answered,
            outputs,
            more,
            next_anchor_index,
            ..
        } = answer
        else {
            unreachable!("filtered to unspent pages")
        };
        if answered != owner
            || outputs
                .iter()
                .any(|o| after.is_some_and(|a| o.out_point <= a))
        {
            return Err(CliError::Usage(format!(
                "{node}: answered an unspent page for another owner or out of order"
            )));
        }
        next_index = next_anchor_index;
        after = outputs.last().map(|o| o.out_point);
        all.extend(outputs);
        if more == 0 || after.is_none() {
            return Ok((all, next_index));
        }
    }
    Ok((all, next_index))
}

/// Largest spendable outputs first until `needed` is covered, at most 16;
/// `None` if they do not reach it.
pub(crate) fn pick_inputs(
    outputs: &[UnspentOutput],
    next_anchor_index: u64,
    needed: u64,
) -> Option<Vec<UnspentOutput>> {
    let mut spendable: Vec<UnspentOutput> = outputs
        .iter()
        .filter(|o| o.mature_at <= next_anchor_index)
        .copied()
        .collect();
    spendable.sort_by(|a, b| b.amount.cmp(&a.amount).then(a.out_point.cmp(&b.out_point)));
    let mut picked = Vec::new();
    let mut sum = 0u64;
    for output in spendable.into_iter().take(pc_codec::MAX_TRANSFER_INPUTS) {
        if sum >= needed {
            break;
        }
        sum = sum.saturating_add(output.amount);
        picked.push(output);
    }
    (sum >= needed).then_some(picked)
}

/// The outputs of a payment, sorted by (amount, owner): the order carries
/// nothing about which is the payment and which the change.
pub(crate) fn sorted_outputs(mut outputs: Vec<TxOut>) -> Vec<TxOut> {
    outputs.sort_by_key(|o| (o.amount, o.owner));
    outputs
}

/// Runs a `wallet` subcommand.
pub fn wallet(command: WalletCommand) -> Result<(), CliError> {
    match command {
        WalletCommand::New { out } => {
            if out.exists() {
                return Err(CliError::Usage(format!(
                    "{}: exists; a wallet never overwrites a key",
                    out.display()
                )));
            }
            let key = SigningKey::generate(&mut rand::rng());
            key_file::write(&out, &key, "wallet")?;
            let public = key.public_key();
            println!(
                "{}",
                serde_json::json!({
                    "type": "wallet", "key_file": out.display().to_string(),
                    "address": encode_address(&public), "public_key": to_hex(&public),
                })
            );
            Ok(())
        }
        WalletCommand::Address { key, owner } => {
            let public = owner_or_key(owner, key)?;
            println!("{}", encode_address(&public));
            Ok(())
        }
        WalletCommand::Balance { node, key, owner } => {
            let owner = owner_or_key(owner, key)?;
            let (outputs, next_index) = unspent(node, owner)?;
            let spendable: u64 = outputs
                .iter()
                .filter(|o| o.mature_at <= next_index)
                .map(|o| o.amount)
                .sum();
            let immature: u64 = outputs
                .iter()
                .filter(|o| o.mature_at > next_index)
                .map(|o| o.amount)
                .sum();
            let listed: Vec<serde_json::Value> = outputs
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "out_point": format!("{}:{}", to_hex(&o.out_point.tx_id), o.out_point.index),
                        "amount": o.amount,
                        "mature_at": (o.mature_at > 0).then_some(o.mature_at),
                    })
                })
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "type": "wallet_balance", "address": encode_address(&owner),
                    "spendable": spendable, "immature": immature,
                    "next_anchor_index": next_index, "outputs": listed,
                })
            );
            Ok(())
        }
        WalletCommand::Send {
            genesis,
            key,
            node,
            to,
            amount,
            fee,
        } => {
            let genesis = genesis_file::load(&genesis)?.genesis;
            let key = key_file::read(&key)?;
            let owner = key.public_key();
            let recipient = owner_of(&to, "--to")?;
            if amount == 0 {
                return Err(CliError::Usage("--amount must be positive".into()));
            }
            let needed = amount
                .checked_add(fee)
                .ok_or_else(|| CliError::Usage("--amount plus --fee overflows".into()))?;
            let (outputs, next_index) = unspent(node, owner)?;
            let inputs = pick_inputs(&outputs, next_index, needed).ok_or_else(|| {
                let spendable: u64 = outputs
                    .iter()
                    .filter(|o| o.mature_at <= next_index)
                    .map(|o| o.amount)
                    .sum();
                CliError::Usage(format!(
                    "{}: {spendable} units spendable (16 largest outputs at most), {needed} needed",
                    encode_address(&owner)
                ))
            })?;
            let held = inputs
                .iter()
                .try_fold(0u64, |sum, o| sum.checked_add(o.amount))
                .ok_or_else(|| CliError::Usage(format!("{node}: unspent amounts overflow")))?;
            let mut paid = vec![TxOut {
                amount,
                owner: recipient,
            }];
            if held > needed {
                paid.push(TxOut {
                    amount: held - needed,
                    owner,
                });
            }
            let paid = sorted_outputs(paid);
            let mut builder = TransferBuilder::new();
            for input in &inputs {
                builder = builder.input(input.out_point);
            }
            for output in &paid {
                builder = builder.output(output.amount, output.owner);
            }
            let network = genesis.network();
            let aux: [u8; 32] = rand::random();
            let transfer = builder.sign(&network, &key, &aux)?;
            let tx_id = transfer.tx_id(&network);
            let shard = shard_of(&owner, genesis.params.shards);
            let receipt = submit_event(node, shard, &MicroEvent::Transfer(transfer))?;
            let payment = paid
                .iter()
                .position(|o| o.owner == recipient && o.amount == amount)
                .expect("the payment is an output");
            let (outcome, reason) = match &receipt.outcome {
                EventOutcome::Accepted => ("accepted", String::new()),
                EventOutcome::Rejected { reason, detail } => {
                    ("rejected", format!("{reason:?}: {detail}"))
                }
            };
            println!(
                "{}",
                serde_json::json!({
                    "type": "wallet_send", "node": node.to_string(), "shard": shard,
                    "tx_id": to_hex(&tx_id), "inputs": inputs.len(), "input_units": held,
                    "payment": format!("{}:{payment}", to_hex(&tx_id)),
                    "change": (held > needed).then_some(held - needed),
                    "outcome": outcome, "reason": reason,
                })
            );
            if outcome == "rejected" {
                return Err(CliError::Usage(format!(
                    "{node}: payment rejected: {reason}"
                )));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(byte: u8, amount: u64, mature_at: u64) -> UnspentOutput {
        UnspentOutput {
            out_point: OutPoint {
                tx_id: [byte; 32],
                index: 0,
            },
            amount,
            mature_at,
        }
    }

    #[test]
    fn inputs_are_the_largest_spendable_outputs_that_cover_the_need() {
        let outputs = [
            output(1, 50, 0),
            output(2, 500, 90),
            output(3, 30, 0),
            output(4, 40, 10),
        ];
        // The 500 matures at 90: at index 20 it is not spendable.
        let picked = pick_inputs(&outputs, 20, 85).unwrap();
        assert_eq!(
            picked.iter().map(|o| o.amount).collect::<Vec<_>>(),
            vec![50, 40]
        );
        assert!(pick_inputs(&outputs, 20, 121).is_none(), "120 spendable");
        let picked = pick_inputs(&outputs, 90, 400).unwrap();
        assert_eq!(picked.len(), 1);
        assert!(
            pick_inputs(&[output(1, 1, 0); 20], 0, 17).is_none(),
            "16 inputs at most"
        );
    }

    #[test]
    fn outputs_are_sorted_by_amount_then_owner() {
        let sorted = sorted_outputs(vec![
            TxOut {
                amount: 7,
                owner: [2; 32],
            },
            TxOut {
                amount: 3,
                owner: [9; 32],
            },
            TxOut {
                amount: 7,
                owner: [1; 32],
            },
        ]);
        let keys: Vec<(u64, u8)> = sorted.iter().map(|o| (o.amount, o.owner[0])).collect();
        assert_eq!(keys, vec![(3, 9), (7, 1), (7, 2)]);
    }
}
