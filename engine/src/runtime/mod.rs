//! The one runtime under the validator node (`node`) and the bench engine
//! (`engine::run`, which `bench` and the seat tests drive): pinned
//! executors sized to the memlock limit with the park guard, the ring mesh
//! between cores built before any core starts, the stop signals, and the
//! join of the cores, placement; the shard driver ([`driver`]), host
//! facts ([`host`]) and the data-dir layout ([`data_dir`]), which both
//! entry points and replay use.
//!
//! Nothing here decides anything a shard computes: it starts threads,
//! builds channels and waits for them.

pub mod data_dir;
pub mod driver;
pub mod host;
pub mod snapshots;

use std::future::Future;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use pc_net::driver::ParkNudge;

use crate::runtime::host::ExecutorSizing;
use crate::EngineError;

/// glommio's preemption slice on every core: a task that ran this long
/// yields at its next `yield_if_needed`.
pub const PREEMPT_TIMER: Duration = Duration::from_millis(10);

/// Starts the executor of `core`, pinned to `cpu` and sized by `sizing`,
/// named `{role}-{core}`, with the park guard
/// ([`pc_net::driver::spawn_park_guard`]), running `run`; the executor
/// and the nudge of its guard (for a thread that watches it).
pub fn spawn_core<T, F, Fut>(
    role: &str,
    core: usize,
    cpu: usize,
    sizing: ExecutorSizing,
    run: F,
) -> Result<(ExecutorJoinHandle<T>, Arc<ParkNudge>), EngineError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let nudge = Arc::new(ParkNudge::default());
    let guard = nudge.clone();
    let handle = LocalExecutorBuilder::new(Placement::Fixed(cpu))
        .name(&format!("{role}-{core}"))
        .io_memory(sizing.io_memory_bytes)
        .ring_depth(sizing.ring_depth)
        .preempt_timer(PREEMPT_TIMER)
        .spawn(move || async move {
            pc_net::driver::spawn_park_guard_with(guard);
            run().await
        })
        .map_err(|e| EngineError::Executor {
            cpu,
            source: e.into(),
        })?;
    Ok((handle, nudge))
}

/// Joins every core in order: the results of those that ended `Ok`, and
/// the first error (a core's own, or its thread's panic). `on_error` runs
/// at every failure, before the next join (the node raises its stop flag
/// there so the other cores end too).
pub fn join_cores<T: Send + 'static>(
    handles: Vec<ExecutorJoinHandle<Result<T, EngineError>>>,
    mut on_error: impl FnMut(),
) -> (Vec<T>, Option<EngineError>) {
    let mut results = Vec::new();
    let mut first_error = None;
    for (core, handle) in handles.into_iter().enumerate() {
        match handle.join() {
            Ok(Ok(result)) => results.push(result),
            Ok(Err(error)) => {
                on_error();
                first_error.get_or_insert(error);
            }
            Err(error) => {
                on_error();
                first_error.get_or_insert(EngineError::CoreFailed {
                    core,
                    source: error.into(),
                });
            }
        }
    }
    (results, first_error)
}

/// Every ring between `cores` cores, built before any core starts:
/// `senders[a][b]` carries a → b (none for a = b), `receivers[b]` holds
/// what reaches b, in the order of a.
pub struct RingMesh<T: Send + Sized> {
    senders: Vec<Vec<Option<SharedSender<T>>>>,
    receivers: Vec<Vec<SharedReceiver<T>>>,
}

impl<T: Send + Sized> RingMesh<T> {
    /// A bounded ring of `capacity` messages between every ordered pair.
    pub fn new(cores: usize, capacity: usize) -> RingMesh<T> {
        let mut senders: Vec<Vec<Option<SharedSender<T>>>> = (0..cores)
            .map(|_| (0..cores).map(|_| None).collect())
            .collect();
        let mut receivers: Vec<Vec<SharedReceiver<T>>> = (0..cores).map(|_| Vec::new()).collect();
        for (a, row) in senders.iter_mut().enumerate() {
            for (b, slot) in row.iter_mut().enumerate() {
                if a != b {
                    let (tx, rx) = shared_channel::new_bounded(capacity);
                    *slot = Some(tx);
                    receivers[b].push(rx);
                }
            }
        }
        RingMesh { senders, receivers }
    }

    /// Core `core`'s ends: its senders to every core (by index) and its
    /// receivers; each core's ends are taken once (empty after).
    pub fn take(&mut self, core: usize) -> (Vec<Option<SharedSender<T>>>, Vec<SharedReceiver<T>>) {
        (
            std::mem::take(&mut self.senders[core]),
            std::mem::take(&mut self.receivers[core]),
        )
    }
}

/// Round-robin placement of `shards` shards on `cores` cores.
pub fn round_robin(shards: u16, cores: usize) -> Vec<usize> {
    assert!(cores > 0, "at least one core");
    (0..usize::from(shards))
        .map(|shard| shard % cores)
        .collect()
}

/// SIGTERM and SIGINT set a flag for as long as this lives.
pub struct StopSignals {
    ids: Vec<signal_hook::SigId>,
}

impl StopSignals {
    /// Registers both signals on `flag`.
    pub fn register(flag: &Arc<AtomicBool>) -> Result<StopSignals, EngineError> {
        let mut ids = Vec::new();
        for number in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let id = signal_hook::flag::register(number, flag.clone())
                .map_err(|source| EngineError::Signal { number, source })?;
            ids.push(id);
        }
        Ok(StopSignals { ids })
    }
}

impl Drop for StopSignals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_puts_one_shard_per_core_then_wraps() {
        assert_eq!(round_robin(2, 2), vec![0, 1]);
        assert_eq!(round_robin(5, 2), vec![0, 1, 0, 1, 0]);
        assert_eq!(round_robin(1, 4), vec![0]);
    }

    #[test]
    fn a_ring_mesh_connects_every_ordered_pair_once() {
        let mut mesh: RingMesh<u32> = RingMesh::new(3, 4);
        for core in 0..3 {
            let (senders, receivers) = mesh.take(core);
            assert_eq!(senders.len(), 3);
            assert!(senders[core].is_none(), "no ring from a core to itself");
            assert_eq!(senders.iter().filter(|s| s.is_some()).count(), 2);
            assert_eq!(receivers.len(), 2);
        }
        let (senders, receivers) = mesh.take(1);
        assert!(senders.is_empty() && receivers.is_empty(), "taken once");
    }

    #[test]
    fn a_core_that_fails_is_reported_and_the_others_are_joined() {
        let sizing = ExecutorSizing {
            io_memory_bytes: 64 << 10,
            ring_depth: 8,
        };
        let (ok, _) = spawn_core("test", 0, 0, sizing, || async { Ok::<u8, EngineError>(7) })
            .expect("executor starts");
        let (failed, _) = spawn_core("test", 1, 0, sizing, || async {
            Err::<u8, EngineError>(EngineError::PortRange {
                base_port: 65535,
                core: 1,
            })
        })
        .expect("executor starts");
        let mut errors = 0;
        let (results, error) = join_cores(vec![ok, failed], || errors += 1);
        assert_eq!(results, vec![7]);
        assert_eq!(errors, 1);
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some("port 65535 + core 1 is out of range")
        );
    }
}
