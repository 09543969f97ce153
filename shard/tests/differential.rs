//! Differential test of the fast consensus against the naive oracle
//! (explicit ancestor sets) on random DAGs with and without forks: both
//! must agree on every vertex's round, witness status and fame, and on every
//! finalized round (unique famous witnesses and total order).
//!
//! The window `G` is drawn small as well as at its genesis value, so that
//! windowed fork checks, stale and dragged anchors, chain cuts (a parent more than `G`
//! rounds below the others is left out, as the machine leaves out an
//! ancient parent) and pruning all happen; a vertex the fast side refuses
//! as ancient is left out of both.

use std::collections::{HashMap, HashSet};

use pc_shard::consensus::{Consensus, ConsensusConfig, InsertError};
use pc_shard::oracle::{Oracle, OracleConfig};
use pc_shard::{FinalizedRound, VertexSpec};
use proptest::prelude::*;

/// A small deterministic PRNG (SplitMix64) so a failing case replays from
/// its seed alone.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A branch of one seat's chain: its tip id and seq.
#[derive(Clone, Copy)]
struct Tip {
    id: [u8; 32],
    seq: u64,
}

/// Builds a random valid DAG. Seat 0 equivocates when `forks` is set: it
/// keeps two branches, and other seats reference whichever they pick.
///
/// When `shy` is set (k >= 7), seats 1 and k - 1 are left out of the other
/// seats' parents for two phases in three, so their anchors miss their
/// window and are dragged in (or go stale) once a descendant is received;
/// seat k - 1 falls silent half-way, so its last anchors acknowledge others
/// from far below the windows of later rounds.
fn random_dag(seed: u64, k: usize, vertices: usize, forks: bool, shy: bool) -> Vec<VertexSpec> {
    let mut rng = SplitMix(seed);
    let mut branches: Vec<Vec<Tip>> = vec![Vec::new(); k];
    let mut dag = Vec::with_capacity(vertices);
    let shy = shy && k >= 7;
    let silent = k - 1;
    for counter in 0..vertices as u64 {
        let mut creator = rng.below(k);
        if shy && creator == silent && counter as usize >= vertices / 2 {
            creator = rng.below(k - 1);
        }
        let hiding = shy && (counter / 60) % 3 != 2;
        let id = *blake3::hash(&[seed.to_le_bytes(), counter.to_le_bytes()].concat()).as_bytes();
        if forks && dag.len() > 40 && rng.chance(3) {
            // Seat 0 starts yet another chain on long-buried vertices of
            // other seats: a fork that is ancient once enough is decided.
            let old: Vec<&VertexSpec> = dag[..dag.len() / 8]
                .iter()
                .filter(|v: &&VertexSpec| v.creator != 0)
                .collect();
            if !old.is_empty() {
                let parent = old[rng.below(old.len())];
                dag.push(VertexSpec {
                    id,
                    creator: 0,
                    seq: 0,
                    parents: vec![parent.id],
                    coin: rng.chance(50),
                });
                continue;
            }
        }
        let mut parents = Vec::new();
        let branch = if branches[creator].is_empty() {
            None
        } else {
            let b = rng.below(branches[creator].len());
            parents.push(branches[creator][b].id);
            Some(b)
        };
        let seq = branch.map_or(0, |b| branches[creator][b].seq + 1);
        // Up to three other seats, mostly their latest tips.
        let mut others: Vec<usize> = (0..k)
            .filter(|s| *s != creator && !branches[*s].is_empty())
            .filter(|s| {
                let shy_seat = *s == 1 || *s == silent;
                let shy_creator = creator == 1 || creator == silent;
                !hiding || !shy_seat || shy_creator
            })
            .collect();
        let wanted = 1 + rng.below(3);
        while parents.len() < 1 + wanted && !others.is_empty() {
            let seat = others.swap_remove(rng.below(others.len()));
            let tips = &branches[seat];
            parents.push(tips[rng.below(tips.len())].id);
        }
        if parents.is_empty() && seq > 0 {
            unreachable!("a vertex with seq > 0 has its self-parent");
        }
        let tip = Tip { id, seq };
        match branch {
            Some(b) if forks && creator == 0 && branches[0].len() < 2 && rng.chance(10) => {
                // Equivocate: a second vertex at this seq on a new branch.
                branches[0].push(tip);
                let _ = b;
            }
            Some(b) => branches[creator][b] = tip,
            None => branches[creator].push(tip),
        }
        dag.push(VertexSpec {
            id,
            creator: creator as u8,
            seq,
            parents,
            coin: rng.chance(50),
        });
    }
    dag
}

/// What [`run_both`] leaves: the finalized rounds, both implementations,
/// the vertices as inserted (parents filtered) and the coverage counters.
type Run = (
    Vec<FinalizedRound>,
    Consensus,
    Oracle,
    Vec<VertexSpec>,
    Exercised,
);

fn run_both(k: usize, window: u64, dag: &[VertexSpec]) -> Run {
    let mut exercised = Exercised::default();
    let coin_round_period = 10;
    let mut fast = Consensus::new(ConsensusConfig {
        k,
        coin_round_period,
        window,
    });
    let mut oracle = Oracle::new(OracleConfig {
        k,
        coin_round_period,
        window,
    });
    let mut finalized = Vec::new();
    let mut inserted_specs = Vec::new();
    let mut absent: HashSet<[u8; 32]> = HashSet::new();
    for vertex in dag {
        let mut spec = vertex.clone();
        spec.parents.retain(|p| !absent.contains(p));
        let base = spec
            .parents
            .iter()
            .filter_map(|p| oracle.round(p))
            .max()
            .unwrap_or(0);
        spec.parents
            .retain(|p| oracle.round(p).is_some_and(|r| r + window >= base));
        if spec.seq > 0 && spec.parents.first() != vertex.parents.first() {
            exercised.cuts += 1;
        }
        // A parent the fast side already pruned lies below its floor, and so
        // does the whole window of a vertex whose highest parent it is.
        let pruned_parent = spec.parents.iter().any(|p| !fast.contains(p));
        let inserted = if pruned_parent {
            Err(InsertError::Ancient {
                base,
                floor: fast.floor(),
            })
        } else {
            fast.insert(spec.clone())
        };
        match inserted {
            Ok(_) => {
                oracle.insert(spec.clone());
                inserted_specs.push(spec);
            }
            Err(InsertError::Ancient { .. }) => {
                exercised.ancient += 1;
                absent.insert(spec.id);
            }
            Err(other) => panic!("generated DAGs are valid: {other}"),
        }
        while let Some(round) = fast.poll_finalized() {
            finalized.push(round);
        }
        assert_eq!(
            finalized.as_slice(),
            oracle.finalized(),
            "finalized rounds diverge after {:?}",
            vertex.id
        );
    }
    exercised.stale = fast.stale_count();
    exercised.dragged = fast.dragged_count();
    exercised.pruned = (dag.len() as u64 - exercised.ancient).saturating_sub(fast.len() as u64);
    (finalized, fast, oracle, inserted_specs, exercised)
}

/// What a run went through beyond the plain DAG.
#[derive(Debug, Default, Clone, Copy)]
struct Exercised {
    cuts: u64,
    ancient: u64,
    stale: u64,
    dragged: u64,
    pruned: u64,
}

fn check(
    seed: u64,
    k: usize,
    window: u64,
    vertices: usize,
    forks: bool,
    min_rounds: usize,
) -> Exercised {
    check_dag(
        seed,
        k,
        window,
        &random_dag(seed, k, vertices, forks, false),
        min_rounds,
    )
}

fn check_dag(seed: u64, k: usize, window: u64, dag: &[VertexSpec], min_rounds: usize) -> Exercised {
    let (finalized, fast, oracle, inserted, exercised) = run_both(k, window, dag);
    check_causal_order(&finalized, &oracle, &inserted, window, seed);
    for vertex in dag {
        if !fast.contains(&vertex.id) {
            // Refused as ancient, or pruned.
            continue;
        }
        assert_eq!(
            fast.round(&vertex.id),
            oracle.round(&vertex.id),
            "round, seed {seed} window {window}"
        );
        assert_eq!(
            fast.is_witness(&vertex.id),
            oracle.is_witness(&vertex.id),
            "witness, seed {seed}"
        );
        // The fast implementation decides fame round by round; the oracle
        // reports a later round's fame as soon as it is decided. Every fame
        // the fast one reports, and all fame below its first undecided
        // round, must agree.
        let fast_fame = fast.fame(&vertex.id);
        let decided_round = fast
            .round(&vertex.id)
            .is_some_and(|r| r < fast.next_undecided_round());
        if fast_fame.is_some() || (decided_round && fast.is_witness(&vertex.id) == Some(true)) {
            assert_eq!(fast_fame, oracle.fame(&vertex.id), "fame, seed {seed}");
        }
    }
    assert!(
        finalized.len() >= min_rounds,
        "seed {seed} k {k}: only {} rounds decided, expected >= {min_rounds}",
        finalized.len()
    );
    exercised
}

/// The finalized sequence keeps causal order: a parent of a finalized
/// anchor is finalized before it, unless it is never finalized and lies
/// below the drag bound (`R - 2G - 1`) of the child's round received `R`.
fn check_causal_order(
    finalized: &[FinalizedRound],
    oracle: &Oracle,
    inserted: &[VertexSpec],
    window: u64,
    seed: u64,
) {
    let parents: HashMap<[u8; 32], &[[u8; 32]]> =
        inserted.iter().map(|v| (v.id, &v.parents[..])).collect();
    let position: HashMap<[u8; 32], u64> = finalized
        .iter()
        .flat_map(|r| &r.anchors)
        .map(|a| (a.id, a.global_index))
        .collect();
    for round in finalized {
        let drag_bound = round.round.saturating_sub(2 * window + 1);
        for anchor in &round.anchors {
            for parent in parents[&anchor.id] {
                match position.get(parent) {
                    Some(at) => assert!(
                        *at < anchor.global_index,
                        "seed {seed} window {window}: parent finalized after its child"
                    ),
                    None => assert!(
                        oracle.round(parent).expect("inserted") < drag_bound,
                        "seed {seed} window {window}: a parent within the drag bound \
                         of round {} was never finalized",
                        round.round
                    ),
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn fast_consensus_matches_oracle_without_forks(
        seed in any::<u64>(),
        k in prop::sample::select(vec![1usize, 2, 4, 5, 7]),
        window in prop::sample::select(vec![2u64, 3, 5, 26]),
    ) {
        let _ = check(seed, k, window, 40 * k + 40, false, 5);
    }

    #[test]
    fn fast_consensus_matches_oracle_with_forks(
        seed in any::<u64>(),
        k in prop::sample::select(vec![4usize, 7]),
        window in prop::sample::select(vec![2u64, 3, 5, 26]),
    ) {
        let _ = check(seed, k, window, 40 * k + 40, true, 3);
    }
}

/// Small windows really exercise the window machinery: over a fixed set of
/// seeds, chain cuts, ancient refusals, stale and dragged anchors and
/// pruning all occur
/// (and every case still matches the oracle).
#[test]
fn small_windows_cut_chains_refuse_ancient_anchors_and_prune() {
    let mut total = Exercised::default();
    for seed in 0..24u64 {
        for (k, forks) in [(4, false), (7, true)] {
            let e = check(seed, k, 2 + seed % 3, 60 * k + 40, forks, 3);
            total.cuts += e.cuts;
            total.ancient += e.ancient;
            total.stale += e.stale;
            total.dragged += e.dragged;
            total.pruned += e.pruned;
        }
    }
    eprintln!("{total:?}");
    assert!(total.cuts > 0, "{total:?}");
    assert!(total.ancient > 0, "{total:?}");
    assert!(total.stale > 0, "{total:?}");
    assert!(total.dragged > 0, "{total:?}");
    assert!(total.pruned > 0, "{total:?}");
}

/// Seats left out of the others' parents for long stretches (one of them
/// falling silent) have their anchors dragged in by received descendants,
/// with ack distances from anchors far below the windows of the round that
/// drags them; both implementations agree and keep causal order.
#[test]
fn shy_seats_are_dragged_in_causal_order() {
    let mut total = Exercised::default();
    for seed in 0..8u64 {
        for forks in [false, true] {
            for window in [2, 3, 4] {
                let k = 7;
                let dag = random_dag(seed, k, 70 * k, forks, true);
                let e = check_dag(seed, k, window, &dag, 3);
                total.stale += e.stale;
                total.dragged += e.dragged;
            }
        }
    }
    eprintln!("{total:?}");
    assert!(total.dragged > 0, "{total:?}");
}

/// A DAG whose fast run leaves a round undecided while the oracle already
/// decided fame in a later one.
#[test]
fn regression_seed_with_a_stuck_round() {
    for k in [4, 7] {
        let _ = check(6241870650899378789, k, 26, 40 * k + 40, true, 0);
    }
}
