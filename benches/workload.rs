//! The steady-state workload of DESIGN §11: the DAG workload generator of
//! `phantom-engine bench` ([`pc_engine::tools::workload`]: a committee of
//! in-memory seat machines in jittered waves, transfers chained on the
//! seats' own outputs so the UTXO set keeps a constant size) at k = 21 with
//! 256 transfers per anchor, signed with the simulator's fast scheme
//! instead of BIP-340 ([`FastSigning`]): the benches measure ordering
//! "signature checks aside", and a fast-scheme workload of 20 000+ anchors
//! generates in minutes. Generated once, outside any timed region, and
//! cached beside the bench's own workloads.
//!
//! The generator goes on until its observer has finalized every transfer,
//! so its last few hundred anchors carry none; the benches take the
//! workload up to its last anchor with transfers (the rounds that would
//! finalize those are not needed: nothing here waits for them).

use pc_codec::genesis::Genesis;
use pc_codec::{Hash32, SignatureBytes, SigningKey};
use pc_engine::tools::workload::{
    bench_genesis, load_or_generate_with, WorkloadError, WorkloadFile, WorkloadParams,
    WorkloadSigning,
};
use pc_shard::machine::FastSeatKey;
use pc_shard::sim_crypto::FastSigner;

/// Seats of the committee.
pub const SEATS: u8 = 21;
/// Transfers per anchor.
pub const TX_PER_ANCHOR: usize = 256;

/// The simulator's fast scheme for seats and transfers (one BLAKE3 keyed
/// hash per signature; never the product), over the same bench keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct FastSigning;

impl WorkloadSigning for FastSigning {
    type Seat = FastSeatKey;
    const CACHE_SUFFIX: &'static str = "-fast";

    fn seat(&self, key: SigningKey) -> FastSeatKey {
        FastSeatKey(key.public_key())
    }

    fn sign_transfer(&self, client: &SigningKey, tx_id: &Hash32, _number: u64) -> SignatureBytes {
        FastSigner.sign(&client.public_key(), tx_id)
    }
}

/// The parameters of a one-shard workload of about `anchors` full anchors.
pub fn params(anchors: usize) -> WorkloadParams {
    WorkloadParams {
        shards: 1,
        committee: SEATS,
        tx_per_anchor: TX_PER_ANCHOR as u16,
        events_per_shard: u32::try_from(anchors * TX_PER_ANCHOR)
            .expect("a bench workload holds fewer than 2^32 transfers"),
        cross_per_mille: 0,
    }
}

/// A generated workload: its genesis and its anchors in workload order.
#[derive(Debug)]
pub struct Workload {
    /// The genesis the anchors were made for.
    pub genesis: Genesis,
    /// The generator's anchors (mapped).
    file: WorkloadFile,
    /// Anchors taken: up to the last one with transfers.
    len: usize,
}

impl Workload {
    /// The workload of `file`: its anchors up to the last with transfers.
    pub fn new(genesis: Genesis, file: WorkloadFile) -> Workload {
        let len = (0..file.len())
            .rev()
            .find(|index| file.item(*index).events > 0)
            .map_or(0, |last| last + 1);
        Workload { genesis, file, len }
    }

    /// The encoded `SignedAnchor`s, in workload order.
    pub fn anchors(&self) -> Vec<&[u8]> {
        (0..self.len)
            .map(|index| self.file.item(index).bytes)
            .collect()
    }

    /// Anchors carrying exactly [`TX_PER_ANCHOR`] transfers.
    pub fn full_anchors(&self) -> usize {
        (0..self.len)
            .filter(|index| self.file.item(*index).events as usize == TX_PER_ANCHOR)
            .count()
    }

    /// Transfers in the anchors.
    pub fn transfers(&self) -> u64 {
        (0..self.len)
            .map(|index| u64::from(self.file.item(index).events))
            .sum()
    }
}

/// The fast-scheme workload of [`params`]`(anchors)` in `cache_dir`,
/// generated (progress on stderr) unless a complete copy is there.
pub fn load_or_generate(
    cache_dir: &std::path::Path,
    anchors: usize,
) -> Result<Workload, WorkloadError> {
    let params = params(anchors);
    let workload = load_or_generate_with(cache_dir, params, &FastSigning, true)?;
    Ok(Workload::new(
        bench_genesis(&params).0,
        WorkloadFile::open(&workload.shard_path(0))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_shard::machine::{AnchorStatus, Role, Shard, ShardLimits};
    use pc_shard::sim_crypto::FastVerifier;
    use pc_shard::state::Outcome;

    #[test]
    fn a_fast_scheme_workload_verifies_and_every_transfer_applies() {
        let cache = tempfile::tempdir().unwrap();
        let mut params = params(4);
        params.committee = 4;
        let workload = load_or_generate_with(cache.path(), params, &FastSigning, false).unwrap();
        let genesis = bench_genesis(&params).0;
        let file = WorkloadFile::open(&workload.shard_path(0)).unwrap();
        let mut observer: Shard<FastVerifier, FastSeatKey> = Shard::new(
            &genesis,
            0,
            Role::Observer,
            FastVerifier,
            ShardLimits::default(),
        );
        let mut applied = 0;
        for index in 0..file.len() {
            let status = observer.handle_anchor(None, file.item(index).bytes);
            assert_eq!(status.unwrap(), AnchorStatus::Inserted, "anchor {index}");
            while observer.poll_persist().is_some() {}
            while let Some(report) = observer.poll_finalized() {
                for (_, outcome) in &report.outcome.outcomes {
                    assert_eq!(*outcome, Outcome::Applied);
                    applied += 1;
                }
            }
        }
        assert_eq!(applied, 4 * TX_PER_ANCHOR);
    }
}
