//! Builders that assemble, bound-check and sign transfers and anchors, so a
//! caller can never produce an object the decoder would reject.

use crate::crypto::SigningKey;
use crate::ids::Hash32;
use crate::types::{
    AnchorHeader, AnchorPayload, MicroEvent, OutPoint, ParentRef, SignedAnchor, SignedAnchorHeader,
    Transfer, TxOut, MAX_PARENTS, MAX_PAYLOAD_EVENTS, MAX_TRANSFER_INPUTS, MAX_TRANSFER_OUTPUTS,
    PROTOCOL_VERSION,
};
use crate::wire::Encode;

/// Why a builder refused to build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A list is empty or longer than the protocol allows.
    #[error("{what}: {count} is outside {min}..={max}")]
    CountOutOfBounds {
        /// The list.
        what: &'static str,
        /// Its length.
        count: usize,
        /// Smallest allowed length.
        min: usize,
        /// Largest allowed length.
        max: usize,
    },
}

fn check_count(what: &'static str, count: usize, min: usize, max: usize) -> Result<(), BuildError> {
    if (min..=max).contains(&count) {
        Ok(())
    } else {
        Err(BuildError::CountOutOfBounds {
            what,
            count,
            min,
            max,
        })
    }
}

/// Builds and signs a [`Transfer`].
#[derive(Debug, Clone, Default)]
pub struct TransferBuilder {
    inputs: Vec<OutPoint>,
    outputs: Vec<TxOut>,
}

impl TransferBuilder {
    /// An empty transfer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Spends `input` (owned by the signing key).
    pub fn input(mut self, input: OutPoint) -> Self {
        self.inputs.push(input);
        self
    }

    /// Pays `amount` units to `owner`.
    pub fn output(mut self, amount: u64, owner: [u8; 32]) -> Self {
        self.outputs.push(TxOut { amount, owner });
        self
    }

    /// Signs the transfer for `network` with `key` (the owner of every input)
    /// and BIP-340 auxiliary randomness `aux_rand`.
    pub fn sign(
        self,
        network: &[u8; 8],
        key: &SigningKey,
        aux_rand: &[u8; 32],
    ) -> Result<Transfer, BuildError> {
        check_count("transfer inputs", self.inputs.len(), 1, MAX_TRANSFER_INPUTS)?;
        check_count(
            "transfer outputs",
            self.outputs.len(),
            1,
            MAX_TRANSFER_OUTPUTS,
        )?;
        let mut transfer = Transfer {
            inputs: self.inputs,
            outputs: self.outputs,
            owner: key.public_key(),
            signature: [0; 64],
        };
        transfer.signature = key.sign(&transfer.tx_id(network), aux_rand);
        Ok(transfer)
    }
}

/// Builds and signs a [`SignedAnchor`]: computes the payload commitment
/// (root, count, bytes) and signs the header id.
#[derive(Debug, Clone)]
pub struct AnchorBuilder {
    header: AnchorHeader,
    events: Vec<MicroEvent>,
}

impl AnchorBuilder {
    /// An anchor of seat `creator` at `seq` in `shard` of `network`.
    pub fn new(network: [u8; 8], shard: u16, creator: u8, seq: u64) -> Self {
        AnchorBuilder {
            header: AnchorHeader {
                version: PROTOCOL_VERSION,
                network,
                shard,
                epoch: 0,
                creator,
                seq,
                birth_round: 0,
                parents: Vec::new(),
                payload_root: [0; 32],
                payload_count: 0,
                payload_bytes: 0,
            },
            events: Vec::new(),
        }
    }

    /// Sets the claimed round.
    pub fn birth_round(mut self, round: u64) -> Self {
        self.header.birth_round = round;
        self
    }

    /// Appends a parent (the self-parent must come first).
    pub fn parent(mut self, parent: ParentRef) -> Self {
        self.header.parents.push(parent);
        self
    }

    /// Appends a parent referencing `anchor`.
    pub fn parent_anchor(self, anchor: &SignedAnchor) -> Self {
        let header = &anchor.header.header;
        let parent = ParentRef {
            anchor_id: anchor.anchor_id(),
            creator: header.creator,
            seq: header.seq,
            birth_round: header.birth_round,
        };
        self.parent(parent)
    }

    /// Appends a micro-event to the payload.
    pub fn event(mut self, event: MicroEvent) -> Self {
        self.events.push(event);
        self
    }

    /// Appends micro-events to the payload.
    pub fn events(mut self, events: impl IntoIterator<Item = MicroEvent>) -> Self {
        self.events.extend(events);
        self
    }

    /// Commits to the payload and signs the header id with `key`.
    pub fn sign(self, key: &SigningKey, aux_rand: &[u8; 32]) -> Result<SignedAnchor, BuildError> {
        check_count("anchor parents", self.header.parents.len(), 0, MAX_PARENTS)?;
        check_count("payload events", self.events.len(), 0, MAX_PAYLOAD_EVENTS)?;
        let payload = AnchorPayload {
            events: self.events,
        };
        let mut header = self.header;
        header.payload_root = payload.root();
        header.payload_count = payload.events.len() as u16;
        header.payload_bytes = payload.to_bytes().len() as u32;
        let header_id: Hash32 = header.id();
        let signature = key.sign(&header_id, aux_rand);
        Ok(SignedAnchor {
            header: SignedAnchorHeader { header, signature },
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Bip340;

    #[test]
    fn built_anchor_commits_to_its_payload_and_verifies() {
        let key = SigningKey::from_secret_bytes(&[1; 32]).unwrap();
        let network = [9; 8];
        let transfer = TransferBuilder::new()
            .input(OutPoint {
                tx_id: [2; 32],
                index: 0,
            })
            .output(5, [3; 32])
            .sign(&network, &key, &[0; 32])
            .unwrap();
        assert!(transfer.verify_signature(&Bip340, &network));
        assert!(!transfer.verify_signature(&Bip340, &[8; 8]));
        let anchor = AnchorBuilder::new(network, 1, 0, 0)
            .event(MicroEvent::Transfer(transfer))
            .sign(&key, &[0; 32])
            .unwrap();
        assert!(anchor.payload_matches_header());
        assert!(anchor.header.verify_signature(&Bip340, &key.public_key()));
        let mut tampered = anchor.clone();
        tampered.payload.events.clear();
        assert!(!tampered.payload_matches_header());
    }

    #[test]
    fn builders_refuse_out_of_bound_lists() {
        let key = SigningKey::from_secret_bytes(&[1; 32]).unwrap();
        assert!(matches!(
            TransferBuilder::new()
                .output(1, [0; 32])
                .sign(&[0; 8], &key, &[0; 32]),
            Err(BuildError::CountOutOfBounds {
                what: "transfer inputs",
                ..
            })
        ));
        let parent = ParentRef {
            anchor_id: [0; 32],
            creator: 1,
            seq: 0,
            birth_round: 0,
        };
        let mut builder = AnchorBuilder::new([0; 8], 0, 0, 1);
        for _ in 0..5 {
            builder = builder.parent(parent);
        }
        assert!(builder.sign(&key, &[0; 32]).is_err());
    }
}
