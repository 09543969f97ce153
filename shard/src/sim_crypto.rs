//! A fast deterministic signature scheme for the simulator **only** (DESIGN
//! §10: "most seeds may use a fast deterministic signature scheme"). Never
//! use it in the product, which always verifies with [`pc_codec::Bip340`].
//!
//! A "public key" is any 32 bytes and the signature of `message` under `key`
//! is the first 64 bytes of the BLAKE3 XOF of `keyed_hash(key, message)`.
//! Anyone who knows the public key can therefore sign for it: that is fine in
//! the simulator, where Byzantine seats are simulated explicitly rather than
//! kept out by cryptography, and it makes a signature cost one hash instead
//! of an elliptic-curve operation. Signatures are unique per (key, message),
//! unlike BIP-340's, so a simulated fork needs two different headers.

use pc_codec::{
    AnchorHeader, AnchorPayload, Encode, PublicKeyBytes, SignatureBytes, SignatureVerifier,
    SignedAnchor, SignedAnchorHeader,
};

/// Signs with the simulator's fast scheme (see the module docs; never the
/// product).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastSigner;

impl FastSigner {
    /// The fast signature of `message` under `key`.
    pub fn sign(&self, key: &PublicKeyBytes, message: &[u8]) -> SignatureBytes {
        let mut signature = [0u8; 64];
        blake3::Hasher::new_keyed(key)
            .update(message)
            .finalize_xof()
            .fill(&mut signature);
        signature
    }

    /// Signs the id of `header` under `key`, exactly as the header is given
    /// (a simulated Byzantine seat may sign a malformed header).
    pub fn sign_header(&self, key: &PublicKeyBytes, header: AnchorHeader) -> SignedAnchorHeader {
        let signature = self.sign(key, &header.id());
        SignedAnchorHeader { header, signature }
    }

    /// Commits `header` to `payload` (root, count, encoded length) and signs
    /// it: the fast counterpart of [`pc_codec::AnchorBuilder::sign`]. It does
    /// not check the protocol's bounds, so the simulator can build oversized
    /// anchors to test their rejection.
    ///
    /// # Panics
    /// If the payload's count or encoded length do not fit the header's
    /// fields (more than `u16::MAX` events or `u32::MAX` bytes).
    pub fn sign_anchor(
        &self,
        key: &PublicKeyBytes,
        mut header: AnchorHeader,
        payload: AnchorPayload,
    ) -> SignedAnchor {
        header.payload_root = payload.root();
        header.payload_count =
            u16::try_from(payload.events.len()).expect("payload count fits the header's u16");
        header.payload_bytes =
            u32::try_from(payload.to_bytes().len()).expect("payload length fits the header's u32");
        SignedAnchor {
            header: self.sign_header(key, header),
            payload,
        }
    }
}

/// Verifies signatures of the simulator's fast scheme (see the module docs;
/// never the product).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastVerifier;

impl SignatureVerifier for FastVerifier {
    fn verify(&self, key: &PublicKeyBytes, message: &[u8], signature: &SignatureBytes) -> bool {
        FastSigner.sign(key, message) == *signature
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_codec::{AnchorBuilder, MicroEvent, Mint};

    #[test]
    fn signature_verifies_only_for_its_key_and_message() {
        let key = [1u8; 32];
        let signature = FastSigner.sign(&key, b"anchor");
        assert!(FastVerifier.verify(&key, b"anchor", &signature));
        assert!(!FastVerifier.verify(&[2; 32], b"anchor", &signature));
        assert!(!FastVerifier.verify(&key, b"anchor!", &signature));
        let mut flipped = signature;
        flipped[63] ^= 1;
        assert!(!FastVerifier.verify(&key, b"anchor", &flipped));
    }

    #[test]
    fn signature_is_the_keyed_hash_extended_to_64_bytes() {
        let key = [3u8; 32];
        let signature = FastSigner.sign(&key, b"message");
        assert_eq!(
            &signature[..32],
            blake3::keyed_hash(&key, b"message").as_bytes()
        );
        assert_ne!(signature[32..], signature[..32]);
        assert_eq!(signature, FastSigner.sign(&key, b"message"));
    }

    #[test]
    fn signed_anchor_commits_to_its_payload_like_the_builder() {
        let key = [4u8; 32];
        let event = MicroEvent::Mint(Mint {
            prev_mint_id: [5; 32],
            miner: [6; 32],
            nonce: 7,
        });
        let bip340 = AnchorBuilder::new([8; 8], 1, 2, 0)
            .event(event.clone())
            .sign(
                &pc_codec::SigningKey::from_secret_bytes(&[9; 32]).unwrap(),
                &[0; 32],
            )
            .unwrap();
        let mut header = bip340.header.header.clone();
        header.payload_root = [0; 32];
        header.payload_count = 0;
        header.payload_bytes = 0;
        let fast = FastSigner.sign_anchor(&key, header, bip340.payload.clone());
        assert_eq!(fast.header.header, bip340.header.header);
        assert!(fast.payload_matches_header());
        assert!(fast.header.verify_signature(&FastVerifier, &key));
        assert!(!fast.header.verify_signature(&FastVerifier, &[5; 32]));
    }
}
