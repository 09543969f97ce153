//! When a shard takes a local snapshot and how far its log may be pruned
//! (DESIGN §6.1). The host decides; the driver writes the file off the
//! core (the engine's snapshot writer thread) and reports back, and the
//! host then logs the `SnapshotWritten` marker and names the prune bound.
//!
//! Rule: a snapshot is due once a round finalized since the last one and
//! either `interval_rounds` rounds finalized or `interval_bytes` of log
//! were appended since it (0 turns a trigger off; both 0: no snapshots).
//! One snapshot per shard is in flight at a time; the image is taken
//! between inputs, when every record the machine emitted is appended.
//!
//! Prune bound: records below `min(oldest kept snapshot's replay_from_seq,
//! the log position where round last_finalized - retain_rounds finalized)`
//! are needed by no kept snapshot and lie outside the catch-up retention;
//! the driver deletes the sealed segments wholly below it. The positions
//! of finalized rounds are sampled every [`ROUND_SAMPLE`] rounds (bounded:
//! the retention over the sample, plus two).

use std::collections::VecDeque;

use pc_shard::snapshot::ShardImage;

/// Finalized rounds between two samples of the log position.
pub const ROUND_SAMPLE: u64 = 64;

/// The snapshot and pruning settings of a shard (`[storage]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// Finalized rounds between snapshots (0: no round trigger).
    pub interval_rounds: u64,
    /// Log bytes between snapshots (0: no byte trigger).
    pub interval_bytes: u64,
    /// Snapshot files kept (at least 1).
    pub keep: usize,
    /// Rounds of log kept for catch-up below the last finalized round.
    pub retain_rounds: u64,
}

impl SnapshotPolicy {
    /// No snapshots, no pruning.
    pub const OFF: SnapshotPolicy = SnapshotPolicy {
        interval_rounds: 0,
        interval_bytes: 0,
        keep: 2,
        retain_rounds: u64::MAX,
    };

    /// Whether snapshots are taken at all.
    pub fn enabled(&self) -> bool {
        self.interval_rounds > 0 || self.interval_bytes > 0
    }
}

/// A snapshot on disk, as the host counts it for pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotMark {
    /// Its last finalized round.
    pub round: u64,
    /// The records it covers (replay goes on from here).
    pub next_token: u64,
    /// The lowest record it still needs.
    pub replay_from_seq: u64,
}

impl SnapshotMark {
    /// The mark of an image.
    pub fn of(image: &ShardImage) -> SnapshotMark {
        SnapshotMark {
            round: image.round,
            next_token: image.next_token,
            replay_from_seq: image.replay_from_seq(),
        }
    }
}

/// A shard's snapshot bookkeeping.
#[derive(Debug)]
pub(crate) struct Snapshots {
    pub(crate) policy: SnapshotPolicy,
    /// Round and log bytes at the last snapshot taken.
    last_round: Option<u64>,
    last_bytes: u64,
    in_flight: bool,
    ready: Option<ShardImage>,
    /// Kept snapshots, oldest first.
    kept: VecDeque<SnapshotMark>,
    /// (round, the log's next record once it finalized), every
    /// [`ROUND_SAMPLE`] rounds, oldest first.
    rounds: VecDeque<(u64, u64)>,
    pub(crate) taken: u64,
    pub(crate) written: u64,
    pub(crate) failed: u64,
}

impl Snapshots {
    pub(crate) fn new(policy: SnapshotPolicy) -> Snapshots {
        Snapshots {
            policy,
            last_round: None,
            last_bytes: 0,
            in_flight: false,
            ready: None,
            kept: VecDeque::new(),
            rounds: VecDeque::new(),
            taken: 0,
            written: 0,
            failed: 0,
        }
    }

    /// Notes the snapshots found on disk at start-up (any order) and the
    /// log bytes then; the newest counts as the last one taken.
    pub(crate) fn found(&mut self, mut marks: Vec<SnapshotMark>, log_bytes: u64) {
        marks.sort_unstable_by_key(|m| (m.round, m.next_token));
        self.kept = marks.into();
        self.last_round = self.kept.back().map(|m| m.round);
        self.last_bytes = log_bytes;
    }

    /// Whether a snapshot is due at `round` with `log_bytes` appended.
    pub(crate) fn due(&self, round: Option<u64>, log_bytes: u64) -> bool {
        let Some(round) = round else {
            return false;
        };
        if !self.policy.enabled() || self.in_flight || self.ready.is_some() {
            return false;
        }
        if self.last_round == Some(round) {
            return false;
        }
        let rounds = match self.last_round {
            Some(last) => round.saturating_sub(last),
            None => round + 1,
        };
        (self.policy.interval_rounds > 0 && rounds >= self.policy.interval_rounds)
            || (self.policy.interval_bytes > 0
                && log_bytes.saturating_sub(self.last_bytes) >= self.policy.interval_bytes)
    }

    pub(crate) fn take(&mut self, image: ShardImage, log_bytes: u64) {
        self.last_round = Some(image.round);
        self.last_bytes = log_bytes;
        self.ready = Some(image);
        self.taken += 1;
    }

    pub(crate) fn poll(&mut self) -> Option<ShardImage> {
        let image = self.ready.take()?;
        self.in_flight = true;
        Some(image)
    }

    pub(crate) fn written(&mut self, mark: SnapshotMark) {
        self.in_flight = false;
        self.written += 1;
        self.kept.push_back(mark);
        while self.kept.len() > self.policy.keep.max(1) {
            self.kept.pop_front();
        }
    }

    pub(crate) fn newest_round(&self) -> Option<u64> {
        self.kept.back().map(|m| m.round)
    }

    pub(crate) fn failed(&mut self) {
        self.in_flight = false;
        self.failed += 1;
    }

    /// Notes that `round` finalized with the log's next record at
    /// `next_token` (sampled; old samples beyond the retention dropped).
    pub(crate) fn note_round(&mut self, round: u64, next_token: u64) {
        if !self.policy.enabled() {
            return;
        }
        if self
            .rounds
            .back()
            .is_none_or(|(last, _)| round >= last + ROUND_SAMPLE)
        {
            self.rounds.push_back((round, next_token));
        }
        let keep_from =
            round.saturating_sub(self.policy.retain_rounds.saturating_add(2 * ROUND_SAMPLE));
        while self.rounds.len() > 1 && self.rounds[1].0 <= keep_from {
            self.rounds.pop_front();
        }
    }

    /// Records below this are needed by no kept snapshot and lie outside
    /// the retention (0 while nothing may go).
    pub(crate) fn prune_bound(&self, last_round: Option<u64>) -> u64 {
        let Some(oldest) = self.kept.front() else {
            return 0;
        };
        let Some(horizon) = last_round.and_then(|r| r.checked_sub(self.policy.retain_rounds))
        else {
            return 0;
        };
        let retained = self
            .rounds
            .iter()
            .rev()
            .find(|(round, _)| *round <= horizon)
            .map_or(0, |(_, token)| *token);
        oldest.replay_from_seq.min(retained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rounds: u64, bytes: u64, retain: u64) -> SnapshotPolicy {
        SnapshotPolicy {
            interval_rounds: rounds,
            interval_bytes: bytes,
            keep: 2,
            retain_rounds: retain,
        }
    }

    fn mark(round: u64, next: u64, from: u64) -> SnapshotMark {
        SnapshotMark {
            round,
            next_token: next,
            replay_from_seq: from,
        }
    }

    #[test]
    fn a_snapshot_is_due_by_rounds_or_bytes_once_per_round() {
        let mut s = Snapshots::new(policy(10, 1000, 0));
        assert!(!s.due(None, 5000), "no round finalized yet");
        assert!(s.due(Some(9), 0), "ten rounds 0..=9");
        assert!(!s.due(Some(8), 0));
        s.found(vec![mark(9, 50, 40)], 100);
        assert!(!s.due(Some(9), 5000), "never twice at one round");
        assert!(!s.due(Some(18), 1099));
        assert!(s.due(Some(19), 0));
        assert!(s.due(Some(10), 1100), "the byte trigger");
        assert!(!Snapshots::new(SnapshotPolicy::OFF).due(Some(100), u64::MAX));
    }

    #[test]
    fn one_in_flight_and_the_prune_bound_keeps_every_kept_snapshot_whole() {
        let mut s = Snapshots::new(policy(1, 0, 100));
        // Round r finalizes with the log at 30 r records.
        for round in 0..=400 {
            s.note_round(round, 30 * round + 30);
        }
        assert_eq!(s.prune_bound(Some(1000)), 0, "nothing kept: nothing goes");
        s.take(ShardImageStub::image(10), 0);
        assert!(!s.due(Some(20), 0), "one snapshot at a time");
        assert!(s.poll().is_some());
        assert!(!s.due(Some(20), 0), "still in flight");
        s.written(mark(10, 330, 300));
        assert!(s.due(Some(20), 0));
        assert_eq!(s.prune_bound(Some(50)), 0, "within the retention");
        assert_eq!(s.prune_bound(Some(400)), 300, "the snapshot's own needs");
        s.written(mark(150, 4530, 4500));
        s.written(mark(300, 9030, 9000));
        // Kept: 150 and 300.
        assert_eq!(
            s.prune_bound(Some(400)),
            4500,
            "the oldest kept one bounds it"
        );
        // Horizon 260 - 100 = 160: the newest sample at or below it is
        // round 128 (sampled every 64 rounds), logged up to 3870.
        assert_eq!(s.prune_bound(Some(260)), 3870, "the retention bounds it");
        assert_eq!(s.prune_bound(Some(90)), 0, "nothing is 100 rounds old");
    }

    struct ShardImageStub;

    impl ShardImageStub {
        fn image(round: u64) -> ShardImage {
            use pc_shard::snapshot::*;
            ShardImage {
                shard: 0,
                round,
                next_token: 0,
                state: StateImage {
                    genesis: vec![],
                    utxos: vec![],
                    cross: pc_shard::cross::CrossState::new(0, 1).to_image(),
                    seats: SeatsImage {
                        seats: vec![],
                        undistributed: 0,
                        next_anchor_index: 0,
                        roots: vec![],
                    },
                    mint: MintImage {
                        tip: [0; 32],
                        count: 0,
                        target: [0; 16],
                        last: 0,
                        minted: 0,
                        race: None,
                        outputs: vec![],
                    },
                    state_root: [0; 32],
                    supply: 0,
                },
                consensus: ConsensusImage {
                    pruned: 0,
                    floor: 0,
                    vertices: vec![],
                    by_seat: vec![],
                    walk_seats: 0,
                    started_seats: 0,
                    witnesses: vec![],
                    votes: vec![],
                    next_undecided_round: round + 1,
                    unreceived: vec![],
                    next_global_index: 0,
                    coin_stats: (0, 0),
                    stale: 0,
                    dragged: 0,
                },
                machine: MachineImage {
                    unfinalized: vec![],
                    reincluded: vec![],
                    first_headers: vec![],
                    evidence_queued: 0,
                    pruned_floor: 0,
                    top_round: 0,
                    seat: None,
                },
            }
        }
    }
}
