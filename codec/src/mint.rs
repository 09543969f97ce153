//! The arithmetic of the mint chain (DESIGN §5.5): the proof-of-work hash,
//! the reward schedule, the target adjustment and the maturity tiers. Pure
//! functions of the genesis parameters, shared by the shard's apply, the
//! node's template answers and the miner.

use crate::crypto::PublicKeyBytes;
use crate::genesis::{ConsensusParams, Genesis, SUPPLY_CAP_UNITS};
use crate::ids::{context, derive, Hash32};
use crate::types::Mint;

/// Halvings after which the reward is zero (`R0 >> 64` would be undefined).
pub const MAX_HALVINGS: u64 = 64;

/// `pow_hash = derive("mint", network || prev_mint_id || miner || nonce u64)`.
pub fn pow_hash(
    network: &[u8; 8],
    prev_mint_id: &Hash32,
    miner: &PublicKeyBytes,
    nonce: u64,
) -> Hash32 {
    derive(
        context::MINT,
        &[network, prev_mint_id, miner, &nonce.to_le_bytes()],
    )
}

/// The pow hashes of one (network, tip, miner) for many nonces: the
/// derive-key state after the fixed prefix is kept and cloned per nonce
/// (the miner's inner loop).
#[derive(Clone)]
pub struct PowHasher {
    prefix: blake3::Hasher,
}

impl PowHasher {
    /// The hasher of mints on `prev_mint_id` by `miner` under `network`.
    pub fn new(network: &[u8; 8], prev_mint_id: &Hash32, miner: &PublicKeyBytes) -> Self {
        let mut prefix = blake3::Hasher::new_derive_key(context::MINT);
        prefix.update(network);
        prefix.update(prev_mint_id);
        prefix.update(miner);
        PowHasher { prefix }
    }

    /// [`pow_hash`] of `nonce`.
    pub fn hash(&self, nonce: u64) -> Hash32 {
        let mut hasher = self.prefix.clone();
        hasher.update(&nonce.to_le_bytes());
        *hasher.finalize().as_bytes()
    }
}

/// The work of a pow hash: its first 16 bytes, big-endian.
pub fn pow_value(hash: &Hash32) -> u128 {
    let mut high = [0u8; 16];
    high.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(high)
}

impl Mint {
    /// This mint's pow hash under `network`.
    pub fn pow_hash(&self, network: &[u8; 8]) -> Hash32 {
        pow_hash(network, &self.prev_mint_id, &self.miner, self.nonce)
    }
}

/// The reward schedule: `M = CAP - genesis total`, `R0 = floor(M / 2H)`,
/// `reward(n) = min(R0 >> floor(n / H), M - minted)` (0 from the 64th
/// halving on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// `M`: what may ever be minted.
    pub emission: u64,
    /// `R0`: the first reward.
    pub first_reward: u64,
    /// `H`: mints per halving (`>= 1`).
    pub halving: u64,
}

impl Schedule {
    /// The schedule of a validated genesis.
    pub fn of(genesis: &Genesis) -> Self {
        Self::new(genesis.total_value(), genesis.params.mint_halving_mints)
    }

    /// The schedule for a genesis of `genesis_total` units (at most `CAP`)
    /// and `H = halving` (at least 1).
    pub fn new(genesis_total: u128, halving: u64) -> Self {
        let emission = u128::from(SUPPLY_CAP_UNITS).saturating_sub(genesis_total) as u64;
        let halving = halving.max(1);
        Schedule {
            emission,
            first_reward: (u128::from(emission) / (2 * u128::from(halving))) as u64,
            halving,
        }
    }

    /// The reward of mint number `n` (0-based) after `minted` units.
    pub fn reward(&self, n: u64, minted: u64) -> u64 {
        let halvings = n / self.halving;
        let scheduled = if halvings >= MAX_HALVINGS {
            0
        } else {
            self.first_reward >> halvings
        };
        scheduled.min(self.emission.saturating_sub(minted))
    }

    /// Units the first `count` wins minted, exactly (`None` if the schedule
    /// pays fewer than `count` mints).
    pub fn minted_after(&self, count: u64) -> Option<u64> {
        let (mut minted, mut done) = (0u128, 0u64);
        for epoch in 0..MAX_HALVINGS {
            if done == count {
                break;
            }
            let per = u128::from(self.first_reward >> epoch);
            let in_epoch = (count - done).min(self.halving);
            let left = u128::from(self.emission) - minted;
            if per == 0 || left == 0 {
                return None;
            }
            let full = (left / per).min(u128::from(in_epoch));
            minted += full * per;
            done += full as u64;
            if full < u128::from(in_epoch) {
                // One last mint takes the remainder, then nothing is left.
                let rest = u128::from(self.emission) - minted;
                if rest == 0 || done + 1 < count {
                    return None;
                }
                return Some((minted + rest) as u64);
            }
        }
        (done == count).then_some(minted as u64)
    }

    /// The sum of every reward the schedule will ever pay, exactly (per
    /// halving epoch, the `min` applied where the remainder runs out), and
    /// the number of mints that pay anything.
    pub fn total(&self) -> (u128, u128) {
        let mut minted: u128 = 0;
        let mut mints: u128 = 0;
        for epoch in 0..MAX_HALVINGS {
            let per = u128::from(self.first_reward >> epoch);
            if per == 0 {
                break;
            }
            let left = u128::from(self.emission) - minted;
            let full = (left / per).min(u128::from(self.halving));
            minted += full * per;
            mints += full;
            if full < u128::from(self.halving) {
                // The remainder is less than one reward: one last mint
                // takes it (if any) and the schedule is spent.
                let rest = u128::from(self.emission) - minted;
                if rest > 0 {
                    minted += rest;
                    mints += 1;
                }
                break;
            }
        }
        (minted, mints)
    }
}

/// The next target after a win `elapsed` finalized anchors after the
/// previous one: `clamp(floor(T · (15I + A) / 16I), 1, T_max)` with `A =
/// min(elapsed, 3I)`, computed exactly as `(T div D)·X + ((T mod D)·X) div
/// D` (`X = 15I + A`, `D = 16I`; the first term saturates).
pub fn next_target(target: u128, elapsed: u64, interval: u32, target_max: u128) -> u128 {
    let interval = u128::from(interval.max(1));
    let a = u128::from(elapsed).min(3 * interval);
    let x = 15 * interval + a;
    let d = 16 * interval;
    let whole = (target / d).saturating_mul(x);
    let part = (target % d) * x / d;
    whole.saturating_add(part).clamp(1, target_max.max(1))
}

/// Maturity in anchors of a mint won at anchor index `anchor_index`: the
/// tier its index falls in (below the first bound, below the second,
/// otherwise).
pub fn maturity(params: &ConsensusParams, anchor_index: u64) -> u64 {
    let [first, second] = params.maturity_tier_bounds;
    let tier = if anchor_index < first {
        0
    } else if anchor_index < second {
        1
    } else {
        2
    };
    params.maturity_anchors[tier]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: u128 = SUPPLY_CAP_UNITS as u128;

    /// Every reward summed one mint at a time, `u128`.
    fn brute_total(schedule: &Schedule) -> (u128, u128) {
        let (mut minted, mut mints) = (0u64, 0u128);
        let mut n = 0u64;
        loop {
            let reward = schedule.reward(n, minted);
            if reward == 0 {
                break;
            }
            minted += reward;
            mints += 1;
            n += 1;
        }
        (u128::from(minted), mints)
    }

    #[test]
    fn the_default_schedule_never_exceeds_the_cap() {
        let schedule = Schedule::new(0, 210_000);
        assert_eq!(schedule.first_reward, 11_904_761_904);
        let (total, mints) = schedule.total();
        assert_eq!((total, mints), brute_total(&schedule), "closed form = sum");
        assert!(total <= CAP);
        // What is never minted is under 0.2 PC (DESIGN §5.5).
        assert!(CAP - total < 20_000_000, "left {}", CAP - total);
        assert!(mints <= 64 * 210_000);
    }

    #[test]
    fn minted_after_is_the_sum_of_the_first_rewards() {
        for (genesis_total, halving) in
            [(0u128, 3u64), (CAP - 10, 1), (CAP - 1_000, 2), (12_345, 7)]
        {
            let schedule = Schedule::new(genesis_total, halving);
            let (mut minted, mut n) = (0u64, 0u64);
            loop {
                assert_eq!(
                    schedule.minted_after(n),
                    Some(minted),
                    "{genesis_total} {halving} n={n}"
                );
                let reward = schedule.reward(n, minted);
                if reward == 0 || n > 400 {
                    break;
                }
                minted += reward;
                n += 1;
            }
            if schedule.reward(n, minted) == 0 {
                assert_eq!(
                    schedule.minted_after(n + 1),
                    None,
                    "past the last paying mint"
                );
            }
        }
    }

    #[test]
    fn extreme_schedules_stay_within_cap_minus_genesis() {
        for genesis_total in [0u128, 1, 12_345, CAP / 2, CAP - 1_000_000, CAP - 1, CAP] {
            for halving in [1u64, 2, 3, 7, 1_000] {
                let schedule = Schedule::new(genesis_total, halving);
                let (total, mints) = schedule.total();
                assert_eq!(
                    (total, mints),
                    brute_total(&schedule),
                    "genesis {genesis_total}, H {halving}"
                );
                assert!(
                    total <= CAP - genesis_total,
                    "genesis {genesis_total} H {halving}"
                );
                assert!(total + genesis_total <= CAP);
            }
        }
        // H huge: one epoch never ends; the min keeps the sum at M.
        for genesis_total in [0u128, CAP - 3] {
            let schedule = Schedule::new(genesis_total, u64::MAX);
            let (total, _) = schedule.total();
            assert!(total <= CAP - genesis_total);
            assert_eq!(schedule.reward(0, 0), schedule.first_reward);
            assert_eq!(
                schedule.reward(1, schedule.emission),
                0,
                "nothing once all is minted"
            );
        }
        // Past the 64th halving the reward is zero, whatever R0.
        let schedule = Schedule::new(0, 1);
        assert_eq!(schedule.reward(64, 0), 0);
        assert_eq!(schedule.reward(63, 0), schedule.first_reward >> 63);
    }

    #[test]
    fn target_steps_stay_within_15_16_and_18_16_and_the_bounds() {
        let t_max: u128 = 1 << 120;
        let targets = [
            1u128,
            2,
            15,
            16,
            17,
            1 << 64,
            (1 << 108) + 12_345,
            t_max - 1,
            t_max,
            u128::MAX,
        ];
        for interval in [1u32, 2, 3, 10_000, u32::MAX] {
            for target in targets {
                for elapsed in [
                    0u64,
                    1,
                    2,
                    u64::from(interval),
                    2 * u64::from(interval),
                    3 * u64::from(interval),
                    u64::MAX,
                ] {
                    let next = next_target(target, elapsed, interval, t_max);
                    assert!((1..=t_max).contains(&next), "{next} out of [1, T_max]");
                    let target = target.min(t_max);
                    // next/target in [15/16, 18/16] unless a bound clamps.
                    if next > 1 && next < t_max {
                        assert!(next * 16 >= target * 15 - 15, "{target} -> {next}");
                        assert!(next * 16 <= target * 18, "{target} -> {next}");
                    }
                    // Exact: floor(T * X / D) for T small enough to compute directly.
                    if target < 1 << 80 {
                        let i = u128::from(interval);
                        let x = 15 * i + u128::from(elapsed).min(3 * i);
                        let expected = (target * x / (16 * i)).clamp(1, t_max);
                        assert_eq!(next, expected);
                    }
                }
            }
        }
        // On time, the target holds; fast halves of it shrink by 15/16.
        assert_eq!(next_target(1 << 100, 10_000, 10_000, t_max), 1 << 100);
        assert_eq!(
            next_target(1 << 100, 0, 10_000, t_max),
            (1 << 100) / 16 * 15
        );
        assert_eq!(
            next_target(1 << 100, 99_999, 10_000, t_max),
            (1 << 100) / 16 * 18
        );
    }

    #[test]
    fn maturity_follows_the_tier_of_the_anchor_index() {
        let params = ConsensusParams::v0(4, 1);
        assert_eq!(maturity(&params, 0), 50_000);
        assert_eq!(maturity(&params, 9_999_999), 50_000);
        assert_eq!(maturity(&params, 10_000_000), 100_000);
        assert_eq!(maturity(&params, 100_000_000), 200_000);
    }

    #[test]
    fn pow_is_the_big_endian_head_of_a_domain_separated_hash() {
        let hash = pow_hash(&[1; 8], &[2; 32], &[3; 32], 7);
        assert_eq!(
            hash,
            derive(
                context::MINT,
                &[&[1; 8], &[2; 32], &[3; 32], &7u64.to_le_bytes()]
            )
        );
        assert_eq!(pow_value(&hash).to_be_bytes(), hash[..16]);
        assert_ne!(hash, pow_hash(&[1; 8], &[2; 32], &[3; 32], 8));
        let hasher = PowHasher::new(&[1; 8], &[2; 32], &[3; 32]);
        for nonce in [0, 7, u64::MAX] {
            assert_eq!(
                hasher.hash(nonce),
                pow_hash(&[1; 8], &[2; 32], &[3; 32], nonce)
            );
        }
    }
}
