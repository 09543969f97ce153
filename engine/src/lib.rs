//! `pc-engine` runs shards on a host, grouped by role:
//!
//! * [`runtime`] — the one runtime under the node and the bench engine:
//!   pinned glommio executors sized to the memlock limit, the ring mesh
//!   between cores built before any shard starts, stop signals, the join of
//!   the cores; the shard driver around the sans-IO
//!   `pc_shard::machine::Shard` and its `pc_storage::Log`
//!   ([`runtime::driver`], durability through io_uring `fdatasync`); host
//!   facts ([`runtime::host`]); the data-dir layout ([`runtime::data_dir`]).
//! * [`node`] — the validator node: its set-up and each core's thin driver
//!   around `pc_node::NodeCore`.
//! * [`tools`] — the bench engine and `bench`, the DAG workload, the QUIC
//!   intake of the bench, replay, `tune`, and the agreement check.
//! * [`client`] — `tx send` / `tx balance` over QUIC.
//! * [`config`] and [`genesis_file`] — the node's configuration file and
//!   the genesis file format.
//!
//! It never makes a blocking sync on a core, never shares mutable state
//! between cores other than through the rings, and never decides an id, a
//! root or an order: that is the shard machine's job.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod genesis_file;
pub mod logging;
pub mod metrics;
pub mod node;
pub mod runtime;
pub mod signer;
pub mod tools;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// An error of the engine; `Display` is one line naming the file, shard,
/// round or key at fault.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The log refused (corruption names its file and offset).
    #[error(transparent)]
    Log(#[from] pc_storage::LogError),
    /// The genesis file.
    #[error(transparent)]
    Genesis(#[from] genesis_file::GenesisFileError),
    /// The bench workload.
    #[error(transparent)]
    Workload(#[from] tools::workload::WorkloadError),
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A log record the engine cannot use.
    #[error("corrupt log segment {path} at offset {offset}: {reason}")]
    BadRecord {
        /// The segment file.
        path: PathBuf,
        /// Offset of the record's frame.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A shard's log does not restore.
    #[error("shard {shard}: log {dir} does not restore: {reason}")]
    Restore {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// An io_uring fdatasync failed: the shard stopped.
    #[error("shard {shard}: fdatasync failed, log poisoned: {reason}")]
    Sync {
        /// The shard.
        shard: u16,
        /// The error.
        reason: String,
    },
    /// A core's node logic stopped (its log failed).
    #[error(transparent)]
    Node(#[from] pc_node::NodeError),
    /// The signer process could not be reached or refused at start-up.
    #[error(transparent)]
    Signer(#[from] signer::SignerError),
    /// A bad setting (config file, flag, or one the genesis contradicts),
    /// naming its key.
    #[error(transparent)]
    Setting(#[from] config::ConfigError),
    /// The data dir holds a copy of another genesis.
    #[error("{}: belongs to another genesis than {}", .copy.display(), .genesis.display())]
    OtherGenesis {
        /// The data dir's copy.
        copy: PathBuf,
        /// The genesis given.
        genesis: PathBuf,
    },
    /// A signal handler could not be installed.
    #[error("cannot handle signal {number}: {source}")]
    Signal {
        /// The signal.
        number: i32,
        /// The OS error.
        source: std::io::Error,
    },
    /// A core's executor did not start.
    #[error("cannot start executor on cpu {cpu}: {source}")]
    Executor {
        /// The CPU it was pinned to.
        cpu: usize,
        /// glommio's error.
        source: std::io::Error,
    },
    /// A core's executor thread failed (it panicked).
    #[error("core {core} failed: {source}")]
    CoreFailed {
        /// The core.
        core: usize,
        /// glommio's error.
        source: std::io::Error,
    },
    /// An endpoint port past 65535.
    #[error("port {base_port} + core {core} is out of range")]
    PortRange {
        /// Port of the first core.
        base_port: u16,
        /// The core.
        core: usize,
    },
    /// The TLS identity could not be made.
    #[error("TLS identity: {0}")]
    Tls(#[from] pc_net::TlsError),
    /// The QUIC endpoint could not be made.
    #[error("QUIC endpoint: {0}")]
    Endpoint(#[from] pc_net::NetError),
    /// A UDP socket did not bind.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A core's peer book does not load.
    #[error(transparent)]
    PeerBook(#[from] pc_net::peer_book::PeerBookError),
    /// The bench's QUIC feeder failed.
    #[error("bench feeder: {0}")]
    Feeder(#[from] tools::quic_intake::FeedError),
    /// Replay found the log and the machine disagree, or could not start.
    #[error(transparent)]
    Replay(Box<tools::replay::ReplayError>),
    /// A flag or setting of the operator's is not usable (names it).
    #[error("{0}")]
    Config(String),
    /// The metrics endpoint did not bind.
    #[error("[metrics] address {addr}: cannot bind: {source}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A logged `RoundFinalized` record does not decode.
    #[error("{}: round record: {source}", .dir.display())]
    RoundRecord {
        /// The shard's log directory.
        dir: PathBuf,
        /// The decoder's reason.
        source: pc_codec::DecodeError,
    },
}

impl From<tools::replay::ReplayError> for EngineError {
    fn from(error: tools::replay::ReplayError) -> Self {
        EngineError::Replay(Box::new(error))
    }
}

impl EngineError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
