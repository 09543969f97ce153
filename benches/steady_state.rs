//! Steady-state ordering bench (DESIGN §11, issue 3): a fresh observer
//! `Shard` takes a k = 21 DAG of 10 000+ signed anchors of 256 transfers
//! each through `handle_anchor` (decode, validation, DA gate, consensus,
//! fork check, finality, apply, record emission), with pruning on and
//! signature checks taken out. Reported:
//!
//! * `steady_k21/observer_anchor`: one inserted anchor in the steady state
//!   — every anchor after the one whose insertion first pruned the DAG
//!   (the warm-up, untimed) — criterion's mean per anchor, plus p50 / p99 /
//!   max per anchor from individually timed passes (printed to stderr);
//! * `steady_k21/consensus_anchor`: the consensus part alone
//!   (`Consensus::insert_with_birth_round` on the same DAG's vertices);
//! * `steady_k21/apply_all_rounds`: `ShardState::apply_round` over every
//!   finalized round of the workload (throughput in transfers), plus ns per
//!   transfer printed to stderr.
//!
//! The workload is generated once, outside every timed region, by the
//! bench's own DAG generator with 21 in-memory seat machines and the fast
//! signature scheme (see `pc_benches::workload`), and cached in the bench's
//! workload cache (`$PHANTOM_BENCH_CACHE`, else `~/.cache/phantom-engine/bench`;
//! generation takes minutes).
//!
//! Run: `cargo bench -p pc-benches --bench steady_state`
//! (`STEADY_ANCHORS=n` for another workload length).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pc_benches::workload::{self, Workload, TX_PER_ANCHOR};
use pc_codec::genesis::Genesis;
use pc_codec::{Decode, EventDigest, Hash32, MicroEvent, SignatureVerifier, SignedAnchor};
use pc_engine::tools::workload::Unchecked;
use pc_shard::consensus::{Consensus, ConsensusConfig};
use pc_shard::machine::{AnchorStatus, FastSeatKey, FinalizedReport, Role, Shard, ShardLimits};
use pc_shard::sim_crypto::FastVerifier;
use pc_shard::state::{FinalizedPayload, Outcome, ShardState};
use pc_shard::VertexSpec;

/// Anchors in the workload (at least), unless `STEADY_ANCHORS` says
/// otherwise. Consensus keeps the last `3G + 2 = 80` rounds and rounds of
/// this committee take about 220 anchors, so pruning starts after some
/// 17 600 anchors; the rest (about 4 400) is the steady state. Generating
/// the default workload takes about ten minutes on a small VM (then it is
/// cached).
const ANCHORS: usize = 22_000;
/// Fewest steady-state anchors (after pruning started) the bench accepts.
const MIN_STEADY: usize = 4_000;

type Observer<V> = Shard<V, FastSeatKey>;

fn observer<V: SignatureVerifier>(genesis: &Genesis, verifier: V) -> Observer<V> {
    Shard::new(genesis, 0, Role::Observer, verifier, ShardLimits::default())
}

/// One anchor through the observer, with everything the driver would drain.
fn feed<V: SignatureVerifier>(
    machine: &mut Observer<V>,
    bytes: &[u8],
    reports: &mut Vec<FinalizedReport>,
) -> AnchorStatus {
    let status = machine
        .handle_anchor(None, bytes)
        .expect("a workload anchor is accepted");
    while let Some(record) = machine.poll_persist() {
        machine.handle_durable(record.token);
        black_box(record);
    }
    while let Some(report) = machine.poll_finalized() {
        reports.push(report);
    }
    status
}

/// One finalized anchor as apply takes it: creator, events, their digests
/// (as decoding computed them) and ack distances.
type ApplyAnchor = (u8, Vec<MicroEvent>, Vec<EventDigest>, Vec<Option<u64>>);

/// One finalized round as `ShardState::apply_round` takes it.
struct ApplyRound {
    round: u64,
    /// The anchors in total order.
    anchors: Vec<ApplyAnchor>,
    ufw_creators: Vec<u8>,
}

struct Prepared<'a> {
    genesis: &'a Genesis,
    /// The workload's anchors, in order.
    anchors: Vec<&'a [u8]>,
    /// Consensus' view of every anchor, with its claimed birth round.
    vertices: Vec<(VertexSpec, u64)>,
    rounds: Vec<ApplyRound>,
    /// Index of the first steady-state anchor: every anchor before it is
    /// warm-up (inserted untimed); the DAG was first pruned by the one
    /// before it.
    steady_start: usize,
    /// Transfers applied over `rounds`.
    applied: usize,
    genesis_state: ShardState,
}

/// Loads (or generates) the workload of `STEADY_ANCHORS` (default
/// [`ANCHORS`]) anchors.
fn load_workload() -> Workload {
    let started = Instant::now();
    let anchors = std::env::var("STEADY_ANCHORS")
        .ok()
        .map_or(ANCHORS, |n| n.parse().expect("STEADY_ANCHORS is a number"));
    let workload =
        workload::load_or_generate(&pc_engine::tools::bench::default_cache_dir(), anchors)
            .unwrap_or_else(|error| panic!("the steady-state workload: {error}"));
    eprintln!(
        "workload: {} anchors ({} with {TX_PER_ANCHOR} transfers), {} transfers, \
         loaded or generated in {:.1?}",
        workload.anchors().len(),
        workload.full_anchors(),
        workload.transfers(),
        started.elapsed()
    );
    workload
}

/// Checks, untimed, that the workload is what the bench claims: every
/// anchor valid (real fast-scheme signature checks) and inserted, rounds
/// finalized, the DAG pruned to a bounded size; prepares the inputs of the
/// consensus and apply benches.
fn prepare(workload: &Workload) -> Prepared<'_> {
    let anchors = workload.anchors();
    assert!(anchors.len() >= 10_000);
    assert!(
        workload.full_anchors() * 100 >= anchors.len() * 95,
        "fewer than 95 % of the anchors carry {TX_PER_ANCHOR} transfers"
    );

    let mut machine = observer(&workload.genesis, FastVerifier);
    let mut reports = Vec::new();
    let (mut max_len, mut max_len_steady) = (0, 0);
    let (mut steady_start, mut len_at_steady_start) = (None, 0);
    for (index, bytes) in anchors.iter().enumerate() {
        let status = feed(&mut machine, bytes, &mut reports);
        assert_eq!(status, AnchorStatus::Inserted, "anchor {index}");
        let len = machine.consensus().len();
        max_len = max_len.max(len);
        if steady_start.is_some() {
            max_len_steady = max_len_steady.max(len);
        } else if machine.consensus().floor() > 0 {
            steady_start = Some(index + 1);
            len_at_steady_start = len;
        }
    }
    let steady_start = steady_start.expect("the DAG was pruned");
    let consensus = machine.consensus();
    let finalized_anchors: usize = reports.iter().map(|r| r.round.anchors.len()).sum();
    let applied = reports
        .iter()
        .flat_map(|r| &r.outcome.outcomes)
        .filter(|(_, outcome)| *outcome == Outcome::Applied)
        .count();
    let rejected = reports
        .iter()
        .flat_map(|r| &r.outcome.outcomes)
        .filter(|(_, outcome)| *outcome != Outcome::Applied)
        .count();
    eprintln!(
        "observer (FastVerifier): {} rounds finalized ({} anchors, {applied} transfers applied, \
         {rejected} rejected), floor {}, DAG {} anchors at the end, at most {max_len} \
         ({max_len_steady} in the steady state), {} stale; first pruned by anchor {}, \
         so {} steady-state anchors",
        reports.len(),
        finalized_anchors,
        consensus.floor(),
        consensus.len(),
        consensus.stale_count(),
        steady_start - 1,
        anchors.len() - steady_start
    );
    assert_eq!(rejected, 0, "every workload transfer applies");
    assert!(reports.len() >= 100, "too few rounds finalized");
    assert!(consensus.floor() > 0, "nothing was pruned");
    assert!(
        anchors.len() - steady_start >= MIN_STEADY,
        "too few steady-state anchors"
    );
    // Bounded: in the steady state the DAG stays about the size it had
    // when pruning started (rounds differ in size), whatever the run length.
    assert!(
        max_len_steady * 4 <= len_at_steady_start * 5,
        "the DAG is not bounded: {max_len_steady} anchors held, {len_at_steady_start} when \
         pruning started"
    );
    assert!(
        consensus.len() + MIN_STEADY <= anchors.len(),
        "the DAG is not pruned: {} of {} anchors held",
        consensus.len(),
        anchors.len()
    );
    assert!(finalized_anchors * 10 >= anchors.len() * 9);

    let decoded: HashMap<Hash32, SignedAnchor> = anchors
        .iter()
        .map(|bytes| {
            let anchor = SignedAnchor::from_bytes(bytes).expect("a workload anchor decodes");
            (anchor.anchor_id(), anchor)
        })
        .collect();
    let window = consensus.window();
    let vertices = anchors
        .iter()
        .map(|bytes| {
            let anchor = SignedAnchor::from_bytes(bytes).expect("a workload anchor decodes");
            let header = &anchor.header.header;
            let spec = VertexSpec {
                id: anchor.anchor_id(),
                creator: header.creator,
                seq: header.seq,
                // The DAG edges: parents that are not ancient relative to
                // the child (exactly what the machine passes to consensus).
                parents: header
                    .parents
                    .iter()
                    .filter(|p| p.birth_round.saturating_add(window) >= header.birth_round)
                    .map(|p| p.anchor_id)
                    .collect(),
                coin: anchor.header.signature[32] & 1 == 1,
            };
            (spec, header.birth_round)
        })
        .collect();
    let rounds = reports
        .iter()
        .map(|report| ApplyRound {
            round: report.round.round,
            anchors: report
                .round
                .anchors
                .iter()
                .map(|finalized| {
                    let anchor = &decoded[&finalized.id];
                    let network = workload.genesis.network();
                    (
                        anchor.header.header.creator,
                        anchor.payload.events.clone(),
                        anchor
                            .payload
                            .events
                            .iter()
                            .map(|event| EventDigest::of(event, &network))
                            .collect(),
                        finalized.ack_distances.clone(),
                    )
                })
                .collect(),
            ufw_creators: report
                .round
                .unique_famous_witnesses
                .iter()
                .map(|id| decoded[id].header.header.creator)
                .collect(),
        })
        .collect();
    let final_root = machine.state().state_root();
    drop(machine);
    let prepared = Prepared {
        genesis_state: ShardState::from_genesis(&workload.genesis, 0),
        genesis: &workload.genesis,
        anchors,
        vertices,
        rounds,
        steady_start,
        applied,
    };
    // Apply is a pure function of the rounds: replaying them reproduces the
    // observer's state root.
    let mut state = prepared.genesis_state.clone();
    apply_all(&mut state, &prepared.rounds);
    assert_eq!(state.state_root(), final_root);
    prepared
}

fn apply_all(state: &mut ShardState, rounds: &[ApplyRound]) {
    for round in rounds {
        let payloads: Vec<FinalizedPayload<'_>> = round
            .anchors
            .iter()
            .map(
                |(creator, events, digests, ack_distances)| FinalizedPayload {
                    creator: *creator,
                    events,
                    digests,
                    ack_distances,
                },
            )
            .collect();
        black_box(state.apply_round(round.round, &payloads, &round.ufw_creators));
    }
}

/// Per-anchor times (ns) of one pass of the observer, after warm-up.
fn observer_pass<V: SignatureVerifier>(prepared: &Prepared, verifier: V) -> Vec<u64> {
    let anchors = &prepared.anchors;
    let mut machine = observer(prepared.genesis, verifier);
    let mut reports = Vec::new();
    for bytes in &anchors[..prepared.steady_start] {
        feed(&mut machine, bytes, &mut reports);
    }
    let mut times = Vec::with_capacity(anchors.len() - prepared.steady_start);
    for bytes in &anchors[prepared.steady_start..] {
        let start = Instant::now();
        feed(&mut machine, bytes, &mut reports);
        times.push(start.elapsed().as_nanos() as u64);
        reports.clear();
    }
    times
}

/// Per-vertex times (ns) of one pass of consensus alone, after warm-up.
fn consensus_pass(prepared: &Prepared) -> Vec<u64> {
    let mut consensus = new_consensus(prepared);
    for (spec, birth_round) in &prepared.vertices[..prepared.steady_start] {
        insert_vertex(&mut consensus, spec, *birth_round);
    }
    prepared.vertices[prepared.steady_start..]
        .iter()
        .map(|(spec, birth_round)| {
            let start = Instant::now();
            insert_vertex(&mut consensus, spec, *birth_round);
            start.elapsed().as_nanos() as u64
        })
        .collect()
}

fn new_consensus(prepared: &Prepared) -> Consensus {
    let params = &prepared.genesis.params;
    Consensus::new(ConsensusConfig {
        k: usize::from(params.k),
        coin_round_period: u64::from(params.coin_round_period),
        window: u64::from(params.ancient_window_rounds),
    })
}

fn insert_vertex(consensus: &mut Consensus, spec: &VertexSpec, birth_round: u64) {
    consensus
        .insert_with_birth_round(spec.clone(), birth_round)
        .expect("a workload vertex is accepted");
    while let Some(round) = consensus.poll_finalized() {
        black_box(round);
    }
}

fn summary(label: &str, mut times: Vec<u64>) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize] as f64 / 1e3;
    let mean = times.iter().sum::<u64>() as f64 / times.len() as f64 / 1e3;
    eprintln!(
        "{label}: n = {}, mean {mean:.1} µs, p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, \
         p99.9 {:.1} µs, max {:.1} µs",
        times.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(0.999),
        at(1.0)
    );
}

/// Times `iters` steps over `items` in order, one step per iteration; a
/// fresh subject (warmed up with the first `warm_up` items, untimed) is
/// made whenever the items run out.
fn timed_steps<S, T>(
    iters: u64,
    items: &[T],
    warm_up: usize,
    subject: &mut Option<(S, usize)>,
    fresh: &mut impl FnMut() -> S,
    step: &mut impl FnMut(&mut S, &T),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        if subject
            .as_ref()
            .is_none_or(|(_, next)| *next == items.len())
        {
            *subject = None; // drop the old one before building the next
            let mut warm = fresh();
            for item in &items[..warm_up] {
                step(&mut warm, item);
            }
            *subject = Some((warm, warm_up));
        }
        let (machine, next) = subject.as_mut().expect("made above");
        let start = Instant::now();
        step(machine, &items[*next]);
        total += start.elapsed();
        *next += 1;
    }
    total
}

fn steady_state(c: &mut Criterion) {
    let workload = load_workload();
    let prepared = prepare(&workload);

    for pass in 1..=2 {
        summary(
            &format!("observer_anchor per anchor, no signature checks (pass {pass})"),
            observer_pass(&prepared, Unchecked),
        );
    }
    summary(
        "observer_anchor per anchor, FastVerifier (BLAKE3 keyed hash per signature)",
        observer_pass(&prepared, FastVerifier),
    );
    summary("consensus_anchor per vertex", consensus_pass(&prepared));
    let mut apply_ns = Vec::new();
    for _ in 0..3 {
        let mut state = prepared.genesis_state.clone();
        let start = Instant::now();
        apply_all(&mut state, &prepared.rounds);
        apply_ns.push(start.elapsed().as_nanos() as f64 / prepared.applied as f64);
    }
    eprintln!(
        "apply_round: {} rounds, {} transfers, ns per transfer over 3 passes: {:.0?}",
        prepared.rounds.len(),
        prepared.applied,
        apply_ns
    );

    let mut group = c.benchmark_group("steady_k21");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(1));
    let anchors = &prepared.anchors;
    let mut subject = None;
    group.bench_function("observer_anchor", |b| {
        b.iter_custom(|iters| {
            timed_steps(
                iters,
                anchors,
                prepared.steady_start,
                &mut subject,
                &mut || observer(prepared.genesis, Unchecked),
                &mut |machine, bytes: &&[u8]| {
                    let mut reports = Vec::new();
                    black_box(feed(machine, bytes, &mut reports));
                    black_box(reports);
                },
            )
        })
    });
    drop(subject);
    let mut subject = None;
    group.bench_function("consensus_anchor", |b| {
        b.iter_custom(|iters| {
            timed_steps(
                iters,
                &prepared.vertices,
                prepared.steady_start,
                &mut subject,
                &mut || new_consensus(&prepared),
                &mut |consensus, (spec, birth_round): &(VertexSpec, u64)| {
                    insert_vertex(consensus, spec, *birth_round);
                },
            )
        })
    });
    drop(subject);
    group.sample_size(10);
    group.throughput(Throughput::Elements(prepared.applied as u64));
    group.bench_function("apply_all_rounds", |b| {
        b.iter_batched(
            || prepared.genesis_state.clone(),
            |mut state| {
                apply_all(&mut state, &prepared.rounds);
                state
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, steady_state);
criterion_main!(benches);
