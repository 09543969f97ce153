//! The protocol types of v0 (DESIGN §3.3, §5, §6) and their canonical
//! encodings.

use crate::cross::Import;
use crate::crypto::{PublicKeyBytes, SignatureBytes, SignatureVerifier};
use crate::ids::{context, derive, Hash32};
use crate::merkle::{self, MerkleProof};
use crate::wire::{put_list, Decode, DecodeError, Encode, Reader};

/// Header and genesis version of protocol v1.
pub const PROTOCOL_VERSION: u8 = 1;
/// Maximum parents of an anchor (self-parent plus up to three others).
pub const MAX_PARENTS: usize = 4;
/// Maximum micro-events in one anchor payload (`B`).
pub const MAX_PAYLOAD_EVENTS: usize = 256;
/// Maximum inputs of a transfer.
pub const MAX_TRANSFER_INPUTS: usize = 16;
/// Maximum outputs of a transfer.
pub const MAX_TRANSFER_OUTPUTS: usize = 16;
/// Maximum committee seats per shard (one `u64` mask bit each).
pub const MAX_SEATS: usize = 64;

const PARENT_REF_BYTES: usize = 32 + 1 + 8 + 8;
const OUT_POINT_BYTES: usize = 32 + 2;
const TX_OUT_BYTES: usize = 8 + 32;
/// Smallest encoded micro-event (a Mint), used to bound payload counts.
pub(crate) const MIN_MICRO_EVENT_BYTES: usize = 1 + 32 + 32 + 8;

pub(crate) fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}
pub(crate) fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}
pub(crate) fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// A reference from an anchor to one of its parents. Creator, seq and birth
/// round let a receiver tell an ancient parent (not needed) from a missing
/// one (to pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParentRef {
    /// The parent's anchor id.
    pub anchor_id: Hash32,
    /// The parent's creator seat.
    pub creator: u8,
    /// The parent's sequence number.
    pub seq: u64,
    /// The parent's claimed round.
    pub birth_round: u64,
}

impl Encode for ParentRef {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.anchor_id);
        out.push(self.creator);
        put_u64(out, self.seq);
        put_u64(out, self.birth_round);
    }
}

impl Decode for ParentRef {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ParentRef {
            anchor_id: reader.array("parent anchor id")?,
            creator: reader.u8("parent creator")?,
            seq: reader.u64("parent seq")?,
            birth_round: reader.u64("parent birth round")?,
        })
    }
}

/// The signed part of an anchor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AnchorHeader {
    /// Always [`PROTOCOL_VERSION`].
    pub version: u8,
    /// The first 8 bytes of the genesis hash.
    pub network: [u8; 8],
    /// The shard this anchor belongs to.
    pub shard: u16,
    /// The committee epoch (always 0 in v0).
    pub epoch: u32,
    /// The creator's seat in the shard's committee.
    pub creator: u8,
    /// The creator's sequence number, starting at 0.
    pub seq: u64,
    /// The creator's claim of this anchor's round.
    pub birth_round: u64,
    /// Self-parent first (when `seq > 0`), then up to three others.
    pub parents: Vec<ParentRef>,
    /// Merkle root of the payload's micro-event ids.
    pub payload_root: Hash32,
    /// Number of micro-events in the payload.
    pub payload_count: u16,
    /// Length of the payload's canonical encoding.
    pub payload_bytes: u32,
}

impl AnchorHeader {
    /// `derive("header", canonical(header))`, the message the creator signs.
    pub fn id(&self) -> Hash32 {
        derive(context::HEADER, &[&self.to_bytes()])
    }
}

impl Encode for AnchorHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.version);
        out.extend_from_slice(&self.network);
        put_u16(out, self.shard);
        put_u32(out, self.epoch);
        out.push(self.creator);
        put_u64(out, self.seq);
        put_u64(out, self.birth_round);
        put_list(out, &self.parents);
        out.extend_from_slice(&self.payload_root);
        put_u16(out, self.payload_count);
        put_u32(out, self.payload_bytes);
    }
}

impl Decode for AnchorHeader {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        let version = reader.u8("header version")?;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                offset,
                what: "anchor header",
                version,
            });
        }
        let network = reader.array("network")?;
        let shard = reader.u16("shard")?;
        let epoch = reader.u32("epoch")?;
        let creator = reader.u8("creator")?;
        let seq = reader.u64("seq")?;
        let birth_round = reader.u64("birth round")?;
        let parents = reader.list("parents", 0, MAX_PARENTS, PARENT_REF_BYTES)?;
        let payload_root = reader.array("payload root")?;
        let count_offset = reader.offset();
        let payload_count = reader.u16("payload count")?;
        if usize::from(payload_count) > MAX_PAYLOAD_EVENTS {
            return Err(DecodeError::InvalidValue {
                offset: count_offset,
                what: "payload count",
            });
        }
        let payload_bytes = reader.u32("payload bytes")?;
        Ok(AnchorHeader {
            version,
            network,
            shard,
            epoch,
            creator,
            seq,
            birth_round,
            parents,
            payload_root,
            payload_count,
            payload_bytes,
        })
    }
}

/// A header with its creator's BIP-340 signature over the header id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedAnchorHeader {
    /// The header.
    pub header: AnchorHeader,
    /// `BIP340(seat key, header_id)`.
    pub signature: SignatureBytes,
}

impl SignedAnchorHeader {
    /// The id everyone builds on: `derive("anchor", header_id || signature)`.
    /// It commits to the signature because BIP-340 signatures are not unique.
    pub fn anchor_id(&self) -> Hash32 {
        anchor_id(&self.header.id(), &self.signature)
    }

    /// True iff the signature over the header id verifies under `key`.
    pub fn verify_signature(
        &self,
        verifier: &impl SignatureVerifier,
        key: &PublicKeyBytes,
    ) -> bool {
        verifier.verify(key, &self.header.id(), &self.signature)
    }
}

/// `derive("anchor", header_id || signature)`.
pub fn anchor_id(header_id: &Hash32, signature: &SignatureBytes) -> Hash32 {
    derive(context::ANCHOR, &[header_id, signature])
}

impl Encode for SignedAnchorHeader {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        out.extend_from_slice(&self.signature);
    }
}

impl Decode for SignedAnchorHeader {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedAnchorHeader {
            header: AnchorHeader::decode(reader)?,
            signature: reader.array("header signature")?,
        })
    }
}

/// A reference to a transfer output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OutPoint {
    /// The id of the transfer that created the output.
    pub tx_id: Hash32,
    /// The output's position in that transfer.
    pub index: u16,
}

impl Encode for OutPoint {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tx_id);
        put_u16(out, self.index);
    }
}

impl Decode for OutPoint {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(OutPoint {
            tx_id: reader.array("out point tx id")?,
            index: reader.u16("out point index")?,
        })
    }
}

/// An amount (in units) owned by a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxOut {
    /// Units (1 PC = 100 000 000 units).
    pub amount: u64,
    /// The owner's x-only public key.
    pub owner: PublicKeyBytes,
}

impl Encode for TxOut {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.amount);
        out.extend_from_slice(&self.owner);
    }
}

impl Decode for TxOut {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(TxOut {
            amount: reader.u64("output amount")?,
            owner: reader.array("output owner")?,
        })
    }
}

/// A UTXO transfer: every input is owned by `owner`, who signs the tx id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    /// Spent outputs (1..=16).
    pub inputs: Vec<OutPoint>,
    /// Created outputs (1..=16).
    pub outputs: Vec<TxOut>,
    /// Owner of every input.
    pub owner: PublicKeyBytes,
    /// `BIP340(owner, tx_id)`.
    pub signature: SignatureBytes,
}

impl Transfer {
    /// `derive("tx", network || canonical(transfer without signature))`: the
    /// id outputs are referenced by, and the message the owner signs.
    pub fn tx_id(&self, network: &[u8; 8]) -> Hash32 {
        tx_id(network, &self.inputs, &self.outputs, &self.owner)
    }

    /// True iff the owner's signature over the tx id verifies.
    pub fn verify_signature(&self, verifier: &impl SignatureVerifier, network: &[u8; 8]) -> bool {
        verifier.verify(&self.owner, &self.tx_id(network), &self.signature)
    }
}

/// The tx id of an unsigned transfer.
pub fn tx_id(
    network: &[u8; 8],
    inputs: &[OutPoint],
    outputs: &[TxOut],
    owner: &PublicKeyBytes,
) -> Hash32 {
    let mut body =
        Vec::with_capacity(2 + inputs.len() * OUT_POINT_BYTES + outputs.len() * TX_OUT_BYTES + 32);
    put_list(&mut body, inputs);
    put_list(&mut body, outputs);
    body.extend_from_slice(owner);
    derive(context::TX, &[network, &body])
}

/// A proof-of-work emission (inactive in v0: decoded and ordered, rejected at apply).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mint {
    /// The id of the previous mint in the chain of mints.
    pub prev_mint_id: Hash32,
    /// The miner's key.
    pub miner: PublicKeyBytes,
    /// The proof-of-work nonce.
    pub nonce: u64,
}

/// Two signed headers of one seat at one `seq`: proof of equivocation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Evidence {
    /// The first header.
    pub first: SignedAnchorHeader,
    /// The second header.
    pub second: SignedAnchorHeader,
}

/// One `(recipient, amount)` leaf of a round's payout tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayoutLeaf {
    /// Who is paid.
    pub recipient: PublicKeyBytes,
    /// Units paid.
    pub amount: u64,
}

impl Encode for PayoutLeaf {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.recipient);
        put_u64(out, self.amount);
    }
}

impl Decode for PayoutLeaf {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PayoutLeaf {
            recipient: reader.array("payout recipient")?,
            amount: reader.u64("payout amount")?,
        })
    }
}

/// A claim of a seat's owed balance against a finalized round's payout
/// root (DESIGN §5.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The finalized round whose payout root the proof is against.
    pub round: u64,
    /// The claimed leaf.
    pub leaf: PayoutLeaf,
    /// The leaf's Merkle proof.
    pub proof: MerkleProof,
    /// The claimant, who signs the claim.
    pub owner: PublicKeyBytes,
    /// `BIP340(owner, claim message)`.
    pub signature: SignatureBytes,
}

impl Claim {
    /// `derive("payout", network || shard u16 || canonical(claim without
    /// signature))`: the carrying shard is signed, since one key holds
    /// seats in many shards.
    pub fn signing_message(&self, network: &[u8; 8], shard: u16) -> Hash32 {
        let mut body = Vec::new();
        body.extend_from_slice(&shard.to_le_bytes());
        put_u64(&mut body, self.round);
        self.leaf.encode(&mut body);
        self.proof.encode(&mut body);
        body.extend_from_slice(&self.owner);
        derive(context::PAYOUT, &[network, &body])
    }
}

/// Largest encoded Offence micro-event (DESIGN §3.1).
pub const MAX_OFFENCE_BYTES: usize = 12_288;
/// Largest micro-event a `why = Event` proof carries (DESIGN §5.4).
pub const MAX_OFFENCE_EVENT_BYTES: usize = 8_192;
/// Most siblings of a `why = Event` proof: a payload holds at most 256
/// micro-events.
pub const MAX_PAYLOAD_PROOF_SIBLINGS: usize = 8;

/// Why an anchor is invalid, in an offence of kind 0 or 1 (DESIGN §5.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Why {
    /// Tag 0: the header alone breaks a stateless rule.
    Header,
    /// Tag 1: a micro-event of its payload does: its bytes (`1..=8 192`),
    /// placed under the header's payload root by `proof`.
    Event {
        /// The micro-event's encoded bytes (which may not decode).
        bytes: Vec<u8>,
        /// Its proof: `derive("micro-event", bytes)` under `payload_root`,
        /// `leaf_count = payload_count`.
        proof: MerkleProof,
    },
}

impl Encode for Why {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Why::Header => out.push(0),
            Why::Event { bytes, proof } => {
                out.push(1);
                crate::wire::put_count(out, bytes.len());
                out.extend_from_slice(bytes);
                proof.encode(out);
            }
        }
    }
}

impl Decode for Why {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        match reader.u8("why tag")? {
            0 => Ok(Why::Header),
            1 => {
                let len = reader.count("offence event bytes", 1, MAX_OFFENCE_EVENT_BYTES, 1)?;
                let bytes = reader.bytes(len, "offence event bytes")?.to_vec();
                let proof = MerkleProof::decode_bounded(
                    reader,
                    MAX_PAYLOAD_PROOF_SIBLINGS,
                    "offence event proof siblings",
                )?;
                Ok(Why::Event { bytes, proof })
            }
            tag => Err(DecodeError::UnknownTag {
                offset,
                what: "why",
                tag,
            }),
        }
    }
}

/// A proven offence of one seat (DESIGN §5.4), carried as micro-event 5.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Offence {
    /// Kind 0 (VFI): a validly signed header of this shard that breaks a
    /// stateless rule other than the signature and satisfiability.
    InvalidAnchor {
        /// The offender's header.
        anchor: SignedAnchorHeader,
        /// The breach.
        why: Why,
    },
    /// Kind 1 (VFI): the voter acknowledged `parent`, which breaks a
    /// stateless rule (its signature included).
    InvalidParent {
        /// The offender's header, naming the parent.
        voter: SignedAnchorHeader,
        /// The invalid parent.
        parent: SignedAnchorHeader,
        /// The parent's breach.
        why: Why,
    },
    /// Kind 2 (VFI): a seat signed a checkpoint that is not this shard's
    /// checkpoint of that round (judged at apply).
    WrongCheckpoint {
        /// The signature.
        sig: crate::cross::CheckpointSig,
    },
    /// Kind 3 (CDA): a ref of the voter names `parent`'s anchor id with
    /// another creator, seq or birth round.
    ConflictingRef {
        /// The offender's header.
        voter: SignedAnchorHeader,
        /// The parent it names wrongly.
        parent: SignedAnchorHeader,
    },
    /// Kind 4 (CDA): a validly signed header whose payload commitment no
    /// payload can satisfy.
    Unsatisfiable {
        /// The offender's header.
        anchor: SignedAnchorHeader,
    },
    /// Kind 5 (EQ): two signatures of one seat over different checkpoints
    /// of one round.
    CheckpointFork {
        /// The first.
        a: crate::cross::CheckpointSig,
        /// The second.
        b: crate::cross::CheckpointSig,
    },
}

impl Offence {
    /// The kind byte.
    pub fn kind(&self) -> u8 {
        match self {
            Offence::InvalidAnchor { .. } => 0,
            Offence::InvalidParent { .. } => 1,
            Offence::WrongCheckpoint { .. } => 2,
            Offence::ConflictingRef { .. } => 3,
            Offence::Unsatisfiable { .. } => 4,
            Offence::CheckpointFork { .. } => 5,
        }
    }

    /// The offender's seat.
    pub fn offender(&self) -> u8 {
        match self {
            Offence::InvalidAnchor { anchor, .. } | Offence::Unsatisfiable { anchor } => {
                anchor.header.creator
            }
            Offence::InvalidParent { voter, .. } | Offence::ConflictingRef { voter, .. } => {
                voter.header.creator
            }
            Offence::WrongCheckpoint { sig } => sig.seat,
            Offence::CheckpointFork { a, .. } => a.seat,
        }
    }

    /// The object of its offence id (DESIGN §5.4): the offender's anchor id
    /// (kinds 0, 1, 3, 4), the round (2), nothing (5).
    pub fn object(&self) -> Vec<u8> {
        match self {
            Offence::InvalidAnchor { anchor, .. } | Offence::Unsatisfiable { anchor } => {
                anchor.anchor_id().to_vec()
            }
            Offence::InvalidParent { voter, .. } | Offence::ConflictingRef { voter, .. } => {
                voter.anchor_id().to_vec()
            }
            Offence::WrongCheckpoint { sig } => sig.checkpoint.round.to_le_bytes().to_vec(),
            Offence::CheckpointFork { .. } => Vec::new(),
        }
    }
}

impl Encode for Offence {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        match self {
            Offence::InvalidAnchor { anchor, why } => {
                anchor.encode(out);
                why.encode(out);
            }
            Offence::InvalidParent { voter, parent, why } => {
                voter.encode(out);
                parent.encode(out);
                why.encode(out);
            }
            Offence::WrongCheckpoint { sig } => sig.encode(out),
            Offence::ConflictingRef { voter, parent } => {
                voter.encode(out);
                parent.encode(out);
            }
            Offence::Unsatisfiable { anchor } => anchor.encode(out),
            Offence::CheckpointFork { a, b } => {
                a.encode(out);
                b.encode(out);
            }
        }
    }
}

impl Decode for Offence {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        Ok(match reader.u8("offence kind")? {
            0 => Offence::InvalidAnchor {
                anchor: SignedAnchorHeader::decode(reader)?,
                why: Why::decode(reader)?,
            },
            1 => Offence::InvalidParent {
                voter: SignedAnchorHeader::decode(reader)?,
                parent: SignedAnchorHeader::decode(reader)?,
                why: Why::decode(reader)?,
            },
            2 => Offence::WrongCheckpoint {
                sig: crate::cross::CheckpointSig::decode(reader)?,
            },
            3 => Offence::ConflictingRef {
                voter: SignedAnchorHeader::decode(reader)?,
                parent: SignedAnchorHeader::decode(reader)?,
            },
            4 => Offence::Unsatisfiable {
                anchor: SignedAnchorHeader::decode(reader)?,
            },
            5 => Offence::CheckpointFork {
                a: crate::cross::CheckpointSig::decode(reader)?,
                b: crate::cross::CheckpointSig::decode(reader)?,
            },
            kind => {
                return Err(DecodeError::UnknownTag {
                    offset,
                    what: "offence kind",
                    tag: kind,
                })
            }
        })
    }
}

/// One signed state transition inside an anchor payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MicroEvent {
    /// Tag 0: a UTXO transfer.
    Transfer(Transfer),
    /// Tag 1: a proof-of-work mint.
    Mint(Mint),
    /// Tag 2: equivocation evidence.
    Evidence(Evidence),
    /// Tag 3: a payout or slash claim.
    Claim(Claim),
    /// Tag 4: an export of another shard landed here (DESIGN §5.2).
    Import(Box<Import>),
    /// Tag 5: a proven offence of a seat (DESIGN §5.4).
    Offence(Box<Offence>),
}

impl MicroEvent {
    /// The wire tag of the variant.
    pub fn tag(&self) -> u8 {
        match self {
            MicroEvent::Transfer(_) => 0,
            MicroEvent::Mint(_) => 1,
            MicroEvent::Evidence(_) => 2,
            MicroEvent::Claim(_) => 3,
            MicroEvent::Import(_) => 4,
            MicroEvent::Offence(_) => 5,
        }
    }

    /// `derive("micro-event", canonical(micro-event including its signature))`.
    pub fn id(&self) -> Hash32 {
        derive(context::MICRO_EVENT, &[&self.to_bytes()])
    }
}

impl Encode for MicroEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            MicroEvent::Transfer(transfer) => {
                put_list(out, &transfer.inputs);
                put_list(out, &transfer.outputs);
                out.extend_from_slice(&transfer.owner);
                out.extend_from_slice(&transfer.signature);
            }
            MicroEvent::Mint(mint) => {
                out.extend_from_slice(&mint.prev_mint_id);
                out.extend_from_slice(&mint.miner);
                put_u64(out, mint.nonce);
            }
            MicroEvent::Evidence(evidence) => {
                evidence.first.encode(out);
                evidence.second.encode(out);
            }
            MicroEvent::Claim(claim) => {
                put_u64(out, claim.round);
                claim.leaf.encode(out);
                claim.proof.encode(out);
                out.extend_from_slice(&claim.owner);
                out.extend_from_slice(&claim.signature);
            }
            MicroEvent::Import(import) => import.encode(out),
            MicroEvent::Offence(offence) => offence.encode(out),
        }
    }
}

impl Decode for MicroEvent {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        match reader.u8("micro-event tag")? {
            0 => Ok(MicroEvent::Transfer(Transfer {
                inputs: reader.list("transfer inputs", 1, MAX_TRANSFER_INPUTS, OUT_POINT_BYTES)?,
                outputs: reader.list("transfer outputs", 1, MAX_TRANSFER_OUTPUTS, TX_OUT_BYTES)?,
                owner: reader.array("transfer owner")?,
                signature: reader.array("transfer signature")?,
            })),
            1 => Ok(MicroEvent::Mint(Mint {
                prev_mint_id: reader.array("previous mint id")?,
                miner: reader.array("miner")?,
                nonce: reader.u64("mint nonce")?,
            })),
            2 => Ok(MicroEvent::Evidence(Evidence {
                first: SignedAnchorHeader::decode(reader)?,
                second: SignedAnchorHeader::decode(reader)?,
            })),
            3 => Ok(MicroEvent::Claim(Claim {
                round: reader.u64("claim round")?,
                leaf: PayoutLeaf::decode(reader)?,
                proof: MerkleProof::decode(reader)?,
                owner: reader.array("claim owner")?,
                signature: reader.array("claim signature")?,
            })),
            4 => Ok(MicroEvent::Import(Box::new(Import::decode(reader)?))),
            5 => {
                let start = reader.offset();
                let offence = Offence::decode(reader)?;
                // The tag byte and the body: at most MAX_OFFENCE_BYTES.
                let len = 1 + reader.offset() - start;
                if len > MAX_OFFENCE_BYTES {
                    return Err(DecodeError::CountOutOfBounds {
                        offset: start,
                        what: "offence bytes",
                        count: len as u64,
                        min: 1,
                        max: MAX_OFFENCE_BYTES as u64,
                    });
                }
                Ok(MicroEvent::Offence(Box::new(offence)))
            }
            tag => Err(DecodeError::UnknownTag {
                offset,
                what: "micro-event",
                tag,
            }),
        }
    }
}

/// The micro-events an anchor carries (at most [`MAX_PAYLOAD_EVENTS`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AnchorPayload {
    /// The micro-events, in the creator's order.
    pub events: Vec<MicroEvent>,
}

impl AnchorPayload {
    /// Merkle root of the micro-event ids.
    pub fn root(&self) -> Hash32 {
        merkle::root_of_leaves(
            self.events
                .iter()
                .map(|event| merkle::leaf_hash(&event.id()))
                .collect(),
        )
    }
}

impl Encode for AnchorPayload {
    fn encode(&self, out: &mut Vec<u8>) {
        put_list(out, &self.events);
    }
}

impl Decode for AnchorPayload {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(AnchorPayload {
            events: reader.list(
                "payload events",
                0,
                MAX_PAYLOAD_EVENTS,
                MIN_MICRO_EVENT_BYTES,
            )?,
        })
    }
}

/// A DAG vertex: a signed header plus its payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SignedAnchor {
    /// The signed header.
    pub header: SignedAnchorHeader,
    /// The payload the header commits to.
    pub payload: AnchorPayload,
}

impl SignedAnchor {
    /// The anchor id (see [`SignedAnchorHeader::anchor_id`]).
    pub fn anchor_id(&self) -> Hash32 {
        self.header.anchor_id()
    }

    /// True iff the payload's count, encoded length and Merkle root are the
    /// ones the header commits to (the data-availability check of §3.3).
    pub fn payload_matches_header(&self) -> bool {
        let header = &self.header.header;
        usize::from(header.payload_count) == self.payload.events.len()
            && header.payload_bytes as usize == self.payload.to_bytes().len()
            && header.payload_root == self.payload.root()
    }
}

impl Encode for SignedAnchor {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        self.payload.encode(out);
    }
}

impl Decode for SignedAnchor {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SignedAnchor {
            header: SignedAnchorHeader::decode(reader)?,
            payload: AnchorPayload::decode(reader)?,
        })
    }
}

/// The log record of a finalized round (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RoundFinalized {
    /// The round.
    pub round: u64,
    /// Global anchor index of the round's first finalized anchor.
    pub first_global_index: u64,
    /// Anchors finalized in the round.
    pub anchor_count: u64,
    /// State root after applying the round.
    pub state_root: Hash32,
    /// The round's payout root.
    pub payout_root: Hash32,
}

impl Encode for RoundFinalized {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.round);
        put_u64(out, self.first_global_index);
        put_u64(out, self.anchor_count);
        out.extend_from_slice(&self.state_root);
        out.extend_from_slice(&self.payout_root);
    }
}

impl Decode for RoundFinalized {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RoundFinalized {
            round: reader.u64("round")?,
            first_global_index: reader.u64("first global index")?,
            anchor_count: reader.u64("anchor count")?,
            state_root: reader.array("state root")?,
            payout_root: reader.array("payout root")?,
        })
    }
}

/// The kinds of the records a shard writes to its log (DESIGN §6). The log
/// stores the kind byte beside each record body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LogRecordKind {
    /// Body: a [`SignedAnchor`], in arrival order (own anchors included).
    AnchorAccepted = 1,
    /// Body: a [`RoundFinalized`].
    RoundFinalized = 2,
    /// Body: a [`crate::CertifiedCheckpoint`] of this shard (DESIGN §6
    /// record 3).
    CheckpointCertified = 3,
    /// Body: an [`crate::ExportsBundle`] another shard pushed to this one,
    /// checked before it is logged (record 4).
    ExportsReceived = 4,
    /// Body: the snapshot's last finalized round and the token it covers
    /// up to, u64 each (DESIGN §6 record 5): a snapshot file of that round
    /// was written and its directory synced.
    SnapshotWritten = 5,
    /// Body: a [`crate::cross::BuiltExports`], a finalized round's exports
    /// (record 6).
    ExportsBuilt = 6,
}

impl LogRecordKind {
    /// The kind for a stored kind byte, if known.
    pub fn from_u8(kind: u8) -> Option<Self> {
        match kind {
            1 => Some(LogRecordKind::AnchorAccepted),
            2 => Some(LogRecordKind::RoundFinalized),
            3 => Some(LogRecordKind::CheckpointCertified),
            4 => Some(LogRecordKind::ExportsReceived),
            5 => Some(LogRecordKind::SnapshotWritten),
            6 => Some(LogRecordKind::ExportsBuilt),
            _ => None,
        }
    }
}
