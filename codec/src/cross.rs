//! Cross-shard formats (DESIGN §5.2): export leaves and their per-destination
//! entries, the per-round checkpoint, seats' checkpoint signatures and the
//! certificates made of them, and the Import micro-event's body.
//!
//! The checks here are the stateless ones every node can make on its own:
//! a certificate's signatures against the source shard's genesis committee,
//! and the two Merkle proofs of an import (the entry under the checkpoint's
//! exports root, the leaf under the entry's root), each with its
//! `leaf_count` pinned to a committed count (DESIGN §3.2).

use crate::crypto::{PublicKeyBytes, SignatureBytes, SignatureVerifier};
use crate::ids::{context, derive, Hash32};
use crate::merkle::{self, MerkleProof};
use crate::types::MAX_SEATS;
use crate::types::{put_u16, put_u32, put_u64};
use crate::wire::{put_count, Decode, DecodeError, Encode, Reader};
use crate::BatchEntry;

/// Most export leaves per (source round, destination) (`X_max`).
pub const X_MAX: u32 = 16_384;
/// Most open (partly imported) rounds per source in a destination's dedupe
/// state besides the chain successor (`PEND_max`).
pub const PEND_MAX: usize = 16;
/// Most imports of the Certified form in one anchor.
pub const MAX_CERTIFIED_IMPORTS_PER_ANCHOR: usize = 8;
/// Most siblings of an entry proof (up to 2^16 destinations).
pub const MAX_ENTRY_PROOF_SIBLINGS: usize = 16;
/// Most siblings of a leaf proof (up to `X_max` = 2^14 leaves).
pub const MAX_LEAF_PROOF_SIBLINGS: usize = 14;
/// `prev_round` of the first entry of a chain: no earlier round.
pub const NO_ROUND: u64 = u64::MAX;
/// Encoded size of an [`ExportLeaf`].
pub const EXPORT_LEAF_BYTES: usize = 2 + 32 + 2 + 8 + 32;
/// Encoded size of a [`DestEntry`].
pub const DEST_ENTRY_BYTES: usize = 2 + 4 + 32 + 8;

/// One output sent by a source shard to destination `dest`, in the order
/// the source applied it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExportLeaf {
    /// The destination shard.
    pub dest: u16,
    /// The transfer's tx id (a claim's micro-event id).
    pub tx_id: Hash32,
    /// The output's index in its transfer.
    pub output_index: u16,
    /// Units.
    pub amount: u64,
    /// The owner, of shard `dest`.
    pub owner: PublicKeyBytes,
}

impl Encode for ExportLeaf {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.dest);
        out.extend_from_slice(&self.tx_id);
        put_u16(out, self.output_index);
        put_u64(out, self.amount);
        out.extend_from_slice(&self.owner);
    }
}

impl Decode for ExportLeaf {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ExportLeaf {
            dest: reader.u16("export destination")?,
            tx_id: reader.array("export tx id")?,
            output_index: reader.u16("export output index")?,
            amount: reader.u64("export amount")?,
            owner: reader.array("export owner")?,
        })
    }
}

/// A source round's exports to one destination: how many, their Merkle
/// root, and the previous round with exports to that destination (the
/// pair's export chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DestEntry {
    /// The destination shard.
    pub dest: u16,
    /// Leaves (`1..=X_max`).
    pub count: u32,
    /// Merkle root of the leaves' encodings.
    pub root: Hash32,
    /// The last earlier round with exports to `dest`; [`NO_ROUND`] if none.
    pub prev_round: u64,
}

impl Encode for DestEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.dest);
        put_u32(out, self.count);
        out.extend_from_slice(&self.root);
        put_u64(out, self.prev_round);
    }
}

impl Decode for DestEntry {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(DestEntry {
            dest: reader.u16("entry destination")?,
            count: reader.u32("entry count")?,
            root: reader.array("entry root")?,
            prev_round: reader.u64("entry previous round")?,
        })
    }
}

/// The exports of one finalized round, as the state builds them: one entry
/// per destination (ascending) with its leaves in apply order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundExports {
    /// `(entry, leaves)` per destination, ascending by destination.
    pub entries: Vec<(DestEntry, Vec<ExportLeaf>)>,
}

impl RoundExports {
    /// `exports_root`: Merkle root of the entries' encodings (zeros if none).
    pub fn root(&self) -> Hash32 {
        let items: Vec<Vec<u8>> = self.entries.iter().map(|(e, _)| e.to_bytes()).collect();
        merkle::root(&items)
    }

    /// Total leaves over every destination.
    pub fn export_count(&self) -> u32 {
        self.entries.iter().map(|(e, _)| e.count).sum()
    }

    /// Destinations with exports.
    pub fn dest_count(&self) -> u16 {
        self.entries.len() as u16
    }

    /// The proof that destination number `position` (in entry order) is
    /// under [`RoundExports::root`].
    pub fn entry_proof(&self, position: usize) -> Option<MerkleProof> {
        let items: Vec<Vec<u8>> = self.entries.iter().map(|(e, _)| e.to_bytes()).collect();
        MerkleProof::build(&items, position)
    }
}

/// The body of log record 6 (`ExportsBuilt`): a finalized round of this
/// shard, its state root and its exports, which serve pushes and
/// `GetExports`. (DESIGN §6 lists round and exports; the state root makes
/// the record rebuild the round's checkpoint on its own, so a restart
/// needs no `RoundFinalized` record that pruning or a crash may have
/// separated from it.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuiltExports {
    /// The round.
    pub round: u64,
    /// The state root after the round (the checkpoint's).
    pub state_root: Hash32,
    /// Its exports (at least one destination).
    pub exports: RoundExports,
}

impl Encode for BuiltExports {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.round);
        out.extend_from_slice(&self.state_root);
        put_count(out, self.exports.entries.len());
        for (entry, leaves) in &self.exports.entries {
            entry.encode(out);
            put_count(out, leaves.len());
            for leaf in leaves {
                leaf.encode(out);
            }
        }
    }
}

impl Decode for BuiltExports {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let round = reader.u64("exports round")?;
        let state_root = reader.array("exports state root")?;
        let count = reader.count(
            "exports destinations",
            1,
            usize::from(u16::MAX),
            DEST_ENTRY_BYTES + 1 + EXPORT_LEAF_BYTES,
        )?;
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let entry = DestEntry::decode(reader)?;
            let offset = reader.offset();
            let leaves_count =
                reader.count("exports leaves", 1, X_MAX as usize, EXPORT_LEAF_BYTES)?;
            if leaves_count != entry.count as usize {
                return Err(DecodeError::InvalidValue {
                    offset,
                    what: "exports leaf count (must equal the entry's)",
                });
            }
            let mut leaves = Vec::with_capacity(leaves_count);
            for _ in 0..leaves_count {
                leaves.push(ExportLeaf::decode(reader)?);
            }
            entries.push((entry, leaves));
        }
        Ok(BuiltExports {
            round,
            state_root,
            exports: RoundExports { entries },
        })
    }
}

/// The Merkle root of `leaves` (an entry's `root`).
pub fn leaves_root(leaves: &[ExportLeaf]) -> Hash32 {
    let items: Vec<Vec<u8>> = leaves.iter().map(Encode::to_bytes).collect();
    merkle::root(&items)
}

/// The proof of every leaf of `leaves`, in order (one tree build).
pub fn leaf_proofs(leaves: &[ExportLeaf]) -> Vec<MerkleProof> {
    let items: Vec<Vec<u8>> = leaves.iter().map(Encode::to_bytes).collect();
    MerkleProof::build_all(&items)
}

/// The per-round summary of a shard that its seats sign for other shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The shard.
    pub shard: u16,
    /// The finalized round.
    pub round: u64,
    /// The state root after the round.
    pub state_root: Hash32,
    /// Merkle root of the round's [`DestEntry`] encodings (zeros if none).
    pub exports_root: Hash32,
    /// Leaves over every destination.
    pub export_count: u32,
    /// Destinations with exports (the entry tree's leaf count).
    pub dest_count: u16,
    /// The certified snapshot root the round vouches for (zeros until
    /// canonical images exist, DESIGN §6.1).
    pub snapshot_root: Hash32,
}

impl Checkpoint {
    /// `derive("checkpoint", network || canonical(checkpoint))`: the message
    /// seats sign.
    pub fn id(&self, network: &[u8; 8]) -> Hash32 {
        derive(context::CHECKPOINT, &[network, &self.to_bytes()])
    }

    /// Whether seats sign this checkpoint: it has exports or a snapshot root.
    pub fn is_signed(&self) -> bool {
        self.export_count > 0 || self.snapshot_root != [0; 32]
    }
}

impl Encode for Checkpoint {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.shard);
        put_u64(out, self.round);
        out.extend_from_slice(&self.state_root);
        out.extend_from_slice(&self.exports_root);
        put_u32(out, self.export_count);
        put_u16(out, self.dest_count);
        out.extend_from_slice(&self.snapshot_root);
    }
}

impl Decode for Checkpoint {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Checkpoint {
            shard: reader.u16("checkpoint shard")?,
            round: reader.u64("checkpoint round")?,
            state_root: reader.array("checkpoint state root")?,
            exports_root: reader.array("checkpoint exports root")?,
            export_count: reader.u32("checkpoint export count")?,
            dest_count: reader.u16("checkpoint destination count")?,
            snapshot_root: reader.array("checkpoint snapshot root")?,
        })
    }
}

/// One seat's signature over a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CheckpointSig {
    /// The checkpoint signed.
    pub checkpoint: Checkpoint,
    /// The signing seat.
    pub seat: u8,
    /// `BIP340(seat key, checkpoint_id)`.
    pub signature: SignatureBytes,
}

impl Encode for CheckpointSig {
    fn encode(&self, out: &mut Vec<u8>) {
        self.checkpoint.encode(out);
        out.push(self.seat);
        out.extend_from_slice(&self.signature);
    }
}

impl Decode for CheckpointSig {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(CheckpointSig {
            checkpoint: Checkpoint::decode(reader)?,
            seat: reader.u8("checkpoint seat")?,
            signature: reader.array("checkpoint signature")?,
        })
    }
}

/// A checkpoint with the signatures of the seats in `mask`, in seat order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertifiedCheckpoint {
    /// The checkpoint.
    pub checkpoint: Checkpoint,
    /// Bit `i` set iff seat `i` signed.
    pub mask: u64,
    /// One signature per set bit of `mask`, lowest seat first.
    pub signatures: Vec<SignatureBytes>,
}

/// Why a certificate does not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The certificate is of a shard the genesis does not have.
    #[error("certificate of shard {shard}, which the genesis does not have")]
    UnknownShard {
        /// The shard named.
        shard: u16,
    },
    /// The mask names a seat at or past `k`.
    #[error("certificate mask {mask:#x} names a seat past k = {k}")]
    MaskPastCommittee {
        /// The mask.
        mask: u64,
        /// The committee size.
        k: usize,
    },
    /// Fewer than `q` seats signed.
    #[error("certificate has {signers} signers, q = {q}")]
    UnderSigned {
        /// Seats in the mask.
        signers: u32,
        /// The supermajority.
        q: usize,
    },
    /// The signature count is not the mask's.
    #[error("certificate has {signatures} signatures for {signers} seats")]
    SignatureCount {
        /// Signatures carried.
        signatures: usize,
        /// Seats in the mask.
        signers: u32,
    },
    /// A seat's signature does not verify.
    #[error("certificate signature of seat {seat} does not verify")]
    BadSignature {
        /// The seat.
        seat: u8,
    },
}

/// `q = k - floor((k - 1) / 3)` for a committee of `k` seats.
pub fn supermajority(k: usize) -> usize {
    k - (k.saturating_sub(1)) / 3
}

impl CertifiedCheckpoint {
    /// The seats of the mask, ascending.
    pub fn signers(&self) -> impl Iterator<Item = u8> + '_ {
        (0..64u8).filter(move |seat| self.mask & (1u64 << seat) != 0)
    }

    /// Every check but the signatures: mask within the committee of `k`,
    /// at least `q` signers, one signature per signer.
    pub fn check_shape(&self, k: usize) -> Result<(), CertificateError> {
        if k < 64 && self.mask >> k != 0 {
            return Err(CertificateError::MaskPastCommittee { mask: self.mask, k });
        }
        let signers = self.mask.count_ones();
        let q = supermajority(k);
        if (signers as usize) < q {
            return Err(CertificateError::UnderSigned { signers, q });
        }
        if self.signatures.len() != signers as usize {
            return Err(CertificateError::SignatureCount {
                signatures: self.signatures.len(),
                signers,
            });
        }
        Ok(())
    }

    /// Verifies the certificate against `committee` (the genesis keys of
    /// `checkpoint.shard`, by seat) on `network`: the shape, then every
    /// signature over the checkpoint id, as one batch.
    pub fn verify(
        &self,
        network: &[u8; 8],
        committee: &[PublicKeyBytes],
        verifier: &impl SignatureVerifier,
    ) -> Result<(), CertificateError> {
        if committee.is_empty() {
            return Err(CertificateError::UnknownShard {
                shard: self.checkpoint.shard,
            });
        }
        self.check_shape(committee.len())?;
        let id = self.checkpoint.id(network);
        let seats: Vec<u8> = self.signers().collect();
        let entries: Vec<BatchEntry<'_>> = seats
            .iter()
            .zip(&self.signatures)
            .map(|(seat, signature)| BatchEntry {
                key: &committee[usize::from(*seat)],
                message: &id,
                signature,
            })
            .collect();
        let mut verdicts = vec![false; entries.len()];
        verifier.verify_batch(&entries, &mut verdicts);
        match verdicts.iter().position(|ok| !ok) {
            Some(position) => Err(CertificateError::BadSignature {
                seat: seats[position],
            }),
            None => Ok(()),
        }
    }
}

impl Encode for CertifiedCheckpoint {
    fn encode(&self, out: &mut Vec<u8>) {
        self.checkpoint.encode(out);
        put_u64(out, self.mask);
        put_count(out, self.signatures.len());
        for signature in &self.signatures {
            out.extend_from_slice(signature);
        }
    }
}

impl Decode for CertifiedCheckpoint {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let checkpoint = Checkpoint::decode(reader)?;
        let mask = reader.u64("checkpoint mask")?;
        let count_offset = reader.offset();
        let count = reader.count("checkpoint signatures", 0, MAX_SEATS, 64)?;
        if count != mask.count_ones() as usize {
            return Err(DecodeError::InvalidValue {
                offset: count_offset,
                what: "checkpoint signature count (must equal the mask's seats)",
            });
        }
        let mut signatures = Vec::with_capacity(count);
        for _ in 0..count {
            signatures.push(reader.array("checkpoint signature")?);
        }
        Ok(CertifiedCheckpoint {
            checkpoint,
            mask,
            signatures,
        })
    }
}

/// How an import names its source round.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Tag 0: the round was registered by an earlier import; the
    /// destination's state holds its entry.
    Registered,
    /// Tag 1: the certificate of the source round, the destination's entry
    /// and its proof under the checkpoint's exports root.
    Certified(Box<CertifiedOrigin>),
}

/// The body of [`Origin::Certified`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertifiedOrigin {
    /// The source round's certificate.
    pub cert: CertifiedCheckpoint,
    /// The destination's entry of that round.
    pub entry: DestEntry,
    /// `entry` under `cert.checkpoint.exports_root`, with `leaf_count =
    /// dest_count`.
    pub entry_proof: MerkleProof,
}

/// The Import micro-event (tag 4): one export leaf of a certified source
/// round, landed in its destination shard.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Import {
    /// The source shard.
    pub source: u16,
    /// The source round.
    pub round: u64,
    /// The certificate, or a reference to an already registered round.
    pub origin: Origin,
    /// The imported output.
    pub leaf: ExportLeaf,
    /// `leaf` under the entry's root, with `leaf_count = entry.count`.
    pub leaf_proof: MerkleProof,
}

/// Why an import fails its stateless checks (DESIGN §5.2 checks 1 and 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The source is not a shard, or is the destination itself.
    #[error("import source {source_shard} is not another shard of {shards}")]
    BadSource {
        /// The source named.
        source_shard: u16,
        /// Shards of the genesis.
        shards: u16,
    },
    /// The leaf is not for this shard (its `dest` or its owner's shard).
    #[error("import leaf is for shard {leaf_shard}, not {shard}")]
    WrongDestination {
        /// Where the leaf says it goes.
        leaf_shard: u16,
        /// This shard.
        shard: u16,
    },
    /// The leaf carries no value.
    #[error("import leaf amount is 0")]
    ZeroAmount,
    /// The leaf proof's index or count is out of range.
    #[error("import leaf proof index {index} of {leaf_count} (at most {X_MAX} leaves)")]
    LeafProofRange {
        /// Index.
        index: u64,
        /// Count.
        leaf_count: u64,
    },
    /// The certificate is of another shard or round than the import names.
    #[error("import names source {source_shard} round {round}, its certificate is of shard {cert_shard} round {cert_round}")]
    CertificateMismatch {
        /// Source named.
        source_shard: u16,
        /// Round named.
        round: u64,
        /// The certificate's shard.
        cert_shard: u16,
        /// The certificate's round.
        cert_round: u64,
    },
    /// The certificate does not verify.
    #[error("import certificate: {0}")]
    Certificate(#[from] CertificateError),
    /// The entry is malformed (destination, count or chain link).
    #[error("import entry: {what}")]
    BadEntry {
        /// What is wrong.
        what: &'static str,
    },
    /// The entry is not under the checkpoint's exports root.
    #[error("import entry proof does not place the entry under the exports root")]
    EntryProof,
    /// The leaf is not under the entry's root.
    #[error("import leaf proof does not place the leaf under the entry root")]
    LeafProof,
}

impl Import {
    /// The checks that need no signature and no state: DESIGN §5.2 check 1
    /// and the shape of check 2 (entry fields and both proofs, with their
    /// leaf counts pinned to the committed ones). `shard_of` maps an owner
    /// to its shard.
    pub fn check_structure(
        &self,
        shard: u16,
        shards: u16,
        shard_of: impl Fn(&PublicKeyBytes) -> u16,
    ) -> Result<(), ImportError> {
        if self.source >= shards || self.source == shard {
            return Err(ImportError::BadSource {
                source_shard: self.source,
                shards,
            });
        }
        if self.leaf.dest != shard {
            return Err(ImportError::WrongDestination {
                leaf_shard: self.leaf.dest,
                shard,
            });
        }
        let owner_shard = shard_of(&self.leaf.owner);
        if owner_shard != shard {
            return Err(ImportError::WrongDestination {
                leaf_shard: owner_shard,
                shard,
            });
        }
        if self.leaf.amount == 0 {
            return Err(ImportError::ZeroAmount);
        }
        let proof = &self.leaf_proof;
        if proof.index >= proof.leaf_count || proof.leaf_count > u64::from(X_MAX) {
            return Err(ImportError::LeafProofRange {
                index: proof.index,
                leaf_count: proof.leaf_count,
            });
        }
        let Origin::Certified(certified) = &self.origin else {
            return Ok(());
        };
        let checkpoint = &certified.cert.checkpoint;
        if (checkpoint.shard, checkpoint.round) != (self.source, self.round) {
            return Err(ImportError::CertificateMismatch {
                source_shard: self.source,
                round: self.round,
                cert_shard: checkpoint.shard,
                cert_round: checkpoint.round,
            });
        }
        let entry = &certified.entry;
        if entry.dest != shard {
            return Err(ImportError::BadEntry {
                what: "destination is not this shard",
            });
        }
        if !(1..=X_MAX).contains(&entry.count) {
            return Err(ImportError::BadEntry {
                what: "count outside 1..=X_max",
            });
        }
        if entry.prev_round != NO_ROUND && entry.prev_round >= self.round {
            return Err(ImportError::BadEntry {
                what: "previous round not below the round",
            });
        }
        if certified.entry_proof.leaf_count != u64::from(checkpoint.dest_count)
            || !certified
                .entry_proof
                .verify(&entry.to_bytes(), &checkpoint.exports_root)
        {
            return Err(ImportError::EntryProof);
        }
        if proof.leaf_count != u64::from(entry.count)
            || !proof.verify(&self.leaf.to_bytes(), &entry.root)
        {
            return Err(ImportError::LeafProof);
        }
        Ok(())
    }

    /// The certificate, for the Certified form.
    pub fn certificate(&self) -> Option<&CertifiedCheckpoint> {
        match &self.origin {
            Origin::Certified(certified) => Some(&certified.cert),
            Origin::Registered => None,
        }
    }
}

impl Encode for Import {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u16(out, self.source);
        put_u64(out, self.round);
        match &self.origin {
            Origin::Registered => out.push(0),
            Origin::Certified(certified) => {
                out.push(1);
                certified.cert.encode(out);
                certified.entry.encode(out);
                certified.entry_proof.encode(out);
            }
        }
        self.leaf.encode(out);
        self.leaf_proof.encode(out);
    }
}

impl Decode for Import {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let source = reader.u16("import source")?;
        let round = reader.u64("import round")?;
        let offset = reader.offset();
        let origin = match reader.u8("import origin tag")? {
            0 => Origin::Registered,
            1 => Origin::Certified(Box::new(CertifiedOrigin {
                cert: CertifiedCheckpoint::decode(reader)?,
                entry: DestEntry::decode(reader)?,
                entry_proof: MerkleProof::decode_bounded(
                    reader,
                    MAX_ENTRY_PROOF_SIBLINGS,
                    "entry proof siblings",
                )?,
            })),
            tag => {
                return Err(DecodeError::UnknownTag {
                    offset,
                    what: "import origin",
                    tag,
                })
            }
        };
        Ok(Import {
            source,
            round,
            origin,
            leaf: ExportLeaf::decode(reader)?,
            leaf_proof: MerkleProof::decode_bounded(
                reader,
                MAX_LEAF_PROOF_SIBLINGS,
                "leaf proof siblings",
            )?,
        })
    }
}

/// A source round's exports to one destination, as pushed between shards
/// (message 12 and log record 4): the certificate, the destination's entry
/// with its proof, and every leaf.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExportsBundle {
    /// The certificate of the source round.
    pub cert: CertifiedCheckpoint,
    /// The destination's entry.
    pub entry: DestEntry,
    /// The entry under the checkpoint's exports root.
    pub entry_proof: MerkleProof,
    /// Every leaf of the entry, in order (`1..=X_max`).
    pub leaves: Vec<ExportLeaf>,
}

impl ExportsBundle {
    /// The source shard.
    pub fn source(&self) -> u16 {
        self.cert.checkpoint.shard
    }

    /// The source round.
    pub fn round(&self) -> u64 {
        self.cert.checkpoint.round
    }

    /// The destination shard.
    pub fn dest(&self) -> u16 {
        self.entry.dest
    }

    /// Every check of a received bundle but the certificate's signatures:
    /// the entry under the exports root, the leaves matching the entry's
    /// count and root, each for `dest`.
    pub fn check_structure(&self) -> Result<(), ImportError> {
        let checkpoint = &self.cert.checkpoint;
        if !(1..=X_MAX).contains(&self.entry.count)
            || self.leaves.len() != self.entry.count as usize
        {
            return Err(ImportError::BadEntry {
                what: "leaf count is not the entry's",
            });
        }
        if self.entry.prev_round != NO_ROUND && self.entry.prev_round >= checkpoint.round {
            return Err(ImportError::BadEntry {
                what: "previous round not below the round",
            });
        }
        if self.entry_proof.leaf_count != u64::from(checkpoint.dest_count)
            || !self
                .entry_proof
                .verify(&self.entry.to_bytes(), &checkpoint.exports_root)
        {
            return Err(ImportError::EntryProof);
        }
        if self.leaves.iter().any(|leaf| leaf.dest != self.entry.dest) {
            return Err(ImportError::BadEntry {
                what: "a leaf is for another destination",
            });
        }
        if leaves_root(&self.leaves) != self.entry.root {
            return Err(ImportError::LeafProof);
        }
        Ok(())
    }

    /// The import of leaf `index`, in the Certified form when `certified`,
    /// else Registered; `proofs` are [`leaf_proofs`] of the leaves.
    pub fn import(&self, index: usize, proof: MerkleProof, certified: bool) -> Import {
        Import {
            source: self.source(),
            round: self.round(),
            origin: if certified {
                Origin::Certified(Box::new(CertifiedOrigin {
                    cert: self.cert.clone(),
                    entry: self.entry,
                    entry_proof: self.entry_proof.clone(),
                }))
            } else {
                Origin::Registered
            },
            leaf: self.leaves[index],
            leaf_proof: proof,
        }
    }
}

impl Encode for ExportsBundle {
    fn encode(&self, out: &mut Vec<u8>) {
        self.cert.encode(out);
        self.entry.encode(out);
        self.entry_proof.encode(out);
        put_count(out, self.leaves.len());
        for leaf in &self.leaves {
            leaf.encode(out);
        }
    }
}

impl Decode for ExportsBundle {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let cert = CertifiedCheckpoint::decode(reader)?;
        let entry = DestEntry::decode(reader)?;
        let entry_proof =
            MerkleProof::decode_bounded(reader, MAX_ENTRY_PROOF_SIBLINGS, "entry proof siblings")?;
        let count = reader.count("bundle leaves", 1, X_MAX as usize, EXPORT_LEAF_BYTES)?;
        let mut leaves = Vec::with_capacity(count);
        for _ in 0..count {
            leaves.push(ExportLeaf::decode(reader)?);
        }
        Ok(ExportsBundle {
            cert,
            entry,
            entry_proof,
            leaves,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(dest: u16, n: u8) -> ExportLeaf {
        ExportLeaf {
            dest,
            tx_id: [n; 32],
            output_index: u16::from(n),
            amount: 100 + u64::from(n),
            owner: [n ^ 0x5a; 32],
        }
    }

    #[test]
    fn supermajority_matches_the_design() {
        assert_eq!(supermajority(1), 1);
        assert_eq!(supermajority(4), 3);
        assert_eq!(supermajority(21), 15);
        assert_eq!(supermajority(64), 43);
    }

    #[test]
    fn encodings_round_trip_and_have_their_stated_sizes() {
        let l = leaf(3, 7);
        assert_eq!(l.to_bytes().len(), EXPORT_LEAF_BYTES);
        assert_eq!(ExportLeaf::from_bytes(&l.to_bytes()).unwrap(), l);
        let entry = DestEntry {
            dest: 3,
            count: 2,
            root: leaves_root(&[l, leaf(3, 8)]),
            prev_round: NO_ROUND,
        };
        assert_eq!(entry.to_bytes().len(), DEST_ENTRY_BYTES);
        let exports = RoundExports {
            entries: vec![(entry, vec![l, leaf(3, 8)])],
        };
        let checkpoint = Checkpoint {
            shard: 1,
            round: 9,
            state_root: [4; 32],
            exports_root: exports.root(),
            export_count: 2,
            dest_count: 1,
            snapshot_root: [0; 32],
        };
        let bundle = ExportsBundle {
            cert: CertifiedCheckpoint {
                checkpoint,
                mask: 0b111,
                signatures: vec![[1; 64], [2; 64], [3; 64]],
            },
            entry,
            entry_proof: exports.entry_proof(0).unwrap(),
            leaves: vec![l, leaf(3, 8)],
        };
        assert_eq!(bundle.check_structure(), Ok(()));
        assert_eq!(
            ExportsBundle::from_bytes(&bundle.to_bytes()).unwrap(),
            bundle
        );
        let proofs = leaf_proofs(&bundle.leaves);
        for certified in [true, false] {
            let import = bundle.import(1, proofs[1].clone(), certified);
            assert_eq!(Import::from_bytes(&import.to_bytes()).unwrap(), import);
            assert_eq!(import.check_structure(3, 4, |_| 3), Ok(()));
        }
    }

    #[test]
    fn a_free_leaf_count_moves_a_leaf_and_is_refused() {
        // DESIGN §3.2: of 3 leaves, leaf 2 also verifies as index 1 of 2.
        let leaves = [leaf(2, 1), leaf(2, 2), leaf(2, 3)];
        let entry = DestEntry {
            dest: 2,
            count: 3,
            root: leaves_root(&leaves),
            prev_round: NO_ROUND,
        };
        let exports = RoundExports {
            entries: vec![(entry, leaves.to_vec())],
        };
        let checkpoint = Checkpoint {
            shard: 0,
            round: 5,
            state_root: [0; 32],
            exports_root: exports.root(),
            export_count: 3,
            dest_count: 1,
            snapshot_root: [0; 32],
        };
        let bundle = ExportsBundle {
            cert: CertifiedCheckpoint {
                checkpoint,
                mask: 1,
                signatures: vec![[0; 64]],
            },
            entry,
            entry_proof: exports.entry_proof(0).unwrap(),
            leaves: leaves.to_vec(),
        };
        let mut proof = leaf_proofs(&leaves)[2].clone();
        assert!(proof.verify(&leaves[2].to_bytes(), &entry.root));
        proof.index = 1;
        proof.leaf_count = 2;
        // The moved proof verifies under the root …
        assert!(proof.verify(&leaves[2].to_bytes(), &entry.root));
        // … and the import refuses it: its count is not the entry's.
        let import = bundle.import(2, proof, true);
        assert_eq!(
            import.check_structure(2, 3, |_| 2),
            Err(ImportError::LeafProof)
        );
    }

    #[test]
    fn stateless_import_checks_name_what_is_wrong() {
        let leaves = [leaf(1, 1)];
        let entry = DestEntry {
            dest: 1,
            count: 1,
            root: leaves_root(&leaves),
            prev_round: 3,
        };
        let exports = RoundExports {
            entries: vec![(entry, leaves.to_vec())],
        };
        let checkpoint = Checkpoint {
            shard: 0,
            round: 5,
            state_root: [0; 32],
            exports_root: exports.root(),
            export_count: 1,
            dest_count: 1,
            snapshot_root: [0; 32],
        };
        let bundle = ExportsBundle {
            cert: CertifiedCheckpoint {
                checkpoint,
                mask: 1,
                signatures: vec![[0; 64]],
            },
            entry,
            entry_proof: exports.entry_proof(0).unwrap(),
            leaves: leaves.to_vec(),
        };
        let good = bundle.import(0, leaf_proofs(&leaves)[0].clone(), true);
        assert_eq!(good.check_structure(1, 2, |_| 1), Ok(()));
        let mut from_self = good.clone();
        from_self.source = 1;
        assert!(matches!(
            from_self.check_structure(1, 2, |_| 1),
            Err(ImportError::BadSource { .. })
        ));
        assert!(matches!(
            good.check_structure(1, 2, |_| 0),
            Err(ImportError::WrongDestination { .. })
        ));
        let mut other_round = good.clone();
        other_round.round = 6;
        assert!(matches!(
            other_round.check_structure(1, 2, |_| 1),
            Err(ImportError::CertificateMismatch { .. })
        ));
        let mut forged = good.clone();
        forged.leaf.amount += 1;
        assert_eq!(
            forged.check_structure(1, 2, |_| 1),
            Err(ImportError::LeafProof)
        );
        let mut bad_entry_count = bundle.clone();
        bad_entry_count.cert.checkpoint.dest_count = 2;
        let import = bad_entry_count.import(0, leaf_proofs(&leaves)[0].clone(), true);
        assert_eq!(
            import.check_structure(1, 2, |_| 1),
            Err(ImportError::EntryProof)
        );
    }

    #[test]
    fn certificate_shape_checks() {
        let cert = CertifiedCheckpoint {
            checkpoint: Checkpoint {
                shard: 0,
                round: 1,
                state_root: [0; 32],
                exports_root: [0; 32],
                export_count: 0,
                dest_count: 0,
                snapshot_root: [0; 32],
            },
            mask: 0b1011,
            signatures: vec![[0; 64]; 3],
        };
        assert_eq!(cert.check_shape(4), Ok(()));
        assert!(matches!(
            cert.check_shape(3),
            Err(CertificateError::MaskPastCommittee { .. })
        ));
        assert!(matches!(
            cert.check_shape(21),
            Err(CertificateError::UnderSigned { q: 15, .. })
        ));
    }
}
