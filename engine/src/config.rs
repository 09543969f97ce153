//! The one configuration of the node and the engine. [`RuntimeConfig`] is
//! what every runtime entry point (`node`, `bench`) runs with: the data
//! dir, the cores, the shards' places on them ([`RuntimeConfig::placement`]
//! checks them against the genesis), the logs' [`StorageConfig`] and the
//! executors' registered memory. The node config file (DESIGN §9) fills it
//! and the node's own keys: `[node]` data dir and validator key,
//! `[node.cache]`, `[engine]` cores and placement, `[storage]` fsync and
//! segment size, `[net]` listen address, base port and peers, `[metrics]`
//! address. Every key but `[node] data_dir` has a default; an unknown key
//! or a bad value is refused with one line naming the key
//! ([`ConfigError`]), so an operator's typo never starts a node with a
//! setting it did not ask for. `tune` prints a file of this format, and
//! `tuning/*.toml` are examples of it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use pc_storage::{Durability, LogConfig, LogError, ParseDurabilityError};
use serde::{Deserialize, Serialize};

use crate::genesis_file::TomlError;
use crate::runtime::data_dir::MAX_RECORD_BYTES;
use crate::runtime::host::{executor_sizing, memlock_limit_bytes, ExecutorSizing};
use crate::runtime::round_robin;

/// Port of the first core's QUIC endpoint unless `[net] base_port` says
/// otherwise; core `i` listens on `base_port + i`.
pub const DEFAULT_BASE_PORT: u16 = 7100;
/// Default `[metrics] address`.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9100);
/// Default `[storage] segment_bytes` (DESIGN §6).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Default `[node.cache] header_cap`.
pub const DEFAULT_HEADER_CACHE_CAP: usize = 65_536;
/// Default `[node.cache] payload_cap`.
pub const DEFAULT_PAYLOAD_CACHE_CAP: usize = 4_096;
/// Most peers a config may list (the committee of a shard is at most 64
/// seats; a few more leave room for observers).
pub const MAX_PEERS: usize = 256;

/// A setting that cannot be used; `Display` is one line naming the file,
/// section and key (or flag) and the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bad setting in a config file.
    #[error("{path}: {error}")]
    InFile {
        /// The file.
        path: PathBuf,
        /// The setting.
        error: Box<ConfigError>,
    },
    /// Text that is not TOML of the expected shape.
    #[error(transparent)]
    Toml(#[from] TomlError),
    /// `[engine] cores = []`.
    #[error("[engine] cores: lists no core")]
    NoCores,
    /// A core listed twice.
    #[error("[engine] cores: core {core} is listed twice")]
    CoreTwice {
        /// The core.
        core: usize,
    },
    /// A shard placed on a core that is not listed.
    #[error("[engine] placement[{shard}] = {core}: only {cores} cores are listed")]
    PlacementCore {
        /// The shard.
        shard: usize,
        /// Its core.
        core: usize,
        /// Cores listed.
        cores: usize,
    },
    /// A placement of another number of shards.
    #[error("[engine] placement: places {placed} shards but {of} has {shards}")]
    PlacementShards {
        /// Shards placed.
        placed: usize,
        /// Shards expected.
        shards: u16,
        /// Who expects them: `[engine] shards` or the genesis.
        of: &'static str,
    },
    /// `[engine] shards` and the genesis disagree.
    #[error("[engine] shards = {expected}, but {genesis} has {shards} shards")]
    GenesisShards {
        /// The config's count.
        expected: u16,
        /// The genesis file.
        genesis: PathBuf,
        /// The genesis' count.
        shards: u16,
    },
    /// `[storage] fsync` is not a policy.
    #[error("[storage] fsync: {0}")]
    Fsync(#[from] ParseDurabilityError),
    /// Segments that cannot hold the largest record.
    #[error("[storage] segment_bytes = {segment_bytes}: {source}")]
    SegmentBytes {
        /// The setting.
        segment_bytes: u64,
        /// What the log says of it.
        source: LogError,
    },
    /// `[net] listen` is not an IP address.
    #[error("[net] listen = {0:?}: not an IP address")]
    Listen(String),
    /// Not enough ports from the base port for every core.
    #[error("[net] base_port = {base_port}: needs {cores} ports from it, each in 1..=65535")]
    BasePort {
        /// The setting.
        base_port: u16,
        /// Cores, one endpoint each.
        cores: usize,
    },
    /// Too many peers.
    #[error("[net] peers: {0} listed, at most {MAX_PEERS}")]
    TooManyPeers(usize),
    /// A peer that is not an address.
    #[error("[net] peers[{index}] = {text:?}: not an address like 127.0.0.1:7100")]
    Peer {
        /// Its index in the list.
        index: usize,
        /// What was given.
        text: String,
    },
    /// `[metrics] address` is not an address.
    #[error("[metrics] address = {0:?}: not an address like 127.0.0.1:9100")]
    MetricsAddress(String),
    /// `[node] signer` is not `unix:PATH`, or is set beside `[node] key`.
    #[error("[node] signer: {0}")]
    Signer(String),
    /// A command-line value outside its range.
    #[error("{flag} {value} is outside {}..={}", .range.start(), .range.end())]
    OutOfRange {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: u64,
        /// What is accepted.
        range: std::ops::RangeInclusive<u64>,
    },
}

/// `[storage]`: how the shard logs sync and how large their segments are.
/// The same settings go into the data dir's `engine.toml` for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// Log durability policy.
    pub fsync: Durability,
    /// Log segment size.
    pub segment_bytes: u64,
    /// Finalized rounds between local snapshots (0: no round trigger).
    pub snapshot_interval_rounds: u64,
    /// Log bytes between local snapshots (0: no byte trigger; both 0: no
    /// snapshots and no pruning).
    pub snapshot_interval_bytes: u64,
    /// Snapshot files kept per shard.
    pub keep_snapshots: usize,
    /// Rounds of log kept below the last finalized round for peers that
    /// catch up.
    pub retain_rounds: u64,
}

/// Default `[storage] snapshot_interval_rounds` (DESIGN §6.1).
pub const DEFAULT_SNAPSHOT_INTERVAL_ROUNDS: u64 = 2048;
/// Default `[storage] snapshot_interval_bytes`: at the measured ~9 s of
/// replay per GiB of log (restart-time, 2-vCPU VM), a restart just before
/// the next snapshot replays at most 256 MiB, about 2.3 s.
pub const DEFAULT_SNAPSHOT_INTERVAL_BYTES: u64 = 256 << 20;
/// Default `[storage] keep_snapshots`.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 2;
/// Default `[storage] retain_rounds` (DESIGN §6.1).
pub const DEFAULT_RETAIN_ROUNDS: u64 = 65_536;

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            fsync: Durability::Batch,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            snapshot_interval_rounds: DEFAULT_SNAPSHOT_INTERVAL_ROUNDS,
            snapshot_interval_bytes: DEFAULT_SNAPSHOT_INTERVAL_BYTES,
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
            retain_rounds: DEFAULT_RETAIN_ROUNDS,
        }
    }
}

impl StorageConfig {
    /// The shards' snapshot and pruning policy.
    pub fn snapshot_policy(&self) -> pc_node::SnapshotPolicy {
        pc_node::SnapshotPolicy {
            interval_rounds: self.snapshot_interval_rounds,
            interval_bytes: self.snapshot_interval_bytes,
            keep: self.keep_snapshots.max(1),
            retain_rounds: self.retain_rounds,
        }
    }

    /// The configuration of every shard log, checked.
    pub fn log_config(&self) -> Result<LogConfig, ConfigError> {
        let config = LogConfig {
            segment_bytes: self.segment_bytes,
            durability: self.fsync,
            max_record_bytes: MAX_RECORD_BYTES,
        };
        config
            .validate()
            .map_err(|source| ConfigError::SegmentBytes {
                segment_bytes: self.segment_bytes,
                source,
            })?;
        Ok(config)
    }
}

/// What a runtime entry point (`node`, `bench`) runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Holds `genesis.toml`, `engine.toml`, the shard logs and the peer books.
    pub data_dir: PathBuf,
    /// CPUs to run executors on, one per core.
    pub cpus: Vec<usize>,
    /// Index into `cpus` of every shard's core (`None`: round-robin).
    pub placement: Option<Vec<usize>>,
    /// The shard logs.
    pub storage: StorageConfig,
    /// glommio registered memory per core (`None`: sized to the memlock limit).
    pub io_memory_bytes: Option<u64>,
}

impl RuntimeConfig {
    /// The core of every one of `shards` shards: the configured placement,
    /// checked, or round-robin.
    pub fn placement(&self, shards: u16) -> Result<Vec<usize>, ConfigError> {
        if self.cpus.is_empty() {
            return Err(ConfigError::NoCores);
        }
        match &self.placement {
            Some(placement) => {
                check_placement(
                    placement,
                    Some(self.cpus.len()),
                    Some((shards, "the genesis")),
                )?;
                Ok(placement.clone())
            }
            None => Ok(round_robin(shards, self.cpus.len())),
        }
    }

    /// glommio's registered memory and ring depth per executor: sized to
    /// the memlock limit unless `io_memory_bytes` says.
    pub fn executor_sizing(&self) -> ExecutorSizing {
        let mut sizing = executor_sizing(memlock_limit_bytes(), self.cpus.len());
        if let Some(bytes) = self.io_memory_bytes {
            sizing.io_memory_bytes = bytes as usize;
            sizing.ring_depth = if bytes < (1 << 20) { 32 } else { 128 };
        }
        sizing
    }
}

/// Checks that `placement` names only listed cores (if `cores` is known)
/// and places `shards.0` shards (if known; `shards.1` names who says so).
fn check_placement(
    placement: &[usize],
    cores: Option<usize>,
    shards: Option<(u16, &'static str)>,
) -> Result<(), ConfigError> {
    if let Some(cores) = cores {
        if let Some((shard, core)) = placement
            .iter()
            .enumerate()
            .find(|(_, core)| **core >= cores)
        {
            return Err(ConfigError::PlacementCore {
                shard,
                core: *core,
                cores,
            });
        }
    }
    match shards {
        Some((shards, of)) if placement.len() != usize::from(shards) => {
            Err(ConfigError::PlacementShards {
                placed: placement.len(),
                shards,
                of,
            })
        }
        _ => Ok(()),
    }
}

/// Checks that `cores` endpoints from `base_port` on all have ports.
pub fn check_base_port(base_port: u16, cores: usize) -> Result<(), ConfigError> {
    if base_port == 0 || usize::from(base_port) + cores.max(1) - 1 > usize::from(u16::MAX) {
        return Err(ConfigError::BasePort { base_port, cores });
    }
    Ok(())
}

/// A node's settings, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Holds `genesis.toml`, `engine.toml`, the shard logs and the peer book.
    pub data_dir: PathBuf,
    /// The validator key file (`None`: an observer node, or a signer).
    pub key: Option<PathBuf>,
    /// The signer process holding the validator key, `unix:PATH`
    /// (`[node] signer`; never together with `key`).
    pub signer: Option<String>,
    /// CPUs to run executors on (`None`: every usable CPU).
    pub cores: Option<Vec<usize>>,
    /// Shards the config expects the genesis to have, if it says.
    pub shards: Option<u16>,
    /// Index into the cores of every shard's core (`None`: round-robin).
    pub placement: Option<Vec<usize>>,
    /// glommio registered memory per core (`None`: sized to the memlock limit).
    pub io_memory_bytes: Option<u64>,
    /// The shard logs.
    pub storage: StorageConfig,
    /// Header cache capacity per shard (0 = off).
    pub header_cache_cap: usize,
    /// Payload cache capacity per shard (0 = off).
    pub payload_cache_cap: usize,
    /// Address the QUIC endpoints bind.
    pub listen: IpAddr,
    /// Port of core 0's endpoint.
    pub base_port: u16,
    /// Peers to dial (their base ports).
    pub peers: Vec<SocketAddr>,
    /// Where `/metrics` is served.
    pub metrics_address: SocketAddr,
}

impl NodeConfig {
    /// The settings of a node without a config file: every default, in
    /// `data_dir`.
    pub fn defaults(data_dir: PathBuf) -> NodeConfig {
        NodeConfig {
            data_dir,
            key: None,
            signer: None,
            cores: None,
            shards: None,
            placement: None,
            io_memory_bytes: None,
            storage: StorageConfig::default(),
            header_cache_cap: DEFAULT_HEADER_CACHE_CAP,
            payload_cache_cap: DEFAULT_PAYLOAD_CACHE_CAP,
            listen: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            base_port: DEFAULT_BASE_PORT,
            peers: Vec::new(),
            metrics_address: DEFAULT_METRICS_ADDRESS,
        }
    }

    /// The runtime part, on `usable_cpus` unless `[engine] cores` lists
    /// some.
    pub fn runtime(&self, usable_cpus: impl FnOnce() -> Vec<usize>) -> RuntimeConfig {
        RuntimeConfig {
            data_dir: self.data_dir.clone(),
            cpus: self.cores.clone().unwrap_or_else(usable_cpus),
            placement: self.placement.clone(),
            storage: self.storage,
            io_memory_bytes: self.io_memory_bytes,
        }
    }

    /// Checks `[engine] shards` against the genesis at `path` with `shards`.
    pub fn check_genesis_shards(&self, path: &Path, shards: u16) -> Result<(), ConfigError> {
        match self.shards {
            Some(expected) if expected != shards => Err(ConfigError::GenesisShards {
                expected,
                genesis: path.to_path_buf(),
                shards,
            }),
            _ => Ok(()),
        }
    }
}

/// The file format, both ways: [`parse`] reads it, [`NodeConfig::to_toml`]
/// writes it (keys without a value are left out).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    node: NodeToml,
    #[serde(default)]
    engine: EngineToml,
    #[serde(default)]
    storage: StorageToml,
    #[serde(default)]
    net: NetToml,
    #[serde(default)]
    metrics: MetricsToml,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    data_dir: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signer: Option<String>,
    #[serde(default)]
    cache: CacheToml,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct CacheToml {
    header_cap: Option<usize>,
    payload_cap: Option<usize>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct EngineToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    io_memory_bytes: Option<u64>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct StorageToml {
    fsync: Option<String>,
    segment_bytes: Option<u64>,
    snapshot_interval_rounds: Option<u64>,
    snapshot_interval_bytes: Option<u64>,
    keep_snapshots: Option<usize>,
    retain_rounds: Option<u64>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct NetToml {
    listen: Option<String>,
    base_port: Option<u16>,
    peers: Option<Vec<String>>,
}

#[derive(Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
struct MetricsToml {
    address: Option<String>,
}

impl NodeConfig {
    /// The config as a file [`parse`] reads back to the same settings.
    pub fn to_toml(&self) -> String {
        let file = FileToml {
            node: NodeToml {
                data_dir: self.data_dir.clone(),
                key: self.key.clone(),
                signer: self.signer.clone(),
                cache: CacheToml {
                    header_cap: Some(self.header_cache_cap),
                    payload_cap: Some(self.payload_cache_cap),
                },
            },
            engine: EngineToml {
                cores: self.cores.clone(),
                shards: self.shards,
                placement: self.placement.clone(),
                io_memory_bytes: self.io_memory_bytes,
            },
            storage: StorageToml {
                fsync: Some(self.storage.fsync.to_string()),
                segment_bytes: Some(self.storage.segment_bytes),
                snapshot_interval_rounds: Some(self.storage.snapshot_interval_rounds),
                snapshot_interval_bytes: Some(self.storage.snapshot_interval_bytes),
                keep_snapshots: Some(self.storage.keep_snapshots),
                retain_rounds: Some(self.storage.retain_rounds),
            },
            net: NetToml {
                listen: Some(self.listen.to_string()),
                base_port: Some(self.base_port),
                peers: Some(self.peers.iter().map(ToString::to_string).collect()),
            },
            metrics: MetricsToml {
                address: Some(self.metrics_address.to_string()),
            },
        };
        toml::to_string(&file).expect("a node config serializes (its paths are UTF-8)")
    }
}

/// Reads and checks a node config file; the error is one line naming the
/// file and the key.
pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|error| ConfigError::InFile {
        path: path.to_path_buf(),
        error: Box::new(error),
    })
}

/// Parses and checks the text of a node config; the error is one line
/// naming the key (or the line and column of a TOML error).
pub fn parse(text: &str) -> Result<NodeConfig, ConfigError> {
    let file: FileToml = toml::from_str(text).map_err(|e| TomlError::new(text, &e))?;
    let engine = file.engine;
    if let Some(cores) = &engine.cores {
        if cores.is_empty() {
            return Err(ConfigError::NoCores);
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = cores.iter().find(|core| !seen.insert(**core)) {
            return Err(ConfigError::CoreTwice { core: *twice });
        }
    }
    if let Some(placement) = &engine.placement {
        check_placement(
            placement,
            engine.cores.as_ref().map(Vec::len),
            engine.shards.map(|shards| (shards, "[engine] shards")),
        )?;
    }
    let defaults = NodeConfig::defaults(file.node.data_dir);
    let storage = StorageConfig {
        fsync: match &file.storage.fsync {
            Some(text) => text.parse::<Durability>()?,
            None => defaults.storage.fsync,
        },
        segment_bytes: file
            .storage
            .segment_bytes
            .unwrap_or(defaults.storage.segment_bytes),
        snapshot_interval_rounds: file
            .storage
            .snapshot_interval_rounds
            .unwrap_or(defaults.storage.snapshot_interval_rounds),
        snapshot_interval_bytes: file
            .storage
            .snapshot_interval_bytes
            .unwrap_or(defaults.storage.snapshot_interval_bytes),
        keep_snapshots: file
            .storage
            .keep_snapshots
            .unwrap_or(defaults.storage.keep_snapshots)
            .max(1),
        retain_rounds: file
            .storage
            .retain_rounds
            .unwrap_or(defaults.storage.retain_rounds),
    };
    storage.log_config()?;
    let net = file.net;
    let listen = match &net.listen {
        Some(text) => text
            .parse::<IpAddr>()
            .map_err(|_| ConfigError::Listen(text.clone()))?,
        None => defaults.listen,
    };
    let base_port = net.base_port.unwrap_or(defaults.base_port);
    check_base_port(base_port, engine.cores.as_ref().map_or(1, Vec::len))?;
    let peer_texts = net.peers.unwrap_or_default();
    if peer_texts.len() > MAX_PEERS {
        return Err(ConfigError::TooManyPeers(peer_texts.len()));
    }
    let peers = peer_texts
        .into_iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse::<SocketAddr>()
                .map_err(|_| ConfigError::Peer { index, text })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics_address = match file.metrics.address {
        Some(text) => text
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::MetricsAddress(text))?,
        None => defaults.metrics_address,
    };
    let cache = file.node.cache;
    if let Some(signer) = &file.node.signer {
        if file.node.key.is_some() {
            return Err(ConfigError::Signer(
                "both [node] key and [node] signer are set: a node with a signer holds no key"
                    .into(),
            ));
        }
        if signer.strip_prefix("unix:").is_none_or(str::is_empty) {
            return Err(ConfigError::Signer(format!(
                "{signer:?}: expected unix:PATH"
            )));
        }
    }
    Ok(NodeConfig {
        key: file.node.key,
        signer: file.node.signer,
        cores: engine.cores,
        shards: engine.shards,
        placement: engine.placement,
        io_memory_bytes: engine.io_memory_bytes,
        storage,
        header_cache_cap: cache.header_cap.unwrap_or(defaults.header_cache_cap),
        payload_cache_cap: cache.payload_cap.unwrap_or(defaults.payload_cache_cap),
        listen,
        base_port,
        peers,
        metrics_address,
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_every_default() {
        let config = parse("[node]\ndata_dir = \"d\"\n").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("d"));
        assert_eq!(config.storage, StorageConfig::default());
        assert_eq!(config, NodeConfig::defaults(PathBuf::from("d")));
        assert_eq!(config.base_port, DEFAULT_BASE_PORT);
        assert_eq!(config.metrics_address, DEFAULT_METRICS_ADDRESS);
        assert!(config.peers.is_empty() && config.key.is_none() && config.cores.is_none());
    }

    #[test]
    fn the_shipped_profiles_parse() {
        for (name, text) in [
            ("pi5.toml", include_str!("../../tuning/pi5.toml")),
            ("i9.toml", include_str!("../../tuning/i9.toml")),
        ] {
            let config = parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                config.placement.as_ref().map(Vec::len),
                config.shards.map(usize::from),
                "{name}"
            );
        }
    }

    #[test]
    fn a_full_config_reads_back_every_key() {
        let config = parse(
            "[node]\ndata_dir = \"/var/pc\"\nkey = \"v.key\"\n[node.cache]\nheader_cap = 7\npayload_cap = 0\n\
             [engine]\ncores = [2, 3]\nshards = 3\nplacement = [0, 1, 0]\n\
             [storage]\nfsync = \"always\"\nsegment_bytes = 8388608\n\
             [net]\nlisten = \"127.0.0.1\"\nbase_port = 7200\npeers = [\"127.0.0.1:7300\", \"[::1]:7400\"]\n\
             [metrics]\naddress = \"127.0.0.1:9200\"\n",
        )
        .unwrap();
        assert_eq!(config.key, Some(PathBuf::from("v.key")));
        assert_eq!((config.header_cache_cap, config.payload_cache_cap), (7, 0));
        assert_eq!(config.placement, Some(vec![0, 1, 0]));
        assert_eq!(config.storage.fsync, Durability::Always);
        assert_eq!(config.storage.segment_bytes, 8 << 20);
        assert_eq!(config.listen, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.base_port, 7200);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.metrics_address.port(), 9200);
    }

    #[test]
    fn a_written_config_reads_back_to_the_same_settings() {
        let minimal = NodeConfig::defaults(PathBuf::from("d"));
        assert_eq!(parse(&minimal.to_toml()).unwrap(), minimal);
        let full = NodeConfig {
            key: Some(PathBuf::from("keys/v.key")),
            cores: Some(vec![2, 3]),
            shards: Some(3),
            placement: Some(vec![0, 1, 0]),
            io_memory_bytes: Some(1 << 19),
            storage: StorageConfig {
                fsync: Durability::Never,
                segment_bytes: 16 << 20,
                snapshot_interval_rounds: 100,
                snapshot_interval_bytes: 0,
                keep_snapshots: 3,
                retain_rounds: 500,
            },
            header_cache_cap: 0,
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 7200,
            peers: vec![
                "127.0.0.1:7300".parse().unwrap(),
                "[::1]:7400".parse().unwrap(),
            ],
            ..minimal
        };
        assert_eq!(parse(&full.to_toml()).unwrap(), full);
    }

    #[test]
    fn a_signer_is_unix_path_and_never_beside_a_key() {
        let config =
            parse("[node]\ndata_dir = \"d\"\nsigner = \"unix:/run/pc/signer.sock\"\n").unwrap();
        assert_eq!(config.signer.as_deref(), Some("unix:/run/pc/signer.sock"));
        assert_eq!(parse(&config.to_toml()).unwrap(), config, "round trip");
        let both = parse("[node]\ndata_dir = \"d\"\nkey = \"v.key\"\nsigner = \"unix:/s\"\n");
        assert!(both
            .unwrap_err()
            .to_string()
            .contains("both [node] key and [node] signer"));
        let tcp = parse("[node]\ndata_dir = \"d\"\nsigner = \"127.0.0.1:9\"\n");
        assert!(tcp.unwrap_err().to_string().contains("expected unix:PATH"));
    }

    #[test]
    fn every_bad_value_is_refused_naming_its_key() {
        let base = "[node]\ndata_dir = \"d\"\n";
        for (extra, names) in [
            ("[storage]\nfsync = \"sometimes\"\n", "[storage] fsync"),
            (
                "[storage]\nsegment_bytes = 1000\n",
                "[storage] segment_bytes = 1000",
            ),
            ("[engine]\ncores = []\n", "[engine] cores"),
            ("[engine]\ncores = [1, 1]\n", "core 1 is listed twice"),
            (
                "[engine]\ncores = [0]\nplacement = [0, 1]\n",
                "[engine] placement[1] = 1",
            ),
            (
                "[engine]\nshards = 3\nplacement = [0]\n",
                "[engine] placement",
            ),
            ("[net]\nlisten = \"localhost\"\n", "[net] listen"),
            ("[net]\nbase_port = 0\n", "[net] base_port = 0"),
            (
                "[net]\npeers = [\"127.0.0.1:1\", \"nowhere\"]\n",
                "[net] peers[1]",
            ),
            ("[metrics]\naddress = \"9100\"\n", "[metrics] address"),
            ("[net]\nport = 1\n", "unknown field `port`"),
        ] {
            let error = parse(&format!("{base}{extra}")).unwrap_err().to_string();
            assert!(error.contains(names), "{extra:?} gave {error:?}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
        assert!(parse("[engine]\ncores = [0]\n")
            .unwrap_err()
            .to_string()
            .contains("missing field `node`"));
    }
}
