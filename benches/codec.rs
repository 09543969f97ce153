//! Codec benches: canonical encode and strict decode of a full anchor (256
//! signed transfers), its ids and payload root, and BIP-340 verification —
//! a single signature (one key again and again, and 1024 keys in turn) and
//! every signature of a full anchor, one at a time and as the product does
//! it (the header alone, the transfers as one batch).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pc_benches::{full_anchor, key, NETWORK};
use pc_codec::{BatchEntry, Bip340, Decode, Encode, MicroEvent, SignatureVerifier, SignedAnchor};

fn codec(c: &mut Criterion) {
    let anchor = full_anchor(256);
    let bytes = anchor.to_bytes();
    let mut group = c.benchmark_group("anchor_256_transfers");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            black_box(&anchor).encode(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| SignedAnchor::from_bytes(black_box(&bytes)).unwrap())
    });
    group.bench_function("anchor_id", |b| b.iter(|| black_box(&anchor).anchor_id()));
    group.bench_function("payload_matches_header", |b| {
        b.iter(|| black_box(&anchor).payload_matches_header())
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let signer = key(3);
    let message = [9u8; 32];
    let signature = signer.sign(&message, &[0; 32]);
    let public = signer.public_key();
    c.bench_function("bip340_verify_one", |b| {
        b.iter(|| {
            assert!(Bip340.verify(
                black_box(&public),
                black_box(&message),
                black_box(&signature)
            ))
        })
    });
    // 1024 keys in turn: more than the verifier's per-thread cache of
    // parsed keys holds, so most calls parse their key (the cache's miss
    // path), to compare with `bip340_verify_one` (always a hit).
    let rotating: Vec<_> = (0..1024u32)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..4].copy_from_slice(&i.to_le_bytes());
            let signer = pc_codec::SigningKey::from_secret_bytes(&secret).expect("valid secret");
            (signer.public_key(), signer.sign(&message, &[0; 32]))
        })
        .collect();
    c.bench_function("bip340_verify_rotating_1024_keys", |b| {
        let mut next = 0;
        b.iter(|| {
            let (public, signature) = &rotating[next % rotating.len()];
            next += 1;
            assert!(Bip340.verify(black_box(public), black_box(&message), black_box(signature)))
        })
    });
    let anchor = full_anchor(256);
    let mut group = c.benchmark_group("anchor_256_transfers");
    group.throughput(Throughput::Elements(257));
    group.bench_function("verify_all_signatures", |b| {
        let seat = key(1).public_key();
        b.iter(|| {
            assert!(anchor.header.verify_signature(&Bip340, &seat));
            for event in &anchor.payload.events {
                let MicroEvent::Transfer(transfer) = event else {
                    unreachable!("bench anchor holds transfers")
                };
                assert!(transfer.verify_signature(&Bip340, &NETWORK));
            }
        })
    });
    // The product's path: the header alone, the transfers as one batch
    // (one client key: the bench anchor's transfers share an owner).
    group.bench_function("verify_all_signatures_batched", |b| {
        let seat = key(1).public_key();
        let ids: Vec<[u8; 32]> = anchor
            .payload
            .events
            .iter()
            .map(|event| match event {
                MicroEvent::Transfer(transfer) => transfer.tx_id(&NETWORK),
                _ => unreachable!("bench anchor holds transfers"),
            })
            .collect();
        let mut verdicts = vec![false; ids.len()];
        b.iter(|| {
            assert!(anchor.header.verify_signature(&Bip340, &seat));
            let entries: Vec<BatchEntry<'_>> = anchor
                .payload
                .events
                .iter()
                .zip(&ids)
                .map(|(event, id)| {
                    let MicroEvent::Transfer(transfer) = event else {
                        unreachable!("bench anchor holds transfers")
                    };
                    BatchEntry {
                        key: &transfer.owner,
                        message: id,
                        signature: &transfer.signature,
                    }
                })
                .collect();
            Bip340.verify_batch(&entries, &mut verdicts);
            assert!(verdicts.iter().all(|v| *v));
        })
    });
    group.finish();
}

criterion_group!(benches, codec, verify);
criterion_main!(benches);
