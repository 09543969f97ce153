//! An independent reference model of the shard state (DESIGN §5), written
//! from the design and not from `state.rs`: it predicts the outcome of every
//! finalized micro-event in order, so a machine that applies a transfer
//! twice, spends a missing output or loses value disagrees with it.

use std::collections::{HashMap, HashSet};

use pc_codec::genesis::Genesis;
use pc_codec::ids::{context, derive};
use pc_codec::{Hash32, MicroEvent, Offence, OutPoint, Transfer, TxOut};
use pc_shard::state::Outcome;

/// One seat's bond and offences as the model sees them (DESIGN §5.4).
struct SeatModel {
    bond: u64,
    remaining: u64,
    out: bool,
    offence_ids: Vec<Hash32>,
    /// Its slashes: (class, anchor index).
    slashes: Vec<(u8, u64)>,
}

/// A slash the model expects: (seat, class code, tier, units).
pub type ExpectedSlash = (u8, u8, u32, u64);

/// A finalized round's payout root as the canonical report gives it.
struct RootSeen {
    round: u64,
    root: Hash32,
    leaf_count: u64,
    /// The anchor index after the round.
    next_index: u64,
}

/// The mint chain as DESIGN §5.5 states it, written out again.
struct MintModel {
    shard_active: bool,
    interval: u128,
    halving: u64,
    race_rounds: u64,
    target_max: u128,
    maturity: [u64; 3],
    tier_bounds: [u64; 2],
    /// `M` and `R0`.
    emission: u64,
    first_reward: u64,
    tip: Hash32,
    count: u64,
    target: u128,
    last: u64,
    minted: u64,
    /// (opened, pow hash, mint id, miner, anchor index) of the best.
    race: Option<(u64, Hash32, Hash32, pc_codec::PublicKeyBytes, u64)>,
    /// Minted outputs and the anchor index they spend from.
    mature_at: HashMap<OutPoint, u64>,
    /// Candidates applied in the open race.
    race_candidates: u64,
}

/// A decided race as the model expects it: (mint id, reward, mature at).
pub type ExpectedWin = (Hash32, u64, u64);

/// The model's UTXO set and slashing record.
pub struct Model {
    mint: MintModel,
    /// The race the last round decided, and how many candidates it had.
    expected_win: Option<(ExpectedWin, u64)>,
    network: [u8; 8],
    utxos: HashMap<OutPoint, TxOut>,
    unspent_value: u64,
    /// Fees and slashed bonds owed to the seats (no claims in the
    /// simulation).
    owed: u64,
    bonded: u64,
    genesis_supply: u64,
    slashed: u64,
    slash_window: u64,
    claim_window: u64,
    /// Payout roots of the last 4 096 rounds.
    roots: std::collections::VecDeque<RootSeen>,
    /// Per seat: the round of its last applied claim.
    claim_floor: Vec<u64>,
    /// The round being applied.
    round: u64,
    expected_claims: Vec<(u8, u64)>,
    /// Slashes of a class whose seat had an older slash of that class past
    /// `W_slash` (so the tier started over).
    pub tier_resets: u64,
    seats: Vec<SeatModel>,
    expected_slashes: Vec<ExpectedSlash>,
    /// Position (in the finalized micro-event sequence) at which each
    /// applied transfer's event was applied.
    applied_at: HashMap<Hash32, u64>,
    /// Every input ever spent, to catch a double spend even if the UTXO
    /// bookkeeping were wrong.
    spent: HashSet<OutPoint>,
    /// Micro-events seen so far.
    position: u64,
}

impl Model {
    /// The genesis state of the (only) shard.
    pub fn new(genesis: &Genesis) -> Self {
        let network = genesis.network();
        let mut utxos = HashMap::new();
        let mut unspent_value = 0u64;
        for (index, allocation) in genesis.allocations.iter().enumerate() {
            for output in 0..allocation.outputs {
                let out_point =
                    Genesis::allocation_out_point(&network, index as u32, output as u16);
                let previous = utxos.insert(
                    out_point,
                    TxOut {
                        amount: allocation.amount,
                        owner: allocation.owner,
                    },
                );
                assert!(previous.is_none(), "genesis out points are distinct");
                unspent_value += allocation.amount;
            }
        }
        // One seat per validator in the simulated shard: the seat's bond is
        // the validator's.
        let seats: Vec<SeatModel> = genesis
            .validators
            .iter()
            .map(|v| SeatModel {
                bond: v.bond,
                remaining: v.bond,
                out: false,
                offence_ids: Vec::new(),
                slashes: Vec::new(),
            })
            .collect();
        let bonded: u64 = seats.iter().map(|s| s.bond).sum();
        let p = &genesis.params;
        let emission = (50_000_000u128 * 100_000_000 - u128::from(unspent_value + bonded)) as u64;
        let mint = MintModel {
            shard_active: p.mint_shard == crate::sim::crypto::SHARD,
            interval: u128::from(p.mint_interval_anchors),
            halving: p.mint_halving_mints,
            race_rounds: u64::from(p.mint_race_rounds),
            target_max: p.mint_target_max,
            maturity: p.maturity_anchors,
            tier_bounds: p.maturity_tier_bounds,
            emission,
            first_reward: (u128::from(emission) / (2 * u128::from(p.mint_halving_mints))) as u64,
            tip: genesis.hash(),
            count: 0,
            target: p.mint_target_initial,
            last: 0,
            minted: 0,
            race: None,
            mature_at: HashMap::new(),
            race_candidates: 0,
        };
        Model {
            mint,
            expected_win: None,
            network,
            utxos,
            unspent_value,
            owed: 0,
            bonded,
            genesis_supply: unspent_value + bonded,
            slashed: 0,
            slash_window: genesis.params.slash_window_anchors,
            claim_window: genesis.params.claim_window_anchors,
            roots: std::collections::VecDeque::new(),
            claim_floor: vec![0; genesis.validators.len()],
            round: 0,
            expected_claims: Vec::new(),
            tier_resets: 0,
            seats,
            expected_slashes: Vec::new(),
            applied_at: HashMap::new(),
            spent: HashSet::new(),
            position: 0,
        }
    }

    /// The supply at genesis.
    pub fn genesis_supply(&self) -> u64 {
        self.genesis_supply
    }

    /// Seats slashed so far.
    pub fn slashed(&self) -> u64 {
        self.slashed
    }

    /// Where the transfer with this event id was applied, if it was.
    pub fn applied_at(&self, event_id: &Hash32) -> Option<u64> {
        self.applied_at.get(event_id).copied()
    }

    /// Micro-events applied so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Unspent value plus what is owed to the seats plus what remains of
    /// their bonds: the supply, which must stay the genesis supply plus
    /// what was minted.
    pub fn accounted_value(&self) -> u64 {
        self.unspent_value + self.owed + self.bonded
    }

    /// Units minted so far.
    pub fn minted(&self) -> u64 {
        self.mint.minted
    }

    /// `M`: what the schedule may ever mint.
    pub fn emission(&self) -> u64 {
        self.mint.emission
    }

    /// The race the last finished round decided, with its candidate count.
    pub fn take_expected_win(&mut self) -> Option<(ExpectedWin, u64)> {
        self.expected_win.take()
    }

    /// DESIGN §5.5 apply of a mint: exhausted, stale, insufficient work,
    /// the race's best again, else a candidate (the best if its
    /// `(pow_hash, id)` is lowest).
    fn apply_mint(&mut self, mint: &pc_codec::Mint, id: Hash32, index: u64) -> Outcome {
        let m = &mut self.mint;
        assert!(m.shard_active, "model: a mint outside the mint shard");
        let halvings = m.count / m.halving;
        let scheduled = if halvings >= 64 {
            0
        } else {
            m.first_reward >> halvings
        };
        if scheduled.min(m.emission - m.minted) == 0 {
            return Outcome::MintExhausted;
        }
        if mint.prev_mint_id != m.tip {
            return Outcome::MintStale;
        }
        let hash =
            pc_codec::mint::pow_hash(&self.network, &mint.prev_mint_id, &mint.miner, mint.nonce);
        let pow = u128::from_be_bytes(hash[..16].try_into().expect("16 bytes"));
        if pow >= m.target {
            return Outcome::MintInsufficientWork;
        }
        match &mut m.race {
            Some((_, _, best_id, ..)) if *best_id == id => return Outcome::MintDuplicate,
            Some(race) => {
                if (hash, id) < (race.1, race.2) {
                    *race = (race.0, hash, id, mint.miner, index);
                }
            }
            None => m.race = Some((self.round, hash, id, mint.miner, index)),
        }
        m.race_candidates += 1;
        Outcome::MintCandidate
    }

    /// The end of round `round` for the mint chain: a race open for
    /// `W_race` rounds is decided.
    fn finish_mint_round(&mut self, round: u64) {
        let m = &mut self.mint;
        let Some((opened, _, id, miner, a_w)) = m.race else {
            return;
        };
        if round + 1 < opened + m.race_rounds {
            return;
        }
        let halvings = m.count / m.halving;
        let scheduled = if halvings >= 64 {
            0
        } else {
            m.first_reward >> halvings
        };
        let reward = scheduled.min(m.emission - m.minted);
        let tier = if a_w < m.tier_bounds[0] {
            0
        } else if a_w < m.tier_bounds[1] {
            1
        } else {
            2
        };
        let mature_at = a_w + m.maturity[tier];
        let elapsed = u128::from(a_w - m.last).min(3 * m.interval);
        // floor(T * X / D), X = 15I + A, D = 16I, as DESIGN §5.5 writes
        // it out so that nothing overflows.
        let (x, d) = (15 * m.interval + elapsed, 16 * m.interval);
        let next = (m.target / d)
            .saturating_mul(x)
            .saturating_add(m.target % d * x / d);
        m.target = next.clamp(1, m.target_max);
        m.last = a_w;
        m.count += 1;
        m.minted += reward;
        m.tip = id;
        let out_point = OutPoint {
            tx_id: id,
            index: 0,
        };
        self.utxos.insert(
            out_point,
            TxOut {
                amount: reward,
                owner: miner,
            },
        );
        m.mature_at.insert(out_point, mature_at);
        self.unspent_value += reward;
        self.expected_win = Some(((id, reward, mature_at), m.race_candidates));
        m.race = None;
        m.race_candidates = 0;
    }

    /// What is owed to the seats (fees and slashed bonds).
    pub fn owed(&self) -> u64 {
        self.owed
    }

    /// What remains of the seats' bonds.
    pub fn bonded(&self) -> u64 {
        self.bonded
    }

    /// Round `round` ended with `root` over `leaf_count` owed balances,
    /// the next anchor index `next_index`: a claim may use it from the
    /// next round on.
    pub fn finish_round(&mut self, round: u64, root: Hash32, leaf_count: u64, next_index: u64) {
        if self.roots.len() == 4_096 {
            self.roots.pop_front();
        }
        self.roots.push_back(RootSeen {
            round,
            root,
            leaf_count,
            next_index,
        });
        self.finish_mint_round(round);
        self.round = round + 1;
    }

    /// The claims applied since the last call: (seat, units), in order.
    pub fn take_expected_claims(&mut self) -> Vec<(u8, u64)> {
        std::mem::take(&mut self.expected_claims)
    }

    /// DESIGN §5.3: the claimed round's root is retained, before this
    /// round and fewer than `W_claim` anchors old (else 17); the proof
    /// places the leaf under it (else 18); the seat claimed no later round
    /// (else 19, the dedupe). An applied claim moves the amount from the
    /// owed balances to a new output of the seat.
    fn claim(&mut self, claim: &pc_codec::Claim, id: Hash32, index: u64) -> Outcome {
        let Some(root) = self
            .roots
            .iter()
            .find(|r| r.round == claim.round && r.round < self.round)
            .filter(|r| index - r.next_index < self.claim_window)
        else {
            return Outcome::ClaimRootUnknown;
        };
        if claim.proof.leaf_count != root.leaf_count
            || !claim
                .proof
                .verify(&pc_codec::Encode::to_bytes(&claim.leaf), &root.root)
        {
            return Outcome::ClaimBadProof;
        }
        let seat = (0..self.claim_floor.len() as u8)
            .find(|s| crate::sim::crypto::seat_public(*s) == claim.leaf.recipient)
            .expect("claims are by seats");
        if claim.round < self.claim_floor[usize::from(seat)] {
            return Outcome::ClaimStale;
        }
        self.claim_floor[usize::from(seat)] = self.round;
        self.owed -= claim.leaf.amount;
        self.unspent_value += claim.leaf.amount;
        self.utxos.insert(
            OutPoint {
                tx_id: id,
                index: 0,
            },
            TxOut {
                amount: claim.leaf.amount,
                owner: claim.owner,
            },
        );
        self.expected_claims.push((seat, claim.leaf.amount));
        Outcome::Applied
    }

    /// The slashes applied since the last call, in order.
    pub fn take_expected_slashes(&mut self) -> Vec<ExpectedSlash> {
        std::mem::take(&mut self.expected_slashes)
    }

    /// Judges an offence of `class` (0 equivocation, 1 vote for invalid,
    /// 2 conflicting data) with id `id` against `seat`, as DESIGN §5.4
    /// states it: nothing if the seat is out or the id recorded; else the
    /// tier's rate of the seat's bond (EQ 100 %; VFI 50 %, then 100 %; CDA
    /// 25 %, 50 %, then 100 %; the tier counts the slashes of the class
    /// whose anchor index `i` has `i + W_slash > index`), moved from the
    /// bond to the owed balances.
    fn judge(&mut self, seat: u8, class: u8, id: Hash32, index: u64) -> Outcome {
        let window = self.slash_window;
        let Some(account) = self.seats.get_mut(usize::from(seat)) else {
            panic!("model: offence against seat {seat}, not a seat");
        };
        if account.out || account.offence_ids.contains(&id) {
            return Outcome::EvidenceDuplicate;
        }
        let tier = 1 + account
            .slashes
            .iter()
            .filter(|(c, i)| *c == class && i + window > index)
            .count() as u32;
        let rate = match (class, tier) {
            (0, _) => 100,
            (1, 1) => 50,
            (1, _) => 100,
            (2, 1) => 25,
            (2, 2) => 50,
            _ => 100,
        };
        let amount = if rate == 100 {
            account.remaining
        } else {
            account.remaining.min((account.bond * rate).div_ceil(100))
        };
        account.remaining -= amount;
        account.out = rate == 100 || account.remaining == 0;
        account.offence_ids.push(id);
        if account
            .slashes
            .iter()
            .any(|(c, i)| *c == class && i + window <= index)
        {
            self.tier_resets += 1;
        }
        account.slashes.push((class, index));
        self.bonded -= amount;
        self.owed += amount;
        if account.out {
            self.slashed |= 1 << seat;
        }
        self.expected_slashes.push((seat, class, tier, amount));
        Outcome::EvidenceRecorded
    }

    /// Applies the next finalized micro-event; returns the predicted outcome
    /// and fee.
    pub fn apply(&mut self, event: &MicroEvent, index: u64) -> (Outcome, u64) {
        self.position += 1;
        match event {
            MicroEvent::Transfer(transfer) => match self.apply_transfer(transfer, index) {
                Ok(fee) => {
                    self.applied_at.insert(event.id(), self.position);
                    (Outcome::Applied, fee)
                }
                Err(outcome) => (outcome, 0),
            },
            MicroEvent::Evidence(evidence) => {
                // Offence id derive("evidence", 255 || seat): one per seat.
                let seat = evidence.first.header.creator;
                let id = derive(context::EVIDENCE, &[&[255, seat]]);
                (self.judge(seat, 0, id, index), 0)
            }
            MicroEvent::Offence(offence) => {
                let (kind, seat) = (offence.kind(), offence.offender());
                let class = match kind {
                    0..=2 => 1,
                    3 | 4 => 2,
                    _ => 0,
                };
                assert!(
                    !matches!(**offence, Offence::WrongCheckpoint { .. }),
                    "model: one shard signs no checkpoints"
                );
                let id = derive(context::EVIDENCE, &[&[kind, seat], &offence.object()]);
                (self.judge(seat, class, id, index), 0)
            }
            MicroEvent::Mint(mint) => (self.apply_mint(mint, event.id(), index), 0),
            MicroEvent::Claim(claim) => (self.claim(claim, event.id(), index), 0),
            // One shard: no import is ever registered here (a Byzantine
            // seat's would fail its stateless checks first).
            MicroEvent::Import(_) => (Outcome::ImportUnregistered, 0),
        }
    }

    /// DESIGN §5: inputs exist, are unspent and distinct, are the owner's,
    /// and cover the outputs; the difference is the fee. (Every owner is in
    /// the one simulated shard.)
    fn apply_transfer(&mut self, transfer: &Transfer, index: u64) -> Result<u64, Outcome> {
        let distinct: HashSet<&OutPoint> = transfer.inputs.iter().collect();
        if distinct.len() != transfer.inputs.len() {
            return Err(Outcome::DuplicateInput);
        }
        let mut input_value = 0u64;
        for input in &transfer.inputs {
            let output = self.utxos.get(input).ok_or(Outcome::UnknownOrSpentInput)?;
            if output.owner != transfer.owner {
                return Err(Outcome::WrongOwner);
            }
            if self.mint.mature_at.get(input).is_some_and(|at| index < *at) {
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
        for input in &transfer.inputs {
            self.utxos.remove(input);
            self.mint.mature_at.remove(input);
            assert!(
                self.spent.insert(*input),
                "model: input {input:?} spent twice"
            );
        }
        let tx_id = transfer.tx_id(&self.network);
        for (index, output) in transfer.outputs.iter().enumerate() {
            let out_point = OutPoint {
                tx_id,
                index: index as u16,
            };
            assert!(
                self.utxos.insert(out_point, *output).is_none(),
                "model: output {out_point:?} created twice"
            );
        }
        self.unspent_value = self.unspent_value - input_value + output_value;
        self.owed += fee;
        Ok(fee)
    }
}

#[cfg(test)]
mod tests {
    use pc_codec::genesis::Genesis;
    use pc_codec::{MicroEvent, OutPoint, Transfer, TxOut};
    use pc_shard::state::Outcome;

    use super::Model;
    use crate::sim::crypto::{client_public, genesis};

    /// A transfer of client 0 (the model does not check signatures).
    fn spend(input: OutPoint, amount: u64) -> MicroEvent {
        MicroEvent::Transfer(Transfer {
            inputs: vec![input],
            outputs: vec![TxOut {
                amount,
                owner: client_public(1),
            }],
            owner: client_public(0),
            signature: [0; 64],
        })
    }

    #[test]
    fn the_first_spend_wins_and_value_is_conserved() {
        let genesis = genesis(4, 2, 1_000, 10, 26);
        let mut model = Model::new(&genesis);
        let input = Genesis::allocation_out_point(&genesis.network(), 0, 1);
        assert_eq!(model.apply(&spend(input, 990), 0), (Outcome::Applied, 10));
        assert_eq!(
            model.apply(&spend(input, 900), 0),
            (Outcome::UnknownOrSpentInput, 0)
        );
        let foreign = Genesis::allocation_out_point(&genesis.network(), 1, 0);
        assert_eq!(model.apply(&spend(foreign, 1), 0), (Outcome::WrongOwner, 0));
        assert_eq!(model.accounted_value(), model.genesis_supply());
    }
}
