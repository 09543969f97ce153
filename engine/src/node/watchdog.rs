//! The watchdog of the core loops: each core notes every turn of its loop
//! and what it is about to wait on ([`Heartbeat::turn`], two relaxed
//! stores); the control thread reports a core whose loop has not turned
//! for [`STALL_AFTER`] in one line naming the core and the wait
//! ([`Watchdog::check`]), once per stall.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pc_node::telemetry::{CoreStalled, Event};

/// A core loop that has not turned for this long is reported.
pub const STALL_AFTER: Duration = Duration::from_secs(2);

/// What a core loop waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Waiting {
    /// Handling inputs (not waiting).
    Working = 0,
    /// The inbox (inputs, a sync's completion, or its timer).
    Inbox = 1,
    /// A log sync of `Durability::Always`.
    LogSync = 2,
    /// Opening a log file for sync.
    OpenFile = 3,
    /// The executor (a yield).
    Yield = 4,
    /// Shutdown (syncs and connection close).
    Shutdown = 5,
}

impl Waiting {
    fn name(code: u8) -> &'static str {
        match code {
            0 => "handling inputs",
            1 => "the inbox (inputs or its timer)",
            2 => "a log sync",
            3 => "opening a log file",
            4 => "the executor (a yield)",
            _ => "shutdown",
        }
    }
}

/// One core's heartbeat.
#[derive(Debug, Default)]
pub struct Heartbeat {
    turns: AtomicU64,
    waiting: AtomicU8,
}

impl Heartbeat {
    /// The loop turned and is about to wait on `waiting`.
    pub fn turn(&self, waiting: Waiting) {
        self.turns.fetch_add(1, Ordering::Relaxed);
        self.waiting.store(waiting as u8, Ordering::Relaxed);
    }
}

/// The control thread's view of every core's heartbeat.
pub struct Watchdog {
    cores: Vec<(Arc<Heartbeat>, u64, Instant, bool)>,
}

impl Watchdog {
    /// Watches `heartbeats` (one per core, by core index) from `now`.
    pub fn new(heartbeats: &[Arc<Heartbeat>], now: Instant) -> Watchdog {
        Watchdog {
            cores: heartbeats
                .iter()
                .map(|h| (h.clone(), h.turns.load(Ordering::Relaxed), now, false))
                .collect(),
        }
    }

    /// The stalls newly seen at `now`.
    pub fn check(&mut self, now: Instant) -> Vec<Event> {
        let mut stalls = Vec::new();
        for (core, (heartbeat, seen, since, reported)) in self.cores.iter_mut().enumerate() {
            let turns = heartbeat.turns.load(Ordering::Relaxed);
            if turns != *seen {
                (*seen, *since, *reported) = (turns, now, false);
                continue;
            }
            let stalled = now.saturating_duration_since(*since);
            if stalled >= STALL_AFTER && !*reported {
                *reported = true;
                stalls.push(Event::CoreStalled(CoreStalled {
                    core,
                    stalled_ms: stalled.as_millis() as u64,
                    waiting_on: Waiting::name(heartbeat.waiting.load(Ordering::Relaxed)).into(),
                }));
            }
        }
        stalls
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_that_stops_turning_is_named_once_with_its_wait() {
        let beats = vec![
            Arc::new(Heartbeat::default()),
            Arc::new(Heartbeat::default()),
        ];
        let start = Instant::now();
        let mut dog = Watchdog::new(&beats, start);
        beats[0].turn(Waiting::Inbox);
        beats[1].turn(Waiting::LogSync);
        assert!(dog.check(start + Duration::from_millis(10)).is_empty());
        beats[0].turn(Waiting::Inbox);
        let stalls = dog.check(start + Duration::from_millis(2_100));
        assert_eq!(stalls.len(), 1, "{stalls:?}");
        let Event::CoreStalled(stall) = &stalls[0] else {
            panic!("{stalls:?}");
        };
        assert_eq!(stall.core, 1);
        assert_eq!(stall.waiting_on, "a log sync");
        beats[0].turn(Waiting::Inbox);
        assert!(
            dog.check(start + Duration::from_millis(5_000)).is_empty(),
            "once per stall"
        );
        beats[1].turn(Waiting::Working);
        assert!(dog.check(start + Duration::from_millis(5_001)).is_empty());
    }
}
