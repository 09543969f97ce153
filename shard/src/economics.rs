//! The seats' section of a shard's state (DESIGN §5.3, §5.4): bonds, owed
//! balances, the fee split of every finalized anchor, the cumulative payout
//! root of every round, claims against retained roots, and slashing.
//!
//! Everything is a pure function of the finalized sequence and counted in
//! finalized anchors (the shard's anchor index), never in time. The fee
//! split and the payout root are free functions so the consensus tools
//! (`phantom-engine consensus payout-root`) compute with the very code the
//! state uses.

use std::collections::VecDeque;

use pc_codec::genesis::Genesis;
use pc_codec::ids::{context, derive};
use pc_codec::{merkle, Claim, Encode, Hash32, PayoutLeaf, PublicKeyBytes};

use crate::state::Outcome;

/// Payout roots retained for claims: the last 4 096 finalized rounds.
pub const RETAINED_PAYOUT_ROOTS: usize = 4_096;

/// Most siblings of a claim's proof: 64 seats make a tree of depth 6.
pub const MAX_CLAIM_PROOF_SIBLINGS: usize = 6;

/// Most slashes recorded against one seat: each takes at least 25 % of the
/// bond or the rest of it, so a fifth never happens.
pub const MAX_SLASHES_PER_SEAT: usize = 4;

/// The offence classes of DESIGN §5.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OffenceClass {
    /// EQ: two signatures of one seat where one is allowed.
    Equivocation = 0,
    /// VFI: signed or acknowledged invalid data.
    VoteForInvalid = 1,
    /// CDA: acknowledged data it did not hold.
    ConflictingData = 2,
}

impl OffenceClass {
    /// Every class, in code order.
    pub const ALL: [OffenceClass; 3] = [
        OffenceClass::Equivocation,
        OffenceClass::VoteForInvalid,
        OffenceClass::ConflictingData,
    ];

    /// The slash rate in percent of the seat's bond at repeat tier `tier`
    /// (1 for a first offence of the class within `W_slash`).
    pub fn rate_pct(self, tier: u32) -> u64 {
        match (self, tier) {
            (OffenceClass::Equivocation, _) => 100,
            (OffenceClass::VoteForInvalid, 0..=1) => 50,
            (OffenceClass::VoteForInvalid, _) => 100,
            (OffenceClass::ConflictingData, 0..=1) => 25,
            (OffenceClass::ConflictingData, 2) => 50,
            (OffenceClass::ConflictingData, _) => 100,
        }
    }

    /// The class's name in metrics and reports.
    pub fn name(self) -> &'static str {
        match self {
            OffenceClass::Equivocation => "equivocation",
            OffenceClass::VoteForInvalid => "vote_for_invalid",
            OffenceClass::ConflictingData => "conflicting_da",
        }
    }

    /// The class of a stored code.
    pub fn from_code(code: u8) -> Option<OffenceClass> {
        OffenceClass::ALL.get(usize::from(code)).copied()
    }
}

/// `derive("evidence", kind || seat || object)`: what slashing
/// deduplicates (kind 255 for Evidence; the object is the offender's anchor
/// id, a round, or nothing, DESIGN §5.4).
pub fn offence_id(kind: u8, seat: u8, object: &[u8]) -> Hash32 {
    derive(context::EVIDENCE, &[&[kind, seat], object])
}

/// One applied slash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slash {
    /// The offence it judged.
    pub offence_id: Hash32,
    /// Its class.
    pub class: OffenceClass,
    /// The anchor index of the anchor that carried it.
    pub index: u64,
    /// Units taken from the bond.
    pub amount: u64,
    /// Its repeat tier (1 = first of the class within `W_slash`).
    pub tier: u32,
}

/// One seat's account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeatAccount {
    /// The seat's genesis key: the payout recipient.
    pub key: PublicKeyBytes,
    /// Its bond at genesis (its validator's bond split over its seats).
    pub bond: u64,
    /// What is left of the bond.
    pub remaining: u64,
    /// Owed and not yet claimed: fee shares and slash shares.
    pub owed: u64,
    /// The round of its last applied claim: a claim needs a root of this
    /// round or later (0 before any claim).
    pub claim_floor: u64,
    /// No rewards while the round's first anchor index is below this.
    pub cool_until: u64,
    /// Slashed out: no rewards ever again.
    pub slashed_out: bool,
    /// Its slashes, oldest first (at most [`MAX_SLASHES_PER_SEAT`]).
    pub slashes: Vec<Slash>,
}

/// A finalized round's payout root, kept for claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedRoot {
    /// The round.
    pub round: u64,
    /// Merkle root over the owed balances after the round.
    pub root: Hash32,
    /// Its leaf count.
    pub leaf_count: u64,
    /// `e(r)`: the anchor index after the round.
    pub next_index: u64,
    /// The shard's own checkpoint id of the round (the judge of
    /// wrong-checkpoint offences).
    pub checkpoint_id: Hash32,
}

/// The fee-split parameters of the genesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeParams {
    /// Base, proposer, performance, attestor percentages.
    pub split_pct: [u8; 4],
    /// Ack-distance weight `alpha = numerator / denominator`.
    pub ack_alpha: [u32; 2],
    /// Largest ack distance that earns a weight (`D_max`).
    pub ack_distance_max: u8,
}

impl FeeParams {
    /// The genesis's fee parameters.
    pub fn of(genesis: &Genesis) -> FeeParams {
        FeeParams {
            split_pct: genesis.params.fee_split_pct,
            ack_alpha: genesis.params.ack_alpha,
            ack_distance_max: genesis.params.ack_distance_max,
        }
    }
}

/// Integer ack-distance weights `alpha^(d-1)` scaled by
/// `denominator^(D_max-1)`, for eligible seats with `1 <= d <= D_max`, in
/// seat order.
pub fn ack_weights(
    params: &FeeParams,
    ack_distances: &[Option<u64>],
    eligible: u64,
) -> Vec<(u8, u128)> {
    let [numerator, denominator] = params.ack_alpha.map(u128::from);
    let max = u64::from(params.ack_distance_max);
    ack_distances
        .iter()
        .enumerate()
        .filter_map(|(seat, distance)| {
            let d = (*distance)?;
            if !(1..=max).contains(&d) || eligible & (1 << seat) == 0 {
                return None;
            }
            let weight = numerator.pow((d - 1) as u32) * denominator.pow((max - d) as u32);
            Some((seat as u8, weight))
        })
        .collect()
}

/// What one finalized anchor pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorShares {
    /// Units added to each seat's owed balance, by seat.
    pub shares: Vec<u64>,
    /// The shard's undistributed value after the anchor.
    pub undistributed: u64,
}

/// The fee split of one finalized anchor (DESIGN §5.3): fee `fee` of an
/// anchor by `creator` with `ack_distances`, in a round whose unique famous
/// witnesses were made by `ufw_creators` and whose eligible seats are
/// `eligible`, with `undistributed` carried in. Pools are floors of the
/// fee's percentages; the proposer pool goes to the creator, performance by
/// ack-distance weight, attestor in equal parts to the UFW creators; a pool
/// or share with no eligible recipient joins base; base and the carried
/// undistributed value go equally to the eligible seats; the dust to the
/// creator if eligible, else the lowest eligible seat. With no eligible
/// seat everything stays undistributed.
#[allow(clippy::too_many_arguments)]
pub fn anchor_shares(
    params: &FeeParams,
    k: usize,
    fee: u64,
    undistributed: u64,
    creator: u8,
    ack_distances: &[Option<u64>],
    ufw_creators: &[u8],
    eligible: u64,
) -> AnchorShares {
    let mut shares = vec![0u64; k];
    let total = u128::from(fee) + u128::from(undistributed);
    let is_eligible = |seat: u8| usize::from(seat) < k && eligible & (1u64 << seat) != 0;
    let eligible_seats: Vec<u8> = (0..k as u8).filter(|s| is_eligible(*s)).collect();
    if eligible_seats.is_empty() || total == 0 {
        return AnchorShares {
            shares,
            undistributed: total as u64,
        };
    }
    let [base_pct, proposer_pct, performance_pct, attestor_pct] = params.split_pct.map(u128::from);
    let pool = |pct: u128| u128::from(fee) * pct / 100;
    let mut base = pool(base_pct);
    let proposer = pool(proposer_pct);
    if is_eligible(creator) {
        shares[usize::from(creator)] += proposer as u64;
    } else {
        base += proposer;
    }
    let performance = pool(performance_pct);
    let weights = ack_weights(params, ack_distances, eligible);
    let total_weight: u128 = weights.iter().map(|(_, w)| *w).sum();
    for (seat, weight) in &weights {
        // `weights` is empty when their total is 0.
        if let Some(share) = (performance * weight).checked_div(total_weight) {
            shares[usize::from(*seat)] += share as u64;
        }
    }
    if total_weight == 0 {
        base += performance;
    }
    let attestor = pool(attestor_pct);
    if ufw_creators.is_empty() {
        base += attestor;
    } else {
        let each = attestor / ufw_creators.len() as u128;
        for seat in ufw_creators {
            if is_eligible(*seat) {
                shares[usize::from(*seat)] += each as u64;
            } else {
                base += each;
            }
        }
    }
    base += u128::from(undistributed);
    let each = base / eligible_seats.len() as u128;
    for seat in &eligible_seats {
        shares[usize::from(*seat)] += each as u64;
    }
    let paid: u128 = shares.iter().map(|s| u128::from(*s)).sum();
    let dust_to = if is_eligible(creator) {
        creator
    } else {
        eligible_seats[0]
    };
    shares[usize::from(dust_to)] += (total - paid) as u64;
    AnchorShares {
        shares,
        undistributed: 0,
    }
}

/// The payout leaves of owed balances: one per recipient with a balance
/// above zero, sorted by recipient.
pub fn payout_leaves(balances: impl IntoIterator<Item = (PublicKeyBytes, u64)>) -> Vec<PayoutLeaf> {
    let mut leaves: Vec<PayoutLeaf> = balances
        .into_iter()
        .filter(|(_, amount)| *amount > 0)
        .map(|(recipient, amount)| PayoutLeaf { recipient, amount })
        .collect();
    leaves.sort_unstable_by_key(|leaf| leaf.recipient);
    leaves
}

/// The Merkle root of payout leaves (all zeros for none) and its leaf
/// count.
pub fn payout_root(leaves: &[PayoutLeaf]) -> (Hash32, u64) {
    let bytes: Vec<Vec<u8>> = leaves.iter().map(Encode::to_bytes).collect();
    (merkle::root(&bytes), leaves.len() as u64)
}

/// The windows of the genesis, in finalized anchors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    /// `W_slash`.
    pub slash: u64,
    /// `W_cool`.
    pub cool_down: u64,
    /// `W_claim`.
    pub claim: u64,
}

/// The seats' section of one shard's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Economics {
    fees: FeeParams,
    windows: Windows,
    seats: Vec<SeatAccount>,
    undistributed: u64,
    next_anchor_index: u64,
    roots: VecDeque<RetainedRoot>,
}

/// A slash applied by [`Economics::slash`], for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlashApplied {
    /// The offender's seat.
    pub seat: u8,
    /// The slash.
    pub slash: Slash,
}

impl Economics {
    /// The section at genesis: every seat's bond, nothing owed.
    pub fn from_genesis(genesis: &Genesis, shard: u16) -> Economics {
        let committee = genesis
            .committee(shard)
            .expect("a validated genesis fills every seat");
        let bonds = genesis
            .seat_bonds(shard)
            .expect("a validated genesis fills every seat");
        Economics {
            fees: FeeParams::of(genesis),
            windows: Windows {
                slash: genesis.params.slash_window_anchors,
                cool_down: genesis.params.slash_cooldown_anchors,
                claim: genesis.params.claim_window_anchors,
            },
            seats: committee
                .into_iter()
                .zip(bonds)
                .map(|(key, bond)| SeatAccount {
                    key,
                    bond,
                    remaining: bond,
                    owed: 0,
                    claim_floor: 0,
                    cool_until: 0,
                    slashed_out: false,
                    slashes: Vec::new(),
                })
                .collect(),
            undistributed: 0,
            next_anchor_index: 0,
            roots: VecDeque::new(),
        }
    }

    /// The seats' accounts, by seat.
    pub fn seats(&self) -> &[SeatAccount] {
        &self.seats
    }

    /// Value no eligible seat could be paid yet.
    pub fn undistributed(&self) -> u64 {
        self.undistributed
    }

    /// `owed`: every seat's balance plus the undistributed value.
    pub fn owed_total(&self) -> u128 {
        self.seats.iter().map(|s| u128::from(s.owed)).sum::<u128>() + u128::from(self.undistributed)
    }

    /// `bonded`: what remains of the seats' bonds.
    pub fn bonded(&self) -> u128 {
        self.seats.iter().map(|s| u128::from(s.remaining)).sum()
    }

    /// The bonds at genesis.
    pub fn genesis_bonds(&self) -> u128 {
        self.seats.iter().map(|s| u128::from(s.bond)).sum()
    }

    /// The index the next finalized anchor gets.
    pub fn next_anchor_index(&self) -> u64 {
        self.next_anchor_index
    }

    /// The retained payout roots, oldest first.
    pub fn roots(&self) -> impl Iterator<Item = &RetainedRoot> {
        self.roots.iter()
    }

    /// The retained payout root of `round`.
    pub fn root_of(&self, round: u64) -> Option<&RetainedRoot> {
        let at = self.roots.partition_point(|r| r.round < round);
        self.roots.get(at).filter(|r| r.round == round)
    }

    /// Seats slashed out (bit per seat).
    pub fn slashed_out(&self) -> u64 {
        self.mask(|s| s.slashed_out)
    }

    fn mask(&self, mut pick: impl FnMut(&SeatAccount) -> bool) -> u64 {
        self.seats
            .iter()
            .enumerate()
            .filter(|(_, s)| pick(s))
            .fold(0, |mask, (seat, _)| mask | 1 << seat)
    }

    /// The seats eligible for rewards in a round whose first anchor has
    /// index `first_index`: not slashed out, cool-down over.
    pub fn eligible_at(&self, first_index: u64) -> u64 {
        self.mask(|s| !s.slashed_out && s.cool_until <= first_index)
    }

    /// The seat whose key is `key`.
    pub fn seat_of(&self, key: &PublicKeyBytes) -> Option<u8> {
        self.seats
            .iter()
            .position(|s| s.key == *key)
            .map(|s| s as u8)
    }

    /// Takes the index of the next finalized anchor.
    pub fn take_anchor_index(&mut self) -> u64 {
        let index = self.next_anchor_index;
        self.next_anchor_index += 1;
        index
    }

    /// Pays one finalized anchor's fee (see [`anchor_shares`]).
    pub fn pay_fee(
        &mut self,
        fee: u64,
        creator: u8,
        ack_distances: &[Option<u64>],
        ufw_creators: &[u8],
        eligible: u64,
    ) {
        if fee == 0 && self.undistributed == 0 {
            return;
        }
        let paid = anchor_shares(
            &self.fees,
            self.seats.len(),
            fee,
            self.undistributed,
            creator,
            ack_distances,
            ufw_creators,
            eligible,
        );
        for (seat, share) in self.seats.iter_mut().zip(&paid.shares) {
            seat.owed += share;
        }
        self.undistributed = paid.undistributed;
    }

    /// Whether a claim carried by anchor index `index` in round `round`
    /// would apply (DESIGN §5.3 steps 1-3): the claimant's seat, or why
    /// not. The claim's stateless checks (the owner is the leaf's recipient
    /// and a seat key of this shard, the amount is positive, the proof is
    /// short) held.
    pub fn check_claim(&self, claim: &Claim, round: u64, index: u64) -> Result<u8, Outcome> {
        let retained = self
            .root_of(claim.round)
            .filter(|r| r.round < round && index.saturating_sub(r.next_index) < self.windows.claim)
            .ok_or(Outcome::ClaimRootUnknown)?;
        if claim.proof.leaf_count != retained.leaf_count
            || !claim.proof.verify(&claim.leaf.to_bytes(), &retained.root)
        {
            return Err(Outcome::ClaimBadProof);
        }
        let seat = self
            .seat_of(&claim.leaf.recipient)
            .ok_or(Outcome::ClaimBadProof)?;
        let account = &self.seats[usize::from(seat)];
        let stale = claim.round < account.claim_floor;
        // The mutation self-test: a claim not deduplicated must make the
        // simulator fail.
        let stale = stale && !cfg!(feature = "planted-bug-claim-twice");
        if stale || claim.leaf.amount > account.owed {
            return Err(Outcome::ClaimStale);
        }
        Ok(seat)
    }

    /// Applies a claim carried by anchor index `index` in round `round`
    /// (DESIGN §5.3): the owed balance it takes, or why not.
    pub fn claim(&mut self, claim: &Claim, round: u64, index: u64) -> Result<u64, Outcome> {
        let seat = self.check_claim(claim, round, index)?;
        let account = &mut self.seats[usize::from(seat)];
        account.owed -= claim.leaf.amount;
        account.claim_floor = round;
        Ok(claim.leaf.amount)
    }

    /// Whether `offence_id` against `seat` would be judged (the seat is not
    /// slashed out and the offence is not recorded).
    pub fn is_new_offence(&self, seat: u8, offence_id: &Hash32) -> bool {
        self.seats.get(usize::from(seat)).is_some_and(|s| {
            !s.slashed_out && !s.slashes.iter().any(|x| x.offence_id == *offence_id)
        })
    }

    /// Slashes `seat` for an offence of `class` carried by anchor index
    /// `index` of `carrier` (DESIGN §5.4 apply steps 1, 3, 4), sharing the
    /// amount among the round's `eligible` seats other than the offender.
    pub fn slash(
        &mut self,
        seat: u8,
        class: OffenceClass,
        offence_id: Hash32,
        index: u64,
        carrier: u8,
        eligible: u64,
    ) -> Result<SlashApplied, Outcome> {
        if !self.is_new_offence(seat, &offence_id) {
            return Err(Outcome::EvidenceDuplicate);
        }
        let windows = self.windows;
        let account = &mut self.seats[usize::from(seat)];
        let tier = 1 + account
            .slashes
            .iter()
            .filter(|s| s.class == class && s.index.saturating_add(windows.slash) > index)
            .count() as u32;
        let rate = class.rate_pct(tier);
        let amount = if rate >= 100 {
            account.remaining
        } else {
            let due = (u128::from(account.bond) * u128::from(rate)).div_ceil(100);
            account.remaining.min(due as u64)
        };
        account.remaining -= amount;
        account.cool_until = index.saturating_add(windows.cool_down);
        account.slashed_out = rate >= 100 || account.remaining == 0;
        let slash = Slash {
            offence_id,
            class,
            index,
            amount,
            tier,
        };
        account.slashes.push(slash);
        debug_assert!(account.slashes.len() <= MAX_SLASHES_PER_SEAT);
        self.share(amount, seat, carrier, eligible);
        Ok(SlashApplied { seat, slash })
    }

    /// Shares `amount` equally (floor) among the eligible seats other than
    /// `offender`; dust to `carrier` if it is one of them, else the lowest;
    /// none: undistributed.
    fn share(&mut self, amount: u64, offender: u8, carrier: u8, eligible: u64) {
        let receivers = eligible & !(1u64 << offender);
        let seats: Vec<usize> = (0..self.seats.len())
            .filter(|s| receivers & (1u64 << s) != 0)
            .collect();
        let Some(lowest) = seats.first().copied() else {
            self.undistributed += amount;
            return;
        };
        let each = amount / seats.len() as u64;
        for seat in &seats {
            self.seats[*seat].owed += each;
        }
        let dust_to = if receivers & (1u64 << carrier) != 0 {
            usize::from(carrier)
        } else {
            lowest
        };
        self.seats[dust_to].owed += amount - each * seats.len() as u64;
    }

    /// The payout leaves of the current owed balances.
    pub fn leaves(&self) -> Vec<PayoutLeaf> {
        payout_leaves(self.seats.iter().map(|s| (s.key, s.owed)))
    }

    /// Ends round `round`: its payout root over the owed balances, retained
    /// for claims (the last [`RETAINED_PAYOUT_ROOTS`]).
    pub fn finish_round(&mut self, round: u64) -> RetainedRoot {
        let (root, leaf_count) = payout_root(&self.leaves());
        let retained = RetainedRoot {
            round,
            root,
            leaf_count,
            next_index: self.next_anchor_index,
            checkpoint_id: [0; 32],
        };
        if self.roots.len() == RETAINED_PAYOUT_ROOTS {
            self.roots.pop_front();
        }
        self.roots.push_back(retained);
        retained
    }

    /// Notes the shard's checkpoint id of `round`, the last retained one.
    pub fn note_checkpoint(&mut self, round: u64, id: Hash32) {
        if let Some(last) = self.roots.back_mut().filter(|r| r.round == round) {
            last.checkpoint_id = id;
        }
    }

    /// The shard's own checkpoint id of a retained `round`.
    pub fn checkpoint_of(&self, round: u64) -> Option<Hash32> {
        self.root_of(round).map(|r| r.checkpoint_id)
    }

    /// The section as a snapshot image.
    pub fn to_image(&self) -> crate::snapshot::SeatsImage {
        use crate::snapshot::{RootImage, SeatAccountImage, SeatsImage, SlashImage};
        SeatsImage {
            seats: self
                .seats
                .iter()
                .map(|s| SeatAccountImage {
                    remaining: s.remaining,
                    owed: s.owed,
                    claim_floor: s.claim_floor,
                    cool_until: s.cool_until,
                    slashed_out: s.slashed_out,
                    slashes: s
                        .slashes
                        .iter()
                        .map(|x| SlashImage {
                            offence_id: x.offence_id,
                            class: x.class as u8,
                            index: x.index,
                            amount: x.amount,
                            tier: x.tier,
                        })
                        .collect(),
                })
                .collect(),
            undistributed: self.undistributed,
            next_anchor_index: self.next_anchor_index,
            roots: self
                .roots
                .iter()
                .map(|r| RootImage {
                    round: r.round,
                    root: r.root,
                    leaf_count: r.leaf_count,
                    next_index: r.next_index,
                    checkpoint_id: r.checkpoint_id,
                })
                .collect(),
        }
    }

    /// Replaces this genesis section with a snapshot's, checking that it
    /// fits the genesis (one account per seat, no slash above the bond, at
    /// most [`MAX_SLASHES_PER_SEAT`] slashes, roots in round order).
    pub fn load_image(&mut self, image: crate::snapshot::SeatsImage) -> Result<(), String> {
        if image.seats.len() != self.seats.len() {
            return Err(format!(
                "{} seat accounts for a committee of {}",
                image.seats.len(),
                self.seats.len()
            ));
        }
        if image.roots.len() > RETAINED_PAYOUT_ROOTS
            || image.roots.windows(2).any(|w| w[0].round >= w[1].round)
        {
            return Err("payout roots are not in round order or too many".into());
        }
        let next_anchor_index = image.next_anchor_index;
        if image
            .roots
            .last()
            .is_some_and(|r| r.next_index > next_anchor_index)
            || next_anchor_index > u64::MAX / 2
        {
            return Err("payout roots past the anchor index".into());
        }
        for (seat, (account, loaded)) in self.seats.iter_mut().zip(image.seats).enumerate() {
            let slashed: u128 = loaded.slashes.iter().map(|s| u128::from(s.amount)).sum();
            let full = loaded.slashes.iter().any(|s| {
                OffenceClass::from_code(s.class).is_some_and(|c| c.rate_pct(s.tier) >= 100)
            });
            if loaded.slashes.len() > MAX_SLASHES_PER_SEAT
                || slashed + u128::from(loaded.remaining) != u128::from(account.bond)
                || loaded.slashed_out
                    != (full || (loaded.remaining == 0 && !loaded.slashes.is_empty()))
                || loaded.slashes.iter().any(|s| s.index >= next_anchor_index)
            {
                return Err(format!("seat {seat}: slashes do not fit its bond"));
            }
            let mut slashes = Vec::with_capacity(loaded.slashes.len());
            for s in loaded.slashes {
                let class = OffenceClass::from_code(s.class)
                    .ok_or_else(|| format!("seat {seat}: offence class {} unknown", s.class))?;
                slashes.push(Slash {
                    offence_id: s.offence_id,
                    class,
                    index: s.index,
                    amount: s.amount,
                    tier: s.tier,
                });
            }
            *account = SeatAccount {
                key: account.key,
                bond: account.bond,
                remaining: loaded.remaining,
                owed: loaded.owed,
                claim_floor: loaded.claim_floor,
                cool_until: loaded.cool_until,
                slashed_out: loaded.slashed_out,
                slashes,
            };
        }
        self.undistributed = image.undistributed;
        self.next_anchor_index = image.next_anchor_index;
        self.roots = image
            .roots
            .into_iter()
            .map(|r| RetainedRoot {
                round: r.round,
                root: r.root,
                leaf_count: r.leaf_count,
                next_index: r.next_index,
                checkpoint_id: r.checkpoint_id,
            })
            .collect();
        Ok(())
    }
}
