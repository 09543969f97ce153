//! Binary BLAKE3 Merkle trees (DESIGN §3.2): leaves `derive("merkle-leaf",
//! item)`, nodes `derive("merkle-node", left || right)`, an odd last node is
//! promoted to the next level unchanged, and the root of no items is all
//! zeros.

use crate::ids::{context, derive, Hash32};
use crate::wire::{put_count, Decode, DecodeError, Encode, Reader};

/// Deepest proof accepted: trees of up to 2^64 leaves.
pub const MAX_PROOF_DEPTH: usize = 64;

/// The leaf hash of `item`.
pub fn leaf_hash(item: &[u8]) -> Hash32 {
    derive(context::MERKLE_LEAF, &[item])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash32, right: &Hash32) -> Hash32 {
    derive(context::MERKLE_NODE, &[left, right])
}

/// The root over `items` (each hashed as a leaf).
pub fn root<I: AsRef<[u8]>>(items: &[I]) -> Hash32 {
    root_of_leaves(items.iter().map(|item| leaf_hash(item.as_ref())).collect())
}

/// The root over already-hashed leaves; reuses `level` as scratch space.
pub fn root_of_leaves(mut level: Vec<Hash32>) -> Hash32 {
    if level.is_empty() {
        return [0; 32];
    }
    while level.len() > 1 {
        let next_len = level.len().div_ceil(2);
        for index in 0..next_len {
            let left = level[2 * index];
            level[index] = match level.get(2 * index + 1) {
                Some(right) => node_hash(&left, right),
                None => left,
            };
        }
        level.truncate(next_len);
    }
    level[0]
}

/// A proof that one item is the `index`-th of `leaf_count` items under a root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerkleProof {
    /// Position of the item.
    pub index: u64,
    /// Number of items in the tree.
    pub leaf_count: u64,
    /// Sibling hashes from the leaf level up, skipping levels where the
    /// node was promoted.
    pub siblings: Vec<Hash32>,
}

/// The level above `level`: pairs hashed together, an odd last node
/// carried up as it is.
fn parent_level(level: &[Hash32]) -> Vec<Hash32> {
    level
        .chunks(2)
        .map(|pair| match pair {
            [left, right] => node_hash(left, right),
            [single] => *single,
            _ => unreachable!("chunks(2) yields one or two items"),
        })
        .collect()
}

impl MerkleProof {
    /// The proof for `items[index]`, or `None` when `index` is out of range.
    pub fn build<I: AsRef<[u8]>>(items: &[I], index: usize) -> Option<MerkleProof> {
        if index >= items.len() {
            return None;
        }
        let mut level: Vec<Hash32> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
        let mut position = index;
        let mut siblings = Vec::new();
        while level.len() > 1 {
            let sibling = position ^ 1;
            if sibling < level.len() {
                siblings.push(level[sibling]);
            }
            level = parent_level(&level);
            position /= 2;
        }
        Some(MerkleProof {
            index: index as u64,
            leaf_count: items.len() as u64,
            siblings,
        })
    }

    /// The proofs of every item, in item order: [`MerkleProof::build`] of
    /// each index, from one pass over the tree (O(n) hashes and O(n log n)
    /// sibling copies, where building each proof alone hashes the whole
    /// tree every time).
    pub fn build_all<I: AsRef<[u8]>>(items: &[I]) -> Vec<MerkleProof> {
        let leaf_count = items.len() as u64;
        let mut proofs: Vec<MerkleProof> = (0..leaf_count)
            .map(|index| MerkleProof {
                index,
                leaf_count,
                siblings: Vec::new(),
            })
            .collect();
        let mut level: Vec<Hash32> = items.iter().map(|i| leaf_hash(i.as_ref())).collect();
        let mut shift = 0u32;
        while level.len() > 1 {
            for proof in &mut proofs {
                let sibling = ((proof.index >> shift) ^ 1) as usize;
                if sibling < level.len() {
                    proof.siblings.push(level[sibling]);
                }
            }
            level = parent_level(&level);
            shift += 1;
        }
        proofs
    }

    /// True iff this proof places `item` under `root`. Every sibling must be
    /// used: a proof with extra or missing siblings is false.
    pub fn verify(&self, item: &[u8], root: &Hash32) -> bool {
        if self.index >= self.leaf_count {
            return false;
        }
        let mut hash = leaf_hash(item);
        let mut position = self.index;
        let mut width = self.leaf_count;
        let mut siblings = self.siblings.iter();
        while width > 1 {
            let sibling = position ^ 1;
            if sibling < width {
                let Some(other) = siblings.next() else {
                    return false;
                };
                hash = if position & 1 == 0 {
                    node_hash(&hash, other)
                } else {
                    node_hash(other, &hash)
                };
            }
            position /= 2;
            width = width.div_ceil(2);
        }
        siblings.next().is_none() && &hash == root
    }
}

impl Encode for MerkleProof {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.index.to_le_bytes());
        out.extend_from_slice(&self.leaf_count.to_le_bytes());
        put_count(out, self.siblings.len());
        for sibling in &self.siblings {
            out.extend_from_slice(sibling);
        }
    }
}

impl MerkleProof {
    /// Decodes a proof of at most `max_siblings` siblings (`what` names
    /// the sibling list in errors): a proof inside a format that bounds its
    /// tree is refused past that bound before allocation.
    pub fn decode_bounded(
        reader: &mut Reader<'_>,
        max_siblings: usize,
        what: &'static str,
    ) -> Result<Self, DecodeError> {
        let index = reader.u64("proof index")?;
        let leaf_count = reader.u64("proof leaf count")?;
        let count = reader.count(what, 0, max_siblings, 32)?;
        let mut siblings = Vec::with_capacity(count);
        for _ in 0..count {
            siblings.push(reader.array("proof sibling")?);
        }
        Ok(MerkleProof {
            index,
            leaf_count,
            siblings,
        })
    }
}

impl Decode for MerkleProof {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        MerkleProof::decode_bounded(reader, MAX_PROOF_DEPTH, "proof siblings")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![i as u8; 3]).collect()
    }

    #[test]
    fn empty_root_is_zero_and_single_root_is_its_leaf() {
        assert_eq!(root::<Vec<u8>>(&[]), [0; 32]);
        assert_eq!(root(&items(1)), leaf_hash(&items(1)[0]));
    }

    #[test]
    fn odd_node_is_promoted() {
        let three = items(3);
        let expected = node_hash(
            &node_hash(&leaf_hash(&three[0]), &leaf_hash(&three[1])),
            &leaf_hash(&three[2]),
        );
        assert_eq!(root(&three), expected);
    }

    #[test]
    fn every_proof_verifies_and_no_proof_verifies_elsewhere() {
        for n in 1..=17 {
            let all = items(n);
            let tree_root = root(&all);
            for index in 0..n {
                let proof = MerkleProof::build(&all, index).unwrap();
                assert!(proof.verify(&all[index], &tree_root), "n={n} index={index}");
                assert!(!proof.verify(b"other", &tree_root));
                let mut moved = proof.clone();
                moved.index = (moved.index + 1) % n as u64;
                if n > 1 {
                    assert!(
                        !moved.verify(&all[index], &tree_root),
                        "n={n} index={index}"
                    );
                }
                let mut padded = proof.clone();
                padded.siblings.push([0; 32]);
                assert!(!padded.verify(&all[index], &tree_root));
            }
            assert!(MerkleProof::build(&all, n).is_none());
            let every: Vec<MerkleProof> = (0..n)
                .map(|index| MerkleProof::build(&all, index).unwrap())
                .collect();
            assert_eq!(MerkleProof::build_all(&all), every, "n={n}");
        }
    }
}
