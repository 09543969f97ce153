//! The cross-shard part of a shard's state (DESIGN §5.1, §5.2): the export
//! chain per destination, the cumulative `exported` / `imported` sums per
//! peer shard, and the import dedupe state per source (`head`, `pending`,
//! `frozen`) that lands every certified export leaf exactly once.
//!
//! Deterministic like the rest of the state: per-shard tables are vectors
//! indexed by shard, open rounds are kept in a `BTreeMap` by round, and
//! nothing iterates a hash map.

use std::collections::BTreeMap;

use pc_codec::cross::{
    leaves_root, DestEntry, ExportLeaf, Import, Origin, RoundExports, NO_ROUND, PEND_MAX, X_MAX,
};
use pc_codec::{Encode, Hash32};

use crate::state::Outcome;

/// One open source round in a destination: registered by its first
/// Certified import, dropped once every leaf landed and the rounds before
/// it in the chain did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRound {
    /// The previous round of the source's chain to this shard.
    pub prev_round: u64,
    /// Leaves of the entry.
    pub count: u32,
    /// The entry's root.
    pub root: Hash32,
    /// The id of the checkpoint that registered it.
    pub checkpoint_id: Hash32,
    /// Bit `i` set iff leaf `i` landed.
    pub bitmap: Vec<u64>,
    /// Leaves landed.
    pub landed: u32,
}

impl PendingRound {
    fn bit(&self, index: u64) -> bool {
        self.bitmap[(index / 64) as usize] & (1 << (index % 64)) != 0
    }

    fn set(&mut self, index: u64) {
        if !self.bit(index) {
            self.landed += 1;
        }
        self.bitmap[(index / 64) as usize] |= 1 << (index % 64);
    }

    fn full(&self) -> bool {
        self.landed == self.count
    }
}

/// The dedupe state of one source shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceImports {
    /// Every round of the source's chain up to and including `head` is
    /// fully imported; `None` below every round.
    pub head: Option<u64>,
    /// Set when two certificates of one source round disagree.
    pub frozen: bool,
    /// Open rounds by round.
    pub pending: BTreeMap<u64, PendingRound>,
}

impl SourceImports {
    /// The round an entry's `prev_round` must name to be the chain
    /// successor of `head`.
    fn head_link(&self) -> u64 {
        self.head.unwrap_or(NO_ROUND)
    }

    /// Moves `head` along the chain over every fully landed round.
    fn advance(&mut self) {
        while let Some((&round, _)) = self
            .pending
            .iter()
            .find(|(_, p)| p.prev_round == self.head_link() && p.full())
        {
            self.pending.remove(&round);
            self.head = Some(round);
        }
    }
}

/// Cross-shard accounting and dedupe of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossState {
    /// This shard.
    shard: u16,
    /// Per destination, the last round with exports to it.
    export_prev: Vec<u64>,
    /// Per destination, value exported to it (cumulative).
    exported: Vec<u128>,
    /// Per source, value imported from it (cumulative).
    imported: Vec<u128>,
    /// Per source, the dedupe state.
    sources: Vec<SourceImports>,
}

impl CrossState {
    /// The state at genesis of `shard` among `shards`.
    pub fn new(shard: u16, shards: u16) -> Self {
        let n = usize::from(shards);
        CrossState {
            shard,
            export_prev: vec![NO_ROUND; n],
            exported: vec![0; n],
            imported: vec![0; n],
            sources: vec![SourceImports::default(); n],
        }
    }

    /// Value exported to `dest`, cumulative.
    pub fn exported_to(&self, dest: u16) -> u128 {
        self.exported.get(usize::from(dest)).copied().unwrap_or(0)
    }

    /// Value imported from `source`, cumulative.
    pub fn imported_from(&self, source: u16) -> u128 {
        self.imported.get(usize::from(source)).copied().unwrap_or(0)
    }

    /// Value exported to every shard.
    pub fn exported_total(&self) -> u128 {
        self.exported.iter().sum()
    }

    /// Value imported from every shard.
    pub fn imported_total(&self) -> u128 {
        self.imported.iter().sum()
    }

    /// The dedupe state of `source`.
    pub fn source(&self, source: u16) -> Option<&SourceImports> {
        self.sources.get(usize::from(source))
    }

    /// Whether leaf `index` of `source`'s `round` has landed here: `Some`
    /// once known (the round is at or below head, or open), `None` when
    /// the round is not registered yet.
    pub fn landed(&self, source: u16, round: u64, index: u64) -> Option<bool> {
        let imports = self.source(source)?;
        if imports.head.is_some_and(|head| round <= head) {
            return Some(true);
        }
        let pending = imports.pending.get(&round)?;
        (index < u64::from(pending.count)).then(|| pending.bit(index))
    }

    /// Whether `source`'s `round` is registered (open) here.
    pub fn is_registered(&self, source: u16, round: u64) -> bool {
        self.source(source)
            .is_some_and(|s| s.pending.contains_key(&round))
    }

    /// Whether the exports of one transfer fit the round's lists: `counts`
    /// are its leaves per destination; `lists` the round's so far.
    pub fn exports_fit(
        lists: &BTreeMap<u16, Vec<ExportLeaf>>,
        counts: &BTreeMap<u16, usize>,
    ) -> bool {
        counts
            .iter()
            .all(|(dest, n)| lists.get(dest).map_or(0, Vec::len) + n <= X_MAX as usize)
    }

    /// Records an exported leaf's value.
    pub fn note_export(&mut self, leaf: &ExportLeaf) {
        self.exported[usize::from(leaf.dest)] += u128::from(leaf.amount);
    }

    /// Ends a round's exports: the entries per destination (ascending),
    /// each chained to the destination's previous round with exports.
    pub fn finish_round(
        &mut self,
        round: u64,
        lists: BTreeMap<u16, Vec<ExportLeaf>>,
    ) -> RoundExports {
        let mut entries = Vec::with_capacity(lists.len());
        for (dest, leaves) in lists {
            let prev = &mut self.export_prev[usize::from(dest)];
            let entry = DestEntry {
                dest,
                count: leaves.len() as u32,
                root: leaves_root(&leaves),
                prev_round: *prev,
            };
            *prev = round;
            entries.push((entry, leaves));
        }
        RoundExports { entries }
    }

    /// Applies an import in total order (DESIGN §5.2 "Apply"); the stateless
    /// checks passed when its anchor was validated. `checkpoint_id` is the
    /// id of its certificate's checkpoint (Certified form). On
    /// [`Outcome::Applied`] the caller creates the leaf's output.
    pub fn apply_import(&mut self, import: &Import, checkpoint_id: Option<Hash32>) -> Outcome {
        let Some(imports) = self.sources.get_mut(usize::from(import.source)) else {
            return Outcome::ImportUnregistered;
        };
        if import.source == self.shard {
            return Outcome::ImportUnregistered;
        }
        // 1. Frozen sources and rounds at or below head.
        if imports.frozen {
            return Outcome::ImportSourceFrozen;
        }
        if imports.head.is_some_and(|head| import.round <= head) {
            return Outcome::ImportDuplicate;
        }
        // 2. The Certified form registers its round.
        if let (Origin::Certified(certified), Some(id)) = (&import.origin, checkpoint_id) {
            match imports.pending.get(&import.round) {
                Some(pending) if pending.checkpoint_id != id => {
                    imports.frozen = true;
                    return Outcome::ImportCertificateConflict;
                }
                Some(_) => {}
                None => {
                    let successor = certified.entry.prev_round == imports.head_link();
                    if !successor && imports.pending.len() >= PEND_MAX {
                        return Outcome::ImportWindowFull;
                    }
                    let count = certified.entry.count;
                    imports.pending.insert(
                        import.round,
                        PendingRound {
                            prev_round: certified.entry.prev_round,
                            count,
                            root: certified.entry.root,
                            checkpoint_id: id,
                            bitmap: vec![0; (count as usize).div_ceil(64)],
                            landed: 0,
                        },
                    );
                }
            }
        }
        // 3. The round's stored entry pins the proof.
        let Some(pending) = imports.pending.get_mut(&import.round) else {
            return Outcome::ImportUnregistered;
        };
        let proof = &import.leaf_proof;
        // (The planted bugs of the multi-shard simulator's self-test,
        // test-only features: a free leaf count, no bitmap.)
        let count_pinned = cfg!(feature = "planted-bug-free-leaf-count")
            || proof.leaf_count == u64::from(pending.count);
        if !count_pinned
            || proof.index >= u64::from(pending.count)
            || !proof.verify(&import.leaf.to_bytes(), &pending.root)
        {
            return Outcome::ImportBadProof;
        }
        // 4. Each leaf once.
        if !cfg!(feature = "planted-bug-no-import-bitmap") && pending.bit(proof.index) {
            return Outcome::ImportDuplicate;
        }
        pending.set(proof.index);
        self.imported[usize::from(import.source)] += u128::from(import.leaf.amount);
        // 5. Head follows the chain over fully landed rounds.
        imports.advance();
        Outcome::Applied
    }
}

/// The cross-shard section of a snapshot image.
pub mod image {
    use rkyv::{Archive, Deserialize, Serialize};

    use pc_codec::Hash32;

    /// One open source round.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct PendingImage {
        /// The source round.
        pub round: u64,
        /// Its chain predecessor (`u64::MAX`: none).
        pub prev_round: u64,
        /// Leaves.
        pub count: u32,
        /// Entry root.
        pub root: Hash32,
        /// Registering checkpoint's id.
        pub checkpoint_id: Hash32,
        /// Landed bitmap words.
        pub bitmap: Vec<u64>,
    }

    /// One source's dedupe state.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct SourceImage {
        /// Head round (`u64::MAX`: none).
        pub head: u64,
        /// Frozen.
        pub frozen: bool,
        /// Open rounds, ascending.
        pub pending: Vec<PendingImage>,
    }

    /// Export chains, sums and import dedupe, indexed by shard.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub struct CrossImage {
        /// Last round with exports per destination (`u64::MAX`: none).
        pub export_prev: Vec<u64>,
        /// Cumulative value exported per destination.
        pub exported: Vec<u128>,
        /// Cumulative value imported per source.
        pub imported: Vec<u128>,
        /// Dedupe state per source.
        pub sources: Vec<SourceImage>,
    }
}

impl CrossState {
    /// The section of a snapshot image.
    pub fn to_image(&self) -> image::CrossImage {
        image::CrossImage {
            export_prev: self.export_prev.clone(),
            exported: self.exported.clone(),
            imported: self.imported.clone(),
            sources: self
                .sources
                .iter()
                .map(|s| image::SourceImage {
                    head: s.head.unwrap_or(NO_ROUND),
                    frozen: s.frozen,
                    pending: s
                        .pending
                        .iter()
                        .map(|(round, p)| image::PendingImage {
                            round: *round,
                            prev_round: p.prev_round,
                            count: p.count,
                            root: p.root,
                            checkpoint_id: p.checkpoint_id,
                            bitmap: p.bitmap.clone(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    /// Loads a snapshot section, checking every length and bound.
    pub fn load_image(&mut self, image: image::CrossImage) -> Result<(), String> {
        let n = self.export_prev.len();
        if image.export_prev.len() != n
            || image.exported.len() != n
            || image.imported.len() != n
            || image.sources.len() != n
        {
            return Err(format!("cross-shard tables are not of {n} shards"));
        }
        let mut sources = Vec::with_capacity(n);
        for (source, s) in image.sources.into_iter().enumerate() {
            if s.pending.len() > PEND_MAX + 1 {
                return Err(format!("source {source}: {} open rounds", s.pending.len()));
            }
            let mut pending = BTreeMap::new();
            for p in s.pending {
                let words = (p.count as usize).div_ceil(64);
                if !(1..=X_MAX).contains(&p.count) || p.bitmap.len() != words {
                    return Err(format!("source {source} round {}: bad bitmap", p.round));
                }
                let landed: u32 = p.bitmap.iter().map(|w| w.count_ones()).sum();
                let spare = (words as u32) * 64 - p.count;
                let last_ok = spare == 0 || p.bitmap.last().is_some_and(|w| w >> (64 - spare) == 0);
                if !last_ok {
                    return Err(format!(
                        "source {source} round {}: bits past count",
                        p.round
                    ));
                }
                let open = PendingRound {
                    prev_round: p.prev_round,
                    count: p.count,
                    root: p.root,
                    checkpoint_id: p.checkpoint_id,
                    bitmap: p.bitmap,
                    landed,
                };
                if pending.insert(p.round, open).is_some() {
                    return Err(format!("source {source} round {} listed twice", p.round));
                }
            }
            sources.push(SourceImports {
                head: (s.head != NO_ROUND).then_some(s.head),
                frozen: s.frozen,
                pending,
            });
        }
        self.export_prev = image.export_prev;
        self.exported = image.exported;
        self.imported = image.imported;
        self.sources = sources;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_codec::cross::{leaf_proofs, CertifiedCheckpoint, CertifiedOrigin, Checkpoint};
    use pc_codec::MerkleProof;

    fn leaf(n: u8) -> ExportLeaf {
        ExportLeaf {
            dest: 1,
            tx_id: [n; 32],
            output_index: 0,
            amount: 10 * u64::from(n) + 1,
            owner: [7; 32],
        }
    }

    /// The imports of source 0's `round` (leaves `leaves`), chained after
    /// `prev_round`, with `certified` choosing the form.
    fn imports(round: u64, prev_round: u64, leaves: &[ExportLeaf]) -> (Vec<Import>, Hash32) {
        let entry = DestEntry {
            dest: 1,
            count: leaves.len() as u32,
            root: leaves_root(leaves),
            prev_round,
        };
        let exports = RoundExports {
            entries: vec![(entry, leaves.to_vec())],
        };
        let checkpoint = Checkpoint {
            shard: 0,
            round,
            state_root: [round as u8; 32],
            exports_root: exports.root(),
            export_count: leaves.len() as u32,
            dest_count: 1,
            snapshot_root: [0; 32],
        };
        let origin = Origin::Certified(Box::new(CertifiedOrigin {
            cert: CertifiedCheckpoint {
                checkpoint,
                mask: 0b111,
                signatures: vec![[0; 64]; 3],
            },
            entry,
            entry_proof: exports.entry_proof(0).unwrap(),
        }));
        let list = leaf_proofs(leaves)
            .into_iter()
            .zip(leaves)
            .map(|(proof, leaf)| Import {
                source: 0,
                round,
                origin: origin.clone(),
                leaf: *leaf,
                leaf_proof: proof,
            })
            .collect();
        (list, checkpoint.id(&[0; 8]))
    }

    fn registered(import: &Import) -> Import {
        Import {
            origin: Origin::Registered,
            ..import.clone()
        }
    }

    #[test]
    fn every_leaf_lands_once_and_head_follows_the_chain() {
        let mut cross = CrossState::new(1, 2);
        let (r3, id3) = imports(3, NO_ROUND, &[leaf(1), leaf(2)]);
        let (r7, id7) = imports(7, 3, &[leaf(3)]);
        // Round 7 first: admitted (the window has room), pending.
        assert_eq!(cross.apply_import(&r7[0], Some(id7)), Outcome::Applied);
        assert_eq!(cross.source(0).unwrap().head, None, "7 waits for 3");
        assert_eq!(
            cross.apply_import(&registered(&r7[0]), None),
            Outcome::ImportDuplicate
        );
        // Round 3: a Registered import before registration is refused.
        assert_eq!(
            cross.apply_import(&registered(&r3[1]), None),
            Outcome::ImportUnregistered
        );
        assert_eq!(cross.apply_import(&r3[1], Some(id3)), Outcome::Applied);
        assert_eq!(cross.landed(0, 3, 1), Some(true));
        assert_eq!(cross.landed(0, 3, 0), Some(false));
        assert_eq!(
            cross.apply_import(&registered(&r3[0]), None),
            Outcome::Applied
        );
        // Both full: head moves over 3 and then 7.
        assert_eq!(cross.source(0).unwrap().head, Some(7));
        assert!(cross.source(0).unwrap().pending.is_empty());
        for import in r3.iter().chain(&r7) {
            assert_eq!(
                cross.apply_import(import, Some(id3)),
                Outcome::ImportDuplicate
            );
        }
        assert_eq!(cross.imported_from(0), 11 + 21 + 31);
    }

    #[test]
    fn a_second_certificate_of_a_round_freezes_the_source() {
        let mut cross = CrossState::new(1, 2);
        let (r3, id3) = imports(3, NO_ROUND, &[leaf(1), leaf(2)]);
        assert_eq!(cross.apply_import(&r3[0], Some(id3)), Outcome::Applied);
        assert_eq!(
            cross.apply_import(&r3[1], Some([9; 32])),
            Outcome::ImportCertificateConflict
        );
        assert_eq!(
            cross.apply_import(&r3[1], Some(id3)),
            Outcome::ImportSourceFrozen
        );
    }

    #[test]
    fn the_window_admits_the_chain_successor_only_when_full() {
        let mut cross = CrossState::new(1, 2);
        // Rounds 10, 11, … each chained after the one before, 2 leaves each:
        // land one leaf of each so none completes.
        let mut prev = 5;
        for round in 10..10 + PEND_MAX as u64 {
            let (list, id) = imports(round, prev, &[leaf(1), leaf(2)]);
            assert_eq!(cross.apply_import(&list[0], Some(id)), Outcome::Applied);
            prev = round;
        }
        let (late, id) = imports(100, 99, &[leaf(3)]);
        assert_eq!(
            cross.apply_import(&late[0], Some(id)),
            Outcome::ImportWindowFull
        );
        // The chain successor of head (none: prev_round = NO_ROUND) is
        // always admitted.
        let (first, id) = imports(5, NO_ROUND, &[leaf(4)]);
        assert_eq!(cross.apply_import(&first[0], Some(id)), Outcome::Applied);
        assert_eq!(cross.source(0).unwrap().head, Some(5));
    }

    #[test]
    fn a_proof_not_of_the_registered_entry_is_refused() {
        let mut cross = CrossState::new(1, 2);
        let (r3, id3) = imports(3, NO_ROUND, &[leaf(1), leaf(2), leaf(3)]);
        assert_eq!(cross.apply_import(&r3[0], Some(id3)), Outcome::Applied);
        let mut moved = registered(&r3[2]);
        moved.leaf_proof = MerkleProof {
            index: 1,
            leaf_count: 2,
            siblings: moved.leaf_proof.siblings.clone(),
        };
        assert_eq!(cross.apply_import(&moved, None), Outcome::ImportBadProof);
    }

    #[test]
    fn images_round_trip_and_bad_ones_are_refused() {
        let mut cross = CrossState::new(1, 3);
        let (r3, id3) = imports(3, NO_ROUND, &[leaf(1), leaf(2)]);
        cross.apply_import(&r3[0], Some(id3));
        let mut lists = BTreeMap::new();
        lists.insert(2u16, vec![ExportLeaf { dest: 2, ..leaf(5) }]);
        cross.note_export(&lists[&2][0]);
        let exports = cross.finish_round(4, lists);
        assert_eq!(exports.entries[0].0.prev_round, NO_ROUND);
        let mut loaded = CrossState::new(1, 3);
        loaded.load_image(cross.to_image()).unwrap();
        assert_eq!(loaded, cross);
        let mut bad = cross.to_image();
        bad.sources[0].pending[0].bitmap[0] = 0b100;
        assert!(CrossState::new(1, 3).load_image(bad).is_err());
        let mut short = cross.to_image();
        short.exported.pop();
        assert!(CrossState::new(1, 3).load_image(short).is_err());
    }
}
