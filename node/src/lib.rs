//! `pc-node`: one core of a Phantom-Coin validator node as a deterministic,
//! sans-IO state machine ([`NodeCore`]), in the style of pc-shard and
//! quinn-proto, with the shard hosts it owns ([`ShardHost`]: a
//! `pc_shard::Shard` machine, its record store and the index that serves
//! peers) and the typed telemetry it emits ([`telemetry`]).
//!
//! Nothing here does I/O, reads a clock, spawns a task or prints: the
//! engine's per-core glommio driver and the whole-node simulator (in the
//! workspace's `tests/`) feed it inputs with the time as an argument and
//! carry out its outputs. The crate's `clippy.toml` forbids clocks, files,
//! sockets and printing.
#![warn(missing_docs)]

mod admission;
pub mod budget;
pub mod cache;
pub mod capacity;
pub mod core;
pub mod crossing;
pub mod forward;
mod gossip;
pub mod intake;
pub mod metrics;
mod serving;
pub mod shard_host;
pub mod snapshots;
pub mod store;
pub mod telemetry;
mod wallet_rpc;

pub use crate::cache::{CacheCaps, CacheCounts, CachedStore, Stopwatch, StoreReads};
pub use crate::core::{
    node_shard_limits, CoreConfig, CoreCounters, CrashPlan, HostStats, NodeCore, NodeIo, Now,
    SCAN_OUTPUTS_PER_S, SCAN_SOURCE_SHARE, SUBMIT_EVENTS_PER_S,
};
pub use crate::forward::CoreMsg;
pub use crate::metrics::{CoreMetrics, P2pMetrics, SecondsHistogram, ShardMetrics};
pub use crate::shard_host::{
    CountingVerifier, CrashHook, CrashSite, FinalizedHook, ProductShard, Restored, ShardCounters,
    ShardHost, ShardReport,
};
pub use crate::snapshots::{SnapshotMark, SnapshotPolicy};
pub use crate::store::{AnchorPart, MemStore, ShardStore};

/// What stops a core: its log failed (the shard cannot go on safely).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// A record could not be appended to the shard's log.
    #[error("shard {shard}: appending to its log failed: {reason}")]
    Append {
        /// The shard.
        shard: u16,
        /// The log's error.
        reason: String,
    },
    /// The log does not restore (a record the machine refuses).
    #[error("shard {shard}: its log does not restore: {reason}")]
    Restore {
        /// The shard.
        shard: u16,
        /// What the machine refused.
        reason: String,
    },
}
