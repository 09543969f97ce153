//! `MerkleProof` and `PayoutLeaf`: decoding never panics and an accepted
//! input is canonical. A decoded proof is then verified, which walks its
//! whole sibling path: verification never panics, and no proof places an
//! item under the all-zero root (the root of no items).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::merkle::MerkleProof;
use pc_codec::PayoutLeaf;
use pc_codec_fuzz::decode_canonical;

const EMPTY_TREE_ROOT: [u8; 32] = [0; 32];

fuzz_target!(|data: &[u8]| {
    decode_canonical::<PayoutLeaf>(data);
    if let Some(proof) = decode_canonical::<MerkleProof>(data) {
        assert!(
            !proof.verify(b"fuzz item", &EMPTY_TREE_ROOT),
            "a proof verified against the empty-tree root: {proof:?}"
        );
    }
});
