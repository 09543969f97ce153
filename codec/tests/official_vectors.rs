//! The official BIP-340 and BLAKE3 test vectors (copied into
//! `tests/vectors/` with their provenance). A missing vector file fails.

use pc_codec::crypto::{Bip340, SignatureVerifier, SigningKey};

const BIP340_CSV: &str = include_str!("vectors/bip340-test-vectors.csv");
const BLAKE3_JSON: &str = include_str!("vectors/blake3-test-vectors.json");

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text:?}: {e}"))
}

fn array<const N: usize>(text: &str) -> [u8; N] {
    unhex(text).try_into().expect("field length")
}

#[test]
fn all_19_bip340_rows_sign_and_verify_as_the_csv_says() {
    let mut signing_rows = 0;
    let mut rows = 0;
    for line in BIP340_CSV.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.splitn(8, ',').collect();
        let [index, secret, public, aux, message, signature, expected, _comment] = fields[..]
        else {
            panic!("malformed row {line}");
        };
        let public: [u8; 32] = array(public);
        let message = unhex(message);
        let signature: [u8; 64] = array(signature);
        let expected = match expected {
            "TRUE" => true,
            "FALSE" => false,
            other => panic!("row {index}: verification result {other}"),
        };
        if !secret.is_empty() {
            let key = SigningKey::from_secret_bytes(&array(secret)).expect("vector secret key");
            assert_eq!(key.public_key(), public, "row {index}: public key");
            let produced = key.sign(&message, &array(aux));
            assert_eq!(produced, signature, "row {index}: signature byte for byte");
            signing_rows += 1;
        }
        assert_eq!(
            Bip340.verify(&public, &message, &signature),
            expected,
            "row {index}: verification result"
        );
        rows += 1;
    }
    assert_eq!(rows, 19);
    // Rows 0-3 and 15-18 carry a secret key and must be reproduced exactly.
    assert_eq!(signing_rows, 8);
}

/// Input byte `i` of every case is `i % 251`.
fn blake3_input(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn extended(mut reader: blake3::OutputReader, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    reader.fill(&mut out);
    out
}

#[test]
fn all_35_blake3_cases_match_in_every_mode_with_extended_output() {
    let vectors: serde_json::Value = serde_json::from_str(BLAKE3_JSON).expect("vector json");
    let key: [u8; 32] = vectors["key"]
        .as_str()
        .unwrap()
        .as_bytes()
        .try_into()
        .unwrap();
    let context = vectors["context_string"].as_str().unwrap();
    let cases = vectors["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 35);
    for case in cases {
        let len = case["input_len"].as_u64().unwrap() as usize;
        let input = blake3_input(len);
        let hash = unhex(case["hash"].as_str().unwrap());
        let keyed = unhex(case["keyed_hash"].as_str().unwrap());
        let derived = unhex(case["derive_key"].as_str().unwrap());

        let mut hasher = blake3::Hasher::new();
        hasher.update(&input);
        assert_eq!(
            extended(hasher.finalize_xof(), hash.len()),
            hash,
            "hash len {len}"
        );
        assert_eq!(
            blake3::hash(&input).as_bytes(),
            &hash[..32],
            "hash32 len {len}"
        );

        let mut hasher = blake3::Hasher::new_keyed(&key);
        hasher.update(&input);
        assert_eq!(
            extended(hasher.finalize_xof(), keyed.len()),
            keyed,
            "keyed len {len}"
        );
        assert_eq!(blake3::keyed_hash(&key, &input).as_bytes(), &keyed[..32]);

        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(&input);
        assert_eq!(
            extended(hasher.finalize_xof(), derived.len()),
            derived,
            "derive len {len}"
        );
        assert_eq!(blake3::derive_key(context, &input)[..], derived[..32]);
        // The codec's own id function is the same derive_key.
        assert_eq!(pc_codec::ids::derive(context, &[&input])[..], derived[..32]);
    }
}
