//! Fault classes that found bugs in the machine (described at each field).
//! All are fixed (pulls expire and are re-asked on tick, evicted anchors are
//! fetched again, quiet nodes announce their tips, restore logs the rounds
//! whose records a crash cut, a machine far behind catches up by range and
//! a seat far behind signs nothing until it caught up) and run by default.
//! `SIM_BLOCKED` (a comma-separated list of the names below, `all`, or
//! `none`) chooses a subset, to bisect a failure.

/// The variable that enables blocked fault classes.
pub const BLOCKED_ENV: &str = "SIM_BLOCKED";

/// Which blocked fault classes run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Blocked {
    // was blocked: anchors whose parents never arrive halt honest nodes.
    // `Shard::request` records every missing parent id in `requested` and
    // never drops an entry unless that id arrives (`handle_tick` retries
    // them forever); once `max_outstanding_pulls` entries are ids that do
    // not exist, `request` issues no pull at all, real missing parents are
    // never fetched, their descendants stay pending and the node stops
    // finalizing. Name: `unresolvable-parents` (the RandomParents mode and
    // the far-future variant with non-existent parents).
    /// Byzantine anchors referencing parents that do not exist.
    pub unresolvable_parents: bool,
    // was blocked: a pull budget smaller than a catch-up backlog stalls a node
    // for good. `Shard::request` takes at most `max_outstanding_pulls -
    // requested.len()` of the new missing ids and drops the rest without a
    // trace; a missing parent is only ever requested when an anchor naming
    // it arrives, and `request` skips parents that are pending, so the
    // dropped ids are never asked for: their descendants wait in
    // `waiting_for` forever, the node inserts nothing more and, as a seat,
    // makes no more anchors. Name: `tight-pulls` (`max_outstanding_pulls`
    // 64..=256 instead of 1024).
    /// Small `max_outstanding_pulls`.
    pub tight_pulls: bool,
    // was blocked: a pending bound smaller than a catch-up backlog stalls a node
    // for good. `Shard::hold` evicts the oldest pending anchor and nothing
    // requests it again (see `tight-pulls`): its pending descendants wait
    // for an id that is neither pending, requested nor inserted. Name:
    // `tight-pending` (`max_pending_anchors` 256..=1024 instead of 4096).
    /// Small `max_pending_anchors`.
    pub tight_pending: bool,
    // was blocked: a crash whose durable log ends after an `AnchorAccepted`
    // record but before the `RoundFinalized` record its insertion produced
    // leaves a log that the second restart refuses. `Shard::restore`
    // re-derives that round but only counts a token for it (`persist` while
    // `replaying`), so the round's record is never written; once a later
    // round is logged, the next restore pops the unlogged round from
    // `derived`, compares it with the logged later one and fails with
    // `RestoreError::RoundMismatch`: the seat can never restart. Name:
    // `partial-syncs` (syncs that stop mid-batch, like a driver that syncs
    // record by record).
    /// Durable watermarks between the records of one driver pass.
    pub partial_syncs: bool,
    // was blocked: a seat that restarts behind a backlog far larger than
    // its per-seat share of the pending set never catches up. Tight
    // pending bounds (256..=1024) give a k = 7 seat a share
    // (`max_pending_anchors / k`) of 37..147 anchors, a k = 21 seat 13..49.
    // A k = 21 seat that was down ~3 rounds (`SIM_SEATS=21 SIM_SEED=77797`:
    // pending bound 395, share 19) stayed with every share full (380
    // pending), its refetch list at its cap (`refetch_evicted` asks nothing
    // while the set is at least half full), pulls climbing down one anchor
    // of a seat's chain per round trip: it finalized no round for 600 steps
    // while healthy. Now a machine whose DAG ends `catch_up_lag_rounds`
    // below the committee asks one peer at a time for a range of rounds
    // from where its DAG ends, which inserts as it arrives. The same seed
    // then found a second bug: while far behind the seat kept signing at
    // its old round, anchors already ancient where its peers had pruned
    // (`G = 4`), and each later own anchor needed the one before as its
    // self-parent, so no peer ever inserted the seat's chain again and its
    // accepted transfers never finalized. Now a seat more than `G` rounds
    // behind signs nothing until it caught up. Name: `small-shares` (long
    // seeds keep the unscaled tight bounds; without it they scale them by
    // `ceil(k / 7)`).
    /// Long seeds keep the tight pending and pull bounds of k = 7.
    pub small_shares: bool,
}

impl Blocked {
    /// Every class.
    pub const ALL: Blocked = Blocked {
        unresolvable_parents: true,
        tight_pulls: true,
        tight_pending: true,
        partial_syncs: true,
        small_shares: true,
    };

    /// The classes of a run without [`BLOCKED_ENV`]: every fixed one.
    pub const FIXED: Blocked = Blocked::ALL;

    /// The classes named in [`BLOCKED_ENV`], else [`Blocked::FIXED`].
    ///
    /// # Panics
    /// On an unknown name, so that a typo does not silently run nothing.
    pub fn from_env() -> Blocked {
        let Ok(value) = std::env::var(BLOCKED_ENV) else {
            return Blocked::FIXED;
        };
        let mut blocked = Blocked::default();
        for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "1" | "all" => blocked = Blocked::ALL,
                "none" => blocked = Blocked::default(),
                "unresolvable-parents" => blocked.unresolvable_parents = true,
                "tight-pulls" => blocked.tight_pulls = true,
                "tight-pending" => blocked.tight_pending = true,
                "partial-syncs" => blocked.partial_syncs = true,
                "small-shares" => blocked.small_shares = true,
                other => panic!(
                    "{BLOCKED_ENV}: unknown class {other:?} (unresolvable-parents, tight-pulls, tight-pending, partial-syncs, small-shares, all, none)"
                ),
            }
        }
        blocked
    }
}
