//! BIP-340 batch verification against one signature at a time, on the same
//! signatures: batches of 1, 16, 64, 257 and 1024 signatures, signed by as
//! many different keys (every key term its own point: the worst case for a
//! batch) and by one key (a client's many transfers: one merged key term),
//! and the single verifier (libsecp256k1) over the same inputs. Throughput
//! is in signatures, so the rates compare directly.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pc_codec::{BatchEntry, Bip340, PublicKeyBytes, SignatureBytes, SignatureVerifier, SigningKey};

struct Signed {
    key: PublicKeyBytes,
    message: [u8; 32],
    signature: SignatureBytes,
}

fn signed(len: usize, keys: usize) -> Vec<Signed> {
    let signers: Vec<SigningKey> = (0..keys as u32)
        .map(|i| {
            let mut secret = [5u8; 32];
            secret[..4].copy_from_slice(&i.to_le_bytes());
            SigningKey::from_secret_bytes(&secret).expect("valid secret")
        })
        .collect();
    (0..len)
        .map(|i| {
            let signer = &signers[i % keys];
            let message = *blake3::hash(&(i as u64).to_le_bytes()).as_bytes();
            Signed {
                key: signer.public_key(),
                message,
                signature: signer.sign(&message, &[0; 32]),
            }
        })
        .collect()
}

fn batch_verify(c: &mut Criterion) {
    for (label, distinct) in [("distinct_keys", true), ("one_key", false)] {
        let mut group = c.benchmark_group(format!("bip340_batch_{label}"));
        for size in [1usize, 16, 64, 257, 1024] {
            let items = signed(size, if distinct { size } else { 1 });
            let entries: Vec<BatchEntry<'_>> = items
                .iter()
                .map(|s| BatchEntry {
                    key: &s.key,
                    message: &s.message,
                    signature: &s.signature,
                })
                .collect();
            group.throughput(Throughput::Elements(size as u64));
            group.bench_with_input(BenchmarkId::new("batch", size), &entries, |b, entries| {
                let mut verdicts = vec![false; entries.len()];
                b.iter(|| {
                    Bip340.verify_batch(black_box(entries), &mut verdicts);
                    assert!(verdicts.iter().all(|v| *v));
                })
            });
            group.bench_with_input(BenchmarkId::new("single", size), &items, |b, items| {
                b.iter(|| {
                    for s in items {
                        assert!(Bip340.verify(
                            black_box(&s.key),
                            black_box(&s.message),
                            black_box(&s.signature)
                        ));
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, batch_verify);
criterion_main!(benches);
