//! Workloads shared by the criterion benches: real signed protocol objects
//! built through the product's own builders, so every bench measures the code
//! path the node runs.
#![warn(missing_docs)]

pub mod workload;

use pc_codec::{
    AnchorBuilder, MicroEvent, OutPoint, ParentRef, SignedAnchor, SigningKey, TransferBuilder,
};

/// The network id the benches sign for.
pub const NETWORK: [u8; 8] = *b"pc-bench";

/// A deterministic signing key (benches need no secrecy).
pub fn key(seed: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[seed.max(1); 32]).expect("non-zero secret is a valid key")
}

/// A full anchor: `transfers` signed one-input, two-output transfers and
/// four parents, signed by seat 0.
pub fn full_anchor(transfers: usize) -> SignedAnchor {
    let owner = key(7);
    let events = (0..transfers).map(|i| {
        let transfer = TransferBuilder::new()
            .input(OutPoint {
                tx_id: [(i % 251) as u8; 32],
                index: i as u16,
            })
            .output(1_000, [2; 32])
            .output(5, owner.public_key())
            .sign(&NETWORK, &owner, &[i as u8; 32])
            .expect("transfer within bounds");
        MicroEvent::Transfer(transfer)
    });
    let mut builder = AnchorBuilder::new(NETWORK, 0, 0, 100).birth_round(40);
    for creator in 0..4u8 {
        builder = builder.parent(ParentRef {
            anchor_id: [creator; 32],
            creator,
            seq: 99,
            birth_round: 39,
        });
    }
    builder
        .events(events)
        .sign(&key(1), &[0; 32])
        .expect("anchor within bounds")
}
