//! An anchor decoded together with the ids every later step needs.
//!
//! A node hashes each micro-event of an anchor it validates: its id (for the
//! payload root) and, for a transfer, its tx id (the message its owner signs
//! and the id its outputs are spent by). [`DecodedAnchor::from_bytes`]
//! computes them once, straight from the received bytes (the encoding is
//! canonical, so those are the bytes re-encoding would produce), and carries
//! them to validation, consensus and apply so nothing is hashed twice.

use crate::ids::{context, derive, Hash32};
use crate::merkle;
use crate::types::{
    anchor_id, AnchorPayload, MicroEvent, SignedAnchor, SignedAnchorHeader, MAX_PAYLOAD_EVENTS,
    MIN_MICRO_EVENT_BYTES,
};
use crate::wire::{Decode, DecodeError, Encode, Reader};

/// Signature length at the end of a transfer's encoding.
const SIGNATURE_BYTES: usize = 64;

/// The ids of one micro-event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventDigest {
    /// [`MicroEvent::id`].
    pub id: Hash32,
    /// For a transfer, [`crate::Transfer::tx_id`] under the network the
    /// anchor was decoded for; all zeros for other kinds.
    pub tx_id: Hash32,
}

impl EventDigest {
    /// The digest of `event`, computed from its encoding.
    pub fn of(event: &MicroEvent, network: &[u8; 8]) -> EventDigest {
        EventDigest::of_encoding(&event.to_bytes(), event, network)
    }

    /// The digest of `event` whose canonical encoding is `raw`.
    fn of_encoding(raw: &[u8], event: &MicroEvent, network: &[u8; 8]) -> EventDigest {
        let tx_id = match event {
            // A transfer's body (inputs, outputs, owner) sits between its
            // tag byte and its signature.
            MicroEvent::Transfer(_) => derive(
                context::TX,
                &[network, &raw[1..raw.len() - SIGNATURE_BYTES]],
            ),
            _ => [0; 32],
        };
        EventDigest {
            id: derive(context::MICRO_EVENT, &[raw]),
            tx_id,
        }
    }
}

/// A signed anchor with its header id, anchor id, payload length and the
/// digest of every micro-event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedAnchor {
    /// The anchor.
    pub anchor: SignedAnchor,
    /// [`crate::AnchorHeader::id`], the message the creator signed.
    pub header_id: Hash32,
    /// [`SignedAnchor::anchor_id`].
    pub anchor_id: Hash32,
    /// Length of the payload's canonical encoding.
    pub payload_bytes: usize,
    /// One digest per micro-event, in payload order.
    pub digests: Vec<EventDigest>,
}

impl DecodedAnchor {
    /// Decodes a complete anchor encoding, hashing each part once from the
    /// input bytes; `network` is the one tx ids are computed under.
    pub fn from_bytes(bytes: &[u8], network: &[u8; 8]) -> Result<DecodedAnchor, DecodeError> {
        let mut reader = Reader::new(bytes);
        let header = SignedAnchorHeader::decode(&mut reader)?;
        let header_end = reader.offset();
        let header_id = derive(context::HEADER, &[&bytes[..header_end - SIGNATURE_BYTES]]);
        let count = reader.count(
            "payload events",
            0,
            MAX_PAYLOAD_EVENTS,
            MIN_MICRO_EVENT_BYTES,
        )?;
        let mut events = Vec::with_capacity(count);
        let mut digests = Vec::with_capacity(count);
        for _ in 0..count {
            let start = reader.offset();
            let event = MicroEvent::decode(&mut reader)?;
            let raw = &bytes[start..reader.offset()];
            digests.push(EventDigest::of_encoding(raw, &event, network));
            events.push(event);
        }
        reader.finish()?;
        Ok(DecodedAnchor {
            anchor_id: anchor_id(&header_id, &header.signature),
            header_id,
            payload_bytes: bytes.len() - header_end,
            anchor: SignedAnchor {
                header,
                payload: AnchorPayload { events },
            },
            digests,
        })
    }

    /// The digests of an anchor held as a value (an own anchor, a test's),
    /// computed from its encoding.
    pub fn from_anchor(anchor: SignedAnchor, network: &[u8; 8]) -> DecodedAnchor {
        let header_id = anchor.header.header.id();
        DecodedAnchor {
            anchor_id: anchor_id(&header_id, &anchor.header.signature),
            header_id,
            payload_bytes: anchor.payload.to_bytes().len(),
            digests: anchor
                .payload
                .events
                .iter()
                .map(|event| EventDigest::of(event, network))
                .collect(),
            anchor,
        }
    }

    /// Merkle root of the micro-event ids ([`AnchorPayload::root`]).
    pub fn payload_root(&self) -> Hash32 {
        merkle::root_of_leaves(
            self.digests
                .iter()
                .map(|digest| merkle::leaf_hash(&digest.id))
                .collect(),
        )
    }

    /// True iff the payload's count, encoded length and Merkle root are the
    /// header's ([`SignedAnchor::payload_matches_header`]).
    pub fn payload_matches_header(&self) -> bool {
        let header = &self.anchor.header.header;
        usize::from(header.payload_count) == self.digests.len()
            && header.payload_bytes as usize == self.payload_bytes
            && header.payload_root == self.payload_root()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::{AnchorBuilder, TransferBuilder};
    use crate::crypto::SigningKey;
    use crate::types::{Mint, OutPoint};

    const NETWORK: [u8; 8] = *b"pc-test0";

    fn anchor() -> SignedAnchor {
        let owner = SigningKey::from_secret_bytes(&[7; 32]).expect("valid key");
        let mut events = Vec::new();
        for n in 0..5u8 {
            let transfer = TransferBuilder::new()
                .input(OutPoint {
                    tx_id: [n; 32],
                    index: u16::from(n),
                })
                .output(10 + u64::from(n), owner.public_key())
                .sign(&NETWORK, &owner, &[n; 32])
                .expect("valid transfer");
            events.push(MicroEvent::Transfer(transfer));
        }
        events.push(MicroEvent::Mint(Mint {
            prev_mint_id: [1; 32],
            miner: [2; 32],
            nonce: 3,
        }));
        AnchorBuilder::new(NETWORK, 0, 2, 0)
            .events(events)
            .sign(
                &SigningKey::from_secret_bytes(&[9; 32]).expect("valid key"),
                &[0; 32],
            )
            .expect("valid anchor")
    }

    #[test]
    fn digests_from_bytes_equal_the_encoded_definitions() {
        let anchor = anchor();
        let bytes = anchor.to_bytes();
        let decoded = DecodedAnchor::from_bytes(&bytes, &NETWORK).expect("decodes");
        assert_eq!(decoded.anchor, anchor);
        assert_eq!(decoded.anchor_id, anchor.anchor_id());
        assert_eq!(decoded.header_id, anchor.header.header.id());
        assert_eq!(decoded.payload_bytes, anchor.payload.to_bytes().len());
        assert_eq!(decoded.payload_root(), anchor.payload.root());
        assert!(decoded.payload_matches_header());
        for (event, digest) in anchor.payload.events.iter().zip(&decoded.digests) {
            assert_eq!(digest.id, event.id());
            match event {
                MicroEvent::Transfer(t) => assert_eq!(digest.tx_id, t.tx_id(&NETWORK)),
                _ => assert_eq!(digest.tx_id, [0; 32]),
            }
        }
        assert_eq!(DecodedAnchor::from_anchor(anchor, &NETWORK), decoded);
    }

    #[test]
    fn decoding_rejects_what_the_plain_decoder_rejects() {
        let bytes = anchor().to_bytes();
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            assert!(DecodedAnchor::from_bytes(&bytes[..cut], &NETWORK).is_err());
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            DecodedAnchor::from_bytes(&long, &NETWORK),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn a_changed_event_no_longer_matches_the_header() {
        let mut anchor = anchor();
        if let MicroEvent::Transfer(t) = &mut anchor.payload.events[0] {
            t.outputs[0].amount += 1;
        }
        let decoded = DecodedAnchor::from_bytes(&anchor.to_bytes(), &NETWORK).expect("decodes");
        assert!(!decoded.payload_matches_header());
    }
}
