//! The consensus tools of the seed README (DESIGN §1): ack distances of an
//! anchor and the payout shares of its fee, from a headers file, computed
//! with the functions the node's shard machine and state use
//! ([`pc_shard::machine::vertex_spec`], [`pc_shard::consensus::Consensus`],
//! [`pc_shard::economics::anchor_shares`] and
//! [`pc_shard::economics::payout_root`]): no second implementation.
//!
//! **Headers file** (`headers.bin`): the 8 bytes `PCHDRS01`, then one
//! record per anchor header: a `u32` little-endian length (at most
//! [`MAX_HEADER_BYTES`]) and that many bytes of the canonical
//! `SignedAnchorHeader` (header and signature, DESIGN §3.3). Records may
//! come in any order; a header whose parents are not in the file (before or
//! after it) is left out of the DAG, and a header at a seq already seen
//! with another id is a fork and is kept (consensus handles forks).
//! `consensus export-headers --data-dir D --shard S --out FILE` writes the
//! headers of every anchor shard `S`'s log holds, in log order.

use std::collections::BTreeMap;
use std::path::Path;

use pc_codec::genesis::Genesis;
use pc_codec::wire::{Decode, Reader};
use pc_codec::{to_hex, Encode, Hash32, LogRecordKind, PublicKeyBytes, SignedAnchorHeader};
use pc_shard::consensus::{Consensus, ConsensusConfig};
use pc_shard::economics::{anchor_shares, payout_leaves, payout_root, FeeParams};
use pc_shard::machine::vertex_spec;
use serde::Serialize;

/// The magic bytes of a headers file.
pub const HEADERS_MAGIC: &[u8; 8] = b"PCHDRS01";
/// Largest header record (4 parents make a header of a few hundred bytes).
pub const MAX_HEADER_BYTES: usize = 4_096;

/// Writes `headers` as a headers file at `path`.
pub fn write_headers(path: &Path, headers: &[SignedAnchorHeader]) -> Result<(), String> {
    let mut out = Vec::with_capacity(8 + headers.len() * 320);
    out.extend_from_slice(HEADERS_MAGIC);
    for header in headers {
        let bytes = header.to_bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
    std::fs::write(path, out).map_err(|e| format!("{}: write: {e}", path.display()))
}

/// Reads a headers file; a bad record is named by its offset.
pub fn read_headers(path: &Path) -> Result<Vec<SignedAnchorHeader>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: read: {e}", path.display()))?;
    if bytes.get(..8) != Some(HEADERS_MAGIC.as_slice()) {
        return Err(format!(
            "{}: not a headers file (no {} magic)",
            path.display(),
            String::from_utf8_lossy(HEADERS_MAGIC)
        ));
    }
    let mut headers = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let len = bytes
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize)
            .ok_or_else(|| format!("{}: offset {at}: record length cut off", path.display()))?;
        if len > MAX_HEADER_BYTES {
            return Err(format!(
                "{}: offset {at}: record of {len} bytes, more than {MAX_HEADER_BYTES}",
                path.display()
            ));
        }
        let body = bytes
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| format!("{}: offset {at}: record cut off", path.display()))?;
        let mut reader = Reader::new(body);
        let header = SignedAnchorHeader::decode(&mut reader)
            .and_then(|h| reader.finish().map(|()| h))
            .map_err(|e| format!("{}: offset {at}: {e}", path.display()))?;
        headers.push(header);
        at += 4 + len;
    }
    Ok(headers)
}

/// The headers of every anchor shard `shard`'s log in `data_dir` holds, in
/// log order.
pub fn export_headers(data_dir: &Path, shard: u16) -> Result<Vec<SignedAnchorHeader>, String> {
    let records =
        crate::tools::agreement::log_bodies(data_dir, shard, LogRecordKind::AnchorAccepted)
            .map_err(|e| e.to_string())?;
    records
        .iter()
        .enumerate()
        .map(|(index, body)| {
            SignedAnchorHeader::decode(&mut Reader::new(body))
                .map_err(|e| format!("shard {shard}: anchor record {index}: {e}"))
        })
        .collect()
}

/// The consensus parameters of a headers file's shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DagParams {
    /// Committee seats.
    pub k: usize,
    /// Coin-round period `C`.
    pub coin_round_period: u64,
    /// Non-ancient window `G`.
    pub window: u64,
}

impl DagParams {
    /// The genesis's.
    pub fn of(genesis: &Genesis) -> DagParams {
        DagParams {
            k: usize::from(genesis.params.k),
            coin_round_period: u64::from(genesis.params.coin_round_period),
            window: u64::from(genesis.params.ancient_window_rounds),
        }
    }
}

/// One finalized anchor as the tools report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorAcks {
    /// The anchor id, hex.
    pub anchor_id: String,
    /// Its creator's seat.
    pub creator: u8,
    /// Its anchor index (position in the shard's total order).
    pub anchor_index: u64,
    /// Its round received.
    pub round_received: u64,
    /// Ack distance per seat (`null`: not in the vote mask), DESIGN §4.
    pub ack_distances: Vec<Option<u64>>,
    /// The vote mask.
    pub vote_mask: u64,
    /// The creators of the round's unique famous witnesses.
    pub ufw_creators: Vec<u8>,
}

/// A headers file run through consensus: every finalized anchor, in total
/// order.
#[derive(Debug, Clone, Default)]
pub struct DagReplay {
    /// Finalized anchors in total order.
    pub finalized: Vec<AnchorAcks>,
    /// Headers inserted.
    pub inserted: usize,
    /// Headers left out (parents missing, or refused by consensus).
    pub left_out: usize,
}

impl DagReplay {
    /// The finalized anchor `id`.
    pub fn anchor(&self, id: &Hash32) -> Option<&AnchorAcks> {
        let hex = to_hex(id);
        self.finalized.iter().find(|a| a.anchor_id == hex)
    }

    /// The anchors received in `round`, in total order.
    pub fn round(&self, round: u64) -> impl Iterator<Item = &AnchorAcks> {
        self.finalized
            .iter()
            .filter(move |a| a.round_received == round)
    }
}

/// Runs `headers` through the shard's consensus: each header is inserted
/// (with its claimed birth round checked) once all the parents it requires
/// are in, whatever the file's order.
pub fn replay_dag(headers: &[SignedAnchorHeader], params: DagParams) -> DagReplay {
    let mut consensus = Consensus::new(ConsensusConfig {
        k: params.k,
        coin_round_period: params.coin_round_period,
        window: params.window,
    });
    let mut replay = DagReplay::default();
    let mut waiting: Vec<&SignedAnchorHeader> = headers
        .iter()
        .filter(|h| usize::from(h.header.creator) < params.k)
        .collect();
    let mut seen = std::collections::HashSet::new();
    // Creators by anchor id, from the headers themselves: consensus may
    // have pruned a vertex by the time its round is polled.
    let creators: std::collections::HashMap<Hash32, u8> = headers
        .iter()
        .map(|h| (h.anchor_id(), h.header.creator))
        .collect();
    let creator_of = |id: &Hash32| creators.get(id).copied();
    loop {
        let mut progressed = false;
        let mut still = Vec::new();
        for header in waiting {
            let spec = vertex_spec(header, params.window);
            if !seen.insert(spec.id) {
                continue;
            }
            if spec.parents.iter().all(|p| consensus.contains(p)) {
                if consensus
                    .insert_with_birth_round(spec, header.header.birth_round)
                    .is_ok()
                {
                    replay.inserted += 1;
                } else {
                    replay.left_out += 1;
                }
                progressed = true;
            } else {
                seen.remove(&spec.id);
                still.push(header);
            }
        }
        while let Some(round) = consensus.poll_finalized() {
            let ufw_creators: Vec<u8> = round
                .unique_famous_witnesses
                .iter()
                .filter_map(&creator_of)
                .collect();
            for anchor in &round.anchors {
                replay.finalized.push(AnchorAcks {
                    anchor_id: to_hex(&anchor.id),
                    creator: creator_of(&anchor.id).expect("finalized anchors came from the file"),
                    anchor_index: anchor.global_index,
                    round_received: round.round,
                    vote_mask: anchor.vote_mask(),
                    ack_distances: anchor.ack_distances.clone(),
                    ufw_creators: ufw_creators.clone(),
                });
            }
        }
        waiting = still;
        if !progressed || waiting.is_empty() {
            replay.left_out += waiting.len();
            break;
        }
    }
    replay
}

/// The payout shares of one anchor's fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PayoutShares {
    /// The anchor, as consensus finalized it.
    pub anchor: AnchorAcks,
    /// The fee split.
    pub fees: u64,
    /// The proposer's seat.
    pub proposer_index: u8,
    /// Per seat: (recipient key hex, units).
    pub shares: Vec<(String, u64)>,
    /// Value left undistributed (no eligible seat).
    pub undistributed: u64,
    /// The Merkle root over these shares as payout leaves (sorted by
    /// recipient, zero shares left out), and its leaf count.
    pub payout_root: String,
    /// Leaves under it.
    pub leaf_count: u64,
}

/// The shares of `fees` paid by `anchor` (DESIGN §5.3) with every seat
/// eligible and nothing undistributed carried in, to `recipients` (the
/// committee's keys by seat) — the state's function, so summing them over
/// a round's anchors onto the previous owed balances gives the round's
/// payout root while nobody is slashed.
pub fn payout_shares(
    fee_params: &FeeParams,
    anchor: &AnchorAcks,
    fees: u64,
    recipients: &[PublicKeyBytes],
    proposer_index: u8,
) -> Result<PayoutShares, String> {
    let k = recipients.len();
    if k == 0 || k > 64 {
        return Err(format!("{k} recipients: a committee has 1..=64 seats"));
    }
    if usize::from(proposer_index) >= k {
        return Err(format!(
            "--proposer-index {proposer_index}: there are {k} recipients"
        ));
    }
    if anchor.ack_distances.len() > k {
        return Err(format!(
            "the anchor's DAG has {} seats, but {k} recipients were given",
            anchor.ack_distances.len()
        ));
    }
    let eligible = if k == 64 { u64::MAX } else { (1u64 << k) - 1 };
    let paid = anchor_shares(
        fee_params,
        k,
        fees,
        0,
        proposer_index,
        &anchor.ack_distances,
        &anchor.ufw_creators,
        eligible,
    );
    let leaves = payout_leaves(recipients.iter().copied().zip(paid.shares.iter().copied()));
    let (root, leaf_count) = payout_root(&leaves);
    Ok(PayoutShares {
        anchor: anchor.clone(),
        fees,
        proposer_index,
        shares: recipients
            .iter()
            .zip(&paid.shares)
            .map(|(key, units)| (to_hex(key), *units))
            .collect(),
        undistributed: paid.undistributed,
        payout_root: to_hex(&root),
        leaf_count,
    })
}

/// Owed balances by recipient, summed from shares (for the tools' users
/// and tests that rebuild a round's payout root).
pub fn add_shares(
    owed: &mut BTreeMap<PublicKeyBytes, u64>,
    recipients: &[PublicKeyBytes],
    shares: &PayoutShares,
) {
    for (key, (_, units)) in recipients.iter().zip(&shares.shares) {
        *owed.entry(*key).or_default() += units;
    }
}
