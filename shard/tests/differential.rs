//! Differential test of the fast consensus against the naive oracle
//! (explicit ancestor sets) on random DAGs with and without forks: both
//! must agree on every vertex's round, witness status and fame, and on every
//! finalized round (unique famous witnesses and total order).
//!
//! The window `G` is drawn small as well as at its genesis value, so that
//! windowed fork checks, stale anchors, chain cuts (a parent more than `G`
//! rounds below the others is left out, as the machine leaves out an
//! ancient parent) and pruning all happen; a vertex the fast side refuses
//! as ancient is left out of both.

use std::collections::HashSet;

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
fn random_dag(seed: u64, k: usize, vertices: usize, forks: bool) -> Vec<VertexSpec> {
    let mut rng = SplitMix(seed);
    let mut branches: Vec<Vec<Tip>> = vec![Vec::new(); k];
    let mut dag = Vec::with_capacity(vertices);
    for counter in 0..vertices as u64 {
        let creator = rng.below(k);
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

fn run_both(
    k: usize,
    window: u64,
    dag: &[VertexSpec],
) -> (Vec<FinalizedRound>, Consensus, Oracle, Exercised) {
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
            Ok(_) => oracle.insert(spec),
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
    exercised.pruned = (dag.len() as u64 - exercised.ancient).saturating_sub(fast.len() as u64);
    (finalized, fast, oracle, exercised)
}

/// What a run went through beyond the plain DAG.
#[derive(Debug, Default, Clone, Copy)]
struct Exercised {
    cuts: u64,
    ancient: u64,
    stale: u64,
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
    let dag = random_dag(seed, k, vertices, forks);
    let (finalized, fast, oracle, exercised) = run_both(k, window, &dag);
    for vertex in &dag {
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
/// seeds, chain cuts, ancient refusals, stale anchors and pruning all occur
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
            total.pruned += e.pruned;
        }
    }
    eprintln!("{total:?}");
    assert!(total.cuts > 0, "{total:?}");
    assert!(total.ancient > 0, "{total:?}");
    assert!(total.stale > 0, "{total:?}");
    assert!(total.pruned > 0, "{total:?}");
}

/// A DAG whose fast run leaves a round undecided while the oracle already
/// decided fame in a later one.
#[test]
fn regression_seed_with_a_stuck_round() {
    for k in [4, 7] {
        let _ = check(6241870650899378789, k, 26, 40 * k + 40, true, 0);
    }
}
