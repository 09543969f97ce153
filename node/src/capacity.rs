//! The capacity signal of a shard and the admission rule built on it.
//!
//! A shard's capacity is what its committee finalizes, and no node can know
//! it in advance: it depends on the slowest quorum member, the other shards
//! on the core, the load generator beside it. So the node measures it where
//! it shows, without reference to how far other seats are ahead:
//!
//! * **rate**: micro-events this node saw finalized in the shard per second,
//!   over the last [`RATE_WINDOW_US`] (every node verifies every event of
//!   the shard, so this is the shard's throughput as this node achieves it);
//! * **backlog**: micro-events this node holds and must still verify,
//!   order or apply — the mempool, inserted anchors not yet finalized (own
//!   and peers'), and pending anchors waiting for parents
//!   ([`pc_shard::machine::Shard::backlog_events`]);
//! * **age**: how long the oldest client event this node accepted has
//!   waited for finality;
//! * **verify budget**: the single-signature verify rate the driver measured
//!   on this core at start-up, a floor under the rate while nothing has
//!   been finalized yet (a fresh or idle shard);
//! * **base latency**: the least submit-to-final latency of the client
//!   events this node accepted, over the last [`BASE_WINDOW_US`], counting
//!   only events that finalized while the events queued in front of the
//!   DAG were few (a quarter of the bound): what finality costs with no
//!   queue (a few tens of ms for 4 nodes on one host, most of a second for
//!   21 on two cores). While admission refuses (within [`BASE_QUIET_US`]
//!   of a refusal) a latency may only set the base when the window holds
//!   none, or lower it, never raise it, and the window holds it for
//!   [`BASE_HOLD_US`] instead of [`BASE_WINDOW_US`]: past capacity every
//!   accepted event waits in the DAG — full anchors, rounds slowed by
//!   verifying them — as long as the bound allows, so a base raised there
//!   is the bound's own latency, and it widens the bound that made it
//!   (learning every latency, the 4-node devnet's p50 at 40 000
//!   transfers/s offered rose from 0.5 s to 1.2 s within 30 s, its base
//!   from 0.1 s to 0.74 s; set again from the loaded DAG every 10 s, it
//!   rose to 0.7 s in 20 s and the p99 to 3 s). Not learning any while
//!   refusing starved a committee whose finality is slow for want of CPU
//!   and not for a queue: 21 nodes on two cores, refusing from the first
//!   second, kept a base of 0 and a bound of 0.4 s of a rate the bound
//!   itself held down, and finalized 468 transfers/s of 3 000 offered
//!   against 1 256/s with the first latencies they saw (0.5–0.75 s) as
//!   the base. The first latencies under a new overload come from a DAG
//!   the load has not yet filled. When refusals begin, the window keeps
//!   only its least latency of the last [`BASE_WINDOW_US`], so the longer
//!   hold brings back nothing older and no higher latency takes over when
//!   the least expires. A base held past [`BASE_HOLD_US`] of refusals is
//!   set again by the next latency, at most [`BASE_RAISE_PCT`] % of the
//!   one it replaces: a committee that grew slower under a sustained
//!   overload gets a wider bound minute by minute, and a loaded DAG raises
//!   its own bound no faster than that. It counts at most
//!   [`MAX_BASE_LATENCY_US`].
//!
//! The rule: a batch of `n` submitted events is taken only while
//! `backlog + n <= max(rate, verify_budget / FLOOR_DIVISOR) * (base +
//! TARGET_QUEUE_MS)` (the budget), the node's own share of it holds —
//! `own + n <= budget * share`, where `own` is the client events this node
//! accepted that have not finalized and `share` its part of the finalized
//! rate over the window (the own finalized client events over all
//! finalized events) times [`OWN_SHARE_SLACK_PCT`], within `1/k` and 1,
//! and at least [`MIN_OWN_BUDGET`] events —
//! and the oldest accepted event is younger than `base +`
//! [`MAX_ACCEPTED_AGE_US`]. The share bound is there because the budget is
//! the whole shard's and every node admits against it: the events other
//! nodes accepted reach this node's backlog only once their anchors have
//! crossed the network and left its inbox, so under overload each of the
//! `k` nodes filled the budget on its own (k times the target queue; p99
//! 6.2 s at 40 000/s offered to the 4-node devnet). By Little's law a backlog of `rate * L` events
//! is `L` of latency, so the first bound holds the time an accepted event
//! waits to about [`TARGET_QUEUE_MS`] of queueing on top of the base
//! however much is offered (without the base, a committee whose unloaded
//! finality exceeds the target would refuse load it can carry); the second
//! catches a stall (nothing finalizes, the rate decays to zero) before the
//! floor's backlog ages. Past either bound the submission is refused before any signature
//! check with `Overloaded` and a retry-after: the time the measured rate
//! needs to work the excess off, within [`MIN_RETRY_AFTER_MS`] and
//! [`MAX_RETRY_AFTER_MS`]. Bounds: the backlog a node admits into is at
//! most `max(rate, floor) * TARGET_QUEUE_MS` events plus one batch, and
//! never more than the mempool's own cap.

use std::collections::VecDeque;

/// A node's share of the budget is its part of the finalized rate times
/// this (percent): room for the offered mix to shift between nodes.
pub const OWN_SHARE_SLACK_PCT: u64 = 125;
/// A node's share of the budget is at least this many events (one full
/// anchor's payload), or the whole budget if that is smaller: at
/// k = 21 a share of 1/21 of a budget of ~1 000 refused 37 % of 200
/// transfers/s that the committee carried.
pub const MIN_OWN_BUDGET: u64 = pc_codec::MAX_PAYLOAD_EVENTS as u64;
/// Time over which the finalized rate is measured.
pub const RATE_WINDOW_US: u64 = 2_000_000;
/// Least spacing of the rate's samples.
const RATE_SAMPLE_US: u64 = 100_000;
/// Queueing an accepted event should see at most: the admitted backlog is
/// the rate times this.
pub const TARGET_QUEUE_MS: u64 = 400;
/// The verify budget divided by this is the rate assumed before any
/// finalization was measured: the core's signature checks are shared by
/// every node's copy of every event (k nodes verify each one) and by other
/// shards, so the single-verify rate overstates a shard's throughput.
pub const FLOOR_DIVISOR: u64 = 8;
/// The oldest accepted, unfinalized client event may be this old before
/// submissions are refused whatever the backlog.
pub const MAX_ACCEPTED_AGE_US: u64 = 1_000_000;
/// The base latency counts at most this much (µs): samples taken while a
/// backlog drains can still hold queueing, and a base learned from them
/// would raise the bounds it feeds.
pub const MAX_BASE_LATENCY_US: u64 = 1_000_000;
/// Time over which the base latency is the least one seen.
pub const BASE_WINDOW_US: u64 = 10_000_000;
/// Buckets of the base latency's window.
const BASE_BUCKETS: usize = 10;
/// While admission refuses, the base is held this long (µs) after the
/// latency that set it.
pub const BASE_HOLD_US: u64 = 60_000_000;
/// A base set again after [`BASE_HOLD_US`] of refusals is at most this
/// share (percent) of the one it replaces.
pub const BASE_RAISE_PCT: u64 = 150;
/// Admission counts as refusing for this long after a refusal (the
/// latency the bound's target queue admits, 400 ms, with room for the
/// base: an event accepted into a full bound has mostly finalized by then).
pub const BASE_QUIET_US: u64 = 2_000_000;
/// Least retry-after hint.
pub const MIN_RETRY_AFTER_MS: u32 = 50;
/// Largest retry-after hint.
pub const MAX_RETRY_AFTER_MS: u32 = 5_000;

/// Why a submission was refused by admission control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The backlog is at its bound.
    Backlog {
        /// Events held.
        backlog: u64,
        /// The bound.
        budget: u64,
    },
    /// This node's own accepted events fill its share of the budget.
    Share {
        /// Own accepted, unfinalized events.
        own: u64,
        /// This node's share of the budget.
        own_budget: u64,
    },
    /// The oldest accepted event waits too long.
    Stalled {
        /// Its age, µs.
        age_us: u64,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Backlog { backlog, budget } => write!(
                f,
                "backlog of {backlog} micro-events is at the shard's capacity bound of {budget}"
            ),
            Refusal::Share { own, own_budget } => write!(
                f,
                "this node's {own} accepted micro-events not yet final fill its share of the shard's capacity bound ({own_budget})"
            ),
            Refusal::Stalled { age_us } => write!(
                f,
                "the oldest accepted micro-event has waited {} ms for finality",
                age_us / 1000
            ),
        }
    }
}

/// The capacity signal of one shard (see the module documentation).
#[derive(Debug, Clone)]
pub struct Capacity {
    verify_per_s: u64,
    /// Committee seats of the shard (the least share is `1/seats`).
    seats: u64,
    /// (time µs, finalized events, own finalized client events) samples,
    /// oldest first, spanning at least the window once it has filled.
    samples: VecDeque<(u64, u64, u64)>,
    accepted: u64,
    refused: u64,
    last_retry_after_ms: u32,
    /// (bucket index, least latency µs) of the buckets of
    /// `BASE_WINDOW_US / BASE_BUCKETS` in the window (at most
    /// `BASE_HOLD_US` of them while admission refuses).
    base: VecDeque<(u64, u64)>,
    /// When admission last refused an event, µs.
    last_refusal_us: Option<u64>,
    /// The base a hold of [`BASE_HOLD_US`] let expire while admission
    /// refused: the cap of the next one.
    expired_base_us: Option<u64>,
}

/// One reading of the signal, for the status line and the admission rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// Finalized events per second over the window.
    pub rate_per_s: u64,
    /// Events held (see the module documentation).
    pub backlog: u64,
    /// The admitted backlog's bound.
    pub budget: u64,
    /// Age of the oldest accepted unfinalized event, µs (0: none).
    pub oldest_age_us: u64,
    /// When the reading was taken, µs.
    pub at_us: u64,
    /// The base latency, µs (0: none measured in the window).
    pub base_latency_us: u64,
    /// Own accepted client events not yet finalized.
    pub own: u64,
    /// This node's share of the budget.
    pub own_budget: u64,
}

/// What admission control took of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Events taken: the batch's first `taken`.
    pub taken: u64,
    /// Why the rest was refused, and the retry-after hint in ms (`None`:
    /// the whole batch was taken).
    pub refused: Option<(Refusal, u32)>,
}

/// The finalized counts a reading is taken at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Finalized {
    /// Micro-events of the shard finalized so far.
    pub events: u64,
    /// Of them, client events this node accepted.
    pub own: u64,
}

impl Capacity {
    /// A signal for a core whose single-signature verify rate is
    /// `verify_per_s` (0 if unknown: then only a measured rate admits,
    /// after a minimum of one full anchor's worth).
    pub fn new(verify_per_s: u64, seats: usize) -> Capacity {
        Capacity {
            verify_per_s,
            seats: (seats as u64).max(1),
            samples: VecDeque::new(),
            accepted: 0,
            refused: 0,
            last_retry_after_ms: 0,
            base: VecDeque::new(),
            last_refusal_us: None,
            expired_base_us: None,
        }
    }

    /// Takes note of an accepted event that finalized `latency_us` after it
    /// was taken, at `now_us` (while admission refuses, only if the window
    /// holds none or it is lower than the base).
    pub fn observe_latency(&mut self, now_us: u64, mut latency_us: u64) {
        let bucket = now_us / (BASE_WINDOW_US / BASE_BUCKETS as u64);
        let window = self.base_window_buckets(now_us);
        let refusing = self.refusing(now_us);
        // The least of the latencies that leave the window now.
        let mut expired: Option<u64> = None;
        while self.base.front().is_some_and(|(b, _)| b + window <= bucket) {
            let (_, least) = self.base.pop_front().expect("a front");
            expired = Some(expired.map_or(least, |e| e.min(least)));
        }
        if !refusing {
            self.expired_base_us = None;
        } else if self.base.is_empty() {
            if expired.is_some() {
                self.expired_base_us = expired;
            }
            if let Some(expired) = self.expired_base_us {
                latency_us = latency_us.min(expired.saturating_mul(BASE_RAISE_PCT) / 100);
            }
        } else if latency_us >= self.base_latency_us(now_us) {
            return;
        }
        match self.base.back_mut() {
            Some((b, least)) if *b == bucket => *least = (*least).min(latency_us),
            _ => self.base.push_back((bucket, latency_us)),
        }
    }

    /// Whether admission refused within [`BASE_QUIET_US`] of `now_us`.
    fn refusing(&self, now_us: u64) -> bool {
        self.last_refusal_us
            .is_some_and(|at| now_us < at.saturating_add(BASE_QUIET_US))
    }

    /// The base's window at `now_us`, in buckets: [`BASE_HOLD_US`] while
    /// admission refuses, [`BASE_WINDOW_US`] otherwise.
    fn base_window_buckets(&self, now_us: u64) -> u64 {
        let window_us = if self.refusing(now_us) {
            BASE_HOLD_US
        } else {
            BASE_WINDOW_US
        };
        window_us / (BASE_WINDOW_US / BASE_BUCKETS as u64)
    }

    /// The least latency over the window ending at `now_us` (0: none).
    pub fn base_latency_us(&self, now_us: u64) -> u64 {
        let bucket = now_us / (BASE_WINDOW_US / BASE_BUCKETS as u64);
        let window = self.base_window_buckets(now_us);
        self.base
            .iter()
            .filter(|(b, _)| b + window > bucket)
            .map(|(_, least)| *least)
            .min()
            .unwrap_or(0)
            .min(MAX_BASE_LATENCY_US)
    }

    /// Takes note of the shard's finalized counts at `now_us`.
    pub fn observe(&mut self, now_us: u64, finalized: Finalized) {
        if let Some(&(last_us, ..)) = self.samples.back() {
            if now_us < last_us + RATE_SAMPLE_US {
                return;
            }
        }
        self.samples
            .push_back((now_us, finalized.events, finalized.own));
        while self.samples.len() > 2 && self.samples[1].0 + RATE_WINDOW_US <= now_us {
            self.samples.pop_front();
        }
    }

    /// Finalized events per second over the window ending at `now_us`
    /// (counting `finalized_events` as of now).
    pub fn rate_per_s(&self, now_us: u64, finalized_events: u64) -> u64 {
        let Some(&(first_us, first_count, _)) = self.samples.front() else {
            return 0;
        };
        // A window shorter than a tenth of its length says too little.
        let span_us = now_us.saturating_sub(first_us).max(RATE_WINDOW_US / 10);
        finalized_events.saturating_sub(first_count) * 1_000_000 / span_us
    }

    /// This node's share of the budget, in millionths: its own finalized
    /// client events over all finalized events in the window, times
    /// [`OWN_SHARE_SLACK_PCT`], within `1/seats` and 1.
    fn share_ppm(&self, finalized: Finalized) -> u64 {
        let least = 1_000_000 / self.seats;
        let Some(&(_, first_events, first_own)) = self.samples.front() else {
            return least;
        };
        let events = finalized.events.saturating_sub(first_events);
        let own = finalized.own.saturating_sub(first_own).min(events);
        if events == 0 {
            return least;
        }
        (own * 10_000 * OWN_SHARE_SLACK_PCT / events).clamp(least, 1_000_000)
    }

    /// The rate assumed before anything was measured.
    pub fn floor_per_s(&self) -> u64 {
        (self.verify_per_s / FLOOR_DIVISOR).max(pc_codec::MAX_PAYLOAD_EVENTS as u64)
    }

    /// The reading at `now_us`.
    /// The reading at `now_us`: `backlog` events held, `own` of them
    /// accepted from clients by this node.
    pub fn read(
        &self,
        now_us: u64,
        finalized: Finalized,
        (backlog, own): (u64, u64),
        oldest_accepted_us: Option<u64>,
    ) -> Reading {
        let rate_per_s = self.rate_per_s(now_us, finalized.events);
        let base_latency_us = self.base_latency_us(now_us);
        let budget = rate_per_s.max(self.floor_per_s())
            * (base_latency_us + TARGET_QUEUE_MS * 1000)
            / 1_000_000;
        Reading {
            rate_per_s,
            backlog,
            budget,
            oldest_age_us: oldest_accepted_us.map_or(0, |at| now_us.saturating_sub(at)),
            at_us: now_us,
            base_latency_us,
            own,
            own_budget: (budget * self.share_ppm(finalized) / 1_000_000)
                .max(budget.min(MIN_OWN_BUDGET)),
        }
    }

    /// How many of `wanted` more events are taken on `reading`: the
    /// longest prefix both bounds hold (none while the oldest accepted
    /// event is stalled), and for the rest, the reason and a retry-after
    /// hint in ms. Taking the prefix rather than all or nothing lets a
    /// node fill its bound with the client's batches as they come (a
    /// 200-event batch against a 343-event share left a third of the
    /// share unused on average under overload).
    pub fn admit(&mut self, reading: &Reading, wanted: u64) -> Admission {
        let stalled = reading.oldest_age_us > reading.base_latency_us + MAX_ACCEPTED_AGE_US;
        let backlog_room = reading.budget.saturating_sub(reading.backlog);
        let own_room = reading.own_budget.saturating_sub(reading.own);
        let taken = if stalled {
            0
        } else {
            wanted.min(backlog_room).min(own_room)
        };
        // The reason named is the bound that left the least room.
        let over_backlog = reading.backlog + wanted > reading.budget;
        let over_share = reading.own + wanted > reading.own_budget;
        let refusal = if stalled {
            Some(Refusal::Stalled {
                age_us: reading.oldest_age_us,
            })
        } else if over_share && (!over_backlog || own_room < backlog_room) {
            Some(Refusal::Share {
                own: reading.own,
                own_budget: reading.own_budget,
            })
        } else if over_backlog {
            Some(Refusal::Backlog {
                backlog: reading.backlog,
                budget: reading.budget,
            })
        } else {
            None
        };
        self.accepted += taken;
        let refused = refusal.map(|refusal| {
            self.refused += wanted - taken;
            self.note_refusal(reading.at_us);
            let retry = retry_after_ms(reading, wanted, self.floor_per_s());
            self.last_retry_after_ms = retry;
            (refusal, retry)
        });
        Admission { taken, refused }
    }

    /// Counts `n` events refused outside the rule (stale in the inbox) at
    /// `now_us`.
    pub fn count_refused(&mut self, n: u64, now_us: u64) {
        self.refused += n;
        if n > 0 {
            self.note_refusal(now_us);
        }
    }

    /// A refusal at `now_us`. If admission was not refusing, the base's
    /// window keeps only its least latency of the last [`BASE_WINDOW_US`]
    /// (what the longer hold must not bring back or let a higher one
    /// replace).
    fn note_refusal(&mut self, now_us: u64) {
        if !self.refusing(now_us) {
            let bucket = now_us / (BASE_WINDOW_US / BASE_BUCKETS as u64);
            let least = self
                .base
                .iter()
                .filter(|(b, _)| b + (BASE_BUCKETS as u64) > bucket)
                .min_by_key(|(b, least)| (*least, std::cmp::Reverse(*b)))
                .copied();
            self.base.clear();
            self.base.extend(least);
        }
        self.last_refusal_us = Some(now_us);
    }

    /// Events admitted and refused so far, and the last retry-after hint.
    pub fn totals(&self) -> (u64, u64, u32) {
        (self.accepted, self.refused, self.last_retry_after_ms)
    }
}

/// The time the measured rate (or the floor) needs to work off the excess
/// over the budget, or, for a stall, a target queue's worth.
fn retry_after_ms(reading: &Reading, wanted: u64, floor_per_s: u64) -> u32 {
    let rate = reading.rate_per_s.max(floor_per_s).max(1);
    let excess = (reading.backlog + wanted)
        .saturating_sub(reading.budget)
        .max((reading.own + wanted).saturating_sub(reading.own_budget));
    let ms = if excess == 0 {
        TARGET_QUEUE_MS
    } else {
        excess * 1000 / rate
    };
    (ms.min(u64::from(MAX_RETRY_AFTER_MS)) as u32).max(MIN_RETRY_AFTER_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole batch taken, or the refusal of its rest (checking that
    /// a refused batch's prefix is what the bounds leave room for).
    fn admit(c: &mut Capacity, r: &Reading, wanted: u64) -> Result<(), (Refusal, u32)> {
        let admission = c.admit(r, wanted);
        match admission.refused {
            None => {
                assert_eq!(admission.taken, wanted);
                Ok(())
            }
            Some(refused) => {
                assert!(admission.taken < wanted || wanted == 0);
                Err(refused)
            }
        }
    }

    fn fin(events: u64) -> Finalized {
        Finalized { events, own: 0 }
    }

    #[test]
    fn the_rate_is_measured_over_the_window() {
        let mut c = Capacity::new(16_000, 1);
        assert_eq!(c.rate_per_s(0, 0), 0);
        // 3 000 events/s for 5 s, sampled every 10 ms.
        for ms in (0..=5_000u64).step_by(10) {
            c.observe(ms * 1000, fin(ms * 3));
        }
        assert_eq!(c.rate_per_s(5_000_000, 15_000), 3_000);
        // The window forgets: 3 s without finalization read as zero.
        for ms in (5_000..=8_000u64).step_by(10) {
            c.observe(ms * 1000, fin(15_000));
        }
        assert_eq!(c.rate_per_s(8_000_000, 15_000), 0);
        assert!(c.samples.len() <= 2 + (RATE_WINDOW_US / RATE_SAMPLE_US) as usize);
    }

    #[test]
    fn the_backlog_is_bounded_by_rate_times_target_queue() {
        let mut c = Capacity::new(16_000, 1);
        for ms in (0..=2_000u64).step_by(100) {
            c.observe(ms * 1000, fin(ms * 4));
        }
        let budget = 4_000 * TARGET_QUEUE_MS / 1000;
        let r = c.read(2_000_000, fin(8_000), (budget / 2, 0), Some(1_900_000));
        assert_eq!(r.rate_per_s, 4_000);
        assert_eq!(r.budget, budget);
        assert_eq!(admit(&mut c, &r, budget / 2), Ok(()));
        let full = Reading {
            backlog: budget,
            ..r
        };
        let (refusal, retry) = admit(&mut c, &full, 64).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Backlog {
                backlog: budget,
                budget
            }
        );
        // 64 events over budget at 4 000/s: 16 ms, raised to the least hint.
        assert_eq!(retry, MIN_RETRY_AFTER_MS);
        // 20 000 over: 5 s at 4 000/s, the largest hint.
        let far = Reading {
            backlog: budget + 20_000,
            ..r
        };
        assert_eq!(admit(&mut c, &far, 0).unwrap_err().1, MAX_RETRY_AFTER_MS);
        assert_eq!(c.totals(), (budget / 2, 64, MAX_RETRY_AFTER_MS));
    }

    #[test]
    fn before_any_finalization_the_verify_budget_is_the_floor() {
        let mut c = Capacity::new(16_000, 1);
        let r = c.read(10_000, fin(0), (0, 0), None);
        let floor = 16_000 / FLOOR_DIVISOR;
        assert_eq!(r.budget, floor * TARGET_QUEUE_MS / 1000);
        assert_eq!(admit(&mut c, &r, r.budget), Ok(()));
        assert!(admit(&mut c, &r, r.budget + 1).is_err());
        // Unknown verify rate: one full anchor's worth a second.
        let unknown = Capacity::new(0, 1);
        assert_eq!(
            unknown.read(0, fin(0), (0, 0), None).budget,
            pc_codec::MAX_PAYLOAD_EVENTS as u64 * TARGET_QUEUE_MS / 1000
        );
    }

    #[test]
    fn a_stall_refuses_whatever_the_backlog() {
        let mut c = Capacity::new(16_000, 1);
        let r = c.read(
            5_000_000,
            fin(0),
            (10, 0),
            Some(5_000_000 - MAX_ACCEPTED_AGE_US - 1),
        );
        let (refusal, _) = admit(&mut c, &r, 1).unwrap_err();
        assert!(matches!(refusal, Refusal::Stalled { .. }), "{refusal}");
        let young = c.read(
            5_000_000,
            fin(0),
            (10, 0),
            Some(5_000_000 - MAX_ACCEPTED_AGE_US),
        );
        assert_eq!(admit(&mut c, &young, 1), Ok(()));
    }

    #[test]
    fn the_base_latency_widens_both_bounds_and_is_forgotten() {
        let mut c = Capacity::new(16_000, 1);
        for ms in (0..=2_000u64).step_by(100) {
            c.observe(ms * 1000, fin(ms * 4));
        }
        // A committee whose finality takes 800 ms with no queue.
        c.observe_latency(1_000_000, 900_000);
        c.observe_latency(1_500_000, 800_000);
        let r = c.read(
            2_000_000,
            fin(8_000),
            (0, 0),
            Some(2_000_000 - MAX_ACCEPTED_AGE_US - 500_000),
        );
        assert_eq!(r.base_latency_us, 800_000);
        assert_eq!(r.budget, 4_000 * (800 + TARGET_QUEUE_MS) / 1000);
        assert_eq!(
            admit(&mut c, &r, 1),
            Ok(()),
            "1.5 s old is within base + age"
        );
        // Ten seconds later the window has forgotten it.
        assert_eq!(c.base_latency_us(1_500_000 + BASE_WINDOW_US), 0);
        c.observe_latency(12_000_000, 30_000);
        assert_eq!(c.base_latency_us(12_000_000), 30_000);
    }

    #[test]
    fn while_admission_refuses_the_base_is_set_or_lowered_never_raised() {
        let mut c = Capacity::new(16_000, 1);
        for ms in (0..=2_000u64).step_by(100) {
            c.observe(ms * 1000, fin(ms * 4));
        }
        // Before the overload: 100 ms, then 700 ms as the DAG fills.
        c.observe_latency(500_000, 100_000);
        c.observe_latency(9_000_000, 700_000);
        // The bound is full: a refusal at 9.5 s. The window keeps its least.
        let r = c.read(9_500_000, fin(8_000), (10_000, 0), None);
        assert!(admit(&mut c, &r, 64).is_err());
        assert_eq!(c.base.len(), 1);
        // The loaded DAG's latencies do not raise it, in later buckets too...
        for s in 10..60u64 {
            c.count_refused(1, s * 1_000_000);
            c.observe_latency(s * 1_000_000 + 500_000, 500_000 + s);
        }
        assert_eq!(c.base_latency_us(59_900_000), 100_000, "held");
        // ...a lower one lowers it...
        c.observe_latency(59_950_000, 90_000);
        assert_eq!(c.base_latency_us(59_950_000), 90_000);
        // ...and `BASE_HOLD_US` after the latency that set it, the next one
        // sets it again, at most `BASE_RAISE_PCT` % of the one it replaces.
        for s in 60..200u64 {
            c.count_refused(1, s * 1_000_000);
        }
        c.observe_latency(100_000_000, 700_000);
        assert_eq!(c.base_latency_us(118_900_000), 90_000);
        assert_eq!(c.base_latency_us(119_000_000), 0, "expired");
        c.observe_latency(119_000_000, 900_000);
        assert_eq!(c.base_latency_us(119_000_000), 135_000, "capped");
        c.observe_latency(121_000_000, 120_000);
        assert_eq!(c.base_latency_us(121_000_000), 120_000);
        // A committee that grew slower: a wider base minute by minute.
        c.observe_latency(181_000_000, 900_000);
        assert_eq!(c.base_latency_us(181_000_000), 180_000);
        // With nothing refused for the quiet time, a latency counts as
        // before: the window's least, the window 10 s.
        let quiet = 199_000_000 + BASE_QUIET_US;
        c.observe_latency(quiet, 250_000);
        assert_eq!(c.base_latency_us(quiet), 250_000, "181 s is 20 s ago");
        c.observe_latency(quiet + 1_000_000, 400_000);
        assert_eq!(c.base_latency_us(quiet + BASE_WINDOW_US), 400_000);
    }

    #[test]
    fn a_refusal_brings_back_no_latency_older_than_the_window() {
        let mut c = Capacity::new(16_000, 1);
        c.observe_latency(0, 50_000);
        assert_eq!(c.base_latency_us(12_000_000), 0, "forgotten");
        c.count_refused(1, 12_000_000);
        assert_eq!(c.base_latency_us(12_500_000), 0, "not brought back");
        // The first latency seen while refusing sets it (uncapped: nothing
        // was held).
        c.observe_latency(13_000_000, 600_000);
        assert_eq!(c.base_latency_us(13_000_000), 600_000);
    }

    /// A 4-seat shard finalizing 4 000 events/s for 2 s, 1 000 of them
    /// this node's clients': the signal, the finalized counts now, and
    /// the budget.
    fn quarter_share() -> (Capacity, Finalized, u64) {
        let mut c = Capacity::new(16_000, 4);
        for ms in (0..=2_000u64).step_by(100) {
            c.observe(
                ms * 1000,
                Finalized {
                    events: ms * 4,
                    own: ms,
                },
            );
        }
        let now = Finalized {
            events: 8_000,
            own: 2_000,
        };
        let budget = 4_000 * TARGET_QUEUE_MS / 1000;
        (c, now, budget)
    }

    #[test]
    fn each_node_admits_its_share_of_the_budget() {
        let (mut c, now, budget) = quarter_share();
        let r = c.read(2_000_000, now, (budget / 4, 0), None);
        assert_eq!(r.budget, budget);
        // A quarter of the rate, with the slack: 5/16 of the budget.
        assert_eq!(r.own_budget, budget * 5 / 16);
        assert_eq!(admit(&mut c, &r, r.own_budget), Ok(()));
        let full = Reading {
            own: r.own_budget,
            backlog: budget / 2,
            ..r
        };
        let (refusal, _) = admit(&mut c, &full, 1).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Share {
                own: r.own_budget,
                own_budget: r.own_budget
            }
        );
        // A node none of whose clients' events finalized lately still has
        // 1/k; one that carries all the load has the whole budget.
        let idle = c.read(2_000_000, Finalized { own: 0, ..now }, (0, 0), None);
        assert_eq!(idle.own_budget, budget / 4);
        let alone = c.read(2_000_000, Finalized { own: 8_000, ..now }, (0, 0), None);
        assert_eq!(alone.own_budget, budget);
        // Nothing measured yet: 1/k of the floor's budget (800), raised to
        // one full anchor's payload; never above the whole budget.
        let fresh = Capacity::new(16_000, 4).read(0, Finalized::default(), (0, 0), None);
        assert_eq!(fresh.budget, 800);
        assert_eq!(fresh.own_budget, MIN_OWN_BUDGET);
        let small = Capacity::new(0, 4).read(0, Finalized::default(), (0, 0), None);
        assert!(small.budget < MIN_OWN_BUDGET);
        assert_eq!(small.own_budget, small.budget);
    }

    #[test]
    fn a_batch_larger_than_the_room_is_taken_in_part() {
        let (mut c, now, budget) = quarter_share();
        let own_budget = budget * 5 / 16;
        // The share leaves 40 events of room, the backlog 100.
        let r = c.read(2_000_000, now, (budget - 100, own_budget - 40), None);
        let a = c.admit(&r, 200);
        assert_eq!(a.taken, 40);
        assert!(
            matches!(a.refused, Some((Refusal::Share { .. }, retry)) if retry >= MIN_RETRY_AFTER_MS),
            "{a:?}"
        );
        // The backlog leaves 10, the share 500: the backlog is named.
        let r = c.read(2_000_000, now, (budget - 10, 0), None);
        let a = c.admit(&r, 200);
        assert_eq!(a.taken, 10);
        assert!(
            matches!(a.refused, Some((Refusal::Backlog { .. }, _))),
            "{a:?}"
        );
        // A batch that fits is taken whole.
        let a = c.admit(&r, 10);
        assert_eq!((a.taken, a.refused), (10, None));
        assert_eq!(c.totals().0, 60);
        assert_eq!(c.totals().1, 160 + 190);
    }
}
