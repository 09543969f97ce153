//! Consensus bench: inserting a k = 21 DAG into the fast virtual-voting
//! consensus (rounds, fame, ordering, ack distances; no signatures, no
//! payloads). Each vertex references its self-parent and the latest anchors
//! of three other seats, seats taking turns, so rounds advance steadily as
//! in a live committee. Reports time per inserted anchor.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pc_shard::consensus::{Consensus, ConsensusConfig};
use pc_shard::VertexSpec;

const SEATS: usize = 21;

fn dag(vertices: usize) -> Vec<VertexSpec> {
    let mut latest: Vec<Option<([u8; 32], u64)>> = vec![None; SEATS];
    let mut out = Vec::with_capacity(vertices);
    for n in 0..vertices {
        let creator = n % SEATS;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(n as u64).to_le_bytes());
        let mut parents = Vec::new();
        let seq = match latest[creator] {
            Some((own, seq)) => {
                parents.push(own);
                seq + 1
            }
            None => 0,
        };
        // Three other seats, spread by a stride so every seat is referenced.
        for step in [1, 5, 11] {
            if let Some((other, _)) = latest[(creator + SEATS - step) % SEATS] {
                parents.push(other);
            }
        }
        latest[creator] = Some((id, seq));
        out.push(VertexSpec {
            id,
            creator: creator as u8,
            seq,
            parents,
            coin: n % 2 == 0,
        });
    }
    out
}

fn insert(c: &mut Criterion) {
    let vertices = dag(10_000);
    let mut group = c.benchmark_group("consensus_k21");
    group.sample_size(10);
    group.throughput(Throughput::Elements(vertices.len() as u64));
    group.bench_function("insert_10000_anchors", |b| {
        b.iter_batched(
            || {
                (
                    Consensus::new(ConsensusConfig {
                        k: SEATS,
                        coin_round_period: 10,
                        window: 26,
                    }),
                    vertices.clone(),
                )
            },
            |(mut consensus, vertices)| {
                let mut finalized = 0;
                for vertex in vertices {
                    consensus.insert(vertex).expect("valid DAG");
                    while let Some(round) = consensus.poll_finalized() {
                        finalized += round.anchors.len();
                    }
                }
                assert!(finalized > 9_000, "only {finalized} anchors finalized");
                black_box(finalized)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, insert);
criterion_main!(benches);
