//! The genesis of a network (DESIGN §3.1, §9): consensus parameters, the
//! committee and the allocations; its validation and its canonical hash
//! input. Parsing the genesis TOML is the caller's job; this module is pure.

use crate::crypto::{is_valid_public_key, PublicKeyBytes};
use crate::ids::{context, derive, to_hex, Hash32};
use crate::types::{OutPoint, MAX_SEATS};
use crate::wire::{put_count, Decode, DecodeError, Encode, Reader};

/// Units per PC.
pub const UNITS_PER_PC: u64 = 100_000_000;
/// Hard cap of the supply in units (50 000 000 PC).
pub const SUPPLY_CAP_UNITS: u64 = 50_000_000 * UNITS_PER_PC;
/// Most outputs one allocation line may create (output indexes are `u16`).
pub const MAX_OUTPUTS_PER_ALLOCATION: u32 = 1 << 16;
const MAX_VALIDATORS: usize = 1 << 22;
const MAX_ALLOCATIONS: usize = 1 << 24;

/// Consensus parameters a genesis may override (DESIGN §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsensusParams {
    /// Committee seats per shard, `1..=64`.
    pub k: u8,
    /// Number of shards, `>= 1`.
    pub shards: u16,
    /// Coin-round period of the fame vote (`C`).
    pub coin_round_period: u32,
    /// Non-ancient round window (`G`).
    pub ancient_window_rounds: u32,
    /// Fee split percentages: base, proposer, performance, attestor (sum 100).
    pub fee_split_pct: [u8; 4],
    /// Ack-distance weight `alpha = numerator / denominator`.
    pub ack_alpha: [u32; 2],
    /// Largest ack distance that earns a weight (`D_max`).
    pub ack_distance_max: u8,
    /// Mint maturity in finalized anchors per tier.
    pub maturity_anchors: [u64; 3],
    /// Global-anchor-index bounds that select the maturity tier.
    pub maturity_tier_bounds: [u64; 2],
    /// The shard that holds the mint chain (DESIGN §5.5).
    pub mint_shard: u16,
    /// `I`: finalized anchors of the mint shard one mint should take.
    pub mint_interval_anchors: u32,
    /// `H`: mints per halving of the reward.
    pub mint_halving_mints: u64,
    /// `W_race`: finalized rounds a mint race stays open.
    pub mint_race_rounds: u8,
    /// `T_init`: the first mint target (a pow below it wins).
    pub mint_target_initial: u128,
    /// `T_max`: the easiest target.
    pub mint_target_max: u128,
    /// `N_snap`: rounds between certified snapshots (DESIGN §6.1).
    pub snapshot_interval_rounds: u32,
    /// `W_slash`: finalized anchors within which slashes of one class
    /// against a seat count towards its repeat tier (DESIGN §5.4).
    pub slash_window_anchors: u64,
    /// `W_cool`: finalized anchors a slashed seat earns no rewards for.
    pub slash_cooldown_anchors: u64,
    /// `W_claim`: finalized anchors after a round during which a claim
    /// may use its payout root (DESIGN §5.3).
    pub claim_window_anchors: u64,
}

impl ConsensusParams {
    /// The v0 defaults for `k` seats and `shards` shards.
    pub fn v0(k: u8, shards: u16) -> Self {
        ConsensusParams {
            k,
            shards,
            coin_round_period: 10,
            ancient_window_rounds: 26,
            fee_split_pct: [50, 10, 20, 20],
            ack_alpha: [13, 20],
            ack_distance_max: 8,
            maturity_anchors: [50_000, 100_000, 200_000],
            maturity_tier_bounds: [10_000_000, 100_000_000],
            mint_shard: 0,
            mint_interval_anchors: 10_000,
            mint_halving_mints: 210_000,
            mint_race_rounds: 2,
            mint_target_initial: 1 << 108,
            mint_target_max: 1 << 120,
            snapshot_interval_rounds: 2_048,
            slash_window_anchors: 200_000,
            slash_cooldown_anchors: 50_000,
            claim_window_anchors: 50_000,
        }
    }

    /// Tolerated Byzantine seats per shard: `floor((k - 1) / 3)`.
    pub fn f(&self) -> usize {
        (usize::from(self.k).max(1) - 1) / 3
    }

    /// The supermajority `q = k - f`.
    pub fn q(&self) -> usize {
        usize::from(self.k) - self.f()
    }
}

/// One committee seat: seat `seat` of shard `shard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeatAssignment {
    /// The shard.
    pub shard: u16,
    /// The seat index in the shard's committee.
    pub seat: u8,
}

/// A validator: its key, bond and seats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisValidator {
    /// The x-only key that signs this validator's anchors.
    pub key: PublicKeyBytes,
    /// Locked stake in units.
    pub bond: u64,
    /// Its seats, at most one per shard.
    pub seats: Vec<SeatAssignment>,
}

/// Genesis outputs: `outputs` outputs of `amount` units each, owned by `owner`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenesisAllocation {
    /// Owner of the outputs.
    pub owner: PublicKeyBytes,
    /// Units per output.
    pub amount: u64,
    /// Number of outputs, `1..=65536`.
    pub outputs: u32,
}

/// Everything the genesis hash commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genesis {
    /// Consensus parameters.
    pub params: ConsensusParams,
    /// `blake3_32(genesis_note)`, the seed's commitment.
    pub note_commitment: Hash32,
    /// The committee.
    pub validators: Vec<GenesisValidator>,
    /// The initial outputs.
    pub allocations: Vec<GenesisAllocation>,
}

/// Why a genesis is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GenesisError {
    /// `k` outside `1..=64`.
    #[error("consensus.k = {k} is outside 1..=64")]
    SeatsOutOfRange {
        /// The value given.
        k: u8,
    },
    /// `shards = 0`.
    #[error("consensus.shards must be at least 1")]
    NoShards,
    /// Fee split does not sum to 100 %.
    #[error("fee split {split:?} does not sum to 100")]
    FeeSplit {
        /// The split given.
        split: [u8; 4],
    },
    /// A parameter that must be positive is zero.
    #[error("consensus parameter {name} must be positive")]
    ZeroParameter {
        /// The parameter.
        name: &'static str,
    },
    /// A parameter is below the least value consensus is safe with.
    #[error("consensus parameter {name} is {value}, at least {min} is needed")]
    ParameterTooSmall {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: u64,
        /// The least value allowed.
        min: u64,
    },
    /// `ack_alpha` and `ack_distance_max` make ack-distance weights too
    /// large to split a fee exactly.
    #[error(
        "ack_alpha {alpha:?} with ack_distance_max {max}: max(alpha)^(D_max - 1) exceeds 2^58"
    )]
    AckWeightsTooLarge {
        /// The weight given.
        alpha: [u32; 2],
        /// The largest distance given.
        max: u8,
    },
    /// `T_init > T_max`.
    #[error("mint_target_initial {initial:#x} exceeds mint_target_max {max:#x}")]
    MintTargets {
        /// `T_init`.
        initial: u128,
        /// `T_max`.
        max: u128,
    },
    /// `mint_shard` names no shard.
    #[error("mint_shard {shard} is not below shards = {shards}")]
    MintShard {
        /// The shard given.
        shard: u16,
        /// Shard count.
        shards: u16,
    },
    /// A validator holds no seat (its bond would belong to no shard).
    #[error("validators[{index}] holds no seat")]
    NoSeat {
        /// Validator index.
        index: usize,
    },
    /// A validator key is not a curve point.
    #[error("validators[{index}].key {key} is not a valid x-only public key")]
    InvalidValidatorKey {
        /// Index in the validator list.
        index: usize,
        /// Hex of the key.
        key: String,
    },
    /// The same key appears twice.
    #[error("validators[{index}].key {key} duplicates an earlier validator")]
    DuplicateValidatorKey {
        /// Index of the second occurrence.
        index: usize,
        /// Hex of the key.
        key: String,
    },
    /// A seat outside the committee or the shard range.
    #[error("validators[{index}] holds seat {seat} of shard {shard}, outside {shards} shards x {k} seats")]
    SeatOutOfRange {
        /// Validator index.
        index: usize,
        /// Shard named.
        shard: u16,
        /// Seat named.
        seat: u8,
        /// Shard count.
        shards: u16,
        /// Seat count.
        k: u8,
    },
    /// Two validators (or one twice) claim one seat.
    #[error("seat {seat} of shard {shard} is assigned twice (validators[{index}])")]
    SeatTakenTwice {
        /// Validator index of the second claim.
        index: usize,
        /// Shard.
        shard: u16,
        /// Seat.
        seat: u8,
    },
    /// A validator holds two seats in one shard.
    #[error("validators[{index}] holds two seats in shard {shard}")]
    TwoSeatsInShard {
        /// Validator index.
        index: usize,
        /// Shard.
        shard: u16,
    },
    /// A seat no validator holds.
    #[error("seat {seat} of shard {shard} is not filled by any validator")]
    UnfilledSeat {
        /// Shard.
        shard: u16,
        /// Seat.
        seat: u8,
    },
    /// An allocation with a bad owner, zero amount or output count.
    #[error("allocations[{index}]: {reason}")]
    InvalidAllocation {
        /// Allocation index.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The allocations exceed the supply cap.
    #[error("allocations and bonds total more than the supply cap of {SUPPLY_CAP_UNITS} units")]
    SupplyOverCap,
}

impl Genesis {
    /// Checks every rule of DESIGN §9 (the note commitment is checked by
    /// whoever holds the raw note).
    pub fn validate(&self) -> Result<(), GenesisError> {
        self.validate_params()?;
        self.validate_committee()?;
        self.validate_allocations()
    }

    fn validate_params(&self) -> Result<(), GenesisError> {
        let p = &self.params;
        if p.k == 0 || usize::from(p.k) > MAX_SEATS {
            return Err(GenesisError::SeatsOutOfRange { k: p.k });
        }
        if p.shards == 0 {
            return Err(GenesisError::NoShards);
        }
        if p.fee_split_pct.iter().map(|x| u32::from(*x)).sum::<u32>() != 100 {
            return Err(GenesisError::FeeSplit {
                split: p.fee_split_pct,
            });
        }
        for (name, value) in [
            ("coin_round_period", u64::from(p.coin_round_period)),
            ("ancient_window_rounds", u64::from(p.ancient_window_rounds)),
            ("ack_alpha denominator", u64::from(p.ack_alpha[1])),
            ("slash_window_anchors", p.slash_window_anchors),
            ("slash_cooldown_anchors", p.slash_cooldown_anchors),
            ("claim_window_anchors", p.claim_window_anchors),
            ("mint_interval_anchors", u64::from(p.mint_interval_anchors)),
            ("mint_halving_mints", p.mint_halving_mints),
            ("mint_race_rounds", u64::from(p.mint_race_rounds)),
            ("mint_target_initial", u64::from(p.mint_target_initial != 0)),
            (
                "snapshot_interval_rounds",
                u64::from(p.snapshot_interval_rounds),
            ),
        ] {
            if value == 0 {
                return Err(GenesisError::ZeroParameter { name });
            }
        }
        if p.mint_target_initial > p.mint_target_max {
            return Err(GenesisError::MintTargets {
                initial: p.mint_target_initial,
                max: p.mint_target_max,
            });
        }
        if p.mint_shard >= p.shards {
            return Err(GenesisError::MintShard {
                shard: p.mint_shard,
                shards: p.shards,
            });
        }
        // Virtual voting needs a normal round after every coin round and at
        // least one between (Baird: c > 2); with C = 2 a decided round can
        // end without a famous witness. The window needs two rounds.
        for (name, value, min) in [
            ("coin_round_period", u64::from(p.coin_round_period), 3),
            (
                "ancient_window_rounds",
                u64::from(p.ancient_window_rounds),
                2,
            ),
        ] {
            if value < min {
                return Err(GenesisError::ParameterTooSmall { name, value, min });
            }
        }
        // The performance pool is split by integer weights
        // `num^(d-1) * den^(D_max-d)`, multiplied by a pool of up to 2^64
        // units and summed over 64 seats in u128: the largest weight must
        // stay within 2^58.
        let base = u128::from(p.ack_alpha[0].max(p.ack_alpha[1]));
        let exponent = u32::from(p.ack_distance_max.max(1) - 1);
        if base.checked_pow(exponent).is_none_or(|w| w > 1 << 58) {
            return Err(GenesisError::AckWeightsTooLarge {
                alpha: p.ack_alpha,
                max: p.ack_distance_max,
            });
        }
        Ok(())
    }

    fn validate_committee(&self) -> Result<(), GenesisError> {
        let (k, shards) = (self.params.k, self.params.shards);
        let mut keys: Vec<(PublicKeyBytes, usize)> = Vec::with_capacity(self.validators.len());
        let mut holder = vec![None::<usize>; usize::from(shards) * usize::from(k)];
        for (index, validator) in self.validators.iter().enumerate() {
            if !is_valid_public_key(&validator.key) {
                return Err(GenesisError::InvalidValidatorKey {
                    index,
                    key: to_hex(&validator.key),
                });
            }
            keys.push((validator.key, index));
            if validator.seats.is_empty() {
                return Err(GenesisError::NoSeat { index });
            }
            let mut shards_held: Vec<u16> = Vec::with_capacity(validator.seats.len());
            for seat in &validator.seats {
                if seat.shard >= shards || seat.seat >= k {
                    return Err(GenesisError::SeatOutOfRange {
                        index,
                        shard: seat.shard,
                        seat: seat.seat,
                        shards,
                        k,
                    });
                }
                let slot =
                    &mut holder[usize::from(seat.shard) * usize::from(k) + usize::from(seat.seat)];
                if slot.is_some() {
                    return Err(GenesisError::SeatTakenTwice {
                        index,
                        shard: seat.shard,
                        seat: seat.seat,
                    });
                }
                *slot = Some(index);
                shards_held.push(seat.shard);
            }
            shards_held.sort_unstable();
            if let Some(pair) = shards_held.windows(2).find(|w| w[0] == w[1]) {
                return Err(GenesisError::TwoSeatsInShard {
                    index,
                    shard: pair[0],
                });
            }
        }
        keys.sort_unstable();
        if let Some(pair) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
            let index = pair[0].1.max(pair[1].1);
            return Err(GenesisError::DuplicateValidatorKey {
                index,
                key: to_hex(&pair[0].0),
            });
        }
        if let Some(position) = holder.iter().position(Option::is_none) {
            return Err(GenesisError::UnfilledSeat {
                shard: (position / usize::from(k)) as u16,
                seat: (position % usize::from(k)) as u8,
            });
        }
        Ok(())
    }

    fn validate_allocations(&self) -> Result<(), GenesisError> {
        // Allocations and every bond, summed in u128 (DESIGN §3.1): bonds
        // are value too, held by the shards as `bonded`.
        let mut total: u128 = self.validators.iter().map(|v| u128::from(v.bond)).sum();
        for (index, allocation) in self.allocations.iter().enumerate() {
            let invalid = |reason| GenesisError::InvalidAllocation { index, reason };
            if !is_valid_public_key(&allocation.owner) {
                return Err(invalid("owner is not a valid x-only public key"));
            }
            if allocation.amount == 0 {
                return Err(invalid("amount must be positive"));
            }
            if allocation.outputs == 0 || allocation.outputs > MAX_OUTPUTS_PER_ALLOCATION {
                return Err(invalid("outputs must be in 1..=65536"));
            }
            total += u128::from(allocation.amount) * u128::from(allocation.outputs);
        }
        if total > u128::from(SUPPLY_CAP_UNITS) {
            return Err(GenesisError::SupplyOverCap);
        }
        Ok(())
    }

    /// `derive("genesis", canonical(self))`.
    pub fn hash(&self) -> Hash32 {
        derive(context::GENESIS, &[&self.to_bytes()])
    }

    /// The network id: the first 8 bytes of the genesis hash.
    pub fn network(&self) -> [u8; 8] {
        let hash = self.hash();
        let mut network = [0u8; 8];
        network.copy_from_slice(&hash[..8]);
        network
    }

    /// The committee of `shard`: the key of each seat, by seat index.
    /// `None` if a seat is unfilled (an unvalidated genesis).
    pub fn committee(&self, shard: u16) -> Option<Vec<PublicKeyBytes>> {
        let mut seats = vec![None; usize::from(self.params.k)];
        for validator in &self.validators {
            for seat in validator.seats.iter().filter(|s| s.shard == shard) {
                *seats.get_mut(usize::from(seat.seat))? = Some(validator.key);
            }
        }
        seats.into_iter().collect()
    }

    /// The bond of each seat of `shard`, by seat index (DESIGN §5.4): a
    /// validator's bond split over its seats, `floor(bond / n) + 1` for
    /// the first `bond mod n` seats in ascending shard order and
    /// `floor(bond / n)` for the others. `None` if a seat is unfilled.
    pub fn seat_bonds(&self, shard: u16) -> Option<Vec<u64>> {
        let mut bonds = vec![None; usize::from(self.params.k)];
        for validator in &self.validators {
            let mut shards: Vec<u16> = validator.seats.iter().map(|s| s.shard).collect();
            shards.sort_unstable();
            let n = shards.len() as u64;
            let Some(rank) = shards.iter().position(|s| *s == shard) else {
                continue;
            };
            let bond = validator.bond / n + u64::from((rank as u64) < validator.bond % n);
            for seat in validator.seats.iter().filter(|s| s.shard == shard) {
                *bonds.get_mut(usize::from(seat.seat))? = Some(bond);
            }
        }
        bonds.into_iter().collect()
    }

    /// The genesis total of DESIGN §5.5: every allocation and every bond,
    /// in u128 (at most `CAP` in a validated genesis).
    pub fn total_value(&self) -> u128 {
        let bonds: u128 = self.validators.iter().map(|v| u128::from(v.bond)).sum();
        let allocated: u128 = self
            .allocations
            .iter()
            .map(|a| u128::from(a.amount) * u128::from(a.outputs))
            .sum();
        bonds + allocated
    }

    /// Total units allocated at genesis.
    pub fn total_allocated(&self) -> u64 {
        self.allocations
            .iter()
            .map(|a| a.amount.saturating_mul(u64::from(a.outputs)))
            .fold(0, u64::saturating_add)
    }

    /// The out point of output `output` of allocation `allocation`: tx id
    /// `derive("tx", network || "genesis" || allocation as u32 LE)`.
    pub fn allocation_out_point(network: &[u8; 8], allocation: u32, output: u16) -> OutPoint {
        OutPoint {
            tx_id: derive(
                context::TX,
                &[network, b"genesis", &allocation.to_le_bytes()],
            ),
            index: output,
        }
    }
}

impl Encode for ConsensusParams {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.k);
        out.extend_from_slice(&self.shards.to_le_bytes());
        out.extend_from_slice(&self.coin_round_period.to_le_bytes());
        out.extend_from_slice(&self.ancient_window_rounds.to_le_bytes());
        out.extend_from_slice(&self.fee_split_pct);
        for value in self.ack_alpha {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.push(self.ack_distance_max);
        for value in self
            .maturity_anchors
            .iter()
            .chain(&self.maturity_tier_bounds)
        {
            out.extend_from_slice(&value.to_le_bytes());
        }
        // v1's mint and snapshot parameters, in DESIGN §9's order.
        out.extend_from_slice(&self.mint_shard.to_le_bytes());
        out.extend_from_slice(&self.mint_interval_anchors.to_le_bytes());
        out.extend_from_slice(&self.mint_halving_mints.to_le_bytes());
        out.push(self.mint_race_rounds);
        out.extend_from_slice(&self.mint_target_initial.to_le_bytes());
        out.extend_from_slice(&self.mint_target_max.to_le_bytes());
        out.extend_from_slice(&self.snapshot_interval_rounds.to_le_bytes());
        for value in [
            self.slash_window_anchors,
            self.slash_cooldown_anchors,
            self.claim_window_anchors,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}

impl Decode for ConsensusParams {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ConsensusParams {
            k: reader.u8("k")?,
            shards: reader.u16("shards")?,
            coin_round_period: reader.u32("coin round period")?,
            ancient_window_rounds: reader.u32("ancient window")?,
            fee_split_pct: reader.array("fee split")?,
            ack_alpha: [
                reader.u32("alpha numerator")?,
                reader.u32("alpha denominator")?,
            ],
            ack_distance_max: reader.u8("ack distance max")?,
            maturity_anchors: [
                reader.u64("maturity tier 1")?,
                reader.u64("maturity tier 2")?,
                reader.u64("maturity tier 3")?,
            ],
            maturity_tier_bounds: [reader.u64("tier bound 1")?, reader.u64("tier bound 2")?],
            mint_shard: reader.u16("mint shard")?,
            mint_interval_anchors: reader.u32("mint interval")?,
            mint_halving_mints: reader.u64("halving period")?,
            mint_race_rounds: reader.u8("race window")?,
            mint_target_initial: u128::from_le_bytes(reader.array("initial target")?),
            mint_target_max: u128::from_le_bytes(reader.array("easiest target")?),
            snapshot_interval_rounds: reader.u32("snapshot interval")?,
            slash_window_anchors: reader.u64("slash window")?,
            slash_cooldown_anchors: reader.u64("cool-down")?,
            claim_window_anchors: reader.u64("claim window")?,
        })
    }
}

impl Encode for SeatAssignment {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.shard.to_le_bytes());
        out.push(self.seat);
    }
}

impl Decode for SeatAssignment {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(SeatAssignment {
            shard: reader.u16("seat shard")?,
            seat: reader.u8("seat index")?,
        })
    }
}

impl Encode for GenesisValidator {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&self.bond.to_le_bytes());
        crate::wire::put_list(out, &self.seats);
    }
}

impl Decode for GenesisValidator {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GenesisValidator {
            key: reader.array("validator key")?,
            bond: reader.u64("validator bond")?,
            seats: reader.list("validator seats", 0, usize::from(u16::MAX), 3)?,
        })
    }
}

impl Encode for GenesisAllocation {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.owner);
        out.extend_from_slice(&self.amount.to_le_bytes());
        out.extend_from_slice(&self.outputs.to_le_bytes());
    }
}

impl Decode for GenesisAllocation {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(GenesisAllocation {
            owner: reader.array("allocation owner")?,
            amount: reader.u64("allocation amount")?,
            outputs: reader.u32("allocation outputs")?,
        })
    }
}

impl Encode for Genesis {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(crate::types::PROTOCOL_VERSION);
        self.params.encode(out);
        out.extend_from_slice(&self.note_commitment);
        crate::wire::put_list(out, &self.validators);
        put_count(out, self.allocations.len());
        for allocation in &self.allocations {
            allocation.encode(out);
        }
    }
}

impl Decode for Genesis {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let offset = reader.offset();
        let version = reader.u8("genesis version")?;
        if version != crate::types::PROTOCOL_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                offset,
                what: "genesis",
                version,
            });
        }
        Ok(Genesis {
            params: ConsensusParams::decode(reader)?,
            note_commitment: reader.array("note commitment")?,
            validators: reader.list("validators", 0, MAX_VALIDATORS, 32 + 8 + 1)?,
            allocations: reader.list("allocations", 0, MAX_ALLOCATIONS, 32 + 8 + 4)?,
        })
    }
}
