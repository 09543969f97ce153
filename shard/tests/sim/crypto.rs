//! The two signature schemes a seed can run with, behind one trait so that
//! the simulation is written once: the fast deterministic scheme of
//! `pc_shard::sim_crypto` (most seeds) and real BIP-340 (one seed in ten).

use std::sync::OnceLock;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
};
use pc_codec::{
    AnchorHeader, AnchorPayload, Bip340, Encode, PublicKeyBytes, SignatureVerifier, SignedAnchor,
    SignedAnchorHeader, SigningKey, Transfer,
};
use pc_shard::machine::{AnchorSigner, FastSeatKey};
use pc_shard::sim_crypto::{FastSigner, FastVerifier};

/// Largest committee the simulator builds.
pub const MAX_SEATS: usize = 64;
/// Client keys that own the genesis allocations.
pub const CLIENTS: usize = 4;
/// The only shard simulated (`S = 1`, so every owner lives in it).
pub const SHARD: u16 = 0;

/// Seat keys, then client keys; secrets are fixed so that every seed and
/// every platform signs alike. Built once: key derivation is an elliptic
/// curve multiplication.
fn keys() -> &'static [(SigningKey, PublicKeyBytes)] {
    static KEYS: OnceLock<Vec<(SigningKey, PublicKeyBytes)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..MAX_SEATS + CLIENTS)
            .map(|i| {
                let mut secret = [0x5a; 32];
                secret[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
                let key = SigningKey::from_secret_bytes(&secret).expect("a valid secret");
                let public = key.public_key();
                (key, public)
            })
            .collect()
    })
}

/// The genesis of one seed: `k` seats of shard 0 and `CLIENTS` allocations
/// of `outputs` outputs of `amount` units.
pub fn genesis(
    k: usize,
    outputs: u32,
    amount: u64,
    coin_round_period: u64,
    window: u64,
) -> Genesis {
    let mut params = ConsensusParams::v0(k as u8, 1);
    params.coin_round_period = coin_round_period as _;
    params.ancient_window_rounds = window as _;
    Genesis {
        params,
        note_commitment: [7; 32],
        validators: (0..k)
            .map(|seat| GenesisValidator {
                key: seat_public(seat as u8),
                bond: 1_000,
                seats: vec![SeatAssignment {
                    shard: SHARD,
                    seat: seat as u8,
                }],
            })
            .collect(),
        allocations: (0..CLIENTS)
            .map(|client| GenesisAllocation {
                owner: client_public(client),
                amount,
                outputs,
            })
            .collect(),
    }
}

/// The public key of a seat.
pub fn seat_public(seat: u8) -> PublicKeyBytes {
    keys()[usize::from(seat)].1
}

/// The public key of a client.
pub fn client_public(client: usize) -> PublicKeyBytes {
    keys()[MAX_SEATS + client].1
}

/// Sets the payload commitment (root, count, encoded length) of a header.
pub fn commit_payload(header: &mut AnchorHeader, payload: &AnchorPayload) {
    header.payload_root = payload.root();
    header.payload_count = payload.events.len() as u16;
    header.payload_bytes = payload.to_bytes().len() as u32;
}

/// A signature scheme of the simulation.
pub trait SimCrypto: 'static {
    /// The verifier every machine of the seed uses.
    type Verifier: SignatureVerifier;
    /// The signer a seat machine holds.
    type SeatKey: AnchorSigner;
    /// Shown in failure messages and timings.
    const NAME: &'static str;

    /// A verifier.
    fn verifier() -> Self::Verifier;
    /// The signer of `seat`.
    fn seat_key(seat: u8) -> Self::SeatKey;
    /// Signs `transfer` as `client` for `network`.
    fn sign_transfer(client: usize, transfer: &mut Transfer, network: &[u8; 8]);
    /// Commits `header` to `payload` and signs it as `seat`. `aux` is the
    /// BIP-340 auxiliary randomness: two calls that differ only in `aux`
    /// give two signatures of one header (a fork) where the scheme allows it.
    fn sign_anchor(
        seat: u8,
        header: AnchorHeader,
        payload: AnchorPayload,
        aux: [u8; 32],
    ) -> SignedAnchor;
    /// Signs `header` as `seat` as it stands (no payload commitment).
    fn sign_header(seat: u8, header: AnchorHeader) -> SignedAnchorHeader;
    /// Signs a claim message with `seat`'s key.
    fn sign_claim(seat: u8, message: &[u8; 32]) -> pc_codec::SignatureBytes;
    /// Whether two signatures of one header can differ (BIP-340: yes).
    fn signatures_vary() -> bool;
}

/// The fast deterministic scheme (never the product).
pub struct Fast;

impl SimCrypto for Fast {
    type Verifier = FastVerifier;
    type SeatKey = FastSeatKey;
    const NAME: &'static str = "fast";

    fn verifier() -> FastVerifier {
        FastVerifier
    }
    fn seat_key(seat: u8) -> FastSeatKey {
        FastSeatKey(seat_public(seat))
    }
    fn sign_transfer(client: usize, transfer: &mut Transfer, network: &[u8; 8]) {
        transfer.signature = FastSigner.sign(&client_public(client), &transfer.tx_id(network));
    }
    fn sign_anchor(
        seat: u8,
        header: AnchorHeader,
        payload: AnchorPayload,
        _aux: [u8; 32],
    ) -> SignedAnchor {
        FastSigner.sign_anchor(&seat_public(seat), header, payload)
    }
    fn sign_header(seat: u8, header: AnchorHeader) -> SignedAnchorHeader {
        FastSigner.sign_header(&seat_public(seat), header)
    }
    fn sign_claim(seat: u8, message: &[u8; 32]) -> pc_codec::SignatureBytes {
        FastSigner.sign(&seat_public(seat), message)
    }
    fn signatures_vary() -> bool {
        false
    }
}

/// Real BIP-340 Schnorr signatures, as the product uses.
pub struct RealBip340;

impl SimCrypto for RealBip340 {
    type Verifier = Bip340;
    type SeatKey = SigningKey;
    const NAME: &'static str = "bip340";

    fn verifier() -> Bip340 {
        Bip340
    }
    fn seat_key(seat: u8) -> SigningKey {
        keys()[usize::from(seat)].0.clone()
    }
    fn sign_transfer(client: usize, transfer: &mut Transfer, network: &[u8; 8]) {
        let key = &keys()[MAX_SEATS + client].0;
        transfer.signature = key.sign(&transfer.tx_id(network), &[0; 32]);
    }
    fn sign_anchor(
        seat: u8,
        mut header: AnchorHeader,
        payload: AnchorPayload,
        aux: [u8; 32],
    ) -> SignedAnchor {
        commit_payload(&mut header, &payload);
        let signature = keys()[usize::from(seat)].0.sign(&header.id(), &aux);
        SignedAnchor {
            header: SignedAnchorHeader { header, signature },
            payload,
        }
    }
    fn sign_header(seat: u8, header: AnchorHeader) -> SignedAnchorHeader {
        let signature = keys()[usize::from(seat)].0.sign(&header.id(), &[0; 32]);
        SignedAnchorHeader { header, signature }
    }
    fn sign_claim(seat: u8, message: &[u8; 32]) -> pc_codec::SignatureBytes {
        keys()[usize::from(seat)].0.sign(message, &[0; 32])
    }
    fn signatures_vary() -> bool {
        true
    }
}
