//! The whole-node simulator: seeds, their configuration, coverage
//! counters and the checks of one seed (see `node_simulation.rs`).

pub mod net;
pub mod world;

use std::collections::BTreeMap;

use pc_node::CoreCounters;

use world::World;

/// SplitMix64: the seed's only source of randomness.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005e_ed0f_0de5_1a11)
    }

    /// The next draw.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A draw in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What one seed runs.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub seed: u64,
    pub seats: usize,
    pub clients: usize,
    /// One-way latency and its jitter, µs.
    pub latency_us: u64,
    pub jitter_us: u64,
    pub loss_per_mille: u64,
    pub dup_per_mille: u64,
    /// Extra time a log sync takes, µs (on top of 0.5 ms).
    pub fsync_us: u64,
    pub crashes: usize,
    pub partitions: usize,
    pub late_node: Option<usize>,
    pub late_start_us: u64,
    /// A second node that starts late, and when.
    pub second_late: Option<(usize, u64)>,
    /// Until `.2` µs, the nodes `.0` reach (and are reached by) node `.1`
    /// only: frames between them and any other node are held until then.
    pub only_via: Option<(Vec<usize>, usize, u64)>,
    /// The header/payload cache of every node's shards.
    pub cache: pc_node::CacheCaps,
    pub slow_node: Option<usize>,
    pub hostile: bool,
    pub transfers_per_tick: usize,
    pub submit_every_us: u64,
    pub double_spend_pct: u64,
    /// Faults happen before this; then the network heals.
    pub fault_end_us: u64,
    pub load_end_us: u64,
    /// Clients keep submitting past `load_end_us`, until this, while a
    /// running node has finalized fewer than `min_rounds` (a seed whose
    /// network is slow still has to show it finalizes them; the drain
    /// after it is what is left to `end_us`).
    pub load_max_end_us: u64,
    /// The run ends (drain included) by this.
    pub end_us: u64,
    pub min_rounds: u64,
    /// The genesis' ancient window `G` and coin-round period `C` (the v0
    /// values, or short ones so that pruning and coin rounds come early).
    pub ancient_window_rounds: u8,
    pub coin_round_period: u8,
    /// CPU cost of every node in percent (100: full speed; the slow node
    /// costs twice this).
    pub slowness_pct: u64,
    /// Clients submit in bursts: half-second on, half-second off, twice
    /// `transfers_per_tick` while on (the same mean).
    pub bursty: bool,
    /// Genesis outputs of each client (each transfer spends one).
    pub outputs_per_client: u16,
}

/// Overload seeds submit until this simulated time.
pub const OVERLOAD_LOAD_END_US: u64 = 6_000_000;

/// What an overload seed offers and how fast its nodes are.
#[derive(Debug, Clone, Copy)]
pub struct Overload {
    /// Offered load as a multiple of the simulated capacity (0: a light
    /// load, the unloaded reference).
    pub times_capacity: u64,
    /// CPU cost of every node in percent.
    pub slowness_pct: u64,
    /// One quorum node runs at half that speed.
    pub slow_node: bool,
}

/// Micro-events per second one node's simulated CPU verifies and applies
/// at `slowness_pct` (every node verifies and applies every event of the
/// shard, so this bounds the shard's throughput).
pub fn simulated_capacity_per_s(slowness_pct: u64) -> u64 {
    1_000_000 * 100 / ((world::VERIFY_US + world::APPLY_US) * slowness_pct.max(1))
}

impl SeedConfig {
    /// The configuration of `seed` with `seats` seats (`None`: 4, or 7 for
    /// one seed in four).
    pub fn for_seed(seed: u64, seats: Option<usize>) -> SeedConfig {
        let mut rng = Rng::new(seed.wrapping_mul(31));
        let seats = seats.unwrap_or(if seed % 4 == 3 { 7 } else { 4 });
        let big = seats > 7;
        SeedConfig {
            seed,
            seats,
            clients: 8,
            latency_us: std::env::var("NODESIM_LATENCY_US")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(2_000 + rng.below(20_000)),
            jitter_us: 1_000 + rng.below(10_000),
            loss_per_mille: rng.below(20),
            dup_per_mille: 5 + rng.below(20),
            fsync_us: 500 + rng.below(4_000),
            crashes: if big { 2 } else { 1 + rng.below(3) as usize },
            partitions: 1 + rng.below(2) as usize,
            late_node: Some(1 + rng.below(seats as u64 - 1) as usize),
            late_start_us: 2_000_000 + rng.below(2_000_000),
            second_late: None,
            only_via: None,
            // Odd seeds run the product's read path with the cache on.
            cache: if seed % 2 == 1 {
                pc_node::CacheCaps {
                    header_cap: 1024,
                    payload_cap: 256,
                }
            } else {
                pc_node::CacheCaps::default()
            },
            slow_node: (rng.below(2) == 0).then(|| rng.below(seats as u64) as usize),
            hostile: true,
            transfers_per_tick: match std::env::var("NODESIM_LOAD")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            {
                // Transfers per second, in 20 ms ticks.
                Some(per_s) => (per_s / 50).max(1) as usize,
                None if big => 4,
                None => 2 + rng.below(4) as usize,
            },
            submit_every_us: 20_000,
            double_spend_pct: 10,
            fault_end_us: 8_000_000,
            // Rounds of larger committees take longer: their seeds run
            // longer to reach `min_rounds`.
            load_end_us: if seats > 4 { 22_000_000 } else { 14_000_000 },
            load_max_end_us: if seats > 4 { 24_000_000 } else { 16_000_000 },
            end_us: if seats > 4 { 28_000_000 } else { 20_000_000 },
            min_rounds: 40,
            ancient_window_rounds: if seed.is_multiple_of(2) { 8 } else { 26 },
            coin_round_period: if seed % 3 == 1 { 3 } else { 10 },
            slowness_pct: std::env::var("NODESIM_SLOWNESS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(100),
            bursty: false,
            outputs_per_client: 4096,
        }
    }

    /// An overload seed: k = 4 on a clean network (no crashes, partitions,
    /// late or hostile party: the load is the fault), clients submitting
    /// `times_capacity` times what the simulated CPU can finalize, in
    /// bursts, for [`OVERLOAD_LOAD_END_US`], then a 6 s drain.
    pub fn overload(seed: u64, overload: Overload) -> SeedConfig {
        let mut cfg = SeedConfig::for_seed(seed, Some(4));
        cfg.slowness_pct = overload.slowness_pct;
        let capacity = simulated_capacity_per_s(overload.slowness_pct);
        let offered_per_s = if overload.times_capacity == 0 {
            capacity / 10
        } else {
            capacity * overload.times_capacity
        };
        cfg.transfers_per_tick = (offered_per_s * cfg.submit_every_us / 1_000_000).max(1) as usize;
        cfg.double_spend_pct = 2;
        cfg.crashes = 0;
        cfg.partitions = 0;
        cfg.late_node = None;
        cfg.hostile = false;
        cfg.loss_per_mille = 0;
        cfg.slow_node = overload.slow_node.then_some(1);
        cfg.slowness_pct = overload.slowness_pct;
        cfg.bursty = overload.times_capacity > 0;
        cfg.outputs_per_client = u16::MAX;
        cfg.fault_end_us = 0;
        cfg.load_end_us = OVERLOAD_LOAD_END_US;
        cfg.load_max_end_us = OVERLOAD_LOAD_END_US;
        cfg.end_us = OVERLOAD_LOAD_END_US + 6_000_000;
        cfg.min_rounds = 5;
        cfg
    }
}

/// What a run exercised; each counter the faults drive must end above zero.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub seeds: u64,
    pub rounds_min: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub partitions_healed: u64,
    pub partitioned_frames: u64,
    pub losses: u64,
    pub duplicates: u64,
    pub malformed_frames: u64,
    pub double_spends: u64,
    pub accepted: u64,
    pub refused_submissions: u64,
    pub finalized_submissions: u64,
    pub catch_ups: u64,
    pub bans: u64,
    pub early_frames_refused: u64,
    pub refused_hellos: u64,
    pub seeds_pruned: u64,
    pub seeds_coin_rounds: u64,
    pub acks_paced: u64,
    /// Client frames a node's full client queue dropped.
    pub client_frames_dropped: u64,
    /// Transfers the clients submitted.
    pub submitted: u64,
    /// Per node: the last core counters seen (a restarted core counts
    /// from zero again).
    last: BTreeMap<usize, (CoreCounters, u64)>,
}

impl Counters {
    /// Accumulates what a node's core counted since it was last seen.
    pub fn note_core(&mut self, node: usize, c: &CoreCounters) {
        self.note_core_with(node, c, None);
    }

    /// The same, with its catch-up requests.
    pub fn note_core_with(&mut self, node: usize, c: &CoreCounters, catch_ups: Option<u64>) {
        let (last, last_catch) = self.last.entry(node).or_default();
        let delta = |new: u64, old: u64| new.checked_sub(old).unwrap_or(new);
        self.bans += delta(c.bans, last.bans);
        self.early_frames_refused += delta(c.early_frames_refused, last.early_frames_refused);
        self.refused_hellos += delta(c.refused_hellos, last.refused_hellos);
        if let Some(catch_ups) = catch_ups {
            self.catch_ups += delta(catch_ups, *last_catch);
            *last_catch = catch_ups;
        }
        *last = *c;
    }

    /// Adds another run's totals.
    pub fn add(&mut self, other: &Counters) {
        self.seeds += other.seeds;
        self.rounds_min = if self.seeds == other.seeds {
            other.rounds_min
        } else {
            self.rounds_min.min(other.rounds_min)
        };
        self.crashes += other.crashes;
        self.restarts += other.restarts;
        self.partitions_healed += other.partitions_healed;
        self.partitioned_frames += other.partitioned_frames;
        self.losses += other.losses;
        self.duplicates += other.duplicates;
        self.malformed_frames += other.malformed_frames;
        self.double_spends += other.double_spends;
        self.accepted += other.accepted;
        self.refused_submissions += other.refused_submissions;
        self.finalized_submissions += other.finalized_submissions;
        self.catch_ups += other.catch_ups;
        self.bans += other.bans;
        self.early_frames_refused += other.early_frames_refused;
        self.refused_hellos += other.refused_hellos;
        self.seeds_pruned += other.seeds_pruned;
        self.seeds_coin_rounds += other.seeds_coin_rounds;
        self.acks_paced += other.acks_paced;
        self.client_frames_dropped += other.client_frames_dropped;
        self.submitted += other.submitted;
    }

    /// The counters the faults drive that stayed at zero.
    pub fn zeros(&self) -> Vec<&'static str> {
        let all = [
            ("crash_restarts", self.restarts),
            ("partitions_healed", self.partitions_healed),
            ("partitioned_frames", self.partitioned_frames),
            ("losses", self.losses),
            ("duplicates", self.duplicates),
            ("malformed_frames_decoded", self.malformed_frames),
            ("double_spends", self.double_spends),
            ("accepted", self.accepted),
            ("finalized_submissions", self.finalized_submissions),
            ("catch_ups", self.catch_ups),
            ("bans", self.bans),
            ("early_frames_refused", self.early_frames_refused),
            ("refused_hellos", self.refused_hellos),
            ("seeds_pruned", self.seeds_pruned),
            ("seeds_coin_rounds", self.seeds_coin_rounds),
            ("acks_paced", self.acks_paced),
        ];
        all.iter()
            .filter(|(_, v)| *v == 0)
            .map(|(name, _)| *name)
            .collect()
    }
}

/// What a seed measured.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    /// Rounds finalized by the slowest running node at each simulated
    /// second.
    pub rounds_at_s: Vec<u64>,
    pub counters: Counters,
    /// Submission to finality at the accepting node, simulated µs.
    pub finality_us: Vec<u64>,
    /// Per node at the end (over its shards): cache lookups and store
    /// reads behind the cache (header, payload); zeros for a node down.
    pub reads: Vec<(pc_node::CacheCounts, u64, u64)>,
    /// Every finalized round: (first index, anchors, state root).
    pub rounds: BTreeMap<u64, (u64, u64, [u8; 32])>,
}

/// Runs one seed and checks it; a failure panics with the reason.
pub fn run_seed(cfg: SeedConfig) -> SeedReport {
    let end = cfg.end_us;
    let fault_end = cfg.fault_end_us;
    let mut world = World::new(cfg.clone());
    let trace = std::env::var("NODESIM_TRACE").is_ok();
    if trace {
        println!("{cfg:?}");
    }
    let mut at = 0;
    let mut rounds_at_s = Vec::new();
    while at < end {
        // Faults end at `fault_end_us` (crashed nodes restart on
        // schedule); the rest is the drain.
        at = (at + 1_000_000).min(end);
        world.run_until(at);
        rounds_at_s.push(world.least_running_rounds());
        if trace {
            let rounds: Vec<String> = world
                .nodes
                .iter()
                .map(|n| {
                    n.core.as_ref().map_or("down".to_string(), |c| {
                        let host = c.shards().next().expect("one shard");
                        format!(
                            "{}r/{}p/{}m/{}c/{}l/{}b/{}a/{}f/{}o",
                            host.counters().last_round.map_or(-1, |r| r as i64),
                            host.machine().pending_anchors(),
                            host.machine().mempool_len(),
                            host.machine().catch_up_requests(),
                            host.machine().lag_rounds(),
                            host.machine().backlog_events(),
                            host.counters().accepted_submissions,
                            host.counters().finalized_submissions,
                            host.oldest_accepted_us().map_or(0, |at| at / 1000),
                        )
                    })
                })
                .collect();
            println!("t={} ms: {}", at / 1000, rounds.join(" "));
        }
    }
    let _ = fault_end;
    let mut report = check(&mut world);
    report.rounds_at_s = rounds_at_s;
    report
}

/// Round → (first global index, anchors, state root), as a node logged it.
type LoggedRounds = BTreeMap<u64, (u64, u64, [u8; 32])>;

fn check(world: &mut World) -> SeedReport {
    let cfg = world.cfg.clone();
    assert!(
        world.equivocations.is_empty(),
        "equivocation: {}",
        world.equivocations.join("; ")
    );
    // Every node's finalized rounds agree with every other's where both
    // have them (so each sequence is a prefix of the longest), and each
    // node's rounds are contiguous from 0.
    let logged: Vec<LoggedRounds> = (0..cfg.seats).map(|n| world.logged_rounds(n)).collect();
    let mut canonical = LoggedRounds::new();
    for (node, rounds) in logged.iter().enumerate() {
        for (index, (round, value)) in rounds.iter().enumerate() {
            assert_eq!(
                *round, index as u64,
                "node {node}: finalized rounds are not contiguous at {round}"
            );
            match canonical.get(round) {
                Some(known) => assert_eq!(
                    known, value,
                    "node {node} round {round}: (first index, anchors, state root) differ from another node's"
                ),
                None => {
                    canonical.insert(*round, *value);
                }
            }
        }
    }
    let most = logged.iter().map(BTreeMap::len).max().unwrap_or(0) as u64;
    let least = logged.iter().map(BTreeMap::len).min().unwrap_or(0) as u64;
    assert!(
        least >= cfg.min_rounds,
        "a node finalized only {least} rounds (the most: {most}), fewer than {}",
        cfg.min_rounds
    );
    assert!(
        least + 20 >= most,
        "a node is {} rounds behind after the drain: it did not catch up",
        most - least
    );
    // Every submission a node accepted finalized, unless the node that took
    // it crashed before it could be carried in an anchor.
    let finalized: BTreeMap<[u8; 32], u64> = world
        .nodes
        .iter()
        .flat_map(|n| n.finalized_events.borrow().clone())
        .collect();
    let mut latencies = Vec::new();
    let mut lost = 0;
    for (id, sub) in &world.submissions {
        if sub.accepted != Some(true) {
            continue;
        }
        match finalized.get(id) {
            Some(at) => {
                world.counters.finalized_submissions += 1;
                latencies.push(at.saturating_sub(sub.at_us));
            }
            None => {
                let crashed_later = world.nodes[sub.node]
                    .crashed_at_us
                    .iter()
                    .any(|at| *at >= sub.at_us);
                assert!(
                    crashed_later,
                    "an accepted transfer ({}, taken by node {} at {} µs) never finalized",
                    pc_codec::to_hex(id),
                    sub.node,
                    sub.at_us
                );
                lost += 1;
            }
        }
    }
    let _ = lost;
    // The hostile peer is banned by every node it reached.
    for (node, n) in world.nodes.iter().enumerate() {
        let book = n.core.as_ref().map(|c| c.book()).unwrap_or(&n.book);
        if book.get(world.hostile_addr).is_some() {
            assert!(
                book.is_banned(world.hostile_addr, 1_800_000_000 + world.now_us / 1_000_000),
                "node {node} did not ban the hostile peer"
            );
        }
    }
    let reads = world
        .nodes
        .iter()
        .map(|n| {
            let mut total = (pc_node::CacheCounts::default(), 0, 0);
            for host in n.core.iter().flat_map(|core| core.shards()) {
                let cached = host.cached_store();
                let (c, r) = (cached.counts(), cached.reads());
                total.0.header_hits += c.header_hits;
                total.0.header_misses += c.header_misses;
                total.0.payload_hits += c.payload_hits;
                total.0.payload_misses += c.payload_misses;
                total.1 += r.header.count();
                total.2 += r.payload.count();
            }
            total
        })
        .collect();
    let mut counters = std::mem::take(&mut world.counters);
    for (node, n) in world.nodes.iter().enumerate() {
        if let Some(core) = &n.core {
            counters.note_core_with(node, &core.counters(), Some(core.catch_up_requests()));
        }
    }
    counters.seeds = 1;
    counters.rounds_min = least;
    // Pruning and coin rounds as the machines report them.
    let machines = world
        .nodes
        .iter()
        .filter_map(|n| n.core.as_ref())
        .flat_map(|core| core.shards());
    for host in machines {
        let consensus = host.machine().consensus();
        if consensus.floor() > 0 {
            counters.seeds_pruned = 1;
        }
        if consensus.coin_stats().coin_round_votes > 0 {
            counters.seeds_coin_rounds = 1;
        }
    }
    SeedReport {
        rounds_at_s: Vec::new(),
        counters,
        finality_us: latencies,
        reads,
        rounds: canonical,
    }
}
