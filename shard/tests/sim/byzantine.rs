//! Byzantine seats. Each runs an honest machine underneath (so it has valid
//! anchors and parents to work with) and misbehaves in one way: it stays
//! silent, forks (two valid anchors at one seq, one to each half of the
//! honest nodes), sends anchors with bad signatures, references parents
//! that do not exist, or floods anchors from the far future.

use pc_codec::{
    AnchorHeader, AnchorPayload, MicroEvent, Mint, OutPoint, ParentRef, SignedAnchor, Transfer,
    TxOut, MAX_PAYLOAD_EVENTS, PROTOCOL_VERSION,
};

use crate::sim::crypto::{client_public, seat_public, SimCrypto, SHARD};
use crate::sim::network::Expect;
use crate::sim::rng::Rng;

/// A birth round no honest DAG reaches in a run.
const FAR_FUTURE_ROUND: u64 = 1 << 40;

/// How a Byzantine seat misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs nothing, sends nothing, answers nothing.
    Silent,
    /// Split-brain equivocation: forks some of its anchors.
    Equivocate,
    /// Sends copies of its anchors with a corrupted header signature, or
    /// re-signed with a badly signed transfer in the payload.
    InvalidSignatures,
    /// Floods validly signed anchors whose parents do not exist.
    RandomParents,
    /// Floods anchors with birth rounds far ahead.
    FarFuture,
}

impl Mode {
    /// The modes a seed chooses from: RandomParents only when
    /// `unresolvable_parents` (a fault class of `sim::blocked`) is on.
    pub fn enabled(unresolvable_parents: bool) -> Vec<Mode> {
        let mut modes = vec![
            Mode::Silent,
            Mode::Equivocate,
            Mode::InvalidSignatures,
            Mode::FarFuture,
        ];
        if unresolvable_parents {
            modes.push(Mode::RandomParents);
        }
        modes
    }
}

/// A forged anchor and what honest receivers must do with it.
pub struct Forged {
    /// The anchor.
    pub anchor: SignedAnchor,
    /// Ground truth.
    pub expect: Expect,
}

/// A second valid anchor at the seq of `original`: the same parents and
/// birth round (so it computes to the same round) with another payload —
/// or, where signatures vary (BIP-340), sometimes the very same header
/// signed again, which is a fork too since the anchor id commits to the
/// signature.
pub fn fork_of<C: SimCrypto>(original: &SignedAnchor, rng: &mut Rng) -> SignedAnchor {
    let header = original.header.header.clone();
    let seat = header.creator;
    if C::signatures_vary() && rng.coin() {
        return C::sign_anchor(seat, header, original.payload.clone(), rng.bytes32());
    }
    let mut events = original.payload.events.clone();
    events.truncate(MAX_PAYLOAD_EVENTS - 1);
    // A mint on no tip (stale at apply) that holds the stateless rules:
    // its pow below 2^120, under every T_max of the simulation.
    let (prev_mint_id, miner) = (rng.bytes32(), seat_public(seat));
    let start = rng.next_u64();
    let nonce = (0..)
        .map(|i: u64| start.wrapping_add(i))
        .find(|nonce| {
            pc_codec::mint::pow_value(&pc_codec::mint::pow_hash(
                &header.network,
                &prev_mint_id,
                &miner,
                *nonce,
            )) < 1 << 120
        })
        .expect("one nonce in 256 is light enough");
    events.push(MicroEvent::Mint(Mint {
        prev_mint_id,
        miner,
        nonce,
    }));
    C::sign_anchor(seat, header, AnchorPayload { events }, rng.bytes32())
}

/// A copy of `original` whose header signature no longer verifies, or one
/// validly signed over a payload holding a transfer with a bad signature.
pub fn badly_signed<C: SimCrypto>(original: &SignedAnchor, rng: &mut Rng) -> SignedAnchor {
    if rng.coin() {
        let mut copy = original.clone();
        let byte = rng.index(64);
        copy.header.signature[byte] ^= 1 << rng.below(8);
        return copy;
    }
    let mut events = original.payload.events.clone();
    events.truncate(MAX_PAYLOAD_EVENTS - 1);
    events.push(MicroEvent::Transfer(Transfer {
        inputs: vec![OutPoint {
            tx_id: rng.bytes32(),
            index: 0,
        }],
        outputs: vec![TxOut {
            amount: 1,
            owner: client_public(0),
        }],
        owner: client_public(0),
        signature: [0x11; 64],
    }));
    let header = original.header.header.clone();
    C::sign_anchor(
        header.creator,
        header,
        AnchorPayload { events },
        rng.bytes32(),
    )
}

/// A validly signed copy of `original` whose payload commitment no payload
/// can satisfy (more bytes than any payload): every honest seat refuses it
/// and accuses its creator (offence kind 4).
pub fn unsatisfiable<C: SimCrypto>(original: &SignedAnchor) -> SignedAnchor {
    let mut header = original.header.header.clone();
    header.payload_bytes = 2_000_000;
    SignedAnchor {
        header: C::sign_header(header.creator, header),
        payload: original.payload.clone(),
    }
}

/// A validly signed anchor of `invalid`'s creator whose self-parent is
/// `invalid` (an anchor honest seats refused): they hold it pending, never
/// insert it, and accuse its creator of acknowledging invalid data
/// (offence kind 1).
pub fn naming_invalid<C: SimCrypto>(
    rng: &mut Rng,
    invalid: &SignedAnchor,
    k: usize,
) -> SignedAnchor {
    let refused = &invalid.header.header;
    let mut header = header(
        refused.network,
        refused.creator,
        refused.seq + 1,
        refused.birth_round,
    );
    header.parents.push(ParentRef {
        anchor_id: invalid.anchor_id(),
        creator: refused.creator,
        seq: refused.seq,
        birth_round: refused.birth_round,
    });
    if k > 1 {
        let other = other_seats(rng, k, refused.creator)[0];
        let seq = rng.below(10_000);
        header
            .parents
            .push(random_ref(rng, other, seq, refused.birth_round));
    }
    C::sign_anchor(
        refused.creator,
        header,
        AnchorPayload::default(),
        rng.bytes32(),
    )
}

fn header(network: [u8; 8], creator: u8, seq: u64, birth_round: u64) -> AnchorHeader {
    AnchorHeader {
        version: PROTOCOL_VERSION,
        network,
        shard: SHARD,
        epoch: 0,
        creator,
        seq,
        birth_round,
        parents: Vec::new(),
        payload_root: [0; 32],
        payload_count: 0,
        payload_bytes: 0,
    }
}

fn random_ref(rng: &mut Rng, creator: u8, seq: u64, birth_round: u64) -> ParentRef {
    ParentRef {
        anchor_id: rng.bytes32(),
        creator,
        seq,
        birth_round,
    }
}

/// Up to three distinct seats other than `seat`.
fn other_seats(rng: &mut Rng, k: usize, seat: u8) -> Vec<u8> {
    let mut others: Vec<u8> = (0..k as u8).filter(|s| *s != seat).collect();
    rng.shuffle(&mut others);
    others.truncate(1 + rng.index(3));
    others
}

/// A validly signed anchor of `seat` whose parents do not exist: every
/// honest node must hold it pending (bounded) or drop it, never insert it.
pub fn with_random_parents<C: SimCrypto>(
    rng: &mut Rng,
    network: [u8; 8],
    k: usize,
    seat: u8,
    round_hint: u64,
) -> Forged {
    let seq = rng.between(1, 10_000);
    let birth_round = round_hint + rng.below(3);
    let mut header = header(network, seat, seq, birth_round);
    header.parents.push(random_ref(
        rng,
        seat,
        seq - 1,
        birth_round.saturating_sub(1),
    ));
    if k > 1 {
        for other in other_seats(rng, k, seat) {
            let parent_seq = rng.below(10_000);
            header
                .parents
                .push(random_ref(rng, other, parent_seq, birth_round));
        }
    }
    Forged {
        anchor: C::sign_anchor(seat, header, AnchorPayload::default(), rng.bytes32()),
        expect: Expect::NeverInsert,
    }
}

/// An anchor of `seat` claiming a birth round far ahead: with no parents
/// (invalid on its face), with real parents `known` whose refs claim
/// far-future rounds (refused once the parents are present), or — only
/// with `unresolvable_parents` (a fault class of `sim::blocked`) — with non-existent
/// parents of far-future rounds (held pending at most).
pub fn far_future<C: SimCrypto>(
    rng: &mut Rng,
    network: [u8; 8],
    k: usize,
    seat: u8,
    known: &[ParentRef],
    unresolvable_parents: bool,
) -> Forged {
    let round = FAR_FUTURE_ROUND + rng.below(1 << 20);
    let sign = |rng: &mut Rng, header| {
        C::sign_anchor(seat, header, AnchorPayload::default(), rng.bytes32())
    };
    let variant = if unresolvable_parents {
        rng.below(3)
    } else {
        2 * rng.below(2)
    };
    match variant {
        0 => Forged {
            anchor: sign(rng, header(network, seat, 0, round)),
            expect: Expect::Reject,
        },
        1 => Forged {
            anchor: with_random_parents::<C>(rng, network, k, seat, round).anchor,
            expect: Expect::NeverInsert,
        },
        _ => {
            let mut header = header(network, seat, 0, round + 1);
            let mut creators: Vec<u8> = Vec::new();
            for parent in known.iter().filter(|p| p.creator != seat) {
                if creators.len() < 3 && !creators.contains(&parent.creator) {
                    creators.push(parent.creator);
                    header.parents.push(ParentRef {
                        birth_round: round,
                        ..*parent
                    });
                }
            }
            Forged {
                anchor: sign(rng, header),
                expect: Expect::NeverInsert,
            }
        }
    }
}
