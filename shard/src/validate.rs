//! Stateless anchor validation (DESIGN §3.3): every rule that can be decided
//! from one anchor and the shard's genesis context, before data-availability
//! gating and consensus. An anchor that fails is garbage: its creator is to
//! be penalised and it never enters the DAG.
//!
//! Not decided here, because it needs state: whether the parents exist and
//! match their refs (DAG insertion); whether `birth_round` equals the round
//! the receiver computes (consensus); whether a transfer's inputs exist, are
//! distinct and unspent and conserve value, and whether a claim's proof
//! matches a payout root (apply time, in the total order).
//!
//! Checks run cheapest first so that garbage costs as little as possible:
//! every structural check of the header, the payload commitment and each
//! micro-event runs before any signature is verified, and the header
//! signature is verified before the signatures inside the payload.

use crate::economics::MAX_CLAIM_PROOF_SIBLINGS;
use pc_codec::ids::shard_of;
use pc_codec::{
    to_hex, AnchorHeader, BatchEntry, Claim, DecodedAnchor, Evidence, Genesis, Hash32, MicroEvent,
    PublicKeyBytes, SignatureVerifier, SignedAnchor, SignedAnchorHeader, Transfer, MAX_PARENTS,
    MAX_PAYLOAD_EVENTS, MAX_SEATS, MAX_TRANSFER_INPUTS, MAX_TRANSFER_OUTPUTS, PROTOCOL_VERSION,
};

/// The only committee epoch of v0 (DESIGN §3.1).
const EPOCH_V0: u32 = 0;

/// What validation needs to know about the shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardContext {
    /// The network id: the first 8 bytes of the genesis hash.
    pub network: [u8; 8],
    /// The shard being validated for.
    pub shard: u16,
    /// The number of shards (`>= 1`), for `shard_of`.
    pub shards: u16,
    /// The seat keys of the shard's committee, by seat index; its length is `k`.
    pub committee: Vec<PublicKeyBytes>,
    /// Every shard's committee, by shard (the source committees imports'
    /// certificates are checked against).
    pub committees: std::sync::Arc<Vec<Vec<PublicKeyBytes>>>,
    /// The shard that holds the mint chain (DESIGN §5.5).
    pub mint_shard: u16,
    /// `T_max`: a mint's pow must be below it.
    pub mint_target_max: u128,
}

impl ShardContext {
    /// The context of `shard` under `genesis`; `None` if the shard does not
    /// exist or its committee is not complete (an unvalidated genesis).
    pub fn from_genesis(genesis: &Genesis, shard: u16) -> Option<Self> {
        if shard >= genesis.params.shards {
            return None;
        }
        let committee = genesis.committee(shard)?;
        if committee.is_empty() || committee.len() > MAX_SEATS {
            return None;
        }
        // A shard without a full committee (only in an unvalidated
        // genesis) has none here: no certificate of it verifies.
        let committees = (0..genesis.params.shards)
            .map(|s| genesis.committee(s).unwrap_or_default())
            .collect();
        Some(ShardContext {
            network: genesis.network(),
            shard,
            shards: genesis.params.shards,
            committee,
            committees: std::sync::Arc::new(committees),
            mint_shard: genesis.params.mint_shard,
            mint_target_max: genesis.params.mint_target_max,
        })
    }

    /// The number of committee seats.
    pub fn k(&self) -> usize {
        self.committee.len()
    }
}

/// Which of the two headers of an [`Evidence`] an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceSide {
    /// [`Evidence::first`].
    First,
    /// [`Evidence::second`].
    Second,
}

impl std::fmt::Display for EvidenceSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EvidenceSide::First => "first",
            EvidenceSide::Second => "second",
        })
    }
}

/// Why an anchor is invalid (its creator is to be penalised; it never enters
/// the DAG).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    /// The header is not of protocol v0.
    #[error("header version {version} is not protocol v0")]
    UnsupportedVersion {
        /// The version given.
        version: u8,
    },
    /// The header is for another network.
    #[error("anchor is for network {}, not {}", to_hex(.found), to_hex(.expected))]
    WrongNetwork {
        /// This network.
        expected: [u8; 8],
        /// The header's network.
        found: [u8; 8],
    },
    /// The header is for another shard.
    #[error("anchor is for shard {found}, not shard {expected}")]
    WrongShard {
        /// This shard.
        expected: u16,
        /// The header's shard.
        found: u16,
    },
    /// The header names an epoch other than v0's only epoch, 0.
    #[error("anchor epoch {epoch} is not 0 (v0 has one epoch)")]
    WrongEpoch {
        /// The epoch given.
        epoch: u32,
    },
    /// The creator is not a committee seat.
    #[error("creator {creator} is not a seat (k = {k})")]
    CreatorOutOfRange {
        /// The creator given.
        creator: u8,
        /// The committee size.
        k: usize,
    },
    /// The header commits to more micro-events than a payload may hold.
    #[error("header commits to {count} micro-events, more than {max}")]
    TooManyEvents {
        /// The header's payload count.
        count: u16,
        /// The bound `B`.
        max: usize,
    },
    /// More parents than the anchor's seq allows (3 others, plus the
    /// self-parent when `seq > 0`).
    #[error("anchor at seq {seq} has {count} parents, more than {max}")]
    TooManyParents {
        /// The anchor's seq.
        seq: u64,
        /// The number of parents.
        count: usize,
        /// The bound for this seq.
        max: usize,
    },
    /// A parent's creator is not a committee seat.
    #[error("parent {index} has creator {creator}, not a seat (k = {k})")]
    ParentCreatorOutOfRange {
        /// Position in the parent list.
        index: usize,
        /// The parent's creator.
        creator: u8,
        /// The committee size.
        k: usize,
    },
    /// Two parents name the same anchor id.
    #[error("parent {index} repeats the anchor id of an earlier parent")]
    DuplicateParent {
        /// Position of the repeat in the parent list.
        index: usize,
    },
    /// `seq > 0` but `parents[0]` is not by the anchor's creator.
    #[error("anchor at seq {seq} does not have its self-parent first")]
    MissingSelfParent {
        /// The anchor's seq.
        seq: u64,
    },
    /// The self-parent is not at `seq - 1`.
    #[error("anchor at seq {seq} has a self-parent at seq {parent_seq}")]
    SelfParentSeqMismatch {
        /// The anchor's seq.
        seq: u64,
        /// The self-parent's seq.
        parent_seq: u64,
    },
    /// A parent other than the self-parent (`parents[0]` when `seq > 0`) is
    /// by the anchor's own creator.
    #[error("parent {index} is by the anchor's own creator but is not its self-parent")]
    UnexpectedSelfParent {
        /// Position in the parent list.
        index: usize,
    },
    /// Two other-parents are by the same creator.
    #[error("parent {index} repeats creator {creator} of an earlier other-parent")]
    DuplicateParentCreator {
        /// Position of the repeat in the parent list.
        index: usize,
        /// The repeated creator.
        creator: u8,
    },
    /// A parent claims a later round than the anchor.
    #[error(
        "parent {index} has birth round {parent_birth_round}, after the anchor's {birth_round}"
    )]
    ParentBirthRoundAhead {
        /// Position in the parent list.
        index: usize,
        /// The parent's birth round.
        parent_birth_round: u64,
        /// The anchor's birth round.
        birth_round: u64,
    },
    /// `seq > 0` with `k >= 2` but no parent by another creator.
    #[error("anchor with seq > 0 has no parent by another seat (k = {k})")]
    NoOtherParent {
        /// The committee size.
        k: usize,
    },
    /// The birth round is more than one past every parent's (DESIGN §4: a
    /// round is the parents' highest round or one more), so no receiver can
    /// compute it: a far-future anchor.
    #[error("birth round {birth_round} is past {max}, one more than its parents' highest")]
    BirthRoundTooHigh {
        /// The anchor's birth round.
        birth_round: u64,
        /// The highest birth round its parents allow.
        max: u64,
    },
    /// The payload commitment no payload can satisfy (DESIGN §3.3 v1):
    /// `payload_count = 0` needs an all-zero root and 1 byte; `n >= 1` a
    /// non-zero root and `len(varint n) + 73 n <= payload_bytes <=
    /// min(1 044 480, len(varint n) + 12 288 n)`.
    #[error("unsatisfiable payload commitment: {count} micro-events in {bytes} bytes")]
    Unsatisfiable {
        /// The header's payload count.
        count: u16,
        /// The header's payload bytes.
        bytes: u32,
    },
    /// The header signature does not verify under the seat's genesis key.
    #[error("header signature does not verify under the key of seat {creator}")]
    BadSignature {
        /// The creator seat.
        creator: u8,
    },
    /// The payload holds another number of micro-events than the header says.
    #[error("payload has {payload} micro-events, the header commits to {header}")]
    PayloadCountMismatch {
        /// The header's count.
        header: u16,
        /// The payload's count.
        payload: usize,
    },
    /// The payload's encoding has another length than the header says.
    #[error("payload encodes to {payload} bytes, the header commits to {header}")]
    PayloadBytesMismatch {
        /// The header's length.
        header: u32,
        /// The payload's encoded length.
        payload: usize,
    },
    /// The Merkle root of the payload's micro-event ids is not the header's.
    #[error("payload root does not match the header's payload root")]
    PayloadRootMismatch,
    /// More imports of the Certified form than an anchor may carry.
    #[error("anchor carries {count} certified imports, at most {max}", max = pc_codec::cross::MAX_CERTIFIED_IMPORTS_PER_ANCHOR)]
    TooManyCertifiedImports {
        /// Certified imports in the payload.
        count: usize,
    },
    /// A micro-event of the payload is invalid, so the whole anchor is.
    #[error("micro-event {index}: {error}")]
    MicroEvent {
        /// Position of the micro-event in the payload.
        index: usize,
        /// What is wrong with it.
        error: MicroEventError,
    },
}

/// Why a micro-event is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MicroEventError {
    /// An import fails a stateless check (DESIGN §5.2 checks 1 and 2).
    #[error("import: {0}")]
    Import(#[from] pc_codec::ImportError),
    /// A transfer's input count is outside `1..=16`.
    #[error("transfer has {count} inputs, outside 1..={MAX_TRANSFER_INPUTS}")]
    TransferInputCount {
        /// The number of inputs.
        count: usize,
    },
    /// A transfer's output count is outside `1..=16`.
    #[error("transfer has {count} outputs, outside 1..={MAX_TRANSFER_OUTPUTS}")]
    TransferOutputCount {
        /// The number of outputs.
        count: usize,
    },
    /// A transfer output pays nothing.
    #[error("transfer output {output} has amount 0")]
    TransferZeroOutput {
        /// Position in the output list.
        output: usize,
    },
    /// The transfer's owner belongs to another shard.
    #[error("transfer owner belongs to shard {owner_shard}, not shard {shard}")]
    TransferForeignOwner {
        /// The owner's shard.
        owner_shard: u16,
        /// This shard.
        shard: u16,
    },
    /// The owner's signature over the tx id does not verify.
    #[error("transfer signature does not verify under its owner")]
    TransferBadSignature,
    /// A mint outside the mint shard, or for a miner of another shard.
    #[error("mint {what} is in shard {found}; mints belong to shard {mint_shard}")]
    MintWrongShard {
        /// "anchor" or "miner".
        what: &'static str,
        /// The shard found.
        found: u16,
        /// The mint shard.
        mint_shard: u16,
    },
    /// The miner is not a valid x-only key.
    #[error("mint miner is not a valid x-only public key")]
    MintInvalidMiner,
    /// The mint's pow is not below `T_max`.
    #[error("mint pow {pow:#034x} is not below T_max {max:#034x}")]
    MintPowOverMax {
        /// The pow.
        pow: u128,
        /// `T_max`.
        max: u128,
    },
    /// An evidence header is not of this network, shard, epoch or version.
    #[error("evidence's {side} header has another {field}")]
    EvidenceForeignHeader {
        /// Which header.
        side: EvidenceSide,
        /// The mismatched field.
        field: &'static str,
    },
    /// The two evidence headers are by different creators.
    #[error("evidence headers are by seats {first} and {second}, not one seat")]
    EvidenceCreatorMismatch {
        /// The first header's creator.
        first: u8,
        /// The second header's creator.
        second: u8,
    },
    /// The accused creator is not a committee seat.
    #[error("evidence accuses creator {creator}, not a seat (k = {k})")]
    EvidenceCreatorOutOfRange {
        /// The accused creator.
        creator: u8,
        /// The committee size.
        k: usize,
    },
    /// The two evidence headers are at different seqs.
    #[error("evidence headers are at seqs {first} and {second}, not one seq")]
    EvidenceSeqMismatch {
        /// The first header's seq.
        first: u64,
        /// The second header's seq.
        second: u64,
    },
    /// Both evidence headers are the same anchor: no equivocation.
    #[error("evidence headers are one anchor, not a fork")]
    EvidenceSameAnchor,
    /// An evidence header's signature does not verify under the seat's key.
    #[error("evidence's {side} header signature does not verify under the accused seat's key")]
    EvidenceBadSignature {
        /// Which header.
        side: EvidenceSide,
    },
    /// A claim's Merkle proof is deeper than a tree of 64 seats.
    #[error("claim proof has {depth} siblings, more than {MAX_CLAIM_PROOF_SIBLINGS}")]
    ClaimProofTooDeep {
        /// The number of siblings.
        depth: usize,
    },
    /// The claim's owner is not the leaf's recipient.
    #[error("claim owner is not the claimed leaf's recipient")]
    ClaimOwnerNotRecipient,
    /// The claim's owner holds no seat of this shard.
    #[error("claim owner holds no seat of shard {shard}")]
    ClaimNotASeat {
        /// This shard.
        shard: u16,
    },
    /// The claimed leaf's amount is zero.
    #[error("claim of a zero amount")]
    ClaimZeroAmount,
    /// The owner's signature over the claim message does not verify.
    #[error("claim signature does not verify under its owner")]
    ClaimBadSignature,
    /// An offence's proof does not hold (DESIGN §5.4).
    #[error("offence of kind {kind}: {reason}")]
    Offence {
        /// The offence kind.
        kind: u8,
        /// Why the proof fails.
        reason: &'static str,
    },
}

/// Checks every stateless rule of DESIGN §3.3 on `anchor`: its header (see
/// [`validate_header`]), that the payload matches the header's commitment
/// (count, encoded length, Merkle root), and every micro-event (see
/// [`validate_micro_event`]). All structural checks run before the header
/// signature, which runs before the payload's signatures.
pub fn validate_anchor(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    anchor: &SignedAnchor,
) -> Result<(), AnchorError> {
    validate_decoded(
        context,
        verifier,
        &DecodedAnchor::from_anchor(anchor.clone(), &context.network),
    )
}

/// [`validate_anchor`] over an anchor decoded with its digests
/// ([`DecodedAnchor::from_bytes`] under the shard's network): the payload
/// root, the header signature and the transfer signatures use the ids
/// computed at decode time instead of hashing again.
pub fn validate_decoded(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    decoded: &DecodedAnchor,
) -> Result<(), AnchorError> {
    validate_decoded_with(context, verifier, decoded, None)
}

/// Signature verdicts of an anchor worked out ahead of its validation
/// (several small anchors' transfers verified as one batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preverified {
    /// The header's signature verified.
    pub header: bool,
    /// Per transfer of the payload, in payload order, its signature's
    /// verdict.
    pub transfers: Vec<bool>,
}

/// [`validate_decoded`], the signature verdicts taken from `preverified`
/// where given (they must be of this very anchor: [`preverify_anchors`]).
pub fn validate_decoded_with(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    decoded: &DecodedAnchor,
    preverified: Option<&Preverified>,
) -> Result<(), AnchorError> {
    check_decoded(context, decoded)?;
    let anchor = &decoded.anchor;
    // The header's signature alone first: a forged header costs one
    // verification, never a batch and its bisection.
    match preverified {
        Some(pre) if pre.header => {}
        Some(_) => {
            return Err(AnchorError::BadSignature {
                creator: anchor.header.header.creator,
            })
        }
        None => verify_header_signature(context, verifier, &anchor.header, &decoded.header_id)?,
    }
    // Every transfer's signature in one batch (claims and evidence, rare,
    // one at a time); the first failing event in payload order is named,
    // as if each had been checked in turn.
    let computed;
    let verdicts = match preverified {
        Some(pre) => &pre.transfers,
        None => {
            let entries = transfer_entries(decoded);
            let mut verdicts = vec![false; entries.len()];
            verifier.verify_batch(&entries, &mut verdicts);
            computed = verdicts;
            &computed
        }
    };
    let mut transfer_verdicts = verdicts.iter();
    for (index, event) in anchor.payload.events.iter().enumerate() {
        let verified = match event {
            MicroEvent::Transfer(_) => {
                if transfer_verdicts.next() == Some(&true) {
                    Ok(())
                } else {
                    Err(MicroEventError::TransferBadSignature)
                }
            }
            _ => verify_micro_event(context, verifier, event),
        };
        verified.map_err(|error| AnchorError::MicroEvent { index, error })?;
    }
    Ok(())
}

/// Every rule of [`validate_decoded`] that needs no signature.
fn check_decoded(context: &ShardContext, decoded: &DecodedAnchor) -> Result<(), AnchorError> {
    let anchor = &decoded.anchor;
    check_header(context, &anchor.header.header)?;
    check_payload_commitment(decoded)?;
    for (index, event) in anchor.payload.events.iter().enumerate() {
        check_micro_event(context, event)
            .map_err(|error| AnchorError::MicroEvent { index, error })?;
    }
    let certified = anchor
        .payload
        .events
        .iter()
        .filter(|e| matches!(e, MicroEvent::Import(i) if i.certificate().is_some()))
        .count();
    if certified > pc_codec::cross::MAX_CERTIFIED_IMPORTS_PER_ANCHOR {
        return Err(AnchorError::TooManyCertifiedImports { count: certified });
    }
    Ok(())
}

/// The transfers' signatures of a decoded anchor, in payload order.
fn transfer_entries(decoded: &DecodedAnchor) -> Vec<BatchEntry<'_>> {
    let mut entries = Vec::with_capacity(decoded.anchor.payload.events.len());
    for (event, digest) in decoded.anchor.payload.events.iter().zip(&decoded.digests) {
        if let MicroEvent::Transfer(transfer) = event {
            entries.push(BatchEntry {
                key: &transfer.owner,
                message: &digest.tx_id,
                signature: &transfer.signature,
            });
        }
    }
    entries
}

/// Verifies the signatures of several decoded anchors together: each
/// header alone, then the transfers of every anchor whose header and
/// structure hold as one batch (so small anchors, which would not pay for
/// a batch of their own, share one). One entry per anchor: `None` where
/// the anchor breaks a rule that needs no signature (its validation will
/// name it), else its verdicts for [`validate_decoded_with`].
pub fn preverify_anchors(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    anchors: &[&DecodedAnchor],
) -> Vec<Option<Preverified>> {
    let mut out: Vec<Option<Preverified>> = anchors
        .iter()
        .map(|decoded| {
            check_decoded(context, decoded).ok()?;
            let header = verify_header_signature(
                context,
                verifier,
                &decoded.anchor.header,
                &decoded.header_id,
            )
            .is_ok();
            Some(Preverified {
                header,
                transfers: Vec::new(),
            })
        })
        .collect();
    let mut entries = Vec::new();
    let mut counts = Vec::with_capacity(anchors.len());
    for (decoded, pre) in anchors.iter().zip(&out) {
        let before = entries.len();
        if matches!(pre, Some(pre) if pre.header) {
            entries.extend(transfer_entries(decoded));
        }
        counts.push(entries.len() - before);
    }
    let mut verdicts = vec![false; entries.len()];
    verifier.verify_batch(&entries, &mut verdicts);
    let mut verdicts = verdicts.into_iter();
    for (pre, count) in out.iter_mut().zip(counts) {
        if let Some(pre) = pre {
            pre.transfers = verdicts.by_ref().take(count).collect();
        }
    }
    out
}

/// Checks the header rules of DESIGN §3.3 alone (for headers received before
/// their payloads): version, network, shard, epoch 0, `creator < k`, the
/// payload count bound, the parent rules, birth rounds, and last the
/// signature by the seat's genesis key over the header id.
pub fn validate_header(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    header: &SignedAnchorHeader,
) -> Result<(), AnchorError> {
    check_header(context, &header.header)?;
    verify_header_signature(context, verifier, header, &header.header.id())
}

/// Checks one micro-event: well formed, of this shard, correctly signed.
/// Transfers and claims must be owned in this shard; evidence must be two
/// different anchors of one seat at one seq, both signed by that seat; a
/// mint is accepted (inactive in v0: apply rejects it). Whether inputs are
/// unspent, distinct and conserve value is decided at apply time.
pub fn validate_micro_event(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    event: &MicroEvent,
) -> Result<(), MicroEventError> {
    check_micro_event(context, event)?;
    verify_micro_event(context, verifier, event)
}

/// [`validate_micro_event`] of every event, the transfers' signatures
/// checked as one batch (a client's submission frame).
pub fn validate_micro_events(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    events: &[MicroEvent],
) -> Vec<Result<(), MicroEventError>> {
    let mut results: Vec<Result<(), MicroEventError>> = events
        .iter()
        .map(|event| check_micro_event(context, event))
        .collect();
    let ids: Vec<Option<Hash32>> = events
        .iter()
        .zip(&results)
        .map(|(event, checked)| match (event, checked) {
            (MicroEvent::Transfer(transfer), Ok(())) => Some(transfer.tx_id(&context.network)),
            _ => None,
        })
        .collect();
    let mut entries = Vec::new();
    let mut positions = Vec::new();
    for (index, (event, id)) in events.iter().zip(&ids).enumerate() {
        if let (MicroEvent::Transfer(transfer), Some(id)) = (event, id) {
            entries.push(BatchEntry {
                key: &transfer.owner,
                message: id,
                signature: &transfer.signature,
            });
            positions.push(index);
        }
    }
    let mut verdicts = vec![false; entries.len()];
    verifier.verify_batch(&entries, &mut verdicts);
    for (index, event) in events.iter().enumerate() {
        if results[index].is_err() || matches!(event, MicroEvent::Transfer(_)) {
            continue;
        }
        results[index] = verify_micro_event(context, verifier, event);
    }
    for (position, verdict) in positions.into_iter().zip(verdicts) {
        if !verdict {
            results[position] = Err(MicroEventError::TransferBadSignature);
        }
    }
    results
}

/// Every structural header rule; no signature.
fn check_header(context: &ShardContext, header: &AnchorHeader) -> Result<(), AnchorError> {
    check_header_fields(context, header)?;
    check_commitment(header)?;
    check_parents(context, header)?;
    check_birth_rounds(header)
}

/// Every stateless header rule of DESIGN §3.3 except the signature (what an
/// offence of kind 1 proves broken).
pub fn check_header_rules(
    context: &ShardContext,
    header: &AnchorHeader,
) -> Result<(), AnchorError> {
    check_header(context, header)
}

/// [`check_header_rules`] without the satisfiable commitment (what an
/// offence of kind 0 proves broken: an unsatisfiable commitment alone is
/// kind 4).
pub fn check_header_structure(
    context: &ShardContext,
    header: &AnchorHeader,
) -> Result<(), AnchorError> {
    check_header_fields(context, header)?;
    check_parents(context, header)?;
    check_birth_rounds(header)
}

/// Largest payload in bytes (DESIGN §3.1).
pub const MAX_PAYLOAD_BYTES: u64 = 1_044_480;
/// Smallest encoded micro-event (a Mint: tag, two keys, a nonce).
const MIN_EVENT_BYTES: u64 = 73;

/// The satisfiable commitment of DESIGN §3.3 (v1).
pub fn check_commitment(header: &AnchorHeader) -> Result<(), AnchorError> {
    let n = u64::from(header.payload_count);
    let bytes = u64::from(header.payload_bytes);
    let varint = |mut v: u64| {
        let mut len = 1;
        while v >= 0x80 {
            v >>= 7;
            len += 1;
        }
        len
    };
    let zero_root = header.payload_root == [0; 32];
    let satisfiable = if n == 0 {
        zero_root && bytes == 1
    } else {
        !zero_root
            && varint(n) + MIN_EVENT_BYTES * n <= bytes
            && bytes <= MAX_PAYLOAD_BYTES.min(varint(n) + pc_codec::MAX_OFFENCE_BYTES as u64 * n)
    };
    if satisfiable {
        Ok(())
    } else {
        Err(AnchorError::Unsatisfiable {
            count: header.payload_count,
            bytes: header.payload_bytes,
        })
    }
}

fn check_header_fields(context: &ShardContext, header: &AnchorHeader) -> Result<(), AnchorError> {
    if header.version != PROTOCOL_VERSION {
        return Err(AnchorError::UnsupportedVersion {
            version: header.version,
        });
    }
    if header.network != context.network {
        return Err(AnchorError::WrongNetwork {
            expected: context.network,
            found: header.network,
        });
    }
    if header.shard != context.shard {
        return Err(AnchorError::WrongShard {
            expected: context.shard,
            found: header.shard,
        });
    }
    if header.epoch != EPOCH_V0 {
        return Err(AnchorError::WrongEpoch {
            epoch: header.epoch,
        });
    }
    if usize::from(header.creator) >= context.k() {
        return Err(AnchorError::CreatorOutOfRange {
            creator: header.creator,
            k: context.k(),
        });
    }
    if usize::from(header.payload_count) > MAX_PAYLOAD_EVENTS {
        return Err(AnchorError::TooManyEvents {
            count: header.payload_count,
            max: MAX_PAYLOAD_EVENTS,
        });
    }
    Ok(())
}

/// The parent rules: bounds, seats, distinct ids, the self-parent first when
/// `seq > 0`, other-parents by distinct other seats, at least one of them.
fn check_parents(context: &ShardContext, header: &AnchorHeader) -> Result<(), AnchorError> {
    let parents = &header.parents;
    let max = if header.seq == 0 {
        MAX_PARENTS - 1
    } else {
        MAX_PARENTS
    };
    if parents.len() > max {
        return Err(AnchorError::TooManyParents {
            seq: header.seq,
            count: parents.len(),
            max,
        });
    }
    for (index, parent) in parents.iter().enumerate() {
        if usize::from(parent.creator) >= context.k() {
            return Err(AnchorError::ParentCreatorOutOfRange {
                index,
                creator: parent.creator,
                k: context.k(),
            });
        }
        if parents[..index]
            .iter()
            .any(|earlier| earlier.anchor_id == parent.anchor_id)
        {
            return Err(AnchorError::DuplicateParent { index });
        }
    }
    let first_other = if header.seq == 0 {
        0
    } else {
        check_self_parent(header)?;
        1
    };
    for (index, parent) in parents.iter().enumerate().skip(first_other) {
        if parent.creator == header.creator {
            return Err(AnchorError::UnexpectedSelfParent { index });
        }
        if parents[first_other..index]
            .iter()
            .any(|earlier| earlier.creator == parent.creator)
        {
            return Err(AnchorError::DuplicateParentCreator {
                index,
                creator: parent.creator,
            });
        }
    }
    // Without an other-parent a seat could extend its own chain alone and
    // never acknowledge anyone; with k = 1 there is nobody to acknowledge.
    if header.seq > 0 && context.k() >= 2 && parents.len() == first_other {
        return Err(AnchorError::NoOtherParent { k: context.k() });
    }
    Ok(())
}

/// `parents[0]` is by the creator at `seq - 1`; only called when `seq > 0`.
fn check_self_parent(header: &AnchorHeader) -> Result<(), AnchorError> {
    let Some(self_parent) = header
        .parents
        .first()
        .filter(|parent| parent.creator == header.creator)
    else {
        return Err(AnchorError::MissingSelfParent { seq: header.seq });
    };
    if self_parent.seq != header.seq - 1 {
        return Err(AnchorError::SelfParentSeqMismatch {
            seq: header.seq,
            parent_seq: self_parent.seq,
        });
    }
    Ok(())
}

/// No parent claims a later round, and the anchor claims at most one round
/// past its parents' highest (0 without parents): a round is the highest
/// round of the non-ancient parents, or one more (DESIGN §4), and the
/// non-ancient parents are a subset of all of them.
fn check_birth_rounds(header: &AnchorHeader) -> Result<(), AnchorError> {
    for (index, parent) in header.parents.iter().enumerate() {
        if parent.birth_round > header.birth_round {
            return Err(AnchorError::ParentBirthRoundAhead {
                index,
                parent_birth_round: parent.birth_round,
                birth_round: header.birth_round,
            });
        }
    }
    let max = header
        .parents
        .iter()
        .map(|parent| parent.birth_round.saturating_add(1))
        .max()
        .unwrap_or(0);
    if header.birth_round > max {
        return Err(AnchorError::BirthRoundTooHigh {
            birth_round: header.birth_round,
            max,
        });
    }
    Ok(())
}

/// The creator's signature over the header id; only after `check_header`,
/// which guarantees `creator < k`.
fn verify_header_signature(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    header: &SignedAnchorHeader,
    header_id: &Hash32,
) -> Result<(), AnchorError> {
    let creator = header.header.creator;
    if verifier.verify(
        &context.committee[usize::from(creator)],
        header_id,
        &header.signature,
    ) {
        Ok(())
    } else {
        Err(AnchorError::BadSignature { creator })
    }
}

/// The payload's count, encoded length and root are the header's; uses the
/// codec's definition and only on failure works out which one differs.
fn check_payload_commitment(decoded: &DecodedAnchor) -> Result<(), AnchorError> {
    if decoded.payload_matches_header() {
        return Ok(());
    }
    let header = &decoded.anchor.header.header;
    let count = decoded.digests.len();
    if usize::from(header.payload_count) != count {
        return Err(AnchorError::PayloadCountMismatch {
            header: header.payload_count,
            payload: count,
        });
    }
    if header.payload_bytes as usize != decoded.payload_bytes {
        return Err(AnchorError::PayloadBytesMismatch {
            header: header.payload_bytes,
            payload: decoded.payload_bytes,
        });
    }
    Err(AnchorError::PayloadRootMismatch)
}

/// Every structural rule of a micro-event; no signature.
fn check_micro_event(context: &ShardContext, event: &MicroEvent) -> Result<(), MicroEventError> {
    match event {
        MicroEvent::Transfer(transfer) => check_transfer(context, transfer),
        MicroEvent::Mint(mint) => check_mint(context, mint),
        MicroEvent::Evidence(evidence) => check_evidence(context, evidence),
        MicroEvent::Claim(claim) => check_claim(context, claim),
        MicroEvent::Import(import) => import
            .check_structure(context.shard, context.shards, |owner| {
                shard_of(owner, context.shards)
            })
            .map_err(MicroEventError::Import),
        MicroEvent::Offence(offence) => crate::offence::check_offence(context, offence),
    }
}

/// The signatures of a micro-event; only after `check_micro_event`.
fn verify_micro_event(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    event: &MicroEvent,
) -> Result<(), MicroEventError> {
    match event {
        MicroEvent::Transfer(transfer) => {
            if transfer.verify_signature(verifier, &context.network) {
                Ok(())
            } else {
                Err(MicroEventError::TransferBadSignature)
            }
        }
        MicroEvent::Mint(_) => Ok(()),
        MicroEvent::Evidence(evidence) => verify_evidence(context, verifier, evidence),
        MicroEvent::Claim(claim) => {
            let message = claim.signing_message(&context.network, context.shard);
            if verifier.verify(&claim.owner, &message, &claim.signature) {
                Ok(())
            } else {
                Err(MicroEventError::ClaimBadSignature)
            }
        }
        MicroEvent::Import(import) => match import.certificate() {
            // check_structure bounded `source` below the shard count.
            Some(cert) => cert
                .verify(
                    &context.network,
                    &context.committees[usize::from(import.source)],
                    verifier,
                )
                .map_err(|error| MicroEventError::Import(error.into())),
            None => Ok(()),
        },
        MicroEvent::Offence(offence) => crate::offence::verify_offence(context, verifier, offence),
    }
}

/// The stateless rules of a mint (DESIGN §5.5): carried in the mint
/// shard, for a miner of the mint shard, a valid key, `pow < T_max`.
/// Whether it extends the tip and beats the target is decided at apply.
fn check_mint(context: &ShardContext, mint: &pc_codec::Mint) -> Result<(), MicroEventError> {
    if context.shard != context.mint_shard {
        return Err(MicroEventError::MintWrongShard {
            what: "anchor",
            found: context.shard,
            mint_shard: context.mint_shard,
        });
    }
    let miner_shard = shard_of(&mint.miner, context.shards);
    if miner_shard != context.mint_shard {
        return Err(MicroEventError::MintWrongShard {
            what: "miner",
            found: miner_shard,
            mint_shard: context.mint_shard,
        });
    }
    let pow = pc_codec::mint::pow_value(&mint.pow_hash(&context.network));
    if pow >= context.mint_target_max {
        return Err(MicroEventError::MintPowOverMax {
            pow,
            max: context.mint_target_max,
        });
    }
    if !pc_codec::crypto::is_valid_public_key(&mint.miner) {
        return Err(MicroEventError::MintInvalidMiner);
    }
    Ok(())
}

fn check_transfer(context: &ShardContext, transfer: &Transfer) -> Result<(), MicroEventError> {
    let inputs = transfer.inputs.len();
    if !(1..=MAX_TRANSFER_INPUTS).contains(&inputs) {
        return Err(MicroEventError::TransferInputCount { count: inputs });
    }
    let outputs = transfer.outputs.len();
    if !(1..=MAX_TRANSFER_OUTPUTS).contains(&outputs) {
        return Err(MicroEventError::TransferOutputCount { count: outputs });
    }
    if let Some(output) = transfer.outputs.iter().position(|out| out.amount == 0) {
        return Err(MicroEventError::TransferZeroOutput { output });
    }
    let owner_shard = shard_of(&transfer.owner, context.shards);
    if owner_shard != context.shard {
        return Err(MicroEventError::TransferForeignOwner {
            owner_shard,
            shard: context.shard,
        });
    }
    Ok(())
}

fn evidence_sides(evidence: &Evidence) -> [(EvidenceSide, &SignedAnchorHeader); 2] {
    [
        (EvidenceSide::First, &evidence.first),
        (EvidenceSide::Second, &evidence.second),
    ]
}

/// The first field of `header` that is not this shard's, if any.
fn foreign_field(context: &ShardContext, header: &AnchorHeader) -> Option<&'static str> {
    if header.version != PROTOCOL_VERSION {
        Some("version")
    } else if header.network != context.network {
        Some("network")
    } else if header.shard != context.shard {
        Some("shard")
    } else if header.epoch != EPOCH_V0 {
        Some("epoch")
    } else {
        None
    }
}

/// Two different anchors of one seat of this shard at one seq. The headers
/// need not be valid anchors otherwise: two signatures at one seq are the
/// offence, whatever they sign.
fn check_evidence(context: &ShardContext, evidence: &Evidence) -> Result<(), MicroEventError> {
    for (side, signed) in evidence_sides(evidence) {
        if let Some(field) = foreign_field(context, &signed.header) {
            return Err(MicroEventError::EvidenceForeignHeader { side, field });
        }
    }
    let (first, second) = (&evidence.first.header, &evidence.second.header);
    if first.creator != second.creator {
        return Err(MicroEventError::EvidenceCreatorMismatch {
            first: first.creator,
            second: second.creator,
        });
    }
    if usize::from(first.creator) >= context.k() {
        return Err(MicroEventError::EvidenceCreatorOutOfRange {
            creator: first.creator,
            k: context.k(),
        });
    }
    if first.seq != second.seq {
        return Err(MicroEventError::EvidenceSeqMismatch {
            first: first.seq,
            second: second.seq,
        });
    }
    // Equal headers with different signatures are a fork too: the anchor id
    // commits to the signature.
    if evidence.first.anchor_id() == evidence.second.anchor_id() {
        return Err(MicroEventError::EvidenceSameAnchor);
    }
    Ok(())
}

/// Both signatures under the accused seat's key; only after
/// `check_evidence`, which guarantees one creator `< k`.
fn verify_evidence(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    evidence: &Evidence,
) -> Result<(), MicroEventError> {
    let key = &context.committee[usize::from(evidence.first.header.creator)];
    for (side, signed) in evidence_sides(evidence) {
        if !signed.verify_signature(verifier, key) {
            return Err(MicroEventError::EvidenceBadSignature { side });
        }
    }
    Ok(())
}

/// A claim belongs to the shard whose payout root it uses (DESIGN §5.3):
/// its owner is the leaf's recipient and a seat key of this shard, whatever
/// shard the owner's outputs live in.
fn check_claim(context: &ShardContext, claim: &Claim) -> Result<(), MicroEventError> {
    let depth = claim.proof.siblings.len();
    if depth > MAX_CLAIM_PROOF_SIBLINGS {
        return Err(MicroEventError::ClaimProofTooDeep { depth });
    }
    if claim.owner != claim.leaf.recipient {
        return Err(MicroEventError::ClaimOwnerNotRecipient);
    }
    if !context.committee.contains(&claim.owner) {
        return Err(MicroEventError::ClaimNotASeat {
            shard: context.shard,
        });
    }
    if claim.leaf.amount == 0 {
        return Err(MicroEventError::ClaimZeroAmount);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::sim_crypto::{FastSigner, FastVerifier};
    use pc_codec::genesis::{ConsensusParams, GenesisValidator, SeatAssignment};
    use pc_codec::Encode;
    use pc_codec::{
        AnchorBuilder, AnchorPayload, Bip340, MerkleProof, Mint, OutPoint, ParentRef, PayoutLeaf,
        SignatureBytes, SigningKey, TransferBuilder,
    };

    const NETWORK: [u8; 8] = [7; 8];
    const SHARDS: u16 = 4;
    const SHARD: u16 = 1;
    const K: u8 = 5;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
    }

    fn seat_key(seat: u8) -> SigningKey {
        key(seat + 1)
    }

    fn context() -> ShardContext {
        let committee: Vec<PublicKeyBytes> =
            (0..K).map(|seat| seat_key(seat).public_key()).collect();
        ShardContext {
            network: NETWORK,
            shard: SHARD,
            shards: SHARDS,
            committee: committee.clone(),
            committees: std::sync::Arc::new(vec![committee; usize::from(SHARDS)]),
            mint_shard: SHARD,
            mint_target_max: 1 << 120,
        }
    }

    /// The first client key owned in this shard (`home`) or in another one.
    fn client(home: bool) -> SigningKey {
        (50..=255)
            .map(key)
            .find(|key| (shard_of(&key.public_key(), SHARDS) == SHARD) == home)
            .expect("some seed maps to each side")
    }

    fn transfer_by(owner: &SigningKey) -> Transfer {
        TransferBuilder::new()
            .input(OutPoint {
                tx_id: [5; 32],
                index: 0,
            })
            .output(10, [6; 32])
            .sign(&NETWORK, owner, &[0; 32])
            .unwrap()
    }

    /// Re-signs an edited transfer, so only the edit breaks a rule.
    fn resign_transfer(mut transfer: Transfer, owner: &SigningKey) -> MicroEvent {
        transfer.signature = owner.sign(&transfer.tx_id(&NETWORK), &[0; 32]);
        MicroEvent::Transfer(transfer)
    }

    fn claim_by(owner: &SigningKey) -> Claim {
        let mut claim = Claim {
            round: 3,
            leaf: PayoutLeaf {
                recipient: owner.public_key(),
                amount: 40,
            },
            proof: MerkleProof {
                index: 0,
                leaf_count: 1,
                siblings: Vec::new(),
            },
            owner: owner.public_key(),
            signature: [0; 64],
        };
        claim.signature = owner.sign(&claim.signing_message(&NETWORK, SHARD), &[0; 32]);
        claim
    }

    /// A mint that holds every stateless rule: a miner of this shard and
    /// the first nonce whose pow is below `T_max`.
    fn mint() -> MicroEvent {
        let miner = client(true).public_key();
        let nonce = (0u64..)
            .find(|nonce| {
                pc_codec::mint::pow_value(&pc_codec::mint::pow_hash(
                    &NETWORK, &[8; 32], &miner, *nonce,
                )) < 1 << 120
            })
            .unwrap();
        MicroEvent::Mint(Mint {
            prev_mint_id: [8; 32],
            miner,
            nonce,
        })
    }

    /// A header of `seat` at `seq` claiming `birth_round`, without parents.
    fn header_of(seat: u8, seq: u64, birth_round: u64) -> SignedAnchorHeader {
        AnchorBuilder::new(NETWORK, SHARD, seat, seq)
            .birth_round(birth_round)
            .sign(&seat_key(seat), &[0; 32])
            .unwrap()
            .header
    }

    /// Re-signs an edited header with the key of `seat`.
    fn resign_header(mut header: SignedAnchorHeader, seat: u8) -> SignedAnchorHeader {
        header.signature = seat_key(seat).sign(&header.header.id(), &[0; 32]);
        header
    }

    /// Seat 2 forking at seq 0: two headers claiming different rounds.
    fn evidence() -> Evidence {
        Evidence {
            first: header_of(2, 0, 0),
            second: header_of(2, 0, 1),
        }
    }

    fn genesis_anchor(seat: u8) -> SignedAnchor {
        AnchorBuilder::new(NETWORK, SHARD, seat, 0)
            .sign(&seat_key(seat), &[0; 32])
            .unwrap()
    }

    /// Seat 0 at seq 1, round 1, on its own and seat 1's genesis anchors,
    /// carrying one micro-event of every kind.
    fn valid_anchor() -> SignedAnchor {
        let home = client(true);
        AnchorBuilder::new(NETWORK, SHARD, 0, 1)
            .birth_round(1)
            .parent_anchor(&genesis_anchor(0))
            .parent_anchor(&genesis_anchor(1))
            .event(MicroEvent::Transfer(transfer_by(&home)))
            .event(MicroEvent::Evidence(evidence()))
            .event(mint())
            .event(MicroEvent::Claim(claim_by(&seat_key(3))))
            .sign(&seat_key(0), &[0; 32])
            .unwrap()
    }

    fn parent(creator: u8, seq: u64, birth_round: u64, id: u8) -> ParentRef {
        ParentRef {
            anchor_id: [id; 32],
            creator,
            seq,
            birth_round,
        }
    }

    /// The valid anchor with its header edited and re-signed by the (new)
    /// creator's seat key, so only the edit can break a rule.
    fn edited(edit: impl FnOnce(&mut AnchorHeader)) -> SignedAnchor {
        let mut anchor = valid_anchor();
        edit(&mut anchor.header.header);
        let creator = anchor.header.header.creator;
        anchor.header = resign_header(anchor.header, creator);
        anchor
    }

    fn error_of(anchor: &SignedAnchor) -> AnchorError {
        validate_anchor(&context(), &Bip340, anchor).unwrap_err()
    }

    fn header_error(edit: impl FnOnce(&mut AnchorHeader)) -> AnchorError {
        error_of(&edited(edit))
    }

    fn event_error(event: &MicroEvent) -> MicroEventError {
        validate_micro_event(&context(), &Bip340, event).unwrap_err()
    }

    /// An edit of a header, for tables of bad inputs.
    type HeaderEdit = fn(&mut AnchorHeader);

    /// Counts the signatures it is asked to verify.
    struct CountingVerifier(Cell<usize>);

    impl SignatureVerifier for CountingVerifier {
        fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
            self.0.set(self.0.get() + 1);
            Bip340.verify(key, message, signature)
        }
    }

    // --- valid inputs -------------------------------------------------

    #[test]
    fn correct_anchor_with_every_kind_of_micro_event_passes() {
        let anchor = valid_anchor();
        assert_eq!(validate_anchor(&context(), &Bip340, &anchor), Ok(()));
        assert_eq!(validate_header(&context(), &Bip340, &anchor.header), Ok(()));
    }

    #[test]
    fn genesis_anchor_without_parents_passes() {
        for seat in 0..K {
            assert_eq!(
                validate_anchor(&context(), &Bip340, &genesis_anchor(seat)),
                Ok(())
            );
        }
    }

    #[test]
    fn single_seat_committee_needs_no_other_parent() {
        let solo = ShardContext {
            committee: vec![seat_key(0).public_key()],
            ..context()
        };
        let anchor = AnchorBuilder::new(NETWORK, SHARD, 0, 1)
            .birth_round(1)
            .parent_anchor(&genesis_anchor(0))
            .sign(&seat_key(0), &[0; 32])
            .unwrap();
        assert_eq!(validate_anchor(&solo, &Bip340, &anchor), Ok(()));
        assert_eq!(
            validate_anchor(&context(), &Bip340, &anchor),
            Err(AnchorError::NoOtherParent { k: 5 })
        );
    }

    #[test]
    fn fast_signed_anchor_passes_only_under_the_fast_verifier() {
        let fast_keys: Vec<PublicKeyBytes> = (0..K).map(|seat| [seat; 32]).collect();
        let fast = ShardContext {
            committee: fast_keys.clone(),
            ..context()
        };
        let mut evidence = evidence();
        evidence.first = FastSigner.sign_header(&fast_keys[2], evidence.first.header);
        evidence.second = FastSigner.sign_header(&fast_keys[2], evidence.second.header);
        let template = valid_anchor();
        let payload = AnchorPayload {
            events: vec![MicroEvent::Evidence(evidence), mint()],
        };
        let anchor = FastSigner.sign_anchor(&fast_keys[0], template.header.header, payload);
        assert_eq!(validate_anchor(&fast, &FastVerifier, &anchor), Ok(()));
        assert_eq!(
            validate_anchor(&fast, &Bip340, &anchor),
            Err(AnchorError::BadSignature { creator: 0 })
        );
    }

    #[test]
    fn context_from_genesis_takes_network_shards_and_seat_keys() {
        let validators = (0..3u8)
            .map(|seat| GenesisValidator {
                key: seat_key(seat).public_key(),
                bond: 1,
                seats: vec![SeatAssignment { shard: 1, seat }],
            })
            .collect();
        let genesis = Genesis {
            params: ConsensusParams::v0(3, 2),
            note_commitment: [0; 32],
            validators,
            allocations: Vec::new(),
        };
        let context = ShardContext::from_genesis(&genesis, 1).unwrap();
        assert_eq!(context.network, genesis.network());
        assert_eq!((context.shard, context.shards, context.k()), (1, 2, 3));
        assert_eq!(context.committee[2], seat_key(2).public_key());
        assert_eq!(ShardContext::from_genesis(&genesis, 0), None, "no seats");
        assert_eq!(ShardContext::from_genesis(&genesis, 2), None, "no shard");
    }

    // --- header rules -------------------------------------------------

    #[test]
    fn header_of_another_version_is_rejected() {
        assert_eq!(
            header_error(|h| h.version = 2),
            AnchorError::UnsupportedVersion { version: 2 }
        );
    }

    #[test]
    fn header_of_another_network_is_rejected() {
        let error = header_error(|h| h.network = [8; 8]);
        assert_eq!(
            error,
            AnchorError::WrongNetwork {
                expected: NETWORK,
                found: [8; 8]
            }
        );
        assert_eq!(
            error.to_string(),
            "anchor is for network 0808080808080808, not 0707070707070707"
        );
    }

    #[test]
    fn header_of_another_shard_is_rejected() {
        assert_eq!(
            header_error(|h| h.shard = 2),
            AnchorError::WrongShard {
                expected: SHARD,
                found: 2
            }
        );
    }

    #[test]
    fn header_with_nonzero_epoch_is_rejected() {
        assert_eq!(
            header_error(|h| h.epoch = 1),
            AnchorError::WrongEpoch { epoch: 1 }
        );
    }

    #[test]
    fn creator_outside_the_committee_is_rejected() {
        let anchor = AnchorBuilder::new(NETWORK, SHARD, K, 0)
            .sign(&seat_key(K), &[0; 32])
            .unwrap();
        assert_eq!(
            error_of(&anchor),
            AnchorError::CreatorOutOfRange { creator: K, k: 5 }
        );
    }

    #[test]
    fn header_committing_to_more_than_b_micro_events_is_rejected() {
        let payload = AnchorPayload {
            events: vec![mint(); MAX_PAYLOAD_EVENTS + 1],
        };
        let mut anchor = valid_anchor();
        let header = &mut anchor.header.header;
        header.payload_root = payload.root();
        header.payload_count = payload.events.len() as u16;
        header.payload_bytes = payload.to_bytes().len() as u32;
        anchor.header = resign_header(anchor.header, 0);
        anchor.payload = payload;
        assert!(anchor.payload_matches_header());
        assert_eq!(
            error_of(&anchor),
            AnchorError::TooManyEvents {
                count: 257,
                max: 256
            }
        );
    }

    #[test]
    fn header_signed_by_another_seat_or_altered_is_rejected() {
        let mut anchor = valid_anchor();
        anchor.header.signature = seat_key(1).sign(&anchor.header.header.id(), &[0; 32]);
        assert_eq!(error_of(&anchor), AnchorError::BadSignature { creator: 0 });
        let mut anchor = valid_anchor();
        anchor.header.signature[5] ^= 1;
        assert_eq!(
            validate_header(&context(), &Bip340, &anchor.header),
            Err(AnchorError::BadSignature { creator: 0 })
        );
    }

    #[test]
    fn seq_zero_with_four_parents_is_rejected() {
        let error = header_error(|h| {
            h.seq = 0;
            h.parents = (1..=4).map(|c| parent(c, 0, 0, c)).collect();
        });
        assert_eq!(
            error,
            AnchorError::TooManyParents {
                seq: 0,
                count: 4,
                max: 3
            }
        );
    }

    #[test]
    fn seq_above_zero_with_five_parents_is_rejected() {
        let error = header_error(|h| {
            h.parents = (0..=4).map(|c| parent(c, 0, 0, c)).collect();
        });
        assert_eq!(
            error,
            AnchorError::TooManyParents {
                seq: 1,
                count: 5,
                max: 4
            }
        );
    }

    #[test]
    fn parent_creator_outside_the_committee_is_rejected() {
        assert_eq!(
            header_error(|h| h.parents[1].creator = K),
            AnchorError::ParentCreatorOutOfRange {
                index: 1,
                creator: K,
                k: 5
            }
        );
    }

    #[test]
    fn two_parents_with_one_anchor_id_are_rejected() {
        let error = header_error(|h| h.parents[1].anchor_id = h.parents[0].anchor_id);
        assert_eq!(error, AnchorError::DuplicateParent { index: 1 });
    }

    #[test]
    fn seq_above_zero_without_its_self_parent_first_is_rejected() {
        assert_eq!(
            header_error(|h| h.parents.swap(0, 1)),
            AnchorError::MissingSelfParent { seq: 1 }
        );
    }

    #[test]
    fn self_parent_at_another_seq_is_rejected() {
        assert_eq!(
            header_error(|h| h.seq = 2),
            AnchorError::SelfParentSeqMismatch {
                seq: 2,
                parent_seq: 0
            }
        );
    }

    #[test]
    fn parent_by_the_creator_at_seq_zero_is_rejected() {
        let error = header_error(|h| {
            h.seq = 0;
            h.parents = vec![parent(1, 0, 0, 1), parent(0, 0, 0, 2)];
        });
        assert_eq!(error, AnchorError::UnexpectedSelfParent { index: 1 });
    }

    #[test]
    fn second_parent_by_the_creator_is_rejected() {
        let error = header_error(|h| h.parents.push(parent(0, 0, 0, 9)));
        assert_eq!(error, AnchorError::UnexpectedSelfParent { index: 2 });
    }

    #[test]
    fn two_other_parents_by_one_creator_are_rejected() {
        let error = header_error(|h| h.parents.push(parent(1, 1, 1, 9)));
        assert_eq!(
            error,
            AnchorError::DuplicateParentCreator {
                index: 2,
                creator: 1
            }
        );
    }

    #[test]
    fn parent_claiming_a_later_round_is_rejected() {
        for index in [0, 1] {
            let error = header_error(|h| h.parents[index].birth_round = 2);
            assert_eq!(
                error,
                AnchorError::ParentBirthRoundAhead {
                    index,
                    parent_birth_round: 2,
                    birth_round: 1
                }
            );
        }
    }

    #[test]
    fn seq_above_zero_with_only_a_self_parent_is_rejected() {
        assert_eq!(
            header_error(|h| h.parents.truncate(1)),
            AnchorError::NoOtherParent { k: 5 }
        );
    }

    #[test]
    fn birth_round_past_the_parents_highest_plus_one_is_rejected() {
        assert_eq!(
            header_error(|h| h.birth_round = 2),
            AnchorError::BirthRoundTooHigh {
                birth_round: 2,
                max: 1
            }
        );
        let error = header_error(|h| {
            h.seq = 0;
            h.parents.clear();
            h.birth_round = 1;
        });
        assert_eq!(
            error,
            AnchorError::BirthRoundTooHigh {
                birth_round: 1,
                max: 0
            }
        );
    }

    // --- payload commitment -------------------------------------------

    #[test]
    fn payload_with_another_count_is_rejected() {
        let mut anchor = valid_anchor();
        anchor.payload.events.push(mint());
        assert_eq!(
            error_of(&anchor),
            AnchorError::PayloadCountMismatch {
                header: 4,
                payload: 5
            }
        );
    }

    #[test]
    fn payload_with_another_encoded_length_is_rejected() {
        let mut anchor = valid_anchor();
        anchor.payload.events[0] = mint();
        assert!(matches!(
            error_of(&anchor),
            AnchorError::PayloadBytesMismatch { header, payload } if payload < header as usize
        ));
    }

    #[test]
    fn payload_with_another_root_is_rejected() {
        let mut anchor = valid_anchor();
        anchor.payload.events.swap(0, 1);
        assert_eq!(error_of(&anchor), AnchorError::PayloadRootMismatch);
    }

    // --- micro-events ---------------------------------------------------

    #[test]
    fn invalid_micro_event_invalidates_the_anchor_with_its_index() {
        let mut forged_claim = claim_by(&seat_key(1));
        forged_claim.signature[0] ^= 1;
        let anchor = AnchorBuilder::new(NETWORK, SHARD, 0, 0)
            .event(mint())
            .event(MicroEvent::Claim(forged_claim))
            .sign(&seat_key(0), &[0; 32])
            .unwrap();
        let error = error_of(&anchor);
        assert_eq!(
            error,
            AnchorError::MicroEvent {
                index: 1,
                error: MicroEventError::ClaimBadSignature
            }
        );
        assert_eq!(
            error.to_string(),
            "micro-event 1: claim signature does not verify under its owner"
        );
    }

    #[test]
    fn transfer_with_no_or_too_many_inputs_is_rejected() {
        let owner = client(true);
        for count in [0, MAX_TRANSFER_INPUTS + 1] {
            let mut transfer = transfer_by(&owner);
            transfer.inputs = (0..count as u16)
                .map(|index| OutPoint {
                    tx_id: [5; 32],
                    index,
                })
                .collect();
            assert_eq!(
                event_error(&resign_transfer(transfer, &owner)),
                MicroEventError::TransferInputCount { count }
            );
        }
    }

    #[test]
    fn transfer_with_no_or_too_many_outputs_is_rejected() {
        let owner = client(true);
        for count in [0, MAX_TRANSFER_OUTPUTS + 1] {
            let mut transfer = transfer_by(&owner);
            transfer.outputs = vec![transfer.outputs[0]; count];
            assert_eq!(
                event_error(&resign_transfer(transfer, &owner)),
                MicroEventError::TransferOutputCount { count }
            );
        }
    }

    #[test]
    fn transfer_output_of_zero_units_is_rejected() {
        let owner = client(true);
        let transfer = TransferBuilder::new()
            .input(OutPoint {
                tx_id: [5; 32],
                index: 0,
            })
            .output(10, [6; 32])
            .output(0, [6; 32])
            .sign(&NETWORK, &owner, &[0; 32])
            .unwrap();
        assert_eq!(
            event_error(&MicroEvent::Transfer(transfer)),
            MicroEventError::TransferZeroOutput { output: 1 }
        );
    }

    #[test]
    fn transfer_by_an_owner_of_another_shard_is_rejected() {
        let owner = client(false);
        let error = event_error(&MicroEvent::Transfer(transfer_by(&owner)));
        assert_eq!(
            error,
            MicroEventError::TransferForeignOwner {
                owner_shard: shard_of(&owner.public_key(), SHARDS),
                shard: SHARD
            }
        );
    }

    #[test]
    fn transfer_signed_for_another_network_or_key_is_rejected() {
        let owner = client(true);
        let other_network = TransferBuilder::new()
            .input(OutPoint {
                tx_id: [5; 32],
                index: 0,
            })
            .output(10, [6; 32])
            .sign(&[8; 8], &owner, &[0; 32])
            .unwrap();
        assert_eq!(
            event_error(&MicroEvent::Transfer(other_network)),
            MicroEventError::TransferBadSignature
        );
        let mut other_key = transfer_by(&owner);
        other_key.signature = key(3).sign(&other_key.tx_id(&NETWORK), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Transfer(other_key)),
            MicroEventError::TransferBadSignature
        );
    }

    #[test]
    fn evidence_header_of_another_version_network_shard_or_epoch_is_rejected() {
        let edits: [(&str, HeaderEdit); 4] = [
            ("version", |h| h.version = 0),
            ("network", |h| h.network = [8; 8]),
            ("shard", |h| h.shard = 0),
            ("epoch", |h| h.epoch = 1),
        ];
        for (field, edit) in edits {
            let mut evidence = evidence();
            edit(&mut evidence.second.header);
            evidence.second = resign_header(evidence.second, 2);
            assert_eq!(
                event_error(&MicroEvent::Evidence(evidence)),
                MicroEventError::EvidenceForeignHeader {
                    side: EvidenceSide::Second,
                    field
                }
            );
        }
    }

    #[test]
    fn evidence_against_two_seats_is_rejected() {
        let evidence = Evidence {
            first: header_of(2, 0, 0),
            second: header_of(3, 0, 1),
        };
        assert_eq!(
            event_error(&MicroEvent::Evidence(evidence)),
            MicroEventError::EvidenceCreatorMismatch {
                first: 2,
                second: 3
            }
        );
    }

    #[test]
    fn evidence_against_a_creator_outside_the_committee_is_rejected() {
        let evidence = Evidence {
            first: header_of(K, 0, 0),
            second: header_of(K, 0, 1),
        };
        assert_eq!(
            event_error(&MicroEvent::Evidence(evidence)),
            MicroEventError::EvidenceCreatorOutOfRange { creator: K, k: 5 }
        );
    }

    #[test]
    fn evidence_at_two_seqs_is_rejected() {
        let evidence = Evidence {
            first: header_of(2, 0, 0),
            second: header_of(2, 1, 0),
        };
        assert_eq!(
            event_error(&MicroEvent::Evidence(evidence)),
            MicroEventError::EvidenceSeqMismatch {
                first: 0,
                second: 1
            }
        );
    }

    #[test]
    fn evidence_of_one_anchor_twice_is_rejected() {
        let header = header_of(2, 0, 0);
        let evidence = Evidence {
            first: header.clone(),
            second: header,
        };
        assert_eq!(
            event_error(&MicroEvent::Evidence(evidence)),
            MicroEventError::EvidenceSameAnchor
        );
    }

    #[test]
    fn evidence_of_two_signatures_over_one_header_passes() {
        let first = header_of(2, 0, 0);
        let mut second = first.clone();
        second.signature = seat_key(2).sign(&second.header.id(), &[1; 32]);
        assert_ne!(first.signature, second.signature);
        let event = MicroEvent::Evidence(Evidence { first, second });
        assert_eq!(validate_micro_event(&context(), &Bip340, &event), Ok(()));
    }

    #[test]
    fn evidence_with_a_signature_not_by_the_accused_seat_is_rejected() {
        for side in [EvidenceSide::First, EvidenceSide::Second] {
            let mut evidence = evidence();
            let forged = match side {
                EvidenceSide::First => &mut evidence.first,
                EvidenceSide::Second => &mut evidence.second,
            };
            *forged = resign_header(forged.clone(), 3);
            assert_eq!(
                event_error(&MicroEvent::Evidence(evidence)),
                MicroEventError::EvidenceBadSignature { side }
            );
        }
    }

    #[test]
    fn claim_with_a_proof_deeper_than_64_seats_is_rejected() {
        let owner = seat_key(1);
        let mut claim = claim_by(&owner);
        claim.proof.siblings = vec![[1; 32]; MAX_CLAIM_PROOF_SIBLINGS + 1];
        claim.signature = owner.sign(&claim.signing_message(&NETWORK, SHARD), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Claim(claim)),
            MicroEventError::ClaimProofTooDeep { depth: 7 }
        );
    }

    #[test]
    fn claim_by_a_key_without_a_seat_of_this_shard_is_rejected() {
        // A client key, even one whose outputs live in this shard.
        assert_eq!(
            event_error(&MicroEvent::Claim(claim_by(&client(true)))),
            MicroEventError::ClaimNotASeat { shard: SHARD }
        );
    }

    #[test]
    fn claim_of_another_recipient_or_of_nothing_is_rejected() {
        let owner = seat_key(1);
        let mut claim = claim_by(&owner);
        claim.leaf.recipient = seat_key(2).public_key();
        claim.signature = owner.sign(&claim.signing_message(&NETWORK, SHARD), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Claim(claim)),
            MicroEventError::ClaimOwnerNotRecipient
        );
        let mut zero = claim_by(&owner);
        zero.leaf.amount = 0;
        zero.signature = owner.sign(&zero.signing_message(&NETWORK, SHARD), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Claim(zero)),
            MicroEventError::ClaimZeroAmount
        );
    }

    #[test]
    fn claim_signed_for_another_shard_is_rejected() {
        let owner = seat_key(1);
        let mut claim = claim_by(&owner);
        claim.signature = owner.sign(&claim.signing_message(&NETWORK, SHARD + 1), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Claim(claim)),
            MicroEventError::ClaimBadSignature
        );
    }

    #[test]
    fn claim_not_signed_by_its_owner_is_rejected() {
        let mut claim = claim_by(&seat_key(1));
        claim.signature = key(3).sign(&claim.signing_message(&NETWORK, SHARD), &[0; 32]);
        assert_eq!(
            event_error(&MicroEvent::Claim(claim)),
            MicroEventError::ClaimBadSignature
        );
    }

    #[test]
    fn mint_stateless_rules_each_refuse_a_bad_input() {
        assert_eq!(validate_micro_event(&context(), &Bip340, &mint()), Ok(()));
        let MicroEvent::Mint(valid) = mint() else {
            unreachable!()
        };
        // Carried outside the mint shard.
        let elsewhere = ShardContext {
            mint_shard: SHARD + 1,
            ..context()
        };
        assert!(matches!(
            validate_micro_event(&elsewhere, &Bip340, &mint()),
            Err(MicroEventError::MintWrongShard { what: "anchor", .. })
        ));
        // A miner of another shard (its pow below T_max, so only that fails).
        let foreign = client(false).public_key();
        let nonce = (0u64..)
            .find(|n| {
                pc_codec::mint::pow_value(&pc_codec::mint::pow_hash(
                    &NETWORK, &[8; 32], &foreign, *n,
                )) < 1 << 120
            })
            .unwrap();
        let foreign_mint = Mint {
            miner: foreign,
            nonce,
            ..valid.clone()
        };
        assert!(matches!(
            event_error(&MicroEvent::Mint(foreign_mint)),
            MicroEventError::MintWrongShard { what: "miner", .. }
        ));
        // A pow at or over T_max.
        let heavy = (0u64..)
            .map(|nonce| Mint {
                nonce,
                ..valid.clone()
            })
            .find(|m| pc_codec::mint::pow_value(&m.pow_hash(&NETWORK)) >= 1 << 120)
            .unwrap();
        assert!(matches!(
            event_error(&MicroEvent::Mint(heavy)),
            MicroEventError::MintPowOverMax { .. }
        ));
        // A miner that is no curve point, of this shard, with a light pow.
        let bad_key = (0u8..=255)
            .map(|b| [b; 32])
            .find(|k| !pc_codec::crypto::is_valid_public_key(k) && shard_of(k, SHARDS) == SHARD)
            .unwrap();
        let nonce = (0u64..)
            .find(|n| {
                pc_codec::mint::pow_value(&pc_codec::mint::pow_hash(
                    &NETWORK, &[8; 32], &bad_key, *n,
                )) < 1 << 120
            })
            .unwrap();
        assert_eq!(
            event_error(&MicroEvent::Mint(Mint {
                miner: bad_key,
                nonce,
                ..valid
            })),
            MicroEventError::MintInvalidMiner
        );
    }

    // --- order of checks ------------------------------------------------

    #[test]
    fn structural_faults_are_found_before_any_signature_is_verified() {
        let owner = client(true);
        let mut bad_output = transfer_by(&owner);
        bad_output.outputs[0].amount = 0;
        let mut anchor = AnchorBuilder::new(NETWORK, SHARD, 0, 0)
            .event(MicroEvent::Transfer(transfer_by(&owner)))
            .event(MicroEvent::Transfer(bad_output))
            .sign(&seat_key(0), &[0; 32])
            .unwrap();
        anchor.header.signature[0] ^= 1;
        let counter = CountingVerifier(Cell::new(0));
        assert_eq!(
            validate_anchor(&context(), &counter, &anchor),
            Err(AnchorError::MicroEvent {
                index: 1,
                error: MicroEventError::TransferZeroOutput { output: 0 }
            })
        );
        assert_eq!(counter.0.get(), 0);
    }

    #[test]
    fn header_signature_is_verified_before_payload_signatures() {
        let mut bad_signature = transfer_by(&client(true));
        bad_signature.signature[0] ^= 1;
        let mut anchor = AnchorBuilder::new(NETWORK, SHARD, 0, 0)
            .event(MicroEvent::Transfer(bad_signature))
            .sign(&seat_key(0), &[0; 32])
            .unwrap();
        let counter = CountingVerifier(Cell::new(0));
        assert_eq!(
            validate_anchor(&context(), &counter, &anchor),
            Err(AnchorError::MicroEvent {
                index: 0,
                error: MicroEventError::TransferBadSignature
            })
        );
        assert_eq!(counter.0.get(), 2, "header, then the transfer");
        anchor.header.signature[0] ^= 1;
        counter.0.set(0);
        assert_eq!(
            validate_anchor(&context(), &counter, &anchor),
            Err(AnchorError::BadSignature { creator: 0 })
        );
        assert_eq!(counter.0.get(), 1, "the header only");
    }

    /// Counts batch calls and their signatures, verifying with BIP-340.
    #[derive(Default)]
    struct BatchCalls {
        calls: Cell<usize>,
        signatures: Cell<usize>,
    }

    impl SignatureVerifier for BatchCalls {
        fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &[u8; 64]) -> bool {
            Bip340.verify(key, message, signature)
        }

        fn verify_batch(
            &self,
            entries: &[BatchEntry<'_>],
            verdicts: &mut [bool],
        ) -> pc_codec::BatchWork {
            self.calls.set(self.calls.get() + 1);
            self.signatures.set(self.signatures.get() + entries.len());
            Bip340.verify_batch(entries, verdicts)
        }
    }

    #[test]
    fn small_anchors_verified_together_validate_exactly_as_each_alone() {
        let home = client(true);
        let anchors: Vec<SignedAnchor> = (0..K)
            .map(|seat| {
                let mut builder = AnchorBuilder::new(NETWORK, SHARD, seat, 1)
                    .birth_round(1)
                    .parent_anchor(&genesis_anchor(seat))
                    .parent_anchor(&genesis_anchor((seat + 1) % K));
                for index in 0..6u64 {
                    let mut transfer = TransferBuilder::new()
                        .input(OutPoint {
                            tx_id: [seat; 32],
                            index: index as u16,
                        })
                        .output(10 + index, [6; 32])
                        .sign(&NETWORK, &home, &[0; 32])
                        .unwrap();
                    if seat == 2 && index == 3 {
                        transfer.signature[40] ^= 1;
                    }
                    builder = builder.event(MicroEvent::Transfer(transfer));
                }
                let mut anchor = builder.sign(&seat_key(seat), &[0; 32]).unwrap();
                if seat == 4 {
                    anchor.header.signature[40] ^= 1;
                }
                anchor
            })
            .collect();
        let decoded: Vec<DecodedAnchor> = anchors
            .iter()
            .map(|anchor| DecodedAnchor::from_anchor(anchor.clone(), &NETWORK))
            .collect();
        let together: Vec<&DecodedAnchor> = decoded.iter().collect();
        let verifier = BatchCalls::default();
        let preverified = preverify_anchors(&context(), &verifier, &together);
        // One batch: the transfers of the four anchors whose header holds.
        assert_eq!(verifier.calls.get(), 1);
        assert_eq!(verifier.signatures.get(), 4 * 6);
        for (seat, (decoded, pre)) in decoded.iter().zip(&preverified).enumerate() {
            let alone = validate_decoded(&context(), &Bip340, decoded);
            let with = validate_decoded_with(&context(), &Bip340, decoded, pre.as_ref());
            assert_eq!(with, alone, "seat {seat}");
            let expected = match seat {
                2 => Err(AnchorError::MicroEvent {
                    index: 3,
                    error: MicroEventError::TransferBadSignature,
                }),
                4 => Err(AnchorError::BadSignature { creator: 4 }),
                _ => Ok(()),
            };
            assert_eq!(with, expected, "seat {seat}");
        }
    }
}
