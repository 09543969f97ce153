//! `pc-codec` owns the protocol of Phantom-Coin v0: every type that crosses
//! the wire or reaches the log, its hand-written canonical encoding and strict
//! decoder, the domain-separated BLAKE3 ids, BIP-340 signatures behind a
//! verifier trait, Merkle roots and proofs, builders for signed transfers and
//! anchors, and the genesis with its validation and hash.
//!
//! It never does I/O, never reads a clock and never draws randomness of its
//! own (signing takes the auxiliary randomness from the caller), so the
//! consensus built on it runs unchanged inside a deterministic simulator.
//! Decoding never panics and never allocates more than its input justifies.
#![warn(missing_docs)]

pub mod address;
pub mod batch;
pub mod builder;
pub mod cross;
pub mod crypto;
pub mod digest;
pub mod genesis;
pub mod ids;
pub mod merkle;
pub mod mint;
pub mod types;
pub mod wire;

pub use batch::{BatchEntry, BatchWork};
pub use builder::{AnchorBuilder, BuildError, TransferBuilder};
pub use cross::{
    BuiltExports, CertificateError, CertifiedCheckpoint, CertifiedOrigin, Checkpoint,
    CheckpointSig, DestEntry, ExportLeaf, ExportsBundle, Import, ImportError, Origin, RoundExports,
};
pub use crypto::{
    key_cache_counts, Bip340, KeyCacheCounts, PublicKeyBytes, SignatureBytes, SignatureVerifier,
    SigningKey,
};
pub use digest::{DecodedAnchor, EventDigest};
pub use genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisError, GenesisValidator, SeatAssignment,
};
pub use ids::{to_hex, Hash32};
pub use merkle::MerkleProof;
pub use types::*;
pub use wire::{Decode, DecodeError, Encode, Reader};
