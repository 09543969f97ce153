//! The configuration of one seed, all drawn from the seed's PRNG: committee
//! size, signature scheme, network behaviour, durability, limits, client
//! load and the fault plan (Byzantine seats, partitions, crashes, a late
//! joiner).

use pc_shard::machine::ShardLimits;

use crate::sim::blocked::Blocked;
use crate::sim::byzantine::Mode;
use crate::sim::network::NetworkConfig;
use crate::sim::node::Durability;
use crate::sim::rng::Rng;

/// Committee sizes a default run mixes, chosen by `seed % 16`: every size
/// in every block of sixteen seeds. `SIM_SEATS` overrides it.
pub const SEAT_MIX: [usize; 16] = [1, 4, 7, 4, 1, 7, 4, 4, 1, 4, 7, 4, 1, 7, 4, 7];

/// The production committee size, which a default run mixes in at
/// `seed % 128 == 7` (in place of a k = 4 seed of [`SEAT_MIX`]: seeds 7 and
/// 135 of a default run, one with the short window and coin period, one
/// with the genesis values). Seeds of a committee larger than 7 are
/// *long*: they run until pruning and coin rounds happen (at least
/// [`LONG_MIN_ROUNDS`] rounds). One costs about as much as 30 k = 7 seeds
/// in the dev profile: ~1 ms of machine time per anchor over its 22 nodes
/// and ~140 anchors a round (the shard library's insertion and ack
/// distances; the simulator's own work is under a tenth of it).
/// `SIM_SEATS=21` runs long seeds only.
pub const PRODUCTION_SEATS: usize = 21;

/// The fewest rounds a long seed (k > 7) finalizes: enough for pruning
/// with the short window (rounds below `last decided - 3G - 2`, so from
/// round 15 with `G = 4`) and for many coin rounds with `C = 3`.
pub const LONG_MIN_ROUNDS: u64 = 40;

/// The committee size of `seed` in a default run.
pub fn seats_of(seed: u64) -> usize {
    if seed % 128 == 7 {
        PRODUCTION_SEATS
    } else {
        SEAT_MIX[(seed % 16) as usize]
    }
}

/// Whether seeds of `k` seats are long (see [`PRODUCTION_SEATS`]).
pub fn is_long(k: usize) -> bool {
    k > 7
}

/// Steps of each phase of a seed: faults on, then healed with clients still
/// submitting, then drained with no new input until everything in flight
/// is finalized everywhere.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    /// Steps with faults (loss, duplication, partitions, crashes, forks,
    /// floods).
    pub fault_steps: u64,
    /// Steps after the faults with clients still submitting.
    pub heal_steps: u64,
    /// Most steps the drain may take: every honest node has caught up,
    /// every accepted transfer and every exposed fork's evidence is
    /// finalized within them.
    pub drain_max_steps: u64,
    /// The fewest rounds the seed must finalize: clients keep submitting
    /// past the heal phase until it has (bounded by the drain's steps), and
    /// a seed that finalized fewer failed (measured minimums with margin
    /// for short seeds: fewer means lost liveness).
    pub min_rounds: u64,
    /// While the network is whole, at least `q` honest seats run and
    /// clients submit, every running honest seat finalizes a new round
    /// within this many steps (of the seat coming up, the network healing,
    /// or its last round).
    pub progress_window_steps: u64,
}

impl Phases {
    /// The per-k run size: larger committees cost more per round (k + 1
    /// machines, k-way broadcasts), so they run fewer steps, except that a
    /// long seed (k > 7) runs at least [`LONG_MIN_ROUNDS`] rounds: its seats
    /// pace their acknowledgement-only anchors (see [`SeedConfig::new`]),
    /// so that a round takes ~35 steps (and ~6 anchors per seat), and its
    /// faults cover about the first half of the run.
    pub fn for_seats(k: usize) -> Phases {
        let (fault_steps, heal_steps, min_rounds) = match k {
            1 => (300, 150, 50),
            2..=4 => (160, 80, 4),
            5..=7 => (120, 60, 4),
            _ => (700, 700, LONG_MIN_ROUNDS),
        };
        Phases {
            fault_steps,
            heal_steps,
            drain_max_steps: 2_000,
            min_rounds,
            // Paced k = 21 rounds take ~35 steps, up to ~80 with f
            // Byzantine seats; measured gaps reach ~280 steps (the first
            // round, a seat catching up after a restart).
            progress_window_steps: if is_long(k) { 600 } else { 250 },
        }
    }

    /// Step at which clients stop submitting.
    pub fn clients_stop_step(&self) -> u64 {
        self.fault_steps + self.heal_steps
    }

    /// The last step a seed may run.
    pub fn max_steps(&self) -> u64 {
        self.clients_stop_step() + self.drain_max_steps
    }
}

/// A planned partition of the honest nodes into two groups.
#[derive(Debug, Clone, Copy)]
pub struct PartitionPlan {
    /// First step of the partition.
    pub start_step: u64,
    /// Step at which it heals.
    pub heal_step: u64,
}

/// A planned crash of an honest seat.
#[derive(Debug, Clone, Copy)]
pub struct CrashPlan {
    /// The seat.
    pub seat: u8,
    /// Step of the crash.
    pub at_step: u64,
    /// Steps until the restart (clipped to the end of the fault phase).
    pub down_steps: u64,
}

/// Everything one seed does.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// The seed.
    pub seed: u64,
    /// Committee size.
    pub k: usize,
    /// Real BIP-340 instead of the fast scheme.
    pub bip340: bool,
    /// The fame vote's coin-round period `C`: the genesis value 10, or 3
    /// in one seed of five so that coin rounds are reached.
    pub coin_round_period: u64,
    /// The non-ancient window `G`: the genesis value 26, or 4 in one seed
    /// of three so that ancient anchors, chain cuts and pruning happen
    /// within a seed.
    pub window: u64,
    /// `W_slash`: the genesis value, or 25 finalized anchors in one seed of
    /// two so that repeat tiers also start over within a seed.
    pub slash_window_anchors: u64,
    /// `W_claim`: the genesis value, or 30 finalized anchors in one seed
    /// of four so that claims of old roots expire within a seed.
    pub claim_window_anchors: u64,
    /// `W_race`: 1, 2 or 3 rounds by seed.
    pub mint_race_rounds: u8,
    /// One seed of four starts with a genesis 10 units short of the cap
    /// and `H = 1`, so the reward schedule is spent within the seed.
    pub mint_exhaust: bool,
    /// No faults at all (a baseline seed): only latency and reordering.
    pub calm: bool,
    /// Phase lengths.
    pub phases: Phases,
    /// Network behaviour in the fault phase.
    pub network: NetworkConfig,
    /// Log durability.
    pub durability: Durability,
    /// The machines' bounds.
    pub limits: ShardLimits,
    /// Client batches per step, per mille.
    pub submit_per_mille: u32,
    /// Byzantine seats and their behaviour.
    pub byzantine: Vec<(u8, Mode)>,
    /// Own anchors an equivocating seat forks, per mille.
    pub fork_per_mille: u32,
    /// Most forks per equivocating seat. One fork already earns evidence;
    /// at k = 21 every further fork mostly re-runs the library's slow path
    /// for forked seats (a full scan of the seat's anchors per finalized
    /// anchor), which would dominate the run time.
    pub max_forks_per_seat: u32,
    /// Own anchors an invalid-signature seat spoils, per mille.
    pub bad_signature_per_mille: u32,
    /// Steps on which a flooding seat floods, per mille.
    pub flood_per_mille: u32,
    /// Most forged anchors in one flood.
    pub flood_burst_max: u64,
    /// Partitions, in order, not overlapping.
    pub partitions: Vec<PartitionPlan>,
    /// Crashes of honest seats.
    pub crashes: Vec<CrashPlan>,
    /// Crashes may take the honest seats below the supermajority
    /// (liveness pauses; safety must hold).
    pub crash_beyond_budget: bool,
    /// An honest seat that starts late: (seat, step).
    pub late_join: Option<(u8, u64)>,
    /// Fault classes that found machine bugs that run (`SIM_BLOCKED`).
    pub blocked: Blocked,
}

/// `f = floor((k - 1) / 3)`.
pub fn tolerated(k: usize) -> usize {
    (k - 1) / 3
}

/// `q = k - f`.
pub fn supermajority(k: usize) -> usize {
    k - tolerated(k)
}

impl SeedConfig {
    /// The configuration of `seed`; `seats` overrides the committee size.
    pub fn new(seed: u64, seats: Option<usize>) -> SeedConfig {
        let mut rng = Rng::new(seed, 0xc0f1);
        let k = seats.unwrap_or_else(|| seats_of(seed));
        let long = is_long(k);
        // One block of sixteen consecutive seeds (every k of the mix) in
        // every 160 runs real BIP-340; of the long seeds one in twenty (two
        // of any forty with `SIM_SEATS=21`; one k = 21 seed in five of a long
        // default-mix run, the first at seed 391).
        let bip340 = if long {
            seed % 20 == 11
        } else {
            (seed / 16) % 10 == 9
        };
        let calm = rng.chance(100);
        let phases = Phases::for_seats(k);
        let blocked = Blocked::from_env();
        let mut config = SeedConfig {
            seed,
            k,
            bip340,
            coin_round_period: if seed % 5 == 2 { 3 } else { 10 },
            window: if seed % 3 == 1 { 4 } else { 26 },
            slash_window_anchors: if seed.is_multiple_of(2) { 25 } else { 200_000 },
            claim_window_anchors: if seed % 4 == 3 { 30 } else { 50_000 },
            mint_race_rounds: (seed % 3) as u8 + 1,
            mint_exhaust: seed % 4 == 1,
            calm,
            phases,
            network: network_config(&mut rng, calm),
            durability: Durability {
                delay_max_steps: if rng.coin() { 0 } else { rng.between(1, 6) },
                immediate_per_mille: rng.between(0, 700) as u32,
                cascade_within_step: k <= 7 && rng.chance(150),
                partial_sync_per_mille: partial_syncs(&mut rng, blocked.partial_syncs),
            },
            limits: limits(&mut rng, blocked, k),
            submit_per_mille: client_load(&mut rng, long),
            byzantine: Vec::new(),
            fork_per_mille: rng.between(150, 500) as u32,
            max_forks_per_seat: if long { 1 } else { 8 },
            bad_signature_per_mille: rng.between(150, 500) as u32,
            flood_per_mille: rng.between(50, 300) as u32,
            flood_burst_max: 1,
            partitions: Vec::new(),
            crashes: Vec::new(),
            crash_beyond_budget: k == 1 || rng.chance(150),
            late_join: None,
            blocked,
        };
        if !calm {
            config.plan_faults(&mut rng);
        }
        config.flood_burst_max = rng.between(1, 32);
        config
    }

    fn plan_faults(&mut self, rng: &mut Rng) {
        let k = self.k;
        let mut seats: Vec<u8> = (0..k as u8).collect();
        rng.shuffle(&mut seats);
        let byzantine_count = rng.between(0, tolerated(k) as u64) as usize;
        let modes = Mode::enabled(self.blocked.unresolvable_parents);
        self.byzantine = seats[..byzantine_count]
            .iter()
            .map(|seat| (*seat, modes[rng.index(modes.len())]))
            .collect();
        let honest: Vec<u8> = seats[byzantine_count..].to_vec();
        let fault_steps = self.phases.fault_steps;
        if rng.chance(600) {
            self.partitions = plan_partitions(rng, fault_steps);
        }
        if rng.chance(500) {
            let count = rng.between(1, 3);
            self.crashes = (0..count)
                .map(|_| CrashPlan {
                    seat: honest[rng.index(honest.len())],
                    at_step: rng.between(fault_steps / 20, fault_steps * 4 / 5),
                    down_steps: rng.between(1, fault_steps / 3 + 1),
                })
                .collect();
        }
        if k > 1 && rng.chance(300) {
            let seat = honest[rng.index(honest.len())];
            self.late_join = Some((seat, rng.between(fault_steps / 20, fault_steps / 4)));
        }
    }

    /// Whether `seat` is Byzantine, and how.
    pub fn mode_of(&self, seat: u8) -> Option<Mode> {
        self.byzantine
            .iter()
            .find(|(s, _)| *s == seat)
            .map(|(_, mode)| *mode)
    }

    /// Whether any Byzantine seat behaves as `mode`.
    pub fn has_mode(&self, mode: Mode) -> bool {
        self.byzantine.iter().any(|(_, m)| *m == mode)
    }
}

fn network_config(rng: &mut Rng, calm: bool) -> NetworkConfig {
    if calm {
        return NetworkConfig {
            loss_per_mille: 0,
            duplicate_per_mille: 0,
            latency_max_steps: rng.between(1, 4),
            long_delay_per_mille: 0,
            long_delay_max_steps: 1,
        };
    }
    NetworkConfig {
        loss_per_mille: rng.between(0, 100) as u32,
        duplicate_per_mille: rng.between(0, 100) as u32,
        latency_max_steps: rng.between(1, 6),
        long_delay_per_mille: rng.between(0, 50) as u32,
        long_delay_max_steps: rng.between(10, 40),
    }
}

/// The default bounds, or tight ones that make a full mempool and quick
/// pull retries happen (tight pull and pending bounds are fault classes
/// that found machine bugs, see `sim::blocked`). Seats of a long seed pace acknowledgement-only
/// anchors at 4..=8 ticks, about the network's latency (the engine paces at
/// 20 ms): at one tick, a k = 21 seat makes ~20 anchors a round instead of
/// ~6, and each costs every node an insertion.
fn limits(rng: &mut Rng, blocked: Blocked, k: usize) -> ShardLimits {
    let long = is_long(k);
    let mut default = ShardLimits {
        ack_interval_ticks: 1,
        ..ShardLimits::default()
    };
    if long {
        default.ack_interval_ticks = rng.between(4, 8);
    }
    if rng.coin() {
        return default;
    }
    // The pending set's per-seat share is `max_pending_anchors / k`: long
    // seeds keep the tight bounds of k = 7, so that a k = 21 seat's share
    // is a third of a k = 7 seat's (the `small-shares` class, see
    // `sim::blocked`; without it they scale the bounds by `ceil(k / 7)`).
    let scale = if long && !blocked.small_shares {
        (k as u64).div_ceil(7)
    } else {
        1
    };
    let (pending, pulls) = (rng.between(256, 1024) * scale, rng.between(64, 256) * scale);
    ShardLimits {
        max_pending_anchors: if blocked.tight_pending {
            pending as usize
        } else {
            default.max_pending_anchors
        },
        max_outstanding_pulls: if blocked.tight_pulls {
            pulls as usize
        } else {
            default.max_outstanding_pulls
        },
        max_mempool_events: rng.between(4, 64) as usize,
        pull_retry_ticks: rng.between(4, 20),
        ack_interval_ticks: if long {
            default.ack_interval_ticks
        } else {
            rng.between(1, 3)
        },
        ..default
    }
}

/// Client batches per step, per mille: a long seed's rounds take ~35 steps
/// instead of ~5, so its clients submit less often per step (still a few
/// batches a round; an anchor carrying micro-events is never paced).
fn client_load(rng: &mut Rng, long: bool) -> u32 {
    let per_mille = rng.between(250, 700) as u32;
    if long {
        per_mille / 5
    } else {
        per_mille
    }
}

/// Share of delayed syncs that stop mid-batch, per mille (a blocked class,
/// see `sim::blocked`).
fn partial_syncs(rng: &mut Rng, enabled: bool) -> u32 {
    let per_mille = if rng.coin() {
        0
    } else {
        rng.between(100, 600) as u32
    };
    if enabled {
        per_mille
    } else {
        0
    }
}

fn plan_partitions(rng: &mut Rng, fault_steps: u64) -> Vec<PartitionPlan> {
    let mut plans = Vec::new();
    let mut step = rng.between(fault_steps / 10, fault_steps / 3);
    for _ in 0..rng.between(1, 2) {
        let heal_step = step + rng.between(fault_steps / 15 + 1, fault_steps / 3 + 1);
        if heal_step >= fault_steps {
            break;
        }
        plans.push(PartitionPlan {
            start_step: step,
            heal_step,
        });
        step = heal_step + rng.between(fault_steps / 10, fault_steps / 4);
    }
    plans
}
