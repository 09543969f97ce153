//! Intake: client submissions (admitted while the shard's capacity signal
//! has room, within a budget per source address, refused as overloaded
//! while the shard catches up — every refusal before any signature check,
//! with a retry-after hint), balance queries against the finalized state,
//! and evidence relayed by peers.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use pc_codec::ids::{context, derive};
use pc_codec::wire::{Decode, Reader};
use pc_codec::{Hash32, MicroEvent, PublicKeyBytes};
use pc_net::frame::{EventOutcome, EventReceipt, RejectReason};
use pc_net::peer_book::PeerEvent;
use pc_net::NetMessage;
use pc_shard::machine::SubmitRejected;
use pc_shard::validate::MicroEventError;

use crate::budget::TokenBucket;
use crate::core::{
    NodeCore, NodeIo, Now, CATCH_UP_LAG_ROUNDS, MAX_CLIENT_WAIT_US, MAX_TRACKED_SOURCES,
    SUBMIT_EVENTS_PER_S,
};

/// The retry-after hint of a shard that is catching up.
pub const CATCH_UP_RETRY_AFTER_MS: u32 = 2_000;
use crate::forward::Origin;
use crate::telemetry::{Event, EvidenceRefused};
use crate::NodeError;

/// The id a receipt names for bytes that do not decode: the BLAKE3 of the
/// bytes under the micro-event context.
pub fn undecoded_id(bytes: &[u8]) -> Hash32 {
    derive(context::MICRO_EVENT, &[bytes])
}

/// One micro-event, the whole of `bytes`.
pub fn decode_event(bytes: &[u8]) -> Result<MicroEvent, pc_codec::DecodeError> {
    let mut reader = Reader::new(bytes);
    let event = MicroEvent::decode(&mut reader)?;
    reader.finish()?;
    Ok(event)
}

/// The id a receipt names for `bytes`, without decoding them: the decoder
/// takes only canonical encodings, so for bytes that decode it is the
/// event's own id (`derive(MICRO_EVENT, encoding)`), and for bytes that do
/// not, the id of the bytes. A refusal costs one hash per event.
pub fn event_id_of(bytes: &[u8]) -> Hash32 {
    undecoded_id(bytes)
}

/// Receipt lines refusing every one of `events` as overloaded: the first
/// says why, the rest only their class (a refused batch costs a hash per
/// event and a few bytes per line, not a sentence each).
fn refuse_all(events: &[Vec<u8>], detail: &str) -> Vec<EventReceipt> {
    events
        .iter()
        .enumerate()
        .map(|(i, bytes)| EventReceipt {
            event_id: event_id_of(bytes),
            outcome: EventOutcome::rejected(
                RejectReason::Overloaded,
                if i == 0 { detail } else { "" },
            ),
        })
        .collect()
}

/// The receipt class of an invalid micro-event.
fn reject_class(error: &MicroEventError) -> RejectReason {
    match error {
        MicroEventError::TransferBadSignature
        | MicroEventError::ClaimBadSignature
        | MicroEventError::EvidenceBadSignature { .. } => RejectReason::BadSignature,
        MicroEventError::TransferForeignOwner { .. } | MicroEventError::ClaimNotASeat { .. } => {
            RejectReason::WrongShard
        }
        _ => RejectReason::Invalid,
    }
}

/// Rounds `finalized` trails the (f+1)-th highest of `seat_rounds` (one
/// entry per seat, f = (k - 1) / 3): a round at least one honest seat
/// reached, however high f Byzantine seats claim theirs are.
pub fn round_lag(seat_rounds: &[u64], finalized: Option<u64>) -> u64 {
    let mut rounds = seat_rounds.to_vec();
    rounds.sort_unstable_by(|a, b| b.cmp(a));
    let f = rounds.len().saturating_sub(1) / 3;
    let reached = rounds.get(f).copied().unwrap_or(0);
    reached.saturating_sub(finalized.unwrap_or(0))
}

impl NodeCore {
    /// A client's `SubmitMicroEvents`: a receipt for every event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take_submission(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        remote: SocketAddr,
        shard: u16,
        request: u64,
        events: &[Vec<u8>],
        now: Now,
    ) -> Result<(), NodeError> {
        // The planted bug of the simulator's self-check ignores the whole
        // capacity signal: this wait and the rule in `submit`.
        #[cfg(not(feature = "planted-bug-admit-everything"))]
        if self.input_waited_us > MAX_CLIENT_WAIT_US {
            let detail = format!(
                "shard {shard} overloaded: the submission waited {} ms in the node's inbox",
                self.input_waited_us / 1000
            );
            let results = refuse_all(events, &detail);
            if let Some(host) = self.shards.get_mut(&shard) {
                host.count_refused(events.len(), now.mono_us);
            }
            let receipt = NetMessage::Receipt {
                request,
                shard,
                retry_after_ms: crate::capacity::TARGET_QUEUE_MS as u32,
                results,
            };
            self.reply(io, origin, receipt);
            return Ok(());
        }
        let allowed = self.submit_allowance(remote, events.len(), now);
        let (mut results, mut retry_after_ms, over_capacity) =
            self.submit(shard, &events[..allowed], now)?;
        // What the shard's capacity signal refused (a hash and a receipt
        // line each, no signature check) goes back to the source's budget.
        // Charged for them, a source offering more than the shard takes
        // drained its budget with refusals and found it empty whenever the
        // backlog made room (the 4-node devnet at 64 000 transfers/s
        // offered finalized 0.85 of its rate at 40 000). Refusals of a
        // catching-up shard stay charged: no room is coming soon there.
        if over_capacity > 0 {
            self.submit_refund(remote, over_capacity, now);
        }
        if allowed < events.len() {
            // The source's budget refills within a second.
            retry_after_ms = retry_after_ms.max(1000);
        }
        for bytes in &events[allowed..] {
            results.push(EventReceipt {
                event_id: event_id_of(bytes),
                outcome: EventOutcome::rejected(
                    RejectReason::Overloaded,
                    &format!(
                        "more than {SUBMIT_EVENTS_PER_S} micro-events per second from {}",
                        remote.ip()
                    ),
                ),
            });
        }
        self.record(remote, PeerEvent::MicroEventBatch, now);
        let receipt = NetMessage::Receipt {
            request,
            shard,
            retry_after_ms,
            results,
        };
        self.reply(io, origin, receipt);
        Ok(())
    }

    /// A balance query, answered from the finalized state.
    pub(crate) fn answer_balance(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        shard: u16,
        (remote, now): (SocketAddr, Now),
        request: u64,
        owner: PublicKeyBytes,
    ) {
        let cost = self.shards[&shard].machine().state().scan_len();
        if !self.scan_allowed(remote, cost, now) {
            return;
        }
        let host = &self.shards[&shard];
        let amount = host.machine().state().balance_of(&owner);
        let finalized_round = host.counters().last_round.unwrap_or(0);
        let balance = NetMessage::Balance {
            request,
            owner,
            amount,
            finalized_round,
        };
        self.reply(io, origin, balance);
    }

    /// A payout query, answered from the finalized state: the recipient's
    /// leaf of the last finalized round's payout root and its proof, or
    /// amount 0 when nothing is owed (or the key holds no seat here).
    pub(crate) fn answer_payout(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        shard: u16,
        request: u64,
        recipient: PublicKeyBytes,
    ) {
        let host = &self.shards[&shard];
        let economics = host.machine().state().economics();
        let retained = economics.roots().last().copied();
        let leaves = economics.leaves();
        let position = leaves.iter().position(|l| l.recipient == recipient);
        let (round, leaf, proof) = match (retained, position) {
            (Some(retained), Some(at)) => {
                let bytes: Vec<Vec<u8>> = leaves.iter().map(pc_codec::Encode::to_bytes).collect();
                let proof = pc_codec::MerkleProof::build(&bytes, at)
                    .expect("the position is within the leaves");
                (retained.round, leaves[at], proof)
            }
            (retained, _) => (
                retained.map_or(0, |r| r.round),
                pc_codec::PayoutLeaf {
                    recipient,
                    amount: 0,
                },
                pc_codec::MerkleProof {
                    index: 0,
                    leaf_count: 0,
                    siblings: Vec::new(),
                },
            ),
        };
        let answer = NetMessage::PayoutProof {
            request,
            shard,
            round,
            leaf,
            proof,
        };
        self.reply(io, origin, answer);
    }

    /// Relayed evidence (an Evidence or Offence micro-event, DESIGN §7):
    /// queued for this seat's next own anchor (once per accused seat or
    /// offence id). Evidence that does not decode as evidence or does not
    /// verify is the sender's fault; a duplicate is not. A node without a
    /// seat, or with a full mempool, drops it unchecked.
    pub(crate) fn take_evidence(
        &mut self,
        remote: SocketAddr,
        shard: u16,
        bytes: &[u8],
        now: Now,
    ) -> Result<(), NodeError> {
        let refused = match decode_event(bytes) {
            Ok(event @ (MicroEvent::Evidence(_) | MicroEvent::Offence(_))) => {
                let host = self.shards.get_mut(&shard).expect("local");
                match host.submit_micro_event(event, now.mono_us)? {
                    Err(SubmitRejected::Invalid(reason)) => Some(reason.to_string()),
                    // Taken, a duplicate, no seat, or a full mempool (then
                    // unchecked): not the sender's fault.
                    _ => None,
                }
            }
            Ok(_) => Some("an Evidence message that holds another micro-event".to_string()),
            Err(error) => Some(error.to_string()),
        };
        if let Some(reason) = refused {
            self.record(remote, PeerEvent::InvalidMessage, now);
            self.log_peer(Event::EvidenceRefused(EvidenceRefused {
                core: self.core,
                shard,
                remote: remote.to_string(),
                reason,
            }));
        }
        Ok(())
    }

    /// Rounds this node's finalization of `shard` trails its peers: the
    /// (f+1)-th highest birth round among the seats' validated anchors (so
    /// at least one honest seat reached it, whatever f Byzantine seats
    /// claim) minus the last finalized round.
    pub fn round_lag(&self, shard: u16) -> u64 {
        let (Some(rounds), Some(host)) = (self.seat_rounds.get(&shard), self.shards.get(&shard))
        else {
            return 0;
        };
        round_lag(rounds, host.counters().last_round)
    }

    /// Takes a client's micro-events into the shard's mempool: their
    /// receipts, a retry-after hint in ms if they were refused as
    /// overloaded (0 otherwise), and how many admission control refused.
    fn submit(
        &mut self,
        shard: u16,
        events: &[Vec<u8>],
        now: Now,
    ) -> Result<(Vec<EventReceipt>, u32, usize), NodeError> {
        let lag = self.round_lag(shard);
        let host = self.shards.get_mut(&shard).expect("local");
        let mut results = Vec::with_capacity(events.len());
        if events.is_empty() {
            return Ok((results, 0, 0));
        }
        // A shard that is catching up would judge transfers against a state
        // seconds or minutes old and hold them until it is live again: the
        // client is better served by another node.
        if lag > CATCH_UP_LAG_ROUNDS {
            let detail = format!(
                "shard {shard} is catching up ({lag} rounds behind its peers); submit to another node"
            );
            return Ok((refuse_all(events, &detail), CATCH_UP_RETRY_AFTER_MS, 0));
        }
        // Admission control: the batch's longest prefix the shard's
        // capacity signal has room for is taken, the rest refused, before
        // any signature check.
        #[cfg(not(feature = "planted-bug-admit-everything"))]
        let admission = host.admit(events.len(), now.mono_us);
        #[cfg(feature = "planted-bug-admit-everything")]
        let admission = crate::capacity::Admission {
            taken: events.len() as u64,
            refused: None,
        };
        let (events, rest) = events.split_at(admission.taken as usize);
        let mut retry_after = 0;
        // Decode all, check the signatures of the decoded ones as one batch
        // (the shard machine does), answer in the client's order.
        let mut decoded = Vec::with_capacity(events.len());
        let mut answers: Vec<Option<EventReceipt>> = Vec::with_capacity(events.len());
        for bytes in events {
            match decode_event(bytes) {
                Ok(event) => {
                    decoded.push(event);
                    answers.push(None);
                }
                Err(error) => answers.push(Some(EventReceipt {
                    event_id: undecoded_id(bytes),
                    outcome: EventOutcome::rejected(RejectReason::Malformed, &error.to_string()),
                })),
            }
        }
        let mut outcomes = host.submit_micro_events(decoded, now.mono_us)?.into_iter();
        for answer in answers {
            if let Some(receipt) = answer {
                results.push(receipt);
                continue;
            }
            let (event_id, status) = outcomes.next().expect("one status per decoded event");
            let outcome = match status {
                Ok(()) => EventOutcome::Accepted,
                Err(SubmitRejected::NotASeat) => EventOutcome::rejected(
                    RejectReason::Invalid,
                    &format!("this node holds no seat in shard {shard}"),
                ),
                Err(SubmitRejected::MempoolFull { max }) => {
                    retry_after = retry_after.max(crate::capacity::TARGET_QUEUE_MS as u32);
                    EventOutcome::rejected(
                        RejectReason::Overloaded,
                        &format!("mempool full ({max} micro-events)"),
                    )
                }
                Err(rejected @ SubmitRejected::EvidenceQueued { .. }) => {
                    EventOutcome::rejected(RejectReason::Duplicate, &rejected.to_string())
                }
                Err(
                    rejected @ SubmitRejected::ClaimRefused {
                        outcome: pc_shard::state::Outcome::ClaimStale,
                    },
                ) => EventOutcome::rejected(RejectReason::Duplicate, &rejected.to_string()),
                Err(rejected @ SubmitRejected::ClaimRefused { .. }) => {
                    EventOutcome::rejected(RejectReason::Invalid, &rejected.to_string())
                }
                Err(
                    rejected @ SubmitRejected::MintRefused {
                        outcome: pc_shard::state::Outcome::MintDuplicate,
                    },
                ) => EventOutcome::rejected(RejectReason::Duplicate, &rejected.to_string()),
                Err(
                    rejected @ (SubmitRejected::MintRefused { .. }
                    | SubmitRejected::MintNotBest { .. }
                    | SubmitRejected::ImmatureInput { .. }),
                ) => EventOutcome::rejected(RejectReason::Invalid, &rejected.to_string()),
                Err(SubmitRejected::Invalid(error)) => {
                    EventOutcome::rejected(reject_class(&error), &error.to_string())
                }
            };
            results.push(EventReceipt { event_id, outcome });
        }
        if let Some((refusal, retry_after_ms)) = admission.refused {
            let detail =
                format!("shard {shard} overloaded: {refusal}; retry after {retry_after_ms} ms");
            results.extend(refuse_all(rest, &detail));
            retry_after = retry_after.max(retry_after_ms);
        }
        Ok((results, retry_after, rest.len()))
    }

    /// How many of `wanted` micro-events from `remote` are taken now. The
    /// budget is per IPv4 address or IPv6 /64 (one host's share of
    /// addresses), on this core; when [`MAX_TRACKED_SOURCES`] are tracked a
    /// new source evicts the one idle longest, never resetting the others.
    pub(crate) fn submit_allowance(
        &mut self,
        remote: SocketAddr,
        wanted: usize,
        now: Now,
    ) -> usize {
        let allowed = source_bucket(&mut self.submit_budget, remote, SUBMIT_EVENTS_PER_S, now)
            .take(SUBMIT_EVENTS_PER_S, wanted, now.mono_us);
        self.counters.throttled += (wanted - allowed) as u64;
        allowed
    }

    /// Gives `unused` micro-events back to `remote`'s submission budget
    /// (refused before any signature check).
    pub(crate) fn submit_refund(&mut self, remote: SocketAddr, unused: usize, now: Now) {
        source_bucket(&mut self.submit_budget, remote, SUBMIT_EVENTS_PER_S, now)
            .refund(SUBMIT_EVENTS_PER_S, unused);
    }
}

/// `remote`'s bucket in a per-source budget `map` (`rate` a second): the
/// source is its IPv4 address or IPv6 /64 (one host's share of addresses);
/// when [`MAX_TRACKED_SOURCES`] are tracked a new source evicts the one
/// idle longest, never resetting the others.
pub(crate) fn source_bucket(
    map: &mut BTreeMap<IpAddr, TokenBucket>,
    remote: SocketAddr,
    rate: u32,
    now: Now,
) -> &mut TokenBucket {
    let source = match remote.ip() {
        IpAddr::V6(ip) => {
            let mut octets = ip.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        ip => ip,
    };
    if map.len() >= MAX_TRACKED_SOURCES && !map.contains_key(&source) {
        let idle = map
            .iter()
            .min_by_key(|(ip, bucket)| (bucket.last_us(), **ip))
            .map(|(ip, _)| *ip);
        if let Some(ip) = idle {
            map.remove(&ip);
        }
    }
    map.entry(source)
        .or_insert_with(|| TokenBucket::full(rate, now.mono_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_of_the_bytes_is_the_decoded_events_id() {
        let network = [7u8; 8];
        let key = pc_codec::SigningKey::from_secret_bytes(&[3; 32]).unwrap();
        let transfer = pc_codec::TransferBuilder::new()
            .input(pc_codec::OutPoint {
                tx_id: [1; 32],
                index: 0,
            })
            .output(10, key.public_key())
            .sign(&network, &key, &[0; 32])
            .unwrap();
        let event = MicroEvent::Transfer(transfer);
        let bytes = pc_codec::Encode::to_bytes(&event);
        assert_eq!(event_id_of(&bytes), event.id());
        assert_eq!(decode_event(&bytes).unwrap().id(), event_id_of(&bytes));
    }

    #[test]
    fn round_lag_ignores_what_f_byzantine_seats_claim() {
        // k = 4, f = 1: one seat claiming round 10^9 moves nothing.
        assert_eq!(round_lag(&[1_000_000_000, 120, 118, 0], Some(110)), 10);
        // Two seats that far ahead include an honest one: far behind.
        assert_eq!(
            round_lag(&[5_000, 4_990, 118, 0], Some(110)),
            4_880,
            "a late node"
        );
        // Live, or ahead of what peers sent: no lag.
        assert_eq!(round_lag(&[100, 100, 100, 100], Some(100)), 0);
        assert_eq!(round_lag(&[3, 2, 1, 0], Some(50)), 0);
        // Nothing finalized yet counts from round 0.
        assert_eq!(round_lag(&[70, 60, 0, 0], None), 60);
        // k = 1: the only seat is this node's own.
        assert_eq!(round_lag(&[0], Some(9)), 0);
        // k = 7, f = 2: the third highest.
        assert_eq!(round_lag(&[900, 900, 40, 40, 40, 40, 40], Some(30)), 10);
    }
}
