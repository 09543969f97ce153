//! The mint chain of the mint shard (DESIGN §5.5): proof-of-work emission
//! with no ordering power. Mints on the chain's tip that beat the target
//! are candidates of a race; `W_race` finalized rounds after the race opens
//! the lowest `(pow_hash, mint_id)` wins, its reward becomes an output of
//! the miner that matures after its tier's count of finalized anchors, the
//! target adjusts to the anchors the win took, and the tip moves on.
//!
//! Everything is a pure function of the finalized sequence: the anchor
//! index (finalized anchors of the shard) is the only clock.

use foldhash::{HashMap, HashMapExt};

use pc_codec::genesis::{ConsensusParams, Genesis};
use pc_codec::mint::{maturity, next_target, pow_value, Schedule};
use pc_codec::{Hash32, Mint, OutPoint, PublicKeyBytes};

use crate::state::Outcome;

/// The best candidate of an open race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its micro-event id.
    pub mint_id: Hash32,
    /// Its pow hash (the race compares `(pow_hash, mint_id)`).
    pub pow_hash: Hash32,
    /// The miner the reward goes to.
    pub miner: PublicKeyBytes,
    /// Anchor index of the anchor that carried it.
    pub anchor_index: u64,
}

/// A race on the current tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Race {
    /// The round the first candidate was applied in.
    pub opened: u64,
    /// The best candidate so far.
    pub best: Candidate,
}

/// A decided race.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintWin {
    /// The round whose end decided it.
    pub round: u64,
    /// The tip the race was on.
    pub prev_mint_id: Hash32,
    /// The winner.
    pub mint_id: Hash32,
    /// Its miner.
    pub miner: PublicKeyBytes,
    /// The reward (output `(mint_id, 0)`).
    pub reward: u64,
    /// The anchor index from which the output spends.
    pub mature_at: u64,
    /// The mint number (0-based).
    pub number: u64,
}

/// The mint rules a genesis fixes.
#[derive(Debug, Clone)]
struct Rules {
    active: bool,
    params: ConsensusParams,
    schedule: Schedule,
}

/// The chain state of DESIGN §5.5 and the maturity of minted outputs.
#[derive(Debug, Clone)]
pub struct MintChain {
    rules: Rules,
    network: [u8; 8],
    tip: Hash32,
    count: u64,
    target: u128,
    last: u64,
    minted: u64,
    race: Option<Race>,
    /// Minted outputs not yet spent, with the anchor index they mature at.
    mature_at: HashMap<OutPoint, u64>,
}

impl MintChain {
    /// The chain at genesis for `shard` (inactive outside the mint shard:
    /// its tip stays zeros in the state digest).
    pub fn from_genesis(genesis: &Genesis, shard: u16) -> Self {
        let active = shard == genesis.params.mint_shard;
        MintChain {
            rules: Rules {
                active,
                params: genesis.params,
                schedule: Schedule::of(genesis),
            },
            network: genesis.network(),
            tip: genesis.hash(),
            count: 0,
            target: genesis.params.mint_target_initial,
            last: 0,
            minted: 0,
            race: None,
            mature_at: HashMap::new(),
        }
    }

    /// True in the mint shard.
    pub fn active(&self) -> bool {
        self.rules.active
    }

    /// The chain's tip: the last winner's id (the genesis hash before the
    /// first).
    pub fn tip(&self) -> Hash32 {
        self.tip
    }

    /// The tip as the state digest commits it: zeros outside the mint
    /// shard.
    pub fn digest_tip(&self) -> Hash32 {
        if self.rules.active {
            self.tip
        } else {
            [0; 32]
        }
    }

    /// Mints won so far (`n`).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The current target `T`.
    pub fn target(&self) -> u128 {
        self.target
    }

    /// Units minted so far.
    pub fn minted(&self) -> u64 {
        self.minted
    }

    /// The reward the next win pays.
    pub fn next_reward(&self) -> u64 {
        self.rules.schedule.reward(self.count, self.minted)
    }

    /// The reward schedule.
    pub fn schedule(&self) -> &Schedule {
        &self.rules.schedule
    }

    /// The open race, if any.
    pub fn race(&self) -> Option<&Race> {
        self.race.as_ref()
    }

    /// Anchor index of the last win (0 before the first).
    pub fn last_win_index(&self) -> u64 {
        self.last
    }

    /// The anchor index `out_point` matures at, if it is a minted output
    /// not yet spent.
    pub fn mature_at(&self, out_point: &OutPoint) -> Option<u64> {
        self.mature_at.get(out_point).copied()
    }

    /// Minted outputs not yet spent.
    pub fn tracked_outputs(&self) -> usize {
        self.mature_at.len()
    }

    /// True if every tracked minted output satisfies `exists` (a loaded
    /// snapshot's outputs must be in its UTXO slice).
    pub fn tracked_all(&self, exists: impl Fn(&OutPoint) -> bool) -> bool {
        self.mature_at.keys().all(exists)
    }

    /// A spent minted output leaves the maturity table.
    pub fn note_spent(&mut self, out_point: &OutPoint) {
        if !self.mature_at.is_empty() {
            self.mature_at.remove(out_point);
        }
    }

    /// What a submitted mint would be at apply now (the node's pre-check,
    /// DESIGN §5.5): `Ok((pow, pow_hash))` for a candidate, else the
    /// refusing outcome.
    pub fn precheck(&self, mint: &Mint, mint_id: &Hash32) -> Result<(u128, Hash32), Outcome> {
        self.judge(mint, mint_id)
    }

    fn judge(&self, mint: &Mint, mint_id: &Hash32) -> Result<(u128, Hash32), Outcome> {
        if !self.rules.active {
            // Validation keeps mints out of other shards; defensive.
            return Err(Outcome::MintStale);
        }
        if self.next_reward() == 0 {
            return Err(Outcome::MintExhausted);
        }
        if mint.prev_mint_id != self.tip {
            return Err(Outcome::MintStale);
        }
        let pow_hash = mint.pow_hash(&self.network);
        let pow = pow_value(&pow_hash);
        if pow >= self.target {
            return Err(Outcome::MintInsufficientWork);
        }
        if self
            .race
            .as_ref()
            .is_some_and(|race| race.best.mint_id == *mint_id)
        {
            return Err(Outcome::MintDuplicate);
        }
        Ok((pow, pow_hash))
    }

    /// Applies mint `mint` (id `mint_id`) carried by the anchor of index
    /// `anchor_index` in round `round`: 12 (candidate) or why not.
    pub fn apply(
        &mut self,
        mint: &Mint,
        mint_id: &Hash32,
        round: u64,
        anchor_index: u64,
    ) -> Outcome {
        let pow_hash = match self.judge(mint, mint_id) {
            Ok((_, pow_hash)) => pow_hash,
            Err(outcome) => return outcome,
        };
        let candidate = Candidate {
            mint_id: *mint_id,
            pow_hash,
            miner: mint.miner,
            anchor_index,
        };
        match &mut self.race {
            None => {
                self.race = Some(Race {
                    opened: round,
                    best: candidate,
                });
            }
            Some(race) => {
                if (candidate.pow_hash, candidate.mint_id) < (race.best.pow_hash, race.best.mint_id)
                {
                    race.best = candidate;
                }
            }
        }
        Outcome::MintCandidate
    }

    /// Ends round `round`: decides the race if its window has passed. The
    /// caller creates the winner's output.
    pub fn finish_round(&mut self, round: u64) -> Option<MintWin> {
        let race = self.race.as_ref()?;
        let window = u64::from(self.rules.params.mint_race_rounds.max(1));
        if round < race.opened.saturating_add(window - 1) {
            return None;
        }
        let race = self.race.take()?;
        let best = race.best;
        let reward = self.next_reward();
        let a_w = best.anchor_index;
        let mature_at = a_w.saturating_add(maturity(&self.rules.params, a_w));
        let win = MintWin {
            round,
            prev_mint_id: self.tip,
            mint_id: best.mint_id,
            miner: best.miner,
            reward,
            mature_at,
            number: self.count,
        };
        self.target = next_target(
            self.target,
            a_w.saturating_sub(self.last),
            self.rules.params.mint_interval_anchors,
            self.rules.params.mint_target_max,
        );
        self.last = a_w;
        self.count += 1;
        self.minted += reward;
        self.tip = best.mint_id;
        // One entry per won mint until it is spent: at most the schedule's
        // count of mints (64 H), one per I anchors.
        self.mature_at.insert(
            OutPoint {
                tx_id: best.mint_id,
                index: 0,
            },
            mature_at,
        );
        Some(win)
    }

    /// The mint section of a snapshot (immature outputs in map order; the
    /// writer sorts them).
    pub fn to_image(&self) -> crate::snapshot::MintImage {
        use crate::snapshot::{MintImage, MintOutputImage, RaceImage};
        MintImage {
            tip: self.tip,
            count: self.count,
            target: self.target.to_le_bytes(),
            last: self.last,
            minted: self.minted,
            race: self.race.as_ref().map(|race| RaceImage {
                opened: race.opened,
                mint_id: race.best.mint_id,
                pow_hash: race.best.pow_hash,
                miner: race.best.miner,
                anchor_index: race.best.anchor_index,
            }),
            outputs: self
                .mature_at
                .iter()
                .map(|(out_point, at)| MintOutputImage {
                    tx_id: out_point.tx_id,
                    index: out_point.index,
                    mature_at: *at,
                })
                .collect(),
        }
    }

    /// Loads a snapshot's mint section, checked against the rules: the
    /// target within `[1, T_max]`, the minted sum within the schedule, no
    /// chain outside the mint shard.
    pub fn load_image(&mut self, image: crate::snapshot::MintImage) -> Result<(), String> {
        let target = u128::from_le_bytes(image.target);
        if !(1..=self.rules.params.mint_target_max).contains(&target) {
            return Err(format!("mint target {target:#x} outside [1, T_max]"));
        }
        if u128::from(image.minted) > u128::from(self.rules.schedule.emission) {
            return Err(format!(
                "{} units minted, more than the schedule's {}",
                image.minted, self.rules.schedule.emission
            ));
        }
        if !self.rules.active
            && (image.count != 0 || image.race.is_some() || !image.outputs.is_empty())
        {
            return Err("a mint chain outside the mint shard".into());
        }
        if u128::from(image.count) < image.outputs.len() as u128 {
            return Err(format!(
                "{} minted outputs tracked after {} mints",
                image.outputs.len(),
                image.count
            ));
        }
        // Loaded into a genesis state: its tip is the genesis hash, which
        // a chain without mints still has.
        if image.count == 0 && image.tip != self.tip {
            return Err("a mint tip other than the genesis hash before any mint".into());
        }
        if let Some(race) = &image.race {
            // Only the target bound can be checked here (the nonce is not
            // kept); the image as a whole is checked by its snapshot root.
            if pow_value(&race.pow_hash) >= target {
                return Err("the race's best pow is not below the target".into());
            }
            if self.rules.schedule.reward(image.count, image.minted) == 0 {
                return Err("a race open after the reward schedule is spent".into());
            }
            if !pc_codec::crypto::is_valid_public_key(&race.miner) {
                return Err("the race's miner is not a valid key".into());
            }
            if race.anchor_index < image.last {
                return Err("the race's candidate comes before the last win".into());
            }
        }
        let mut mature_at = HashMap::with_capacity(image.outputs.len());
        for output in image.outputs {
            let out_point = OutPoint {
                tx_id: output.tx_id,
                index: output.index,
            };
            if mature_at.insert(out_point, output.mature_at).is_some() {
                return Err(format!(
                    "minted output {} listed twice",
                    pc_codec::ids::to_hex(&output.tx_id)
                ));
            }
        }
        self.tip = image.tip;
        self.count = image.count;
        self.target = target;
        self.last = image.last;
        self.minted = image.minted;
        self.race = image.race.map(|race| Race {
            opened: race.opened,
            best: Candidate {
                mint_id: race.mint_id,
                pow_hash: race.pow_hash,
                miner: race.miner,
                anchor_index: race.anchor_index,
            },
        });
        self.mature_at = mature_at;
        Ok(())
    }
}

/// Mints a node remembers the fate of (DESIGN §7 `MintStatus`).
pub const MINT_STATUS_KEPT: usize = 1_024;
/// Submitted mints a seat holds per tip: the best by pow.
pub const MINT_POOL_PER_TIP: usize = 16;

/// A mint's fate as `MintStatus` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MintState {
    /// Not known here.
    Unknown = 0,
    /// Submitted here, not yet finalized.
    Pending = 1,
    /// Finalized as a candidate of an open race.
    Candidate = 2,
    /// Won its race.
    Won = 3,
    /// Lost its race.
    Lost = 4,
    /// Finalized stale, without enough work, exhausted or a duplicate.
    Rejected = 5,
}

/// What is known of one mint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MintStatus {
    /// Its state.
    pub state: MintState,
    /// The round it was finalized (or decided) in; 0 while pending.
    pub round: u64,
    /// Its reward (won only).
    pub reward: u64,
    /// Anchor index its output matures at (won only).
    pub mature_at: u64,
}

/// The last [`MINT_STATUS_KEPT`] mints submitted here or finalized as
/// candidates, and the pool of submitted mints on the tip (not consensus
/// state: each node keeps its own, a restart forgets pending ones). Mints
/// nobody submitted here that finalize refused are not kept: a Byzantine
/// proposer's flood of cheap stale mints cannot push real ones out.
#[derive(Debug, Default)]
pub struct MintTracker {
    /// (mint id, prev mint id, status), oldest first.
    kept: std::collections::VecDeque<(Hash32, Hash32, MintStatus)>,
    /// The tip the pool holds mints of, and their (pow, id).
    pool_tip: Hash32,
    pool: Vec<(u128, Hash32)>,
}

impl MintTracker {
    /// The status of `mint_id`.
    pub fn status(&self, mint_id: &Hash32) -> MintStatus {
        self.kept
            .iter()
            .rev()
            .find(|(id, _, _)| id == mint_id)
            .map_or(
                MintStatus {
                    state: MintState::Unknown,
                    round: 0,
                    reward: 0,
                    mature_at: 0,
                },
                |(_, _, status)| *status,
            )
    }

    fn set(&mut self, mint_id: Hash32, prev: Hash32, status: MintStatus) {
        if let Some(entry) = self.kept.iter_mut().rev().find(|(id, _, _)| *id == mint_id) {
            entry.2 = status;
            return;
        }
        if self.kept.len() >= MINT_STATUS_KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back((mint_id, prev, status));
    }

    /// Takes a submitted mint with `pow` on `tip` into the pool: false if
    /// it is there already or the pool holds [`MINT_POOL_PER_TIP`] better
    /// ones (the worst is dropped from the count when a better one comes;
    /// it may still be carried).
    pub fn admit(&mut self, tip: Hash32, pow: u128, mint_id: Hash32) -> bool {
        if self.pool_tip != tip {
            self.pool_tip = tip;
            self.pool.clear();
        }
        if self.pool.iter().any(|(_, id)| *id == mint_id) {
            return false;
        }
        if self.pool.len() >= MINT_POOL_PER_TIP {
            let worst = self.pool.iter().max().copied().expect("pool is full");
            if (pow, mint_id) >= worst {
                return false;
            }
            self.pool.retain(|entry| *entry != worst);
        }
        self.pool.push((pow, mint_id));
        self.set(
            mint_id,
            tip,
            MintStatus {
                state: MintState::Pending,
                round: 0,
                reward: 0,
                mature_at: 0,
            },
        );
        true
    }

    /// Notes a finalized round's mints and its decided race.
    pub fn note_round(
        &mut self,
        round: u64,
        mints: &[(Hash32, Outcome)],
        prev: Hash32,
        win: Option<&MintWin>,
    ) {
        for (id, outcome) in mints {
            let state = if *outcome == Outcome::MintCandidate {
                MintState::Candidate
            } else {
                MintState::Rejected
            };
            // A refused mint is noted only if it was submitted here (a
            // duplicate of a known candidate says nothing new of it).
            if state == MintState::Rejected && self.status(id).state != MintState::Pending {
                continue;
            }
            self.set(
                *id,
                prev,
                MintStatus {
                    state,
                    round,
                    reward: 0,
                    mature_at: 0,
                },
            );
        }
        if let Some(win) = win {
            for (id, on, status) in &mut self.kept {
                if *on == win.prev_mint_id
                    && matches!(status.state, MintState::Pending | MintState::Candidate)
                {
                    *status = if *id == win.mint_id {
                        MintStatus {
                            state: MintState::Won,
                            round: win.round,
                            reward: win.reward,
                            mature_at: win.mature_at,
                        }
                    } else {
                        MintStatus {
                            state: MintState::Lost,
                            round: win.round,
                            reward: 0,
                            mature_at: 0,
                        }
                    };
                }
            }
        }
    }
}
