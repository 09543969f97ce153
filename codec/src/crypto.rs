//! BIP-340 Schnorr signatures over secp256k1 behind a small verifier trait.
//!
//! The product always verifies with [`Bip340`]; the deterministic simulator
//! may plug in a fast scheme through [`SignatureVerifier`]. Signing takes the
//! BIP-340 auxiliary randomness from the caller, so this module never draws
//! randomness of its own.

use std::sync::OnceLock;

use secp256k1::{schnorr, Keypair, Secp256k1, SecretKey, XOnlyPublicKey};

/// An x-only secp256k1 public key (32 bytes), the protocol's key format.
pub type PublicKeyBytes = [u8; 32];
/// A BIP-340 signature (64 bytes).
pub type SignatureBytes = [u8; 64];

/// Checks a signature by `key` over an arbitrary-length `message`.
pub trait SignatureVerifier {
    /// True iff `signature` is valid for `message` under `key`.
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool;
}

fn context() -> &'static Secp256k1<secp256k1::All> {
    static CONTEXT: OnceLock<Secp256k1<secp256k1::All>> = OnceLock::new();
    CONTEXT.get_or_init(Secp256k1::new)
}

/// The BIP-340 verifier the product uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bip340;

impl SignatureVerifier for Bip340 {
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        let Ok(key) = XOnlyPublicKey::from_byte_array(*key) else {
            return false;
        };
        let signature = schnorr::Signature::from_byte_array(*signature);
        context().verify_schnorr(&signature, message, &key).is_ok()
    }
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
            SecretKey::from_byte_array(*secret).map_err(|_| InvalidKey { what: "secret key" })?;
        Ok(SigningKey {
            keypair: Keypair::from_secret_key(context(), &secret),
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
        self.keypair.secret_bytes()
    }

    /// The x-only public key.
    pub fn public_key(&self) -> PublicKeyBytes {
        self.keypair.x_only_public_key().0.serialize()
    }

    /// Signs `message` with the BIP-340 auxiliary randomness `aux_rand`.
    pub fn sign(&self, message: &[u8], aux_rand: &[u8; 32]) -> SignatureBytes {
        context()
            .sign_schnorr_with_aux_rand(message, &self.keypair, aux_rand)
            .to_byte_array()
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
    fn zero_secret_is_rejected() {
        assert!(SigningKey::from_secret_bytes(&[0; 32]).is_err());
    }
}
