//! The stateless proofs of Offence micro-events (DESIGN §5.4): each kind is
//! provable from signed data and the genesis alone, and an offence whose
//! proof fails makes its carrying anchor invalid. Only kind 2's comparison
//! with this shard's own checkpoint waits for apply.
//!
//! The offender's headers and checkpoints must be of this shard (network,
//! shard, version, epoch 0, a seat `< k`): one key holds seats in many
//! shards, and its data of shard A never slashes it in B.

use pc_codec::ids::{context as id_context, derive};
use pc_codec::{
    AnchorHeader, CheckpointSig, Decode, MicroEvent, Offence, SignatureVerifier,
    SignedAnchorHeader, Why,
};

use crate::economics::OffenceClass;
use crate::validate::{
    check_commitment, check_header_rules, check_header_structure, validate_micro_event,
    MicroEventError, ShardContext,
};

/// The class of an offence kind.
pub fn class_of(offence: &Offence) -> OffenceClass {
    match offence {
        Offence::InvalidAnchor { .. }
        | Offence::InvalidParent { .. }
        | Offence::WrongCheckpoint { .. } => OffenceClass::VoteForInvalid,
        Offence::ConflictingRef { .. } | Offence::Unsatisfiable { .. } => {
            OffenceClass::ConflictingData
        }
        Offence::CheckpointFork { .. } => OffenceClass::Equivocation,
    }
}

fn refuse(offence: &Offence, reason: &'static str) -> MicroEventError {
    MicroEventError::Offence {
        kind: offence.kind(),
        reason,
    }
}

/// The offender's header is of this shard.
pub(crate) fn own_header(context: &ShardContext, header: &AnchorHeader) -> bool {
    header.version == pc_codec::PROTOCOL_VERSION
        && header.network == context.network
        && header.shard == context.shard
        && header.epoch == 0
        && usize::from(header.creator) < context.k()
}

/// The offender's checkpoint signature is by a seat of this shard about
/// this shard.
fn own_checkpoint(context: &ShardContext, sig: &CheckpointSig) -> bool {
    sig.checkpoint.shard == context.shard && usize::from(sig.seat) < context.k()
}

/// Every structural rule of an offence; no signature.
pub fn check_offence(context: &ShardContext, offence: &Offence) -> Result<(), MicroEventError> {
    match offence {
        Offence::InvalidAnchor { anchor, why } => {
            if !own_header(context, &anchor.header) {
                return Err(refuse(offence, "the accused header is not of this shard"));
            }
            if let Why::Header = why {
                if check_header_structure(context, &anchor.header).is_ok() {
                    return Err(refuse(
                        offence,
                        if check_commitment(&anchor.header).is_err() {
                            "an unsatisfiable commitment is kind 4"
                        } else {
                            "the header breaks no rule"
                        },
                    ));
                }
            }
            check_event_proof(offence, &anchor.header, why)
        }
        Offence::InvalidParent { voter, parent, why } => {
            if !own_header(context, &voter.header) {
                return Err(refuse(offence, "the voter is not of this shard"));
            }
            let parent_id = parent.anchor_id();
            if !voter
                .header
                .parents
                .iter()
                .any(|p| p.anchor_id == parent_id)
            {
                return Err(refuse(offence, "the voter does not name the parent"));
            }
            check_event_proof(offence, &parent.header, why)
        }
        Offence::WrongCheckpoint { sig } => {
            if !own_checkpoint(context, sig) {
                return Err(refuse(
                    offence,
                    "the checkpoint is not by a seat of this shard about it",
                ));
            }
            Ok(())
        }
        Offence::ConflictingRef { voter, parent } => {
            if !own_header(context, &voter.header) || !own_header(context, &parent.header) {
                return Err(refuse(offence, "a header is not of this shard"));
            }
            let parent_id = parent.anchor_id();
            let conflicting = voter.header.parents.iter().any(|p| {
                p.anchor_id == parent_id
                    && (p.creator, p.seq, p.birth_round)
                        != (
                            parent.header.creator,
                            parent.header.seq,
                            parent.header.birth_round,
                        )
            });
            if conflicting {
                Ok(())
            } else {
                Err(refuse(
                    offence,
                    "no ref of the voter names the parent wrongly",
                ))
            }
        }
        Offence::Unsatisfiable { anchor } => {
            if !own_header(context, &anchor.header) {
                return Err(refuse(offence, "the accused header is not of this shard"));
            }
            if check_commitment(&anchor.header).is_ok() {
                return Err(refuse(offence, "the commitment is satisfiable"));
            }
            Ok(())
        }
        Offence::CheckpointFork { a, b } => {
            if !own_checkpoint(context, a) || !own_checkpoint(context, b) {
                return Err(refuse(
                    offence,
                    "a checkpoint is not by a seat of this shard about it",
                ));
            }
            if a.seat != b.seat || a.checkpoint.round != b.checkpoint.round {
                return Err(refuse(offence, "not one seat at one round"));
            }
            if a.checkpoint.id(&context.network) == b.checkpoint.id(&context.network) {
                return Err(refuse(offence, "one checkpoint, not two"));
            }
            Ok(())
        }
    }
}

/// A `why = Event` proof places the bytes under the header's payload root.
fn check_event_proof(
    offence: &Offence,
    header: &AnchorHeader,
    why: &Why,
) -> Result<(), MicroEventError> {
    let Why::Event { bytes, proof } = why else {
        return Ok(());
    };
    let id = derive(id_context::MICRO_EVENT, &[bytes]);
    if proof.leaf_count != u64::from(header.payload_count)
        || !proof.verify(&id, &header.payload_root)
    {
        return Err(refuse(
            offence,
            "the event proof does not fit the payload root",
        ));
    }
    Ok(())
}

/// The signatures and the breaches that need them; only after
/// [`check_offence`].
pub fn verify_offence(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    offence: &Offence,
) -> Result<(), MicroEventError> {
    let signed_by_creator = |header: &SignedAnchorHeader| {
        context
            .committee
            .get(usize::from(header.header.creator))
            .is_some_and(|key| header.verify_signature(verifier, key))
    };
    let checkpoint_signed = |sig: &CheckpointSig| {
        context
            .committee
            .get(usize::from(sig.seat))
            .is_some_and(|key| {
                verifier.verify(key, &sig.checkpoint.id(&context.network), &sig.signature)
            })
    };
    match offence {
        Offence::InvalidAnchor { anchor, why } => {
            if !signed_by_creator(anchor) {
                return Err(refuse(
                    offence,
                    "the accused header's signature does not verify",
                ));
            }
            event_breaks(context, verifier, offence, why)
        }
        Offence::InvalidParent { voter, parent, why } => {
            if !signed_by_creator(voter) {
                return Err(refuse(offence, "the voter's signature does not verify"));
            }
            match why {
                // Any header rule, the signature included.
                Why::Header => {
                    let breaks = check_header_rules(context, &parent.header).is_err()
                        || !signed_by_creator(parent);
                    if breaks {
                        Ok(())
                    } else {
                        Err(refuse(offence, "the parent breaks no rule"))
                    }
                }
                Why::Event { .. } => event_breaks(context, verifier, offence, why),
            }
        }
        Offence::WrongCheckpoint { sig } => {
            if checkpoint_signed(sig) {
                Ok(())
            } else {
                Err(refuse(offence, "the checkpoint signature does not verify"))
            }
        }
        Offence::ConflictingRef { voter, parent } => {
            if signed_by_creator(voter) && signed_by_creator(parent) {
                Ok(())
            } else {
                Err(refuse(offence, "a header's signature does not verify"))
            }
        }
        Offence::Unsatisfiable { anchor } => {
            if signed_by_creator(anchor) {
                Ok(())
            } else {
                Err(refuse(
                    offence,
                    "the accused header's signature does not verify",
                ))
            }
        }
        Offence::CheckpointFork { a, b } => {
            if checkpoint_signed(a) && checkpoint_signed(b) {
                Ok(())
            } else {
                Err(refuse(offence, "a checkpoint signature does not verify"))
            }
        }
    }
}

/// A `why = Event` names bytes that do not decode or fail a micro-event
/// rule of this shard.
fn event_breaks(
    context: &ShardContext,
    verifier: &impl SignatureVerifier,
    offence: &Offence,
    why: &Why,
) -> Result<(), MicroEventError> {
    let Why::Event { bytes, .. } = why else {
        return Ok(());
    };
    let mut reader = pc_codec::Reader::new(bytes);
    let decoded = MicroEvent::decode(&mut reader).and_then(|e| reader.finish().map(|()| e));
    match decoded {
        Err(_) => Ok(()),
        // An offence proved invalid by another offence: its proof is not
        // followed (a chain of nested proofs would cost a verification per
        // level); such an anchor is refused but not slashable.
        Ok(MicroEvent::Offence(_)) => Err(refuse(
            offence,
            "an offence is not proved invalid inside another offence",
        )),
        // A certificate's q signatures are not checked again inside a
        // proof (an anchor may carry 8 certified imports, a payload of
        // offences would carry many more); such an import is refused, not
        // slashable.
        Ok(MicroEvent::Import(import)) if import.certificate().is_some() => Err(refuse(
            offence,
            "a certified import is not proved invalid inside an offence",
        )),
        Ok(event) => match validate_micro_event(context, verifier, &event) {
            Err(_) => Ok(()),
            Ok(()) => Err(refuse(offence, "the proved micro-event is valid")),
        },
    }
}
