//! The batch verifier agrees with the single verifier (libsecp256k1) on
//! every signature of a batch built from the input: the first byte picks
//! how many valid signatures are made, the rest is cut into entries of
//! 32-byte key, 64-byte signature and 32-byte message, placed among them
//! (so corrupted and well-formed entries mix, in batches large enough to be
//! verified as one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::{BatchEntry, Bip340, SignatureVerifier, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let signer = SigningKey::from_secret_bytes(&[3; 32]).expect("valid secret");
    let valid = usize::from(count % 40);
    let mut keys = Vec::new();
    let mut messages = Vec::new();
    let mut signatures = Vec::new();
    for index in 0..valid {
        let message = [index as u8; 32];
        keys.push(signer.public_key());
        signatures.push(signer.sign(&message, &[0; 32]));
        messages.push(message);
    }
    for (index, chunk) in rest.chunks_exact(128).take(64).enumerate() {
        let at = (index * 7) % (keys.len() + 1);
        keys.insert(at, chunk[..32].try_into().expect("32 bytes"));
        signatures.insert(at, chunk[32..96].try_into().expect("64 bytes"));
        messages.insert(at, chunk[96..].try_into().expect("32 bytes"));
    }
    let entries: Vec<BatchEntry<'_>> = (0..keys.len())
        .map(|i| BatchEntry {
            key: &keys[i],
            message: &messages[i],
            signature: &signatures[i],
        })
        .collect();
    let mut verdicts = vec![false; entries.len()];
    Bip340.verify_batch(&entries, &mut verdicts);
    for (entry, verdict) in entries.iter().zip(&verdicts) {
        assert_eq!(
            *verdict,
            Bip340.verify(entry.key, entry.message, entry.signature),
            "batch and single verdicts differ"
        );
    }
});
