//! The wire messages of DESIGN §7, their canonical encoding and the framing
//! that carries them over a QUIC stream.
//!
//! A frame is a `u32` little-endian body length, then the body: one
//! [`NetMessage`] in the canonical encoding of `pc-codec` (tag byte, fixed
//! width little-endian integers, minimal LEB128 counts, no trailing bytes).
//! Every count has a bound stated here, and the body length is checked
//! against [`MAX_FRAME_BYTES`] as soon as its four bytes are in, before a
//! single byte of the body is buffered. [`FrameDecoder`] takes the bytes of
//! a stream in whatever chunks they arrive, holds at most one partial frame
//! and turns anything malformed into a [`Violation`], never a panic.
//!
//! Anchors and micro-events travel as their encoded bytes: the shard decodes
//! and validates them (it needs the bytes anyway for ids and the log), so
//! this layer checks only the frame's shape and bounds.

use pc_codec::wire::{put_count, put_varint, Decode, DecodeError, Encode, Reader};
use pc_codec::{
    CertifiedCheckpoint, CheckpointSig, ExportsBundle, Hash32, MerkleProof, PayoutLeaf,
    PublicKeyBytes,
};

use crate::identity::Hello;

/// Most outputs one `Unspent` answer lists (a page; the client asks for
/// the next one after the last out point).
pub const MAX_UNSPENT_PER_PAGE: usize = 256;

/// `MintSubmitted.outcome`: taken into the pool (a candidate once carried).
pub const MINT_TAKEN: u8 = 0;
/// `MintSubmitted.outcome`: it cannot win (the open race's best or 16
/// pooled mints are lower).
pub const MINT_NOT_BEST: u8 = 30;
/// `MintSubmitted.outcome`: invalid (fails the stateless rules).
pub const MINT_INVALID: u8 = 31;
/// `MintSubmitted.outcome`: not served here (no seat in the mint shard,
/// overloaded, or the pool is full); try again later or elsewhere.
pub const MINT_NOT_SERVED: u8 = 32;

/// One unspent output in an `Unspent` page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnspentOutput {
    /// The output.
    pub out_point: pc_codec::OutPoint,
    /// Its amount in units.
    pub amount: u64,
    /// Anchor index it spends from (0: no maturity; minted outputs only).
    pub mature_at: u64,
}

/// Most siblings of a payout proof: a payout tree has at most 64 leaves
/// (one per seat of a shard).
pub const MAX_PAYOUT_PROOF_SIBLINGS: usize = 6;
/// Bytes of the length prefix of a frame.
pub const FRAME_PREFIX_BYTES: usize = 4;
/// Largest frame body: room for one anchor of [`MAX_ANCHOR_BYTES`] several
/// times over, and for a full micro-event submission.
pub const MAX_FRAME_BYTES: usize = 4 << 20;
/// Most anchor ids in one `Announce` or `Get`.
pub const MAX_IDS_PER_MESSAGE: usize = 1024;
/// Most anchors in one `Anchors` message; the frame size bounds the batch
/// too, so a sender splits a batch of large anchors over several frames.
pub const MAX_ANCHORS_PER_MESSAGE: usize = 64;
/// Largest encoded anchor on the wire (the shard's default
/// `max_anchor_bytes`).
pub const MAX_ANCHOR_BYTES: usize = 1 << 20;
/// Most anchors a `GetRange` may ask for.
pub const MAX_RANGE_ANCHORS: u32 = 1024;
/// Largest encoded evidence: an Evidence or an Offence micro-event (an
/// Offence is at most 12 288 bytes, DESIGN §3.1).
pub const MAX_EVIDENCE_BYTES: usize = 12_288;
/// Most micro-events in one submission (one anchor payload's worth).
pub const MAX_SUBMITTED_EVENTS: usize = 256;
/// Largest encoded micro-event (the largest, a claim with a 64-deep proof,
/// is about 2.2 KiB).
pub const MAX_MICRO_EVENT_BYTES: usize = 4096;
/// Longest human-readable detail of a rejected micro-event, in UTF-8 bytes.
pub const MAX_REJECT_DETAIL_BYTES: usize = 256;

// Every message except a batch of anchors fits a frame at its bounds, so a
// sender that respects the counts never builds an unsendable frame.
const _: () = assert!(MAX_ANCHOR_BYTES + 64 <= MAX_FRAME_BYTES);
const _: () = assert!(MAX_SUBMITTED_EVENTS * (MAX_MICRO_EVENT_BYTES + 3) + 64 <= MAX_FRAME_BYTES);
const _: () = assert!(MAX_IDS_PER_MESSAGE * 32 + 64 <= MAX_FRAME_BYTES);
const _: () = assert!(MAX_FRAME_BYTES <= u32::MAX as usize);

/// Why an event of a submission was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectReason {
    /// The bytes are not a well-formed micro-event.
    Malformed = 1,
    /// The signature does not verify.
    BadSignature = 2,
    /// The event belongs to another shard than the one it was sent for.
    WrongShard = 3,
    /// The event is already known.
    Duplicate = 4,
    /// The event's kind is not active in this protocol version.
    Inactive = 5,
    /// The node is over its intake bound; the client may retry later.
    Overloaded = 6,
    /// Anything else the shard refuses; the detail says what.
    Invalid = 7,
}

impl RejectReason {
    /// The reason for a wire code, if known (0 means accepted).
    pub fn from_code(code: u8) -> Option<RejectReason> {
        Some(match code {
            1 => RejectReason::Malformed,
            2 => RejectReason::BadSignature,
            3 => RejectReason::WrongShard,
            4 => RejectReason::Duplicate,
            5 => RejectReason::Inactive,
            6 => RejectReason::Overloaded,
            7 => RejectReason::Invalid,
            _ => return None,
        })
    }
}

/// What became of one submitted micro-event.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventOutcome {
    /// Taken into the shard's pool (not yet final).
    Accepted,
    /// Refused.
    Rejected {
        /// The class of the refusal.
        reason: RejectReason,
        /// One line for the user, at most [`MAX_REJECT_DETAIL_BYTES`].
        detail: String,
    },
}

impl EventOutcome {
    /// A rejection whose detail is cut to [`MAX_REJECT_DETAIL_BYTES`] at a
    /// character boundary, so it always encodes within its bound.
    pub fn rejected(reason: RejectReason, detail: &str) -> EventOutcome {
        let mut end = detail.len().min(MAX_REJECT_DETAIL_BYTES);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        EventOutcome::Rejected {
            reason,
            detail: detail[..end].to_owned(),
        }
    }
}

/// The receipt line of one submitted micro-event, in submission order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventReceipt {
    /// The micro-event id (or, for undecodable bytes, the BLAKE3 of the
    /// bytes under the micro-event context, so the client can still match).
    pub event_id: Hash32,
    /// Accepted or why not.
    pub outcome: EventOutcome,
}

/// One message of the wire protocol (DESIGN §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NetMessage {
    /// Tag 0: the first message of a validator on a connection.
    Hello(Hello),
    /// Tag 1: anchors the sender holds (pushed to committee peers).
    Announce {
        /// The shard.
        shard: u16,
        /// Anchor ids, `1..=MAX_IDS_PER_MESSAGE`.
        ids: Vec<Hash32>,
    },
    /// Tag 2: a request for anchors by id.
    Get {
        /// The shard.
        shard: u16,
        /// Anchor ids, `1..=MAX_IDS_PER_MESSAGE`.
        ids: Vec<Hash32>,
    },
    /// Tag 3: a catch-up request for anchors by round.
    GetRange {
        /// The shard.
        shard: u16,
        /// The first round wanted.
        from_round: u64,
        /// Most anchors wanted, `1..=MAX_RANGE_ANCHORS`.
        max_count: u32,
    },
    /// Tag 4: anchors, each the canonical encoding of a `SignedAnchor`.
    Anchors {
        /// The shard.
        shard: u16,
        /// Encoded anchors, `0..=MAX_ANCHORS_PER_MESSAGE`, each
        /// `1..=MAX_ANCHOR_BYTES` bytes (none: nothing to serve).
        anchors: Vec<Vec<u8>>,
    },
    /// Tag 5: a seat's signature over a checkpoint (the shard is the
    /// checkpoint's).
    CheckpointSig(CheckpointSig),
    /// Tag 6: equivocation evidence, the canonical encoding of an evidence
    /// micro-event.
    Evidence {
        /// The shard.
        shard: u16,
        /// Encoded evidence, `1..=MAX_EVIDENCE_BYTES` bytes.
        bytes: Vec<u8>,
    },
    /// Tag 7: a client's micro-events for a shard.
    SubmitMicroEvents {
        /// Chosen by the client; echoed in the [`NetMessage::Receipt`].
        request: u64,
        /// The shard the events belong to.
        shard: u16,
        /// Encoded micro-events, `1..=MAX_SUBMITTED_EVENTS`, each
        /// `1..=MAX_MICRO_EVENT_BYTES` bytes.
        events: Vec<Vec<u8>>,
    },
    /// Tag 8: the answer to a submission, one line per event in order.
    Receipt {
        /// The submission's request number.
        request: u64,
        /// The shard.
        shard: u16,
        /// When any event was refused as overloaded: how long the client
        /// should wait before it submits to this node again, ms (0: no
        /// hint).
        retry_after_ms: u32,
        /// One line per submitted event, `1..=MAX_SUBMITTED_EVENTS`.
        results: Vec<EventReceipt>,
    },
    /// Tag 9: a client's balance query.
    BalanceQuery {
        /// Chosen by the client; echoed in the [`NetMessage::Balance`].
        request: u64,
        /// The owner key.
        owner: PublicKeyBytes,
    },
    /// Tag 10: the answer to a balance query.
    Balance {
        /// The query's request number.
        request: u64,
        /// The owner key.
        owner: PublicKeyBytes,
        /// Units owned in the finalized state.
        amount: u64,
        /// The last finalized round the amount reflects.
        finalized_round: u64,
    },
    /// Tag 11: a certificate of a checkpoint (the answer to a signature of
    /// a round already certified).
    CheckpointCert(CertifiedCheckpoint),
    /// Tag 12: one source round's exports to one destination (DESIGN
    /// §5.2 "Carrying"): source, round and destination, then the bundle,
    /// whose certificate and entry must name the same three.
    Exports(Box<ExportsBundle>),
    /// Tag 13: a destination seat logged (or already had) a bundle.
    ExportsAck {
        /// The source shard.
        source: u16,
        /// The source round.
        round: u64,
        /// The destination shard.
        dest: u16,
    },
    /// Tag 14: a pull of one bundle from any source node.
    GetExports {
        /// The source shard.
        source: u16,
        /// The source round.
        round: u64,
        /// The destination shard.
        dest: u16,
    },
    /// Tag 15: the answer to a `GetRange` below what this node's log
    /// still holds (DESIGN §6.1 pruning): ask another peer.
    Pruned {
        /// The shard.
        shard: u16,
        /// The lowest birth round the log still serves completely.
        oldest_round: u64,
        /// The newest snapshot's round (`u64::MAX`: none).
        snapshot_round: u64,
    },
    /// Tag 20: a miner asks for the mint chain's tip and target (DESIGN
    /// §5.5); any node answers for the mint shard if it hosts it.
    GetMintTemplate {
        /// Echoed in the [`NetMessage::MintTemplate`].
        request: u64,
    },
    /// Tag 21: what a mint must extend and beat, from the finalized state.
    MintTemplate {
        /// The request number.
        request: u64,
        /// The network id the pow hash commits to.
        network: [u8; 8],
        /// The mint shard (a miner's key must belong to it).
        mint_shard: u16,
        /// The tip to extend.
        prev_mint_id: Hash32,
        /// The target `T` (pow must be below it).
        target: u128,
        /// Mints won so far.
        mint_count: u64,
        /// The reward of the next win.
        reward: u64,
        /// 1 while a race on the tip is open.
        race_open: u8,
        /// The open race's best pow hash (zeros: none).
        race_best_pow: Hash32,
        /// The last finalized round.
        finalized_round: u64,
        /// The next anchor index (maturity is counted in them).
        next_anchor_index: u64,
    },
    /// Tag 22: a miner's solution.
    SubmitMintSolution {
        /// Echoed in the [`NetMessage::MintSubmitted`].
        request: u64,
        /// The tip it extends.
        prev_mint_id: Hash32,
        /// The miner's key (the reward's owner).
        miner: PublicKeyBytes,
        /// The nonce.
        nonce: u64,
    },
    /// Tag 23: what became of a solution: [`MINT_TAKEN`], an apply
    /// outcome 13-16 the finalized chain already gives it, or
    /// [`MINT_NOT_BEST`], [`MINT_INVALID`], [`MINT_NOT_SERVED`].
    MintSubmitted {
        /// The request number.
        request: u64,
        /// The mint's micro-event id.
        mint_id: Hash32,
        /// The outcome code.
        outcome: u8,
    },
    /// Tag 24: a client asks what became of a mint.
    MintStatusQuery {
        /// Echoed in the [`NetMessage::MintStatus`].
        request: u64,
        /// The mint's id.
        mint_id: Hash32,
    },
    /// Tag 25: 0 unknown, 1 pending, 2 candidate, 3 won, 4 lost, 5 stale
    /// or rejected; round, reward and maturity once known.
    MintStatus {
        /// The request number.
        request: u64,
        /// The mint's id.
        mint_id: Hash32,
        /// The status code.
        status: u8,
        /// The round it was finalized or decided in.
        round: u64,
        /// Its reward (won only).
        reward: u64,
        /// Anchor index its output matures at (won only).
        mature_at: u64,
    },
    /// Tag 26: a client asks what a seat is owed in a shard (DESIGN §5.3).
    PayoutQuery {
        /// Chosen by the client; echoed in the [`NetMessage::PayoutProof`].
        request: u64,
        /// The shard whose payout root the claim will use.
        shard: u16,
        /// The seat's key.
        recipient: PublicKeyBytes,
    },
    /// Tag 27: the answer: the seat's leaf of the last finalized round's
    /// payout root and its proof (amount 0, no siblings: nothing owed).
    PayoutProof {
        /// The query's request number.
        request: u64,
        /// The shard.
        shard: u16,
        /// The finalized round whose root the proof is against.
        round: u64,
        /// The leaf.
        leaf: PayoutLeaf,
        /// Its proof.
        proof: MerkleProof,
    },
    /// Tag 28: a wallet asks for an owner's unspent outputs in the owner's
    /// shard, a page at a time in out-point order.
    UnspentQuery {
        /// Echoed in the [`NetMessage::Unspent`].
        request: u64,
        /// The owner.
        owner: PublicKeyBytes,
        /// List outputs after this out point (none: from the first).
        after: Option<pc_codec::OutPoint>,
        /// Most outputs wanted (at most [`MAX_UNSPENT_PER_PAGE`]).
        max: u16,
    },
    /// Tag 29: a page of the owner's unspent outputs in the finalized
    /// state.
    Unspent {
        /// The query's request number.
        request: u64,
        /// The owner.
        owner: PublicKeyBytes,
        /// The finalized round the page is of.
        finalized_round: u64,
        /// The next anchor index (an output with `mature_at` above it is
        /// not spendable yet).
        next_anchor_index: u64,
        /// Outputs, in out-point order.
        outputs: Vec<UnspentOutput>,
        /// 1 if more outputs follow the last one.
        more: u8,
    },
}

impl Encode for UnspentOutput {
    fn encode(&self, out: &mut Vec<u8>) {
        self.out_point.encode(out);
        put_u64(out, self.amount);
        put_u64(out, self.mature_at);
    }
}

impl Decode for UnspentOutput {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(UnspentOutput {
            out_point: pc_codec::OutPoint::decode(reader)?,
            amount: reader.u64("amount")?,
            mature_at: reader.u64("mature at")?,
        })
    }
}

impl NetMessage {
    /// Position of the variant among the message kinds (its tag), for
    /// per-kind counters.
    pub fn kind_index(&self) -> usize {
        match self.tag() {
            // Tags 16-19 (snapshot state sync) are not spoken yet: the
            // mint messages follow the pruned answer.
            tag @ 20.. => usize::from(tag) - 4,
            tag => usize::from(tag),
        }
    }

    /// A client's request, which needs no Hello: a submission or a query.
    pub fn is_client_request(&self) -> bool {
        matches!(
            self,
            NetMessage::SubmitMicroEvents { .. }
                | NetMessage::BalanceQuery { .. }
                | NetMessage::PayoutQuery { .. }
                | NetMessage::GetMintTemplate { .. }
                | NetMessage::SubmitMintSolution { .. }
                | NetMessage::MintStatusQuery { .. }
                | NetMessage::UnspentQuery { .. }
        )
    }

    /// An answer to a client's request; a node never asks for one.
    pub fn is_client_answer(&self) -> bool {
        matches!(
            self,
            NetMessage::Receipt { .. }
                | NetMessage::Balance { .. }
                | NetMessage::PayoutProof { .. }
                | NetMessage::MintTemplate { .. }
                | NetMessage::MintSubmitted { .. }
                | NetMessage::MintStatus { .. }
                | NetMessage::Unspent { .. }
        )
    }

    /// The wire tag of the variant.
    pub fn tag(&self) -> u8 {
        match self {
            NetMessage::Hello(_) => 0,
            NetMessage::Announce { .. } => 1,
            NetMessage::Get { .. } => 2,
            NetMessage::GetRange { .. } => 3,
            NetMessage::Anchors { .. } => 4,
            NetMessage::CheckpointSig(_) => 5,
            NetMessage::Evidence { .. } => 6,
            NetMessage::SubmitMicroEvents { .. } => 7,
            NetMessage::Receipt { .. } => 8,
            NetMessage::BalanceQuery { .. } => 9,
            NetMessage::Balance { .. } => 10,
            NetMessage::CheckpointCert(_) => 11,
            NetMessage::Exports(_) => 12,
            NetMessage::ExportsAck { .. } => 13,
            NetMessage::GetExports { .. } => 14,
            NetMessage::Pruned { .. } => 15,
            NetMessage::GetMintTemplate { .. } => 20,
            NetMessage::MintTemplate { .. } => 21,
            NetMessage::SubmitMintSolution { .. } => 22,
            NetMessage::MintSubmitted { .. } => 23,
            NetMessage::MintStatusQuery { .. } => 24,
            NetMessage::MintStatus { .. } => 25,
            NetMessage::PayoutQuery { .. } => 26,
            NetMessage::PayoutProof { .. } => 27,
            NetMessage::UnspentQuery { .. } => 28,
            NetMessage::Unspent { .. } => 29,
        }
    }

    /// The variant's name, for logs and violations.
    pub fn kind(&self) -> &'static str {
        match self {
            NetMessage::Hello(_) => "Hello",
            NetMessage::Announce { .. } => "Announce",
            NetMessage::Get { .. } => "Get",
            NetMessage::GetRange { .. } => "GetRange",
            NetMessage::Anchors { .. } => "Anchors",
            NetMessage::CheckpointSig(_) => "CheckpointSig",
            NetMessage::Evidence { .. } => "Evidence",
            NetMessage::SubmitMicroEvents { .. } => "SubmitMicroEvents",
            NetMessage::Receipt { .. } => "Receipt",
            NetMessage::BalanceQuery { .. } => "BalanceQuery",
            NetMessage::Balance { .. } => "Balance",
            NetMessage::CheckpointCert(_) => "CheckpointCert",
            NetMessage::Exports(_) => "Exports",
            NetMessage::ExportsAck { .. } => "ExportsAck",
            NetMessage::GetExports { .. } => "GetExports",
            NetMessage::GetMintTemplate { .. } => "GetMintTemplate",
            NetMessage::MintTemplate { .. } => "MintTemplate",
            NetMessage::SubmitMintSolution { .. } => "SubmitMintSolution",
            NetMessage::MintSubmitted { .. } => "MintSubmitted",
            NetMessage::MintStatusQuery { .. } => "MintStatusQuery",
            NetMessage::MintStatus { .. } => "MintStatus",
            NetMessage::UnspentQuery { .. } => "UnspentQuery",
            NetMessage::Unspent { .. } => "Unspent",
            NetMessage::PayoutQuery { .. } => "PayoutQuery",
            NetMessage::PayoutProof { .. } => "PayoutProof",
            NetMessage::Pruned { .. } => "Pruned",
        }
    }
}

fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_count(out, bytes.len());
    out.extend_from_slice(bytes);
}
fn put_byte_lists(out: &mut Vec<u8>, lists: &[Vec<u8>]) {
    put_count(out, lists.len());
    for bytes in lists {
        put_bytes(out, bytes);
    }
}
fn put_ids(out: &mut Vec<u8>, ids: &[Hash32]) {
    put_count(out, ids.len());
    for id in ids {
        out.extend_from_slice(id);
    }
}

/// Reads a flag byte: 0 or 1, anything else is not canonical.
fn read_flag(reader: &mut Reader<'_>, what: &'static str) -> Result<u8, DecodeError> {
    let offset = reader.offset();
    match reader.u8(what)? {
        flag @ (0 | 1) => Ok(flag),
        tag => Err(DecodeError::UnknownTag { offset, what, tag }),
    }
}

/// Reads a length-prefixed byte string of `1..=max` bytes.
fn read_bytes(
    reader: &mut Reader<'_>,
    what: &'static str,
    max: usize,
) -> Result<Vec<u8>, DecodeError> {
    let len = reader.count(what, 1, max, 1)?;
    Ok(reader.bytes(len, what)?.to_vec())
}

/// Reads `min..=max` byte strings of `1..=max_item` bytes each.
fn read_byte_lists(
    reader: &mut Reader<'_>,
    what: &'static str,
    (min, max): (usize, usize),
    max_item: usize,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    // Each item is at least a one-byte length and one byte of content.
    let count = reader.count(what, min, max, 2)?;
    let mut lists = Vec::with_capacity(count);
    for _ in 0..count {
        lists.push(read_bytes(reader, what, max_item)?);
    }
    Ok(lists)
}

fn read_ids(reader: &mut Reader<'_>, what: &'static str) -> Result<Vec<Hash32>, DecodeError> {
    let count = reader.count(what, 1, MAX_IDS_PER_MESSAGE, 32)?;
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        ids.push(reader.array(what)?);
    }
    Ok(ids)
}

impl Encode for EventReceipt {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.event_id);
        match &self.outcome {
            EventOutcome::Accepted => out.push(0),
            EventOutcome::Rejected { reason, detail } => {
                out.push(*reason as u8);
                put_varint(out, detail.len() as u64);
                out.extend_from_slice(detail.as_bytes());
            }
        }
    }
}

impl Decode for EventReceipt {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let event_id = reader.array("receipt event id")?;
        let offset = reader.offset();
        let code = reader.u8("receipt outcome")?;
        if code == 0 {
            return Ok(EventReceipt {
                event_id,
                outcome: EventOutcome::Accepted,
            });
        }
        let reason = RejectReason::from_code(code).ok_or(DecodeError::UnknownTag {
            offset,
            what: "receipt outcome",
            tag: code,
        })?;
        let len = reader.count("reject detail", 0, MAX_REJECT_DETAIL_BYTES, 1)?;
        let detail_offset = reader.offset();
        let detail = std::str::from_utf8(reader.bytes(len, "reject detail")?)
            .map_err(|_| DecodeError::InvalidValue {
                offset: detail_offset,
                what: "reject detail (not UTF-8)",
            })?
            .to_owned();
        Ok(EventReceipt {
            event_id,
            outcome: EventOutcome::Rejected { reason, detail },
        })
    }
}

/// Smallest encoded [`EventReceipt`]: an id and the outcome byte.
const MIN_EVENT_RECEIPT_BYTES: usize = 32 + 1;

impl Encode for NetMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match self {
            NetMessage::Hello(hello) => hello.encode(out),
            NetMessage::Announce { shard, ids } | NetMessage::Get { shard, ids } => {
                put_u16(out, *shard);
                put_ids(out, ids);
            }
            NetMessage::GetRange {
                shard,
                from_round,
                max_count,
            } => {
                put_u16(out, *shard);
                put_u64(out, *from_round);
                put_u32(out, *max_count);
            }
            NetMessage::Anchors { shard, anchors } => {
                put_u16(out, *shard);
                put_byte_lists(out, anchors);
            }
            NetMessage::CheckpointSig(signature) => signature.encode(out),
            NetMessage::CheckpointCert(cert) => cert.encode(out),
            NetMessage::Exports(bundle) => {
                put_u16(out, bundle.source());
                put_u64(out, bundle.round());
                put_u16(out, bundle.dest());
                bundle.encode(out);
            }
            NetMessage::ExportsAck {
                source,
                round,
                dest,
            }
            | NetMessage::GetExports {
                source,
                round,
                dest,
            } => {
                put_u16(out, *source);
                put_u64(out, *round);
                put_u16(out, *dest);
            }
            NetMessage::Evidence { shard, bytes } => {
                put_u16(out, *shard);
                put_bytes(out, bytes);
            }
            NetMessage::SubmitMicroEvents {
                request,
                shard,
                events,
            } => {
                put_u64(out, *request);
                put_u16(out, *shard);
                put_byte_lists(out, events);
            }
            NetMessage::Receipt {
                request,
                shard,
                retry_after_ms,
                results,
            } => {
                put_u64(out, *request);
                put_u16(out, *shard);
                put_u32(out, *retry_after_ms);
                pc_codec::wire::put_list(out, results);
            }
            NetMessage::BalanceQuery { request, owner } => {
                put_u64(out, *request);
                out.extend_from_slice(owner);
            }
            NetMessage::Balance {
                request,
                owner,
                amount,
                finalized_round,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(owner);
                put_u64(out, *amount);
                put_u64(out, *finalized_round);
            }
            NetMessage::Pruned {
                shard,
                oldest_round,
                snapshot_round,
            } => {
                put_u16(out, *shard);
                put_u64(out, *oldest_round);
                put_u64(out, *snapshot_round);
            }
            NetMessage::PayoutQuery {
                request,
                shard,
                recipient,
            } => {
                put_u64(out, *request);
                put_u16(out, *shard);
                out.extend_from_slice(recipient);
            }
            NetMessage::PayoutProof {
                request,
                shard,
                round,
                leaf,
                proof,
            } => {
                put_u64(out, *request);
                put_u16(out, *shard);
                put_u64(out, *round);
                leaf.encode(out);
                proof.encode(out);
            }
            NetMessage::GetMintTemplate { request } => put_u64(out, *request),
            NetMessage::MintTemplate {
                request,
                network,
                mint_shard,
                prev_mint_id,
                target,
                mint_count,
                reward,
                race_open,
                race_best_pow,
                finalized_round,
                next_anchor_index,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(network);
                put_u16(out, *mint_shard);
                out.extend_from_slice(prev_mint_id);
                out.extend_from_slice(&target.to_le_bytes());
                put_u64(out, *mint_count);
                put_u64(out, *reward);
                out.push(*race_open);
                out.extend_from_slice(race_best_pow);
                put_u64(out, *finalized_round);
                put_u64(out, *next_anchor_index);
            }
            NetMessage::SubmitMintSolution {
                request,
                prev_mint_id,
                miner,
                nonce,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(prev_mint_id);
                out.extend_from_slice(miner);
                put_u64(out, *nonce);
            }
            NetMessage::MintSubmitted {
                request,
                mint_id,
                outcome,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(mint_id);
                out.push(*outcome);
            }
            NetMessage::MintStatusQuery { request, mint_id } => {
                put_u64(out, *request);
                out.extend_from_slice(mint_id);
            }
            NetMessage::MintStatus {
                request,
                mint_id,
                status,
                round,
                reward,
                mature_at,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(mint_id);
                out.push(*status);
                put_u64(out, *round);
                put_u64(out, *reward);
                put_u64(out, *mature_at);
            }
            NetMessage::UnspentQuery {
                request,
                owner,
                after,
                max,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(owner);
                match after {
                    None => out.push(0),
                    Some(out_point) => {
                        out.push(1);
                        out_point.encode(out);
                    }
                }
                put_u16(out, *max);
            }
            NetMessage::Unspent {
                request,
                owner,
                finalized_round,
                next_anchor_index,
                outputs,
                more,
            } => {
                put_u64(out, *request);
                out.extend_from_slice(owner);
                put_u64(out, *finalized_round);
                put_u64(out, *next_anchor_index);
                pc_codec::wire::put_list(out, outputs);
                out.push(*more);
            }
        }
    }
}

impl Decode for NetMessage {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        Ok(match reader.u8("message tag")? {
            0 => NetMessage::Hello(Hello::decode(reader)?),
            1 => NetMessage::Announce {
                shard: reader.u16("shard")?,
                ids: read_ids(reader, "announced ids")?,
            },
            2 => NetMessage::Get {
                shard: reader.u16("shard")?,
                ids: read_ids(reader, "requested ids")?,
            },
            3 => {
                let shard = reader.u16("shard")?;
                let from_round = reader.u64("from round")?;
                let count_offset = reader.offset();
                let max_count = reader.u32("max count")?;
                if !(1..=MAX_RANGE_ANCHORS).contains(&max_count) {
                    return Err(DecodeError::InvalidValue {
                        offset: count_offset,
                        what: "range max count",
                    });
                }
                NetMessage::GetRange {
                    shard,
                    from_round,
                    max_count,
                }
            }
            4 => NetMessage::Anchors {
                shard: reader.u16("shard")?,
                anchors: read_byte_lists(
                    reader,
                    "anchors",
                    (0, MAX_ANCHORS_PER_MESSAGE),
                    MAX_ANCHOR_BYTES,
                )?,
            },
            5 => NetMessage::CheckpointSig(CheckpointSig::decode(reader)?),
            6 => NetMessage::Evidence {
                shard: reader.u16("shard")?,
                bytes: read_bytes(reader, "evidence", MAX_EVIDENCE_BYTES)?,
            },
            7 => NetMessage::SubmitMicroEvents {
                request: reader.u64("request")?,
                shard: reader.u16("shard")?,
                events: read_byte_lists(
                    reader,
                    "submitted events",
                    (1, MAX_SUBMITTED_EVENTS),
                    MAX_MICRO_EVENT_BYTES,
                )?,
            },
            8 => NetMessage::Receipt {
                request: reader.u64("request")?,
                shard: reader.u16("shard")?,
                retry_after_ms: reader.u32("retry after")?,
                results: reader.list(
                    "receipt lines",
                    1,
                    MAX_SUBMITTED_EVENTS,
                    MIN_EVENT_RECEIPT_BYTES,
                )?,
            },
            9 => NetMessage::BalanceQuery {
                request: reader.u64("request")?,
                owner: reader.array("owner")?,
            },
            10 => NetMessage::Balance {
                request: reader.u64("request")?,
                owner: reader.array("owner")?,
                amount: reader.u64("amount")?,
                finalized_round: reader.u64("finalized round")?,
            },
            11 => NetMessage::CheckpointCert(CertifiedCheckpoint::decode(reader)?),
            12 => {
                let source = reader.u16("exports source")?;
                let round = reader.u64("exports round")?;
                let dest = reader.u16("exports destination")?;
                let named = reader.offset();
                let bundle = ExportsBundle::decode(reader)?;
                if (bundle.source(), bundle.round(), bundle.dest()) != (source, round, dest) {
                    return Err(DecodeError::InvalidValue {
                        offset: named,
                        what: "exports bundle (its certificate and entry name another source, round or destination)",
                    });
                }
                NetMessage::Exports(Box::new(bundle))
            }
            13 => NetMessage::ExportsAck {
                source: reader.u16("source")?,
                round: reader.u64("round")?,
                dest: reader.u16("destination")?,
            },
            14 => NetMessage::GetExports {
                source: reader.u16("source")?,
                round: reader.u64("round")?,
                dest: reader.u16("destination")?,
            },
            15 => NetMessage::Pruned {
                shard: reader.u16("shard")?,
                oldest_round: reader.u64("oldest round")?,
                snapshot_round: reader.u64("snapshot round")?,
            },
            26 => NetMessage::PayoutQuery {
                request: reader.u64("request")?,
                shard: reader.u16("shard")?,
                recipient: reader.array("recipient")?,
            },
            27 => NetMessage::PayoutProof {
                request: reader.u64("request")?,
                shard: reader.u16("shard")?,
                round: reader.u64("round")?,
                leaf: PayoutLeaf::decode(reader)?,
                proof: MerkleProof::decode_bounded(
                    reader,
                    MAX_PAYOUT_PROOF_SIBLINGS,
                    "payout proof siblings",
                )?,
            },
            20 => NetMessage::GetMintTemplate {
                request: reader.u64("request")?,
            },
            21 => {
                let request = reader.u64("request")?;
                let network = reader.array("network")?;
                let mint_shard = reader.u16("mint shard")?;
                let prev_mint_id = reader.array("previous mint id")?;
                let target = u128::from_le_bytes(reader.array("target")?);
                let mint_count = reader.u64("mint count")?;
                let reward = reader.u64("reward")?;
                let race_open = read_flag(reader, "race open")?;
                let at = reader.offset();
                let race_best_pow: Hash32 = reader.array("race best pow")?;
                // Without a race the best pow is zeros (one encoding).
                if race_open == 0 && race_best_pow != [0; 32] {
                    return Err(DecodeError::UnknownTag {
                        offset: at,
                        what: "race best pow without a race",
                        tag: race_best_pow[0],
                    });
                }
                NetMessage::MintTemplate {
                    request,
                    network,
                    mint_shard,
                    prev_mint_id,
                    target,
                    mint_count,
                    reward,
                    race_open,
                    race_best_pow,
                    finalized_round: reader.u64("finalized round")?,
                    next_anchor_index: reader.u64("next anchor index")?,
                }
            }
            22 => NetMessage::SubmitMintSolution {
                request: reader.u64("request")?,
                prev_mint_id: reader.array("previous mint id")?,
                miner: reader.array("miner")?,
                nonce: reader.u64("nonce")?,
            },
            23 => NetMessage::MintSubmitted {
                request: reader.u64("request")?,
                mint_id: reader.array("mint id")?,
                outcome: reader.u8("mint outcome")?,
            },
            24 => NetMessage::MintStatusQuery {
                request: reader.u64("request")?,
                mint_id: reader.array("mint id")?,
            },
            25 => NetMessage::MintStatus {
                request: reader.u64("request")?,
                mint_id: reader.array("mint id")?,
                status: reader.u8("mint status")?,
                round: reader.u64("round")?,
                reward: reader.u64("reward")?,
                mature_at: reader.u64("mature at")?,
            },
            28 => NetMessage::UnspentQuery {
                request: reader.u64("request")?,
                owner: reader.array("owner")?,
                after: match read_flag(reader, "cursor present")? {
                    0 => None,
                    _ => Some(pc_codec::OutPoint::decode(reader)?),
                },
                max: reader.u16("page size")?,
            },
            29 => NetMessage::Unspent {
                request: reader.u64("request")?,
                owner: reader.array("owner")?,
                finalized_round: reader.u64("finalized round")?,
                next_anchor_index: reader.u64("next anchor index")?,
                outputs: reader.list("unspent outputs", 0, MAX_UNSPENT_PER_PAGE, 34 + 16)?,
                more: read_flag(reader, "more")?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    offset,
                    what: "message",
                    tag,
                })
            }
        })
    }
}

/// A message whose encoding exceeds [`MAX_FRAME_BYTES`] (a batch of
/// anchors too large for one frame: split it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} message of {body_bytes} bytes exceeds the frame limit of {MAX_FRAME_BYTES} bytes")]
pub struct FrameTooLarge {
    /// The message's kind.
    pub kind: &'static str,
    /// Its encoded size.
    pub body_bytes: usize,
}

/// Appends `message` as one frame (length prefix, body) to `out`. On error
/// `out` is left as it was.
pub fn encode_frame(message: &NetMessage, out: &mut Vec<u8>) -> Result<(), FrameTooLarge> {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    message.encode(out);
    let body_bytes = out.len() - start - FRAME_PREFIX_BYTES;
    if body_bytes > MAX_FRAME_BYTES {
        out.truncate(start);
        return Err(FrameTooLarge {
            kind: message.kind(),
            body_bytes,
        });
    }
    let prefix = (body_bytes as u32).to_le_bytes();
    out[start..start + FRAME_PREFIX_BYTES].copy_from_slice(&prefix);
    Ok(())
}

/// A stream that broke the framing rules: the peer (or source address) is
/// at fault and the stream is of no further use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A length prefix over [`MAX_FRAME_BYTES`], refused before buffering.
    #[error("frame length {body_bytes} exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    FrameTooLarge {
        /// The announced body length.
        body_bytes: u64,
    },
    /// A body that is not the canonical encoding of a message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] DecodeError),
}

/// Largest body buffer kept between frames; a larger one (after a large
/// frame) is released so idle connections hold little memory.
const RETAINED_BUFFER_BYTES: usize = 64 << 10;

/// Reassembles frames from a stream's bytes, whatever the chunking.
///
/// It buffers at most one partial frame (at most [`MAX_FRAME_BYTES`] of
/// body, grown only as bytes arrive, so a peer cannot make it reserve
/// memory it did not send). After a [`Violation`] it keeps returning it.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    prefix: [u8; FRAME_PREFIX_BYTES],
    prefix_len: usize,
    body_len: usize,
    body: Vec<u8>,
    failed: Option<Violation>,
    /// Wire bytes (prefix and body) of the last frame decoded.
    last_frame_bytes: usize,
}

impl FrameDecoder {
    /// A decoder at a frame boundary.
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Bytes held for the frame in progress (prefix and body).
    pub fn buffered_bytes(&self) -> usize {
        self.prefix_len + self.body.len()
    }

    /// Wire bytes (length prefix and body) of the frame [`FrameDecoder::decode`]
    /// returned last.
    pub fn last_frame_bytes(&self) -> usize {
        self.last_frame_bytes
    }

    /// True at a frame boundary: a stream may end cleanly only here.
    pub fn is_at_boundary(&self) -> bool {
        self.prefix_len == 0 && self.failed.is_none()
    }

    /// Consumes bytes from the front of `input` up to the end of the next
    /// complete frame and returns its message; `Ok(None)` once `input` is
    /// used up without completing a frame. Call until it returns `Ok(None)`
    /// (or an error) to take every frame of a chunk.
    pub fn decode(&mut self, input: &mut &[u8]) -> Result<Option<NetMessage>, Violation> {
        if let Some(violation) = &self.failed {
            return Err(violation.clone());
        }
        if self.prefix_len < FRAME_PREFIX_BYTES {
            let take = (FRAME_PREFIX_BYTES - self.prefix_len).min(input.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&input[..take]);
            self.prefix_len += take;
            *input = &input[take..];
            if self.prefix_len < FRAME_PREFIX_BYTES {
                return Ok(None);
            }
            let body_len = u32::from_le_bytes(self.prefix);
            if body_len as usize > MAX_FRAME_BYTES {
                return Err(self.fail(Violation::FrameTooLarge {
                    body_bytes: u64::from(body_len),
                }));
            }
            self.body_len = body_len as usize;
            if input.len() >= self.body_len {
                // The whole body is in this chunk: decode it in place.
                let (body, rest) = input.split_at(self.body_len);
                *input = rest;
                self.prefix_len = 0;
                return self.finish(NetMessage::from_bytes(body));
            }
        }
        let take = (self.body_len - self.body.len()).min(input.len());
        self.body.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.body.len() < self.body_len {
            return Ok(None);
        }
        let decoded = NetMessage::from_bytes(&self.body);
        self.body.clear();
        if self.body.capacity() > RETAINED_BUFFER_BYTES {
            self.body = Vec::new();
        }
        self.prefix_len = 0;
        self.finish(decoded)
    }

    fn finish(
        &mut self,
        decoded: Result<NetMessage, DecodeError>,
    ) -> Result<Option<NetMessage>, Violation> {
        self.last_frame_bytes = FRAME_PREFIX_BYTES + self.body_len;
        decoded
            .map(Some)
            .map_err(|error| self.fail(Violation::Malformed(error)))
    }

    fn fail(&mut self, violation: Violation) -> Violation {
        self.prefix_len = 0;
        self.body = Vec::new();
        self.failed = Some(violation.clone());
        violation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_of(message: &NetMessage) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(message, &mut out).unwrap();
        out
    }

    fn decode_all(
        decoder: &mut FrameDecoder,
        mut input: &[u8],
    ) -> Result<Vec<NetMessage>, Violation> {
        let mut messages = Vec::new();
        while let Some(message) = decoder.decode(&mut input)? {
            messages.push(message);
        }
        assert!(input.is_empty(), "Ok(None) only once the input is used up");
        Ok(messages)
    }

    fn get_range() -> NetMessage {
        NetMessage::GetRange {
            shard: 3,
            from_round: 77,
            max_count: 10,
        }
    }

    #[test]
    fn four_gib_length_prefix_is_refused_after_four_bytes() {
        let mut decoder = FrameDecoder::new();
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        assert_eq!(
            decoder.decode(&mut input),
            Err(Violation::FrameTooLarge {
                body_bytes: u64::from(u32::MAX)
            })
        );
        assert_eq!(input, &[1, 2, 3], "no byte after the prefix is taken");
        assert_eq!(decoder.buffered_bytes(), 0);
        assert_eq!(decoder.body.capacity(), 0, "nothing was allocated");
        // The stream stays failed.
        let mut more: &[u8] = &[0; 8];
        assert!(decoder.decode(&mut more).is_err());
    }

    #[test]
    fn prefix_of_exactly_the_limit_is_accepted_and_one_over_is_not() {
        let mut decoder = FrameDecoder::new();
        let mut at_limit: &[u8] = &(MAX_FRAME_BYTES as u32).to_le_bytes();
        assert_eq!(decoder.decode(&mut at_limit), Ok(None));
        let mut decoder = FrameDecoder::new();
        let mut over: &[u8] = &(MAX_FRAME_BYTES as u32 + 1).to_le_bytes();
        assert!(matches!(
            decoder.decode(&mut over),
            Err(Violation::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn body_buffer_grows_only_with_bytes_received() {
        let mut decoder = FrameDecoder::new();
        let mut input: &[u8] = &[0, 0, 0x40, 0, 4, 0, 0];
        assert_eq!(decoder.decode(&mut input), Ok(None));
        assert!(
            decoder.body.capacity() < 1024,
            "a 4 MiB prefix reserves nothing up front"
        );
        assert_eq!(decoder.buffered_bytes(), 7);
    }

    #[test]
    fn several_frames_in_one_chunk_all_decode() {
        let messages = vec![
            get_range(),
            NetMessage::BalanceQuery {
                request: 9,
                owner: [4; 32],
            },
            get_range(),
        ];
        let bytes: Vec<u8> = messages.iter().flat_map(frame_of).collect();
        let mut decoder = FrameDecoder::new();
        assert_eq!(decode_all(&mut decoder, &bytes), Ok(messages));
        assert!(decoder.is_at_boundary());
    }

    #[test]
    fn empty_and_trailing_bodies_are_malformed() {
        let mut decoder = FrameDecoder::new();
        assert!(matches!(
            decode_all(&mut decoder, &[0, 0, 0, 0]),
            Err(Violation::Malformed(DecodeError::Truncated { .. }))
        ));
        let mut body = get_range().to_bytes();
        body.push(0);
        let mut frame = (body.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut decoder = FrameDecoder::new();
        assert!(matches!(
            decode_all(&mut decoder, &frame),
            Err(Violation::Malformed(DecodeError::TrailingBytes { .. }))
        ));
    }

    #[test]
    fn counts_over_their_bounds_are_refused() {
        let zero_range = NetMessage::GetRange {
            shard: 0,
            from_round: 0,
            max_count: 0,
        };
        assert!(NetMessage::from_bytes(&zero_range.to_bytes()).is_err());
        let big_range = NetMessage::GetRange {
            shard: 0,
            from_round: 0,
            max_count: MAX_RANGE_ANCHORS + 1,
        };
        assert!(NetMessage::from_bytes(&big_range.to_bytes()).is_err());
        let too_many_ids = NetMessage::Announce {
            shard: 0,
            ids: vec![[1; 32]; MAX_IDS_PER_MESSAGE + 1],
        };
        assert!(matches!(
            NetMessage::from_bytes(&too_many_ids.to_bytes()),
            Err(DecodeError::CountOutOfBounds { .. })
        ));
        let no_ids = NetMessage::Get {
            shard: 0,
            ids: vec![],
        };
        assert!(NetMessage::from_bytes(&no_ids.to_bytes()).is_err());
        let oversized_event = NetMessage::SubmitMicroEvents {
            request: 1,
            shard: 0,
            events: vec![vec![0; MAX_MICRO_EVENT_BYTES + 1]],
        };
        assert!(NetMessage::from_bytes(&oversized_event.to_bytes()).is_err());
        let empty_event = NetMessage::SubmitMicroEvents {
            request: 1,
            shard: 0,
            events: vec![vec![]],
        };
        assert!(NetMessage::from_bytes(&empty_event.to_bytes()).is_err());
    }

    #[test]
    fn reject_detail_must_be_utf8_and_reason_known() {
        let receipt = NetMessage::Receipt {
            request: 1,
            shard: 0,
            retry_after_ms: 0,
            results: vec![EventReceipt {
                event_id: [0; 32],
                outcome: EventOutcome::Rejected {
                    reason: RejectReason::BadSignature,
                    detail: "ab".into(),
                },
            }],
        };
        let good = receipt.to_bytes();
        assert_eq!(NetMessage::from_bytes(&good), Ok(receipt));
        let mut not_utf8 = good.clone();
        let last = not_utf8.len() - 1;
        not_utf8[last] = 0xff;
        assert!(matches!(
            NetMessage::from_bytes(&not_utf8),
            Err(DecodeError::InvalidValue { .. })
        ));
        let mut unknown_reason = good;
        // tag, request, shard, retry after, count, id: the outcome byte
        // follows.
        let outcome_offset = 1 + 8 + 2 + 4 + 1 + 32;
        assert_eq!(
            unknown_reason[outcome_offset],
            RejectReason::BadSignature as u8
        );
        unknown_reason[outcome_offset] = 99;
        assert!(matches!(
            NetMessage::from_bytes(&unknown_reason),
            Err(DecodeError::UnknownTag { tag: 99, .. })
        ));
    }

    #[test]
    fn oversized_message_is_not_framed() {
        let anchors = NetMessage::Anchors {
            shard: 0,
            anchors: vec![vec![7; MAX_ANCHOR_BYTES]; 5],
        };
        let mut out = vec![1, 2];
        let error = encode_frame(&anchors, &mut out).unwrap_err();
        assert_eq!(error.kind, "Anchors");
        assert!(error.body_bytes > MAX_FRAME_BYTES);
        assert_eq!(out, vec![1, 2], "the output is left as it was");
    }

    #[test]
    fn rejected_detail_is_cut_at_a_char_boundary_within_the_bound() {
        let long = "é".repeat(MAX_REJECT_DETAIL_BYTES);
        let EventOutcome::Rejected { detail, .. } =
            EventOutcome::rejected(RejectReason::Invalid, &long)
        else {
            panic!("a rejection");
        };
        assert!(detail.len() <= MAX_REJECT_DETAIL_BYTES);
        assert!(detail.len() >= MAX_REJECT_DETAIL_BYTES - 1);
        assert!(detail.chars().all(|c| c == 'é'));
    }

    #[test]
    fn every_reject_reason_code_round_trips() {
        for code in 0..=u8::MAX {
            if let Some(reason) = RejectReason::from_code(code) {
                assert_eq!(reason as u8, code);
            }
        }
        assert_eq!(RejectReason::from_code(0), None);
        assert_eq!(RejectReason::from_code(7), Some(RejectReason::Invalid));
    }
}
