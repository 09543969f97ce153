//! BIP-340 Schnorr signatures over secp256k1 behind a small verifier trait.
//!
//! The product always verifies with [`Bip340`]; the deterministic simulator
//! may plug in a fast scheme through [`SignatureVerifier`]. Signing takes the
//! BIP-340 auxiliary randomness from the caller, so this module never draws
//! randomness of its own.

use std::cell::{Cell, RefCell};

use k256::elliptic_curve::sec1::FromEncodedPoint;
use k256::{AffinePoint, EncodedPoint};
use secp256k1::{schnorr, Keypair, Parity, SecretKey, XOnlyPublicKey};

use crate::batch::{BatchEntry, BatchWork};

/// An x-only secp256k1 public key (32 bytes), the protocol's key format.
pub type PublicKeyBytes = [u8; 32];
/// A BIP-340 signature (64 bytes).
pub type SignatureBytes = [u8; 64];

/// Checks a signature by `key` over an arbitrary-length `message`.
pub trait SignatureVerifier {
    /// True iff `signature` is valid for `message` under `key`.
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool;

    /// Sets `verdicts[i]` to [`SignatureVerifier::verify`] of `entries[i]`
    /// for every entry (the slices have one length). The default checks one
    /// signature at a time; [`Bip340`] checks them as a batch
    /// ([`crate::batch`]). What the call did is returned for the counters.
    fn verify_batch(&self, entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
        crate::batch::verify_each(self, entries, verdicts)
    }
}

/// The BIP-340 verifier the product uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bip340;

impl SignatureVerifier for Bip340 {
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        let Some(key) = lifted_key(key) else {
            return false;
        };
        let signature = schnorr::Signature::from_byte_array(*signature);
        schnorr::verify(&signature, message, &key.secp).is_ok()
    }

    fn verify_batch(&self, entries: &[BatchEntry<'_>], verdicts: &mut [bool]) -> BatchWork {
        crate::batch::verify_batch(entries, verdicts)
    }
}

/// Entries of the per-thread cache of parsed public keys.
const KEY_CACHE_ENTRIES: usize = 256;

/// A valid x-only key in the two forms the verifiers use: libsecp256k1's
/// (single verification) and `k256`'s affine point with even y (batches).
#[derive(Clone, Copy)]
struct LiftedKey {
    secp: XOnlyPublicKey,
    point: AffinePoint,
}

type KeyCache = [Option<(PublicKeyBytes, LiftedKey)>; KEY_CACHE_ENTRIES];

thread_local! {
    /// Recently parsed x-only keys of this thread, direct-mapped by the last
    /// byte of the key. Parsing (lifting x to a curve point, a field square
    /// root) is about a fifth of a verification, and the same keys come back
    /// again and again (a shard's seats sign every anchor; a client signs
    /// many transfers). Per thread, so no lock and no sharing between cores;
    /// bounded (a fixed array of 256 entries of about 200 bytes); only valid
    /// keys are stored, and parsing is a pure function of the bytes, so a
    /// hit returns exactly what parsing would and the verifiers' answers do
    /// not change.
    static KEY_CACHE: RefCell<KeyCache> = const { RefCell::new([None; KEY_CACHE_ENTRIES]) };
    /// Hits and misses of this thread's key cache.
    static KEY_CACHE_COUNTS: Cell<KeyCacheCounts> = const { Cell::new(KeyCacheCounts { hits: 0, misses: 0 }) };
}

/// Lookups of the calling thread's key cache since the thread started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyCacheCounts {
    /// Keys found already lifted.
    pub hits: u64,
    /// Keys lifted (or found invalid) on this lookup.
    pub misses: u64,
}

/// The calling thread's key-cache counts (each core has its own cache).
pub fn key_cache_counts() -> KeyCacheCounts {
    KEY_CACHE_COUNTS.get()
}

/// The lifted forms of `key`, through the per-thread cache; `None` if the
/// bytes are not a valid x-only key. A miss lifts once (libsecp256k1's
/// square root) and converts the point for `k256` without a second root.
fn lifted_key(key: &PublicKeyBytes) -> Option<LiftedKey> {
    let slot = usize::from(key[31]) % KEY_CACHE_ENTRIES;
    KEY_CACHE.with_borrow_mut(|cache| {
        let mut counts = KEY_CACHE_COUNTS.get();
        if let Some((cached, lifted)) = &cache[slot] {
            if cached == key {
                counts.hits += 1;
                KEY_CACHE_COUNTS.set(counts);
                return Some(*lifted);
            }
        }
        counts.misses += 1;
        KEY_CACHE_COUNTS.set(counts);
        let secp = XOnlyPublicKey::from_byte_array(*key).ok()?;
        let full = secp.public_key(Parity::Even).serialize_uncompressed();
        let encoded = EncodedPoint::from_bytes(full).ok()?;
        let point = Option::<AffinePoint>::from(AffinePoint::from_encoded_point(&encoded))?;
        let lifted = LiftedKey { secp, point };
        cache[slot] = Some((*key, lifted));
        Some(lifted)
    })
}

/// `lift_x(key)` as a `k256` point with even y, for the batch verifier.
pub(crate) fn lift_public_key(key: &PublicKeyBytes) -> Option<AffinePoint> {
    lifted_key(key).map(|lifted| lifted.point)
}

/// A key that is not a valid secp256k1 secret or x-only public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: not a valid secp256k1 key")]
pub struct InvalidKey {
    /// Which kind of key.
    pub what: &'static str,
}

/// Whether 32 bytes are a valid x-only public key (a point on the curve).
pub fn is_valid_public_key(key: &PublicKeyBytes) -> bool {
    XOnlyPublicKey::from_byte_array(*key).is_ok()
}

/// A BIP-340 signing key.
#[derive(Clone)]
pub struct SigningKey {
    keypair: Keypair,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("public_key", &crate::ids::to_hex(&self.public_key()))
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key with secret scalar `secret` (big-endian, `0 < secret < n`).
    pub fn from_secret_bytes(secret: &[u8; 32]) -> Result<SigningKey, InvalidKey> {
        let secret =
            SecretKey::from_secret_bytes(*secret).map_err(|_| InvalidKey { what: "secret key" })?;
        Ok(SigningKey {
            keypair: Keypair::from_secret_key(&secret),
        })
    }

    /// A fresh key drawn from the caller's cryptographic RNG.
    pub fn generate<R: rand::CryptoRng + ?Sized>(rng: &mut R) -> SigningKey {
        loop {
            let mut secret = [0u8; 32];
            rng.fill_bytes(&mut secret);
            if let Ok(key) = SigningKey::from_secret_bytes(&secret) {
                return key;
            }
        }
    }

    /// The secret scalar, for writing a key file.
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.keypair.to_secret_bytes()
    }

    /// The x-only public key.
    pub fn public_key(&self) -> PublicKeyBytes {
        self.keypair.x_only_public_key().0.to_byte_array()
    }

    /// Signs `message` with the BIP-340 auxiliary randomness `aux_rand`.
    pub fn sign(&self, message: &[u8], aux_rand: &[u8; 32]) -> SignatureBytes {
        schnorr::sign_with_aux_rand(message, &self.keypair, aux_rand).to_byte_array()
    }

    /// Signs `message` with auxiliary randomness drawn from `rng`.
    pub fn sign_with_rng<R: rand::CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> SignatureBytes {
        let mut aux_rand = [0u8; 32];
        rng.fill_bytes(&mut aux_rand);
        self.sign(message, &aux_rand)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_only_for_its_message_and_key() {
        let key = SigningKey::from_secret_bytes(&[3; 32]).unwrap();
        let other = SigningKey::from_secret_bytes(&[4; 32]).unwrap();
        let signature = key.sign(b"anchor", &[0; 32]);
        assert!(Bip340.verify(&key.public_key(), b"anchor", &signature));
        assert!(!Bip340.verify(&key.public_key(), b"anchor!", &signature));
        assert!(!Bip340.verify(&other.public_key(), b"anchor", &signature));
        let mut flipped = signature;
        flipped[10] ^= 1;
        assert!(!Bip340.verify(&key.public_key(), b"anchor", &flipped));
    }

    #[test]
    fn cached_keys_give_the_same_answers() {
        let keys: Vec<SigningKey> = (0..=255u8)
            .map(|seed| {
                let mut secret = [1u8; 32];
                secret[31] = seed;
                SigningKey::from_secret_bytes(&secret).unwrap()
            })
            .collect();
        let signatures: Vec<SignatureBytes> =
            keys.iter().map(|k| k.sign(b"anchor", &[0; 32])).collect();
        // Several rounds over more keys than there are cache slots, so
        // both hits and evictions happen; the answers never change.
        for _ in 0..3 {
            for (index, key) in keys.iter().enumerate() {
                let other = (index + 1) % keys.len();
                assert!(Bip340.verify(&key.public_key(), b"anchor", &signatures[index]));
                assert!(!Bip340.verify(&key.public_key(), b"anchor", &signatures[other]));
                assert!(!Bip340.verify(&key.public_key(), b"anchor!", &signatures[index]));
            }
        }
        // Two keys sharing a slot (same last byte) evict each other and each
        // still verifies only its own signatures.
        let (a, b) = (0..keys.len())
            .flat_map(|a| (a + 1..keys.len()).map(move |b| (a, b)))
            .find(|(a, b)| keys[*a].public_key()[31] == keys[*b].public_key()[31])
            .expect("256 random keys share a last byte somewhere");
        for _ in 0..3 {
            assert!(Bip340.verify(&keys[a].public_key(), b"anchor", &signatures[a]));
            assert!(!Bip340.verify(&keys[b].public_key(), b"anchor", &signatures[a]));
            assert!(Bip340.verify(&keys[b].public_key(), b"anchor", &signatures[b]));
            assert!(!Bip340.verify(&keys[a].public_key(), b"anchor", &signatures[b]));
        }
    }

    #[test]
    fn invalid_keys_are_refused_every_time() {
        // The first x that is not the x coordinate of a curve point, and
        // one out of range (x >= p).
        let not_on_curve = (1u8..)
            .map(|x| {
                let mut key = [0u8; 32];
                key[31] = x;
                key
            })
            .find(|key| !is_valid_public_key(key))
            .expect("about half of all x are not on the curve");
        let over_p = [0xff; 32];
        assert!(!is_valid_public_key(&over_p));
        let signer = SigningKey::from_secret_bytes(&[3; 32]).unwrap();
        let signature = signer.sign(b"m", &[0; 32]);
        for _ in 0..2 {
            assert!(!Bip340.verify(&not_on_curve, b"m", &signature));
            assert!(!Bip340.verify(&over_p, b"m", &signature));
            assert!(Bip340.verify(&signer.public_key(), b"m", &signature));
        }
    }

    #[test]
    fn zero_secret_is_rejected() {
        assert!(SigningKey::from_secret_bytes(&[0; 32]).is_err());
    }
}
