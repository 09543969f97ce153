//! The UTXO state of one shard (DESIGN §5): apply finalized micro-events in
//! total order, split each finalized anchor's fees, and chain the state root
//! round by round.
//!
//! Everything here is a pure function of the finalized sequence: maps are
//! only looked up, never iterated into a result, and every sum is checked.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};

use pc_codec::cross::{Checkpoint, ExportLeaf, Import, Origin, RoundExports};
use pc_codec::genesis::Genesis;
use pc_codec::ids::{derive, shard_of, state_root};
use pc_codec::{
    Claim, EventDigest, Hash32, MicroEvent, Offence, OutPoint, PublicKeyBytes, Transfer, TxOut,
};

use crate::cross::CrossState;
use crate::economics::{offence_id, Economics, OffenceClass, SlashApplied, RETAINED_PAYOUT_ROOTS};
use crate::mint::{MintChain, MintWin};

/// The offence kind of an Evidence micro-event in its offence id.
pub const EVIDENCE_KIND: u8 = 255;

/// What applying one micro-event did. The code enters the state root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// A transfer moved value.
    Applied = 0,
    /// An input does not exist or is already spent (a later double spend).
    UnknownOrSpentInput = 1,
    /// The same input appears twice in one transfer.
    DuplicateInput = 2,
    /// An input is not owned by the transfer's owner.
    WrongOwner = 3,
    /// Outputs exceed inputs, or a sum overflows.
    ValueNotConserved = 4,
    /// The transfer's owner belongs to another shard.
    WrongShard = 5,
    /// An offence judged: the seat is slashed at its tier's rate.
    EvidenceRecorded = 6,
    /// The offender is slashed out already, or this offence is recorded.
    EvidenceDuplicate = 7,
    /// A transfer spends a minted output before its anchor index matures.
    ImmatureInput = 10,
    /// A transfer's outputs would push a round's exports to one
    /// destination past `X_max`; rejected whole.
    ExportLimit = 11,
    /// A mint on the tip that beats the target: a candidate of the race.
    MintCandidate = 12,
    /// A mint whose previous mint is not the chain's tip.
    MintStale = 13,
    /// A mint whose pow is not below the target.
    MintInsufficientWork = 14,
    /// The reward schedule is spent.
    MintExhausted = 15,
    /// The race's best candidate again.
    MintDuplicate = 16,
    /// The claim's round is not retained, not before this round, or its
    /// root is `W_claim` anchors old.
    ClaimRootUnknown = 17,
    /// The proof's leaf count or path does not place the leaf under the
    /// round's payout root.
    ClaimBadProof = 18,
    /// The seat claimed since that round.
    ClaimStale = 19,
    /// The import's leaf already landed (or its round is at or below the
    /// source's head).
    ImportDuplicate = 20,
    /// A Registered import of a round no Certified import registered.
    ImportUnregistered = 21,
    /// The leaf proof does not fit the registered entry.
    ImportBadProof = 22,
    /// `PEND_max` rounds of the source are open and this one is not the
    /// chain successor.
    ImportWindowFull = 23,
    /// Imports from the source are frozen (conflicting certificates).
    ImportSourceFrozen = 24,
    /// A second checkpoint of a registered round: the source is frozen.
    ImportCertificateConflict = 25,
    /// A checkpoint offence about a round more than 4 096 rounds back or
    /// not yet finalized here.
    EvidenceExpired = 26,
    /// A wrong-checkpoint offence whose checkpoint is this shard's own.
    EvidenceUnfounded = 27,
}

/// One finalized anchor as the state sees it.
#[derive(Debug, Clone)]
pub struct FinalizedPayload<'a> {
    /// The creator's seat.
    pub creator: u8,
    /// The micro-events, in payload order.
    pub events: &'a [MicroEvent],
    /// Their ids, one per event (computed once when the anchor was decoded;
    /// see [`EventDigest`]).
    pub digests: &'a [EventDigest],
    /// Ack distance per seat (`d_c`, from UFW ancestry; `None`: the seat did
    /// not acknowledge the anchor before its round was received).
    pub ack_distances: &'a [Option<u64>],
}

/// The result of applying one finalized round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    /// The round.
    pub round: u64,
    /// Outcome of every micro-event, in order.
    pub outcomes: Vec<(Hash32, Outcome)>,
    /// Fees collected in the round.
    pub fees: u64,
    /// Merkle root of the round's payouts, sorted by recipient.
    pub payout_root: Hash32,
    /// The round's exports to other shards, per destination.
    pub exports: RoundExports,
    /// Merkle root of the exports' entries (zeros if none).
    pub exports_root: Hash32,
    /// (source shard, tx id) of every import that landed in the round, in
    /// order (for the node's cross-shard latency; not in the digest, which
    /// commits every outcome already).
    pub imported: Vec<(u16, Hash32)>,
    /// Slashes applied in the round, in order (for reports and metrics).
    pub slashes: Vec<SlashApplied>,
    /// Claims applied in the round: (seat, units), in order.
    pub claims: Vec<(u8, u64)>,
    /// The payout root's leaf count.
    pub payout_leaves: u64,
    /// Mints applied in the round: (mint id, outcome 12-16), in order.
    pub mints: Vec<(Hash32, Outcome)>,
    /// The mint race the round's end decided.
    pub mint_win: Option<MintWin>,
    /// The state root after the round.
    pub state_root: Hash32,
}

impl RoundOutcome {
    /// The round's checkpoint (DESIGN §5.2) of `shard`, with no snapshot
    /// root (local snapshots never enter a checkpoint).
    pub fn checkpoint(&self, shard: u16) -> Checkpoint {
        Checkpoint {
            shard,
            round: self.round,
            state_root: self.state_root,
            exports_root: self.exports_root,
            export_count: self.exports.export_count(),
            dest_count: self.exports.dest_count(),
            snapshot_root: [0; 32],
        }
    }
}

/// Most genesis outputs the UTXO table is sized for at genesis (twice
/// that many slots: some 42 MiB of table); a larger set grows it as it
/// fills.
pub const MAX_PRESIZED_UTXOS: usize = 1 << 17;

/// A round being applied anchor by anchor (see [`ShardState::begin_round`]).
#[derive(Debug)]
pub struct RoundApply {
    round: u64,
    eligible: u64,
    ufw_creators: Vec<u8>,
    outcomes: Vec<(Hash32, Outcome)>,
    slashes: Vec<SlashApplied>,
    claims: Vec<(u8, u64)>,
    mints: Vec<(Hash32, Outcome)>,
    fees: u64,
    /// The round's export leaves per destination, in apply order.
    exports: BTreeMap<u16, Vec<ExportLeaf>>,
    /// (source shard, tx id) of every import that landed, in order.
    imported: Vec<(u16, Hash32)>,
}

/// Fee-split and committee parameters the state needs.
#[derive(Debug, Clone)]
pub struct StateParams {
    /// This shard.
    pub shard: u16,
    /// Shard count.
    pub shards: u16,
    /// The network id transfers are signed for.
    pub network: [u8; 8],
    /// Seat keys of this shard's committee, by seat.
    pub committee: Vec<PublicKeyBytes>,
}

/// The unspent outputs of one genesis allocation: all share one tx id, one
/// owner and one amount, so a bitmap marks the unspent ones (a genesis of
/// millions of outputs costs a bit per output, not a map entry).
#[derive(Debug, Clone)]
struct GenesisOutputs {
    output: TxOut,
    unspent: Vec<u64>,
    unspent_count: u64,
}

impl GenesisOutputs {
    fn new(output: TxOut, count: u32) -> Self {
        let mut unspent = vec![u64::MAX; (count as usize).div_ceil(64)];
        if !count.is_multiple_of(64) {
            if let Some(last) = unspent.last_mut() {
                *last = (1u64 << (count % 64)) - 1;
            }
        }
        GenesisOutputs {
            output,
            unspent,
            unspent_count: u64::from(count),
        }
    }

    fn is_unspent(&self, index: u16) -> bool {
        let index = usize::from(index);
        self.unspent
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    fn spend(&mut self, index: u16) {
        if self.is_unspent(index) {
            let index = usize::from(index);
            self.unspent[index / 64] &= !(1 << (index % 64));
            self.unspent_count -= 1;
        }
    }
}

/// The UTXO slice of one shard and the state-root chain.
#[derive(Debug, Clone)]
pub struct ShardState {
    params: StateParams,
    /// Outputs created by transfers.
    utxos: HashMap<OutPoint, TxOut>,
    /// Genesis outputs by allocation tx id.
    genesis_outputs: HashMap<Hash32, GenesisOutputs>,
    /// Export chains, sums and import dedupe.
    cross: CrossState,
    /// Bonds, owed balances, claims, slashes and payout roots.
    economics: Economics,
    /// The mint chain (active in the mint shard) and minted outputs'
    /// maturity.
    mint: MintChain,
    state_root: Hash32,
    /// The shard's genesis value: its allocations and its seats' bonds.
    supply: u64,
}

impl ShardState {
    /// The state at genesis: the allocations owned by this shard.
    pub fn from_genesis(genesis: &Genesis, shard: u16) -> Self {
        let network = genesis.network();
        let mut genesis_outputs = HashMap::new();
        let mut supply = 0u64;
        let mut owned_outputs = 0usize;
        for (index, allocation) in genesis.allocations.iter().enumerate() {
            if shard_of(&allocation.owner, genesis.params.shards) != shard {
                continue;
            }
            let tx_id = Genesis::allocation_out_point(&network, index as u32, 0).tx_id;
            let output = TxOut {
                amount: allocation.amount,
                owner: allocation.owner,
            };
            genesis_outputs.insert(tx_id, GenesisOutputs::new(output, allocation.outputs));
            owned_outputs += allocation.outputs as usize;
            supply += allocation.amount * u64::from(allocation.outputs);
        }
        let committee = genesis
            .committee(shard)
            .expect("a validated genesis fills every seat");
        let economics = Economics::from_genesis(genesis, shard);
        supply += economics.genesis_bonds() as u64;
        ShardState {
            params: StateParams {
                shard,
                shards: genesis.params.shards,
                network,
                committee,
            },
            // Sized up front for twice the genesis outputs (bounded): a
            // ledger's UTXO set is of that order, and a table that grows
            // rehashes all of it in the middle of a round's apply, with old
            // and new table resident at once. Twice, because spends leave
            // tombstones: a table at most half full is then cleaned in
            // place when they use up its room, a fuller one doubles.
            utxos: HashMap::with_capacity(2 * owned_outputs.min(MAX_PRESIZED_UTXOS)),
            genesis_outputs,
            cross: CrossState::new(shard, genesis.params.shards),
            economics,
            mint: MintChain::from_genesis(genesis, shard),
            state_root: genesis.hash(),
            supply,
        }
    }

    /// The current state root.
    pub fn state_root(&self) -> Hash32 {
        self.state_root
    }

    /// The output at `out_point`, if unspent.
    pub fn utxo(&self, out_point: &OutPoint) -> Option<&TxOut> {
        self.utxos.get(out_point).or_else(|| {
            self.genesis_outputs
                .get(&out_point.tx_id)
                .filter(|g| g.is_unspent(out_point.index))
                .map(|g| &g.output)
        })
    }

    fn spend(&mut self, out_point: &OutPoint) {
        if self.utxos.remove(out_point).is_some() {
            self.mint.note_spent(out_point);
        } else {
            if let Some(genesis) = self.genesis_outputs.get_mut(&out_point.tx_id) {
                genesis.spend(out_point.index);
            }
        }
    }

    /// Entries a scan of the slice visits (created outputs and genesis
    /// lines): what a balance query costs.
    pub fn scan_len(&self) -> usize {
        self.utxos.len() + self.genesis_outputs.len()
    }

    /// Entries a page of [`ShardState::unspent_of`] visits: the scan, plus
    /// every unspent output of `owner`'s genesis lines.
    pub fn unspent_scan_len(&self, owner: &PublicKeyBytes) -> usize {
        let owned: u64 = self
            .genesis_outputs
            .values()
            .filter(|line| line.output.owner == *owner)
            .map(|line| line.unspent_count)
            .sum();
        self.scan_len()
            .saturating_add(usize::try_from(owned).unwrap_or(usize::MAX))
    }

    /// Value of the unspent outputs (a scan of the slice).
    pub fn unspent_value(&self) -> u128 {
        self.utxos
            .values()
            .map(|o| u128::from(o.amount))
            .sum::<u128>()
            + self
                .genesis_outputs
                .values()
                .map(|g| u128::from(g.output.amount) * u128::from(g.unspent_count))
                .sum::<u128>()
    }

    /// The left side of the shard's supply equation (DESIGN §5.1):
    /// `unspent + owed + bonded + exported - imported`, which stays the
    /// genesis value plus what the shard minted ([`ShardState::supply`])
    /// over every round.
    pub fn accounted_value(&self) -> u128 {
        (self.unspent_value()
            + self.economics.owed_total()
            + self.economics.bonded()
            + self.cross.exported_total())
        .saturating_sub(self.cross.imported_total())
    }

    /// Owed and not yet claimed (`owed`: the seats' balances and the
    /// undistributed value).
    pub fn owed(&self) -> u128 {
        self.economics.owed_total()
    }

    /// What remains of the seats' bonds (`bonded`).
    pub fn bonded(&self) -> u128 {
        self.economics.bonded()
    }

    /// The seats' section: bonds, owed balances, claims, slashes, roots.
    pub fn economics(&self) -> &Economics {
        &self.economics
    }

    /// The cross-shard accounting and dedupe state.
    pub fn cross(&self) -> &CrossState {
        &self.cross
    }

    /// Every unspent output of the slice, in no particular order (for the
    /// data-dir supply check and tests; a scan).
    pub fn for_each_unspent(&self, mut visit: impl FnMut(&TxOut)) {
        self.utxos.values().for_each(&mut visit);
        for line in self.genesis_outputs.values() {
            for _ in 0..line.unspent_count {
                visit(&line.output);
            }
        }
    }

    /// Units owned by `owner` in this shard's finalized state (a scan of
    /// the slice: for client queries, which the network layer rate-limits).
    pub fn balance_of(&self, owner: &PublicKeyBytes) -> u64 {
        let created: u64 = self
            .utxos
            .values()
            .filter(|output| output.owner == *owner)
            .map(|output| output.amount)
            .sum();
        let genesis: u64 = self
            .genesis_outputs
            .values()
            .filter(|g| g.output.owner == *owner)
            .map(|g| g.output.amount * g.unspent_count)
            .sum();
        created + genesis
    }

    /// Up to `max` of `owner`'s unspent outputs after `after` in out-point
    /// order, and whether more follow (a scan of the slice that keeps only
    /// the page: for wallet queries, which the network layer rate-limits).
    pub fn unspent_of(
        &self,
        owner: &PublicKeyBytes,
        after: Option<&OutPoint>,
        max: usize,
    ) -> (Vec<(OutPoint, TxOut)>, bool) {
        let mut page: BTreeMap<OutPoint, TxOut> = BTreeMap::new();
        let mut more = false;
        let mut offer = |out_point: OutPoint, output: &TxOut| {
            if after.is_some_and(|a| out_point <= *a) {
                return;
            }
            page.insert(out_point, *output);
            if page.len() > max {
                page.pop_last();
                more = true;
            }
        };
        for (out_point, output) in &self.utxos {
            if output.owner == *owner {
                offer(*out_point, output);
            }
        }
        for (tx_id, line) in &self.genesis_outputs {
            if line.output.owner != *owner {
                continue;
            }
            for (word_at, word) in line.unspent.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let bit = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let index = (word_at * 64 + bit) as u16;
                    offer(
                        OutPoint {
                            tx_id: *tx_id,
                            index,
                        },
                        &line.output,
                    );
                }
            }
        }
        (page.into_iter().collect(), more)
    }

    /// The value this shard started with: its allocations and its seats'
    /// bonds.
    pub fn genesis_supply(&self) -> u128 {
        u128::from(self.supply)
    }

    /// Units the shard minted (the mint shard only).
    pub fn minted(&self) -> u128 {
        u128::from(self.mint.minted())
    }

    /// The right side of the shard's supply equation: genesis value plus
    /// minted value.
    pub fn supply(&self) -> u128 {
        self.genesis_supply() + self.minted()
    }

    /// The mint chain.
    pub fn mint(&self) -> &MintChain {
        &self.mint
    }

    /// Seats slashed out by finalized offences (bit per seat).
    pub fn slashed_seats(&self) -> u64 {
        self.economics.slashed_out()
    }

    /// Applies one finalized round: the anchors in total order, then the fee
    /// split to the round's unique famous witnesses' creators.
    pub fn apply_round(
        &mut self,
        round: u64,
        anchors: &[FinalizedPayload<'_>],
        ufw_creators: &[u8],
    ) -> RoundOutcome {
        let mut applying = self.begin_round(round, ufw_creators);
        for anchor in anchors {
            self.apply_anchor(&mut applying, anchor);
        }
        self.finish_round(applying)
    }

    /// Starts applying round `round` anchor by anchor (the streaming form of
    /// [`ShardState::apply_round`]: only one anchor's payload needs to be
    /// decoded at a time, so a long round costs no more heap than a short
    /// one). The state is changed by [`ShardState::apply_anchor`]; the
    /// state root only by [`ShardState::finish_round`].
    pub fn begin_round(&self, round: u64, ufw_creators: &[u8]) -> RoundApply {
        RoundApply {
            round,
            eligible: self
                .economics
                .eligible_at(self.economics.next_anchor_index()),
            ufw_creators: ufw_creators.to_vec(),
            outcomes: Vec::new(),
            slashes: Vec::new(),
            claims: Vec::new(),
            mints: Vec::new(),
            fees: 0,
            exports: BTreeMap::new(),
            imported: Vec::new(),
        }
    }

    /// Applies the next anchor of the round in total order.
    pub fn apply_anchor(&mut self, applying: &mut RoundApply, anchor: &FinalizedPayload<'_>) {
        assert_eq!(
            anchor.events.len(),
            anchor.digests.len(),
            "one digest per micro-event"
        );
        let index = self.economics.take_anchor_index();
        let mut anchor_fees = 0u64;
        for (event, digest) in anchor.events.iter().zip(anchor.digests) {
            let (outcome, fee) = self.apply_event(event, digest, applying, anchor.creator, index);
            anchor_fees += fee;
            if let (MicroEvent::Import(import), Outcome::Applied) = (event, outcome) {
                applying.imported.push((import.source, import.leaf.tx_id));
            }
            applying.outcomes.push((digest.id, outcome));
        }
        applying.fees += anchor_fees;
        let eligible = applying.eligible & self.economics.eligible_at(index);
        self.economics.pay_fee(
            anchor_fees,
            anchor.creator,
            anchor.ack_distances,
            &applying.ufw_creators,
            eligible,
        );
    }

    /// Ends the round: payout root, round digest and the next state root.
    pub fn finish_round(&mut self, applying: RoundApply) -> RoundOutcome {
        let RoundApply {
            round,
            outcomes,
            slashes,
            claims,
            mints,
            fees,
            exports,
            imported,
            ..
        } = applying;
        // A race whose window closes with this round is decided before the
        // digest, which commits the tip after the round; the winner's
        // output is this shard's (its miner is, DESIGN §5.5).
        let mint_win = self.mint.finish_round(round);
        if let Some(win) = &mint_win {
            self.utxos.insert(
                OutPoint {
                    tx_id: win.mint_id,
                    index: 0,
                },
                TxOut {
                    amount: win.reward,
                    owner: win.miner,
                },
            );
        }
        let exports = self.cross.finish_round(round, exports);
        let exports_root = exports.root();
        // The payout root commits the owed balances after the round
        // (cumulative: fee and slash shares minus claims, DESIGN §5.3).
        let payout = self.economics.finish_round(round);
        let payout_root = payout.root;
        // The round's digest (DESIGN §5.1): `derive("state", round ||
        // payout root || exports root || export count u32 || mint tip ||
        // (id || outcome code) per micro-event in order)`, fixed-width
        // fields, the events hashed as one buffer so BLAKE3 takes its
        // chunks in parallel. The mint tip is zeros outside the mint shard.
        let mut applied = Vec::with_capacity(outcomes.len() * 33);
        for (id, outcome) in &outcomes {
            applied.extend_from_slice(id);
            applied.push(*outcome as u8);
        }
        let digest = derive(
            pc_codec::ids::context::STATE,
            &[
                &round.to_le_bytes(),
                &payout_root,
                &exports_root,
                &exports.export_count().to_le_bytes(),
                &self.mint.digest_tip(),
                &applied,
            ],
        );
        self.state_root = state_root(&self.state_root, &digest);
        let outcome = RoundOutcome {
            round,
            outcomes,
            fees,
            payout_root,
            exports,
            exports_root,
            imported,
            slashes,
            claims,
            payout_leaves: payout.leaf_count,
            mints,
            mint_win,
            state_root: self.state_root,
        };
        // The shard's own checkpoint of the round (the one its seats sign),
        // kept with its payout root: the judge of wrong-checkpoint offences.
        self.economics.note_checkpoint(
            round,
            outcome
                .checkpoint(self.params.shard)
                .id(&self.params.network),
        );
        outcome
    }

    fn apply_event(
        &mut self,
        event: &MicroEvent,
        digest: &EventDigest,
        applying: &mut RoundApply,
        carrier: u8,
        index: u64,
    ) -> (Outcome, u64) {
        match event {
            MicroEvent::Transfer(transfer) => {
                match self.apply_transfer(transfer, &digest.tx_id, &mut applying.exports, index) {
                    Ok(fee) => (Outcome::Applied, fee),
                    Err(outcome) => (outcome, 0),
                }
            }
            MicroEvent::Evidence(evidence) => {
                // Equivocation: the offence id has no object (one per seat).
                let seat = evidence.first.header.creator;
                let id = offence_id(EVIDENCE_KIND, seat, &[]);
                let outcome = self.judge(
                    applying,
                    seat,
                    OffenceClass::Equivocation,
                    id,
                    carrier,
                    index,
                );
                (outcome, 0)
            }
            MicroEvent::Mint(mint) => {
                let outcome = self.mint.apply(mint, &digest.id, applying.round, index);
                applying.mints.push((digest.id, outcome));
                (outcome, 0)
            }
            MicroEvent::Claim(claim) => (self.apply_claim(claim, digest, applying, index), 0),
            MicroEvent::Import(import) => (self.apply_import(import), 0),
            MicroEvent::Offence(offence) => {
                (self.apply_offence(offence, applying, carrier, index), 0)
            }
        }
    }

    /// Applies an Offence (DESIGN §5.4 apply steps 1-4); its proof held at
    /// validation, except kind 2's comparison with this shard's own
    /// checkpoint of the round, judged here.
    fn apply_offence(
        &mut self,
        offence: &Offence,
        applying: &mut RoundApply,
        carrier: u8,
        index: u64,
    ) -> Outcome {
        let seat = offence.offender();
        let id = offence_id(offence.kind(), seat, &offence.object());
        if !self.economics.is_new_offence(seat, &id) {
            return Outcome::EvidenceDuplicate;
        }
        if let Offence::WrongCheckpoint { sig } = offence {
            let round = sig.checkpoint.round;
            let Some(own) = self
                .economics
                .checkpoint_of(round)
                .filter(|_| applying.round - round <= RETAINED_PAYOUT_ROOTS as u64)
            else {
                return Outcome::EvidenceExpired;
            };
            if own == sig.checkpoint.id(&self.params.network) {
                return Outcome::EvidenceUnfounded;
            }
        }
        self.judge(
            applying,
            seat,
            crate::offence::class_of(offence),
            id,
            carrier,
            index,
        )
    }

    /// Judges a proven offence (DESIGN §5.4): slashes the seat at its
    /// tier's rate and shares the amount, or says it is a duplicate.
    fn judge(
        &mut self,
        applying: &mut RoundApply,
        seat: u8,
        class: OffenceClass,
        id: Hash32,
        carrier: u8,
        index: u64,
    ) -> Outcome {
        // Eligibility is fixed at the round's start (DESIGN §5.3), minus
        // the seats slashed or put on cool-down since: a slashed seat earns
        // nothing from the anchor that judged it on, not even a share of
        // its own slash through the undistributed value.
        let eligible = applying.eligible & self.economics.eligible_at(index);
        match self
            .economics
            .slash(seat, class, id, index, carrier, eligible)
        {
            Ok(applied) => {
                applying.slashes.push(applied);
                Outcome::EvidenceRecorded
            }
            Err(outcome) => outcome,
        }
    }

    /// Applies a claim (DESIGN §5.3): the owed balance as of the claimed
    /// round becomes output `(claim id, 0)` of the owner, here or as an
    /// export to the owner's shard.
    fn apply_claim(
        &mut self,
        claim: &Claim,
        digest: &EventDigest,
        applying: &mut RoundApply,
        index: u64,
    ) -> Outcome {
        // DESIGN §5.3 steps 1-3 first, then the output (step 4): an export
        // past X_max refuses the claim whole.
        if let Err(outcome) = self.economics.check_claim(claim, applying.round, index) {
            return outcome;
        }
        let dest = shard_of(&claim.owner, self.params.shards);
        if dest != self.params.shard
            && !CrossState::exports_fit(&applying.exports, &BTreeMap::from([(dest, 1)]))
        {
            return Outcome::ExportLimit;
        }
        let amount = match self.economics.claim(claim, applying.round, index) {
            Ok(amount) => amount,
            Err(outcome) => return outcome,
        };
        if let Some(seat) = self.economics.seat_of(&claim.owner) {
            applying.claims.push((seat, amount));
        }
        let output = TxOut {
            amount,
            owner: claim.owner,
        };
        if dest == self.params.shard {
            self.utxos.insert(
                OutPoint {
                    tx_id: digest.id,
                    index: 0,
                },
                output,
            );
        } else {
            let leaf = ExportLeaf {
                dest,
                tx_id: digest.id,
                output_index: 0,
                amount,
                owner: claim.owner,
            };
            self.cross.note_export(&leaf);
            applying.exports.entry(dest).or_default().push(leaf);
        }
        Outcome::Applied
    }

    /// Applies an import (DESIGN §5.2): the dedupe state decides; a landed
    /// leaf becomes an unspent output of this shard.
    fn apply_import(&mut self, import: &Import) -> Outcome {
        let checkpoint_id = match &import.origin {
            Origin::Certified(certified) => {
                Some(certified.cert.checkpoint.id(&self.params.network))
            }
            Origin::Registered => None,
        };
        let outcome = self.cross.apply_import(import, checkpoint_id);
        if outcome == Outcome::Applied {
            let leaf = &import.leaf;
            self.utxos.insert(
                OutPoint {
                    tx_id: leaf.tx_id,
                    index: leaf.output_index,
                },
                TxOut {
                    amount: leaf.amount,
                    owner: leaf.owner,
                },
            );
        }
        outcome
    }

    /// Applies a transfer whose tx id is `tx_id`, carried by the anchor of
    /// index `index`, or says why not; returns the fee.
    fn apply_transfer(
        &mut self,
        transfer: &Transfer,
        tx_id: &Hash32,
        exports: &mut BTreeMap<u16, Vec<ExportLeaf>>,
        index: u64,
    ) -> Result<u64, Outcome> {
        if shard_of(&transfer.owner, self.params.shards) != self.params.shard {
            return Err(Outcome::WrongShard);
        }
        // At most MAX_TRANSFER_INPUTS (16) inputs: pairwise is cheapest.
        let inputs = &transfer.inputs;
        if (1..inputs.len()).any(|i| inputs[..i].contains(&inputs[i])) {
            return Err(Outcome::DuplicateInput);
        }
        let mut input_value = 0u64;
        for input in &transfer.inputs {
            let output = self.utxo(input).ok_or(Outcome::UnknownOrSpentInput)?;
            if output.owner != transfer.owner {
                return Err(Outcome::WrongOwner);
            }
            if self.mint.mature_at(input).is_some_and(|at| index < at) {
                return Err(Outcome::ImmatureInput);
            }
            input_value = input_value
                .checked_add(output.amount)
                .ok_or(Outcome::ValueNotConserved)?;
        }
        let output_value = transfer
            .outputs
            .iter()
            .try_fold(0u64, |sum, o| sum.checked_add(o.amount))
            .ok_or(Outcome::ValueNotConserved)?;
        let fee = input_value
            .checked_sub(output_value)
            .ok_or(Outcome::ValueNotConserved)?;
        // Outputs for other shards become the round's exports; a transfer
        // that would push one destination's list past X_max is refused
        // whole, before anything changes.
        // At most MAX_TRANSFER_OUTPUTS (16) outputs: their shards on the
        // stack, the per-destination count only when one leaves the shard.
        let mut dests = [0u16; pc_codec::MAX_TRANSFER_OUTPUTS];
        if transfer.outputs.len() > dests.len() {
            // Never valid (decoding and validation bound it); refused whole
            // rather than applied in part.
            return Err(Outcome::ValueNotConserved);
        }
        let mut foreign = false;
        for (slot, output) in dests.iter_mut().zip(&transfer.outputs) {
            *slot = shard_of(&output.owner, self.params.shards);
            foreign |= *slot != self.params.shard;
        }
        if foreign {
            let mut per_dest: BTreeMap<u16, usize> = BTreeMap::new();
            for dest in &dests[..transfer.outputs.len()] {
                if *dest != self.params.shard {
                    *per_dest.entry(*dest).or_default() += 1;
                }
            }
            if !CrossState::exports_fit(exports, &per_dest) {
                return Err(Outcome::ExportLimit);
            }
        }
        for input in &transfer.inputs {
            self.spend(input);
        }
        debug_assert_eq!(*tx_id, transfer.tx_id(&self.params.network));
        for (index, (output, dest)) in transfer.outputs.iter().zip(dests).enumerate() {
            if dest == self.params.shard {
                self.utxos.insert(
                    OutPoint {
                        tx_id: *tx_id,
                        index: index as u16,
                    },
                    *output,
                );
            } else {
                let leaf = ExportLeaf {
                    dest,
                    tx_id: *tx_id,
                    output_index: index as u16,
                    amount: output.amount,
                    owner: output.owner,
                };
                self.cross.note_export(&leaf);
                exports.entry(dest).or_default().push(leaf);
            }
        }
        Ok(fee)
    }
}

impl ShardState {
    /// The UTXO slice and accounting as a snapshot section, in map order:
    /// [`crate::snapshot::ShardImage::normalize`] sorts it (off the core,
    /// on the snapshot writer).
    #[must_use]
    pub fn to_image(&self) -> crate::snapshot::StateImage {
        use crate::snapshot::{GenesisLineImage, StateImage, UtxoImage};
        let genesis: Vec<GenesisLineImage> = self
            .genesis_outputs
            .iter()
            .filter(|(_, line)| line.unspent_count > 0)
            .map(|(tx_id, line)| GenesisLineImage {
                tx_id: *tx_id,
                unspent: line.unspent.clone(),
                unspent_count: line.unspent_count,
            })
            .collect();
        let utxos: Vec<UtxoImage> = self
            .utxos
            .iter()
            .map(|(out_point, out)| UtxoImage {
                tx_id: out_point.tx_id,
                index: out_point.index,
                amount: out.amount,
                owner: out.owner,
            })
            .collect();
        StateImage {
            genesis,
            utxos,
            cross: self.cross.to_image(),
            seats: self.economics.to_image(),
            mint: self.mint.to_image(),
            state_root: self.state_root,
            supply: self.supply,
        }
    }

    /// Replaces this genesis state's UTXOs and accounting with a snapshot
    /// section's; a genesis line the genesis does not give this shard, or
    /// whose bitmap does not fit it, is refused.
    pub fn load_image(&mut self, image: crate::snapshot::StateImage) -> Result<(), String> {
        let mut kept: HashMap<Hash32, GenesisOutputs> = HashMap::new();
        for line in image.genesis {
            let Some(from_genesis) = self.genesis_outputs.get(&line.tx_id) else {
                return Err(format!(
                    "genesis line {} is not this shard's",
                    pc_codec::ids::to_hex(&line.tx_id)
                ));
            };
            let counted: u64 = line.unspent.iter().map(|w| u64::from(w.count_ones())).sum();
            let fits = line.unspent.len() == from_genesis.unspent.len()
                && line
                    .unspent
                    .iter()
                    .zip(&from_genesis.unspent)
                    .all(|(word, full)| word & !full == 0)
                && counted == line.unspent_count;
            if !fits || kept.contains_key(&line.tx_id) {
                return Err(format!(
                    "genesis line {}: bitmap does not fit the allocation",
                    pc_codec::ids::to_hex(&line.tx_id)
                ));
            }
            kept.insert(
                line.tx_id,
                GenesisOutputs {
                    output: from_genesis.output,
                    unspent: line.unspent,
                    unspent_count: line.unspent_count,
                },
            );
        }
        // Fully spent lines stay (empty): a spend of them must still be
        // told apart from an unknown output the same way it was live.
        for (tx_id, line) in &mut self.genesis_outputs {
            match kept.remove(tx_id) {
                Some(image_line) => *line = image_line,
                None => {
                    line.unspent.iter_mut().for_each(|w| *w = 0);
                    line.unspent_count = 0;
                }
            }
        }
        self.utxos.clear();
        self.utxos.reserve(image.utxos.len());
        for u in image.utxos {
            let out_point = OutPoint {
                tx_id: u.tx_id,
                index: u.index,
            };
            let out = TxOut {
                amount: u.amount,
                owner: u.owner,
            };
            if self.utxos.insert(out_point, out).is_some() {
                return Err(format!(
                    "output {}:{} listed twice",
                    pc_codec::ids::to_hex(&u.tx_id),
                    u.index
                ));
            }
        }
        self.cross.load_image(image.cross)?;
        self.economics.load_image(image.seats)?;
        self.mint.load_image(image.mint)?;
        if !self
            .mint
            .tracked_all(|out_point| self.utxos.contains_key(out_point))
        {
            return Err("a minted output with a maturity is not in the UTXO slice".into());
        }
        self.state_root = image.state_root;
        if image.supply != self.supply {
            return Err(format!(
                "genesis value {} where this genesis gives the shard {}",
                image.supply, self.supply
            ));
        }
        // Every balance is then bounded by the shard's value (at most the
        // supply cap), so no later sum overflows.
        if self.accounted_value() != self.supply() {
            return Err(format!(
                "the supply equation does not hold: {} accounted of {}",
                self.accounted_value(),
                self.supply()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_codec::genesis::{ConsensusParams, GenesisAllocation, GenesisValidator, SeatAssignment};
    use pc_codec::{Encode, Evidence, Mint, SigningKey, TransferBuilder};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
    }

    /// k = 4 seats, `shards` shards, client key 50 owning 8 outputs of 1000.
    fn genesis(shards: u16) -> Genesis {
        let validators = (0..4u8)
            .map(|seat| GenesisValidator {
                key: key(10 + seat).public_key(),
                bond: 1_000,
                seats: (0..shards)
                    .map(|shard| SeatAssignment { shard, seat })
                    .collect(),
            })
            .collect();
        Genesis {
            params: ConsensusParams::v0(4, shards),
            note_commitment: [0; 32],
            validators,
            allocations: vec![GenesisAllocation {
                owner: key(50).public_key(),
                amount: 1000,
                outputs: 8,
            }],
        }
    }

    fn client_state(shards: u16) -> (Genesis, ShardState) {
        let genesis = genesis(shards);
        let shard = shard_of(&key(50).public_key(), shards);
        let state = ShardState::from_genesis(&genesis, shard);
        (genesis, state)
    }

    fn genesis_input(genesis: &Genesis, output: u16) -> OutPoint {
        Genesis::allocation_out_point(&genesis.network(), 0, output)
    }

    fn transfer(
        genesis: &Genesis,
        inputs: &[OutPoint],
        outputs: &[(u64, PublicKeyBytes)],
    ) -> MicroEvent {
        let mut builder = TransferBuilder::new();
        for input in inputs {
            builder = builder.input(*input);
        }
        for (amount, owner) in outputs {
            builder = builder.output(*amount, *owner);
        }
        MicroEvent::Transfer(
            builder
                .sign(&genesis.network(), &key(50), &[0; 32])
                .unwrap(),
        )
    }

    fn apply(state: &mut ShardState, round: u64, events: &[MicroEvent]) -> RoundOutcome {
        let distances = [Some(1), Some(2), None, Some(9)];
        let digests: Vec<EventDigest> = events
            .iter()
            .map(|event| EventDigest::of(event, &state.params.network))
            .collect();
        let anchor = FinalizedPayload {
            creator: 1,
            events,
            digests: &digests,
            ack_distances: &distances,
        };
        state.apply_round(round, &[anchor], &[0, 2])
    }

    fn outcomes(outcome: &RoundOutcome) -> Vec<Outcome> {
        outcome.outcomes.iter().map(|(_, o)| *o).collect()
    }

    #[test]
    fn genesis_outputs_of_the_shard_are_spendable_and_accounted() {
        let (genesis, state) = client_state(1);
        assert_eq!(
            state.genesis_supply(),
            8_000 + 4 * 1_000,
            "allocations and bonds"
        );
        assert_eq!(state.accounted_value(), 12_000);
        assert_eq!(
            state.utxo(&genesis_input(&genesis, 7)).map(|o| o.amount),
            Some(1000)
        );
        assert_eq!(state.state_root(), genesis.hash());
        let two_shards = super::tests::genesis(2);
        let other_shard =
            ShardState::from_genesis(&two_shards, 1 - shard_of(&key(50).public_key(), 2));
        // No allocation there; each validator's bond of 1 000 is split over
        // its two seats.
        assert_eq!(other_shard.genesis_supply(), 4 * 500);
    }

    #[test]
    fn transfer_rules_first_spend_wins_and_value_is_conserved() {
        let (genesis, mut state) = client_state(1);
        let me = key(50).public_key();
        let pay = transfer(&genesis, &[genesis_input(&genesis, 0)], &[(900, me)]);
        let double = transfer(&genesis, &[genesis_input(&genesis, 0)], &[(1000, me)]);
        let duplicate = transfer(
            &genesis,
            &[genesis_input(&genesis, 1), genesis_input(&genesis, 1)],
            &[(1, me)],
        );
        let overspend = transfer(&genesis, &[genesis_input(&genesis, 2)], &[(1001, me)]);
        let outcome = apply(
            &mut state,
            0,
            &[
                pay.clone(),
                double,
                duplicate,
                overspend,
                MicroEvent::Mint(Mint {
                    prev_mint_id: [0; 32],
                    miner: me,
                    nonce: 1,
                }),
            ],
        );
        assert_eq!(
            outcomes(&outcome),
            vec![
                Outcome::Applied,
                Outcome::UnknownOrSpentInput,
                Outcome::DuplicateInput,
                Outcome::ValueNotConserved,
                Outcome::MintStale
            ]
        );
        assert_eq!(outcome.fees, 100);
        assert_eq!(state.accounted_value(), 12_000, "inputs = outputs + fees");
        let MicroEvent::Transfer(paid) = &pay else {
            unreachable!()
        };
        let created = OutPoint {
            tx_id: paid.tx_id(&genesis.network()),
            index: 0,
        };
        assert_eq!(state.utxo(&created).map(|o| o.amount), Some(900));
        assert!(
            state.utxo(&genesis_input(&genesis, 1)).is_some(),
            "a rejected transfer changes nothing"
        );
    }

    #[test]
    fn chained_spends_in_one_round_apply_in_order() {
        let (genesis, mut state) = client_state(1);
        let me = key(50).public_key();
        let first = transfer(&genesis, &[genesis_input(&genesis, 3)], &[(1000, me)]);
        let MicroEvent::Transfer(first_transfer) = &first else {
            unreachable!()
        };
        let created = OutPoint {
            tx_id: first_transfer.tx_id(&genesis.network()),
            index: 0,
        };
        let second = transfer(&genesis, &[created], &[(990, me)]);
        let outcome = apply(&mut state, 0, &[first.clone(), second.clone()]);
        assert_eq!(outcomes(&outcome), vec![Outcome::Applied, Outcome::Applied]);
        let (_, mut reversed) = client_state(1);
        let outcome = apply(&mut reversed, 0, &[second, first]);
        assert_eq!(
            outcomes(&outcome),
            vec![Outcome::UnknownOrSpentInput, Outcome::Applied]
        );
    }

    #[test]
    fn outputs_for_other_shards_become_exports() {
        let (genesis, mut state) = client_state(4);
        let home = shard_of(&key(50).public_key(), 4);
        let away = (60..=255u8)
            .map(|s| key(s).public_key())
            .find(|k| shard_of(k, 4) != home)
            .unwrap();
        let outcome = apply(
            &mut state,
            0,
            &[transfer(
                &genesis,
                &[genesis_input(&genesis, 0)],
                &[(700, away)],
            )],
        );
        assert_eq!(outcomes(&outcome), vec![Outcome::Applied]);
        assert_eq!(state.accounted_value(), state.genesis_supply());
        assert_eq!(state.cross.exported_to(shard_of(&away, 4)), 700);
        assert_eq!(outcome.exports.export_count(), 1);
        let (entry, leaves) = &outcome.exports.entries[0];
        assert_eq!(entry.prev_round, pc_codec::cross::NO_ROUND);
        assert_eq!(leaves[0].amount, 700);
        assert_eq!(
            outcome.checkpoint(home).exports_root,
            outcome.exports.root()
        );
    }

    #[test]
    fn exports_past_x_max_to_one_destination_in_a_round_are_refused_whole() {
        let mut genesis = genesis(4);
        genesis.allocations[0].outputs = 1_100;
        let home = shard_of(&key(50).public_key(), 4);
        let mut state = ShardState::from_genesis(&genesis, home);
        let away = (60..=255u8)
            .map(|s| key(s).public_key())
            .find(|k| shard_of(k, 4) != home)
            .unwrap();
        // 1 024 transfers of 16 outputs fill the list to exactly X_max; the
        // next one's outputs would pass it.
        let events: Vec<MicroEvent> = (0..1_025u16)
            .map(|n| transfer(&genesis, &[genesis_input(&genesis, n)], &[(10, away); 16]))
            .collect();
        let outcome = apply(&mut state, 0, &events);
        let outcomes = outcomes(&outcome);
        assert!(outcomes[..1_024].iter().all(|o| *o == Outcome::Applied));
        assert_eq!(outcomes[1_024], Outcome::ExportLimit);
        assert_eq!(
            outcome.exports.export_count(),
            pc_codec::cross::X_MAX,
            "the refused transfer exported nothing"
        );
        assert!(
            state.utxo(&genesis_input(&genesis, 1_024)).is_some(),
            "and spent nothing"
        );
        assert_eq!(state.accounted_value(), state.genesis_supply());
    }

    #[test]
    fn evidence_slashes_the_whole_bond_once_and_shares_it_with_the_other_seats() {
        let (genesis, mut state) = client_state(1);
        let header = |signature: u8| pc_codec::SignedAnchorHeader {
            header: pc_codec::AnchorHeader {
                version: 0,
                network: genesis.network(),
                shard: 0,
                epoch: 0,
                creator: 3,
                seq: 5,
                birth_round: 2,
                parents: vec![],
                payload_root: [0; 32],
                payload_count: 0,
                payload_bytes: 1,
            },
            signature: [signature; 64],
        };
        let evidence = MicroEvent::Evidence(Evidence {
            first: header(1),
            second: header(2),
        });
        assert_eq!(state.genesis_supply(), 8_000 + 4 * 1_000);
        let outcome = apply(&mut state, 0, &[evidence.clone(), evidence]);
        assert_eq!(
            outcomes(&outcome),
            vec![Outcome::EvidenceRecorded, Outcome::EvidenceDuplicate]
        );
        assert_eq!(outcome.slashes.len(), 1);
        assert_eq!(outcome.slashes[0].slash.amount, 1_000);
        assert_eq!(state.slashed_seats(), 1 << 3);
        let seats = state.economics().seats();
        assert_eq!(seats[3].remaining, 0);
        // 1 000 over seats 0, 1, 2: 333 each, the unit of dust to the
        // carrying anchor's creator (seat 1).
        let owed: Vec<u64> = seats.iter().map(|s| s.owed).collect();
        assert_eq!(owed, vec![333, 334, 333, 0]);
        assert_eq!(state.bonded(), 3_000);
        assert_eq!(state.accounted_value(), state.genesis_supply());
        assert_eq!(
            state
                .economics()
                .eligible_at(state.economics().next_anchor_index()),
            0b0111
        );
    }

    #[test]
    fn fee_split_pays_out_exactly_the_fees_with_dust_to_the_proposer() {
        let params = crate::economics::FeeParams::of(&genesis(1));
        let distances = [Some(1), Some(2), None, Some(9)];
        let all =
            crate::economics::anchor_shares(&params, 4, 1_003, 0, 1, &distances, &[0, 2], 0b1111);
        // base 501 / 4 = 125 each; proposer 100; performance 200 by weights
        // 20 : 13 (d = 1, 2; seat 3's d = 9 is past D_max) = 121, 78; attestor
        // 200 / 2 = 100 to seats 0 and 2. Paid 999 of 1003: 4 units of dust.
        assert_eq!(
            all.shares,
            vec![125 + 121 + 100, 125 + 100 + 78 + 4, 125 + 100, 125]
        );
        assert_eq!(all.undistributed, 0);
        // Seat 2 not eligible: its attestor share joins base (601 / 3 = 200).
        let without_2 =
            crate::economics::anchor_shares(&params, 4, 1_003, 0, 1, &distances, &[0, 2], 0b1011);
        assert_eq!(
            without_2.shares,
            vec![121 + 100 + 200, 100 + 78 + 200 + 4, 0, 200]
        );
        // The creator not eligible: the proposer pool joins base and the
        // dust goes to the lowest eligible seat; carried value is paid too.
        let without_1 =
            crate::economics::anchor_shares(&params, 4, 1_003, 7, 1, &distances, &[0, 2], 0b1101);
        assert_eq!(without_1.shares.iter().sum::<u64>(), 1_010);
        assert_eq!(without_1.shares[1], 0);
        // Nobody eligible: everything stays undistributed.
        let nobody =
            crate::economics::anchor_shares(&params, 4, 1_003, 7, 1, &distances, &[0, 2], 0);
        assert_eq!(nobody.undistributed, 1_010);
        assert_eq!(nobody.shares, vec![0; 4]);
    }

    fn claim_of(state: &ShardState, seat: usize, round: u64) -> MicroEvent {
        let leaves = state.economics().leaves();
        let signer = key(10 + seat as u8);
        let at = leaves
            .iter()
            .position(|l| l.recipient == signer.public_key())
            .expect("the seat is owed");
        let bytes: Vec<Vec<u8>> = leaves.iter().map(Encode::to_bytes).collect();
        let mut claim = Claim {
            round,
            leaf: leaves[at],
            proof: pc_codec::MerkleProof::build(&bytes, at).unwrap(),
            owner: signer.public_key(),
            signature: [0; 64],
        };
        claim.signature = signer.sign(&claim.signing_message(&state.params.network, 0), &[0; 32]);
        MicroEvent::Claim(claim)
    }

    #[test]
    fn a_claim_takes_the_owed_balance_once_against_a_retained_root() {
        let (genesis, mut state) = client_state(1);
        let me = key(50).public_key();
        let paying = transfer(&genesis, &[genesis_input(&genesis, 0)], &[(900, me)]);
        let round0 = apply(&mut state, 0, &[paying]);
        assert_eq!(round0.fees, 100);
        let root0 = *state.economics().root_of(0).unwrap();
        assert_eq!(root0.root, round0.payout_root);
        let owed_0 = state.economics().seats()[0].owed;
        assert!(owed_0 > 0);
        let claim = claim_of(&state, 0, 0);
        let MicroEvent::Claim(mut too_much) = claim.clone() else {
            unreachable!()
        };
        too_much.leaf.amount += 1;
        let mut unknown = claim.clone();
        if let MicroEvent::Claim(c) = &mut unknown {
            c.round = 7;
        }
        let round1 = apply(
            &mut state,
            1,
            &[
                MicroEvent::Claim(too_much),
                unknown,
                claim.clone(),
                claim.clone(),
            ],
        );
        assert_eq!(
            outcomes(&round1),
            vec![
                Outcome::ClaimBadProof,
                Outcome::ClaimRootUnknown,
                Outcome::Applied,
                Outcome::ClaimStale
            ]
        );
        assert_eq!(round1.claims, vec![(0, owed_0)]);
        assert_eq!(state.economics().seats()[0].owed, 0);
        assert_eq!(state.economics().seats()[0].claim_floor, 1);
        let id = claim.id();
        assert_eq!(
            state.utxo(&OutPoint {
                tx_id: id,
                index: 0
            }),
            Some(&TxOut {
                amount: owed_0,
                owner: key(10).public_key()
            })
        );
        assert_eq!(state.accounted_value(), state.genesis_supply());
        // The same leaf of round 0 again in a later round: stale.
        let round2 = apply(&mut state, 2, &[claim]);
        assert_eq!(outcomes(&round2), vec![Outcome::ClaimStale]);
    }

    #[test]
    fn a_claim_expires_after_the_claim_window_but_the_value_stays_owed() {
        let mut genesis = genesis(1);
        genesis.params.claim_window_anchors = 2;
        let shard = shard_of(&key(50).public_key(), 1);
        let mut state = ShardState::from_genesis(&genesis, shard);
        let me = key(50).public_key();
        apply(
            &mut state,
            0,
            &[transfer(
                &genesis,
                &[genesis_input(&genesis, 0)],
                &[(900, me)],
            )],
        );
        let claim = claim_of(&state, 2, 0);
        apply(&mut state, 1, &[]);
        apply(&mut state, 2, &[]);
        let later = claim_of(&state, 2, 2);
        // Round 0 ended at anchor index 1 (e(0) = 1); round 3's anchor has
        // index 3: 3 - 1 = 2 anchors, the window. Round 2's root (e = 3) is
        // fresh.
        let round3 = apply(&mut state, 3, &[claim, later]);
        assert_eq!(
            outcomes(&round3),
            vec![Outcome::ClaimRootUnknown, Outcome::Applied]
        );
        assert_eq!(
            state.economics().seats()[2].owed,
            0,
            "the later root pays it all"
        );
        assert_eq!(state.accounted_value(), state.genesis_supply());
    }

    #[test]
    fn state_root_chains_rounds_and_depends_on_order_and_outcomes() {
        let (genesis, mut a) = client_state(1);
        let (_, mut b) = client_state(1);
        let me = key(50).public_key();
        let x = transfer(&genesis, &[genesis_input(&genesis, 4)], &[(10, me)]);
        let y = transfer(&genesis, &[genesis_input(&genesis, 5)], &[(20, me)]);
        let ra = apply(&mut a, 0, &[x.clone(), y.clone()]);
        let rb = apply(&mut b, 0, &[x.clone(), y.clone()]);
        assert_eq!(ra, rb, "replicas agree");
        assert_ne!(ra.state_root, genesis.hash());
        let (_, mut c) = client_state(1);
        let rc = apply(&mut c, 0, &[y, x]);
        assert_ne!(rc.state_root, ra.state_root, "the order is committed");
        let next = apply(&mut a, 1, &[]);
        let (_, mut d) = client_state(1);
        assert_ne!(
            next.state_root,
            apply(&mut d, 1, &[]).state_root,
            "the chain commits to history"
        );
    }
}
