//! `phantom-engine consensus ack-dists / payout-root / export-headers`:
//! the seed README's consensus tools (`ConsensusAckDists`,
//! `ConsensusPayoutRoot`), printing one JSON object computed by the
//! functions the node's shard machine and state use
//! (`pc_engine::tools::consensus`).

use std::path::PathBuf;

use pc_codec::genesis::ConsensusParams;
use pc_codec::PublicKeyBytes;
use pc_engine::genesis_file;
use pc_engine::tools::consensus::{
    export_headers, payout_shares, read_headers, replay_dag, write_headers, AnchorAcks, DagParams,
};
use pc_shard::economics::FeeParams;

use crate::error::CliError;

/// Where a tool reads the DAG and its parameters.
#[derive(clap::Args, Clone)]
pub struct DagArgs {
    /// The anchor (hex anchor id); alias `--ack_id`.
    #[arg(long, alias = "ack_id")]
    pub ack_id: String,
    /// The headers file (`consensus export-headers` writes one; format in
    /// the README); alias `--headers_file`.
    #[arg(long, alias = "headers_file")]
    pub headers_file: PathBuf,
    /// The genesis TOML: k, the coin-round period, the window, the fee
    /// split and the committee.
    #[arg(long)]
    pub genesis: Option<PathBuf>,
    /// Without --genesis: the committee size (v0 defaults for the rest;
    /// for local development only).
    #[arg(long)]
    pub k: Option<u8>,
}

/// `consensus` subcommands.
#[derive(clap::Subcommand)]
pub enum ConsensusCommand {
    /// The ack distances and vote mask of a finalized anchor (DESIGN §4).
    #[command(name = "ack-dists")]
    AckDists(DagArgs),
    /// The payout shares of an anchor's fee and their Merkle root (DESIGN
    /// §5.3, every seat eligible).
    #[command(name = "payout-root")]
    PayoutRoot(PayoutArgs),
    /// Write the headers file of a data dir's shard (every anchor its log
    /// holds, in log order).
    #[command(name = "export-headers")]
    ExportHeaders {
        /// The data dir; alias `--store_dir`.
        #[arg(long, alias = "store_dir")]
        data_dir: PathBuf,
        /// The shard.
        #[arg(long, default_value_t = 0)]
        shard: u16,
        /// The headers file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

/// Flags of `consensus payout-root`.
#[derive(clap::Args, Clone)]
pub struct PayoutArgs {
    #[command(flatten)]
    pub dag: DagArgs,
    /// The anchor's fee in units.
    #[arg(long)]
    pub fees: u64,
    /// The seats' keys by seat, comma-separated hex (default: the
    /// committee of --shard in the genesis).
    #[arg(long, value_delimiter = ',')]
    pub recipients: Vec<String>,
    /// The proposer's seat (default: the anchor's creator); alias
    /// `--proposer_index`.
    #[arg(long, alias = "proposer_index")]
    pub proposer_index: Option<u8>,
    /// The shard whose committee receives (with --genesis).
    #[arg(long, default_value_t = 0)]
    pub shard: u16,
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

/// The consensus parameters: from the genesis, else k from `--k` with a
/// warning.
fn params(args: &DagArgs) -> Result<(ConsensusParams, Option<pc_codec::Genesis>), CliError> {
    match (&args.genesis, args.k) {
        (Some(path), _) => {
            let genesis = genesis_file::load(path)?.genesis;
            Ok((genesis.params, Some(genesis)))
        }
        (None, Some(k)) if (1..=64).contains(&k) => {
            eprintln!(
                "warning: no --genesis; k = {k} from --k and the v0 defaults for the rest (local development only)"
            );
            Ok((ConsensusParams::v0(k, 1), None))
        }
        (None, Some(k)) => Err(usage(format!("--k {k} is outside 1..=64"))),
        (None, None) => Err(usage(
            "give --genesis (or --k for local development)".into(),
        )),
    }
}

fn anchor_of(args: &DagArgs, params: &ConsensusParams) -> Result<AnchorAcks, CliError> {
    let id = genesis_file::hex_array(&args.ack_id, "--ack-id")?;
    let headers = read_headers(&args.headers_file).map_err(usage)?;
    let replay = replay_dag(
        &headers,
        DagParams {
            k: usize::from(params.k),
            coin_round_period: u64::from(params.coin_round_period),
            window: u64::from(params.ancient_window_rounds),
        },
    );
    replay.anchor(&id).cloned().ok_or_else(|| {
        usage(format!(
            "{}: anchor {} is not finalized by the {} headers there ({} finalized, {} left out)",
            args.headers_file.display(),
            args.ack_id,
            headers.len(),
            replay.finalized.len(),
            replay.left_out
        ))
    })
}

/// Runs a `consensus` subcommand.
pub fn consensus(command: ConsensusCommand) -> Result<(), CliError> {
    match command {
        ConsensusCommand::AckDists(args) => {
            let (params, _) = params(&args)?;
            let anchor = anchor_of(&args, &params)?;
            println!(
                "{}",
                serde_json::to_string(&anchor).expect("a report serializes")
            );
            Ok(())
        }
        ConsensusCommand::PayoutRoot(args) => {
            let (params, genesis) = params(&args.dag)?;
            let anchor = anchor_of(&args.dag, &params)?;
            let recipients: Vec<PublicKeyBytes> = if args.recipients.is_empty() {
                genesis
                    .as_ref()
                    .and_then(|g| g.committee(args.shard))
                    .ok_or_else(|| {
                        usage("give --recipients (or --genesis with the committee)".into())
                    })?
            } else {
                args.recipients
                    .iter()
                    .enumerate()
                    .map(|(i, hex)| genesis_file::hex_array(hex, &format!("--recipients[{i}]")))
                    .collect::<Result<_, _>>()?
            };
            let fee_params = FeeParams {
                split_pct: params.fee_split_pct,
                ack_alpha: params.ack_alpha,
                ack_distance_max: params.ack_distance_max,
            };
            let proposer = args.proposer_index.unwrap_or(anchor.creator);
            let shares = payout_shares(&fee_params, &anchor, args.fees, &recipients, proposer)
                .map_err(usage)?;
            println!(
                "{}",
                serde_json::to_string(&shares).expect("a report serializes")
            );
            Ok(())
        }
        ConsensusCommand::ExportHeaders {
            data_dir,
            shard,
            out,
        } => {
            let headers = export_headers(&data_dir, shard).map_err(usage)?;
            write_headers(&out, &headers).map_err(usage)?;
            println!(
                "{}",
                serde_json::json!({
                    "type": "headers_exported",
                    "shard": shard,
                    "headers": headers.len(),
                    "out": out.display().to_string(),
                })
            );
            Ok(())
        }
    }
}
