//! The node config file (DESIGN §9): `[node]` data dir and validator key,
//! `[node.cache]`, `[engine]` cores and placement, `[storage]` fsync and
//! segment size, `[net]` listen address, base port and peers, `[metrics]`
//! address. Every key but `[node] data_dir` has a default; an unknown key
//! or a bad value is refused with one line naming the key, so an operator's
//! typo never starts a node with a setting it did not ask for. `tune`
//! prints a file of this format, and `tuning/*.toml` are examples of it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use pc_storage::{Durability, LogConfig};
use serde::Deserialize;

use crate::genesis_file::one_line_toml_error;

/// Port of the first core's QUIC endpoint unless `[net] base_port` says
/// otherwise; core `i` listens on `base_port + i`.
pub const DEFAULT_BASE_PORT: u16 = 7100;
/// Default `[metrics] address`.
pub const DEFAULT_METRICS_ADDRESS: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9100);
/// Default `[storage] segment_bytes` (DESIGN §6).
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// Most peers a config may list (the committee of a shard is at most 64
/// seats; a few more leave room for observers).
pub const MAX_PEERS: usize = 256;

/// A node's settings, every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Holds `genesis.toml`, `engine.toml`, the shard logs and the peer book.
    pub data_dir: PathBuf,
    /// The validator key file (`None`: an observer node).
    pub key: Option<PathBuf>,
    /// CPUs to run executors on (`None`: every usable CPU).
    pub cores: Option<Vec<usize>>,
    /// Shards the config expects the genesis to have, if it says.
    pub shards: Option<u16>,
    /// Index into the cores of every shard's core (`None`: round-robin).
    pub placement: Option<Vec<usize>>,
    /// glommio registered memory per core (`None`: sized to the memlock limit).
    pub io_memory_bytes: Option<u64>,
    /// Log durability policy.
    pub fsync: Durability,
    /// Log segment size.
    pub segment_bytes: u64,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    node: NodeToml,
    engine: Option<EngineToml>,
    storage: Option<StorageToml>,
    net: Option<NetToml>,
    metrics: Option<MetricsToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    data_dir: PathBuf,
    key: Option<PathBuf>,
    cache: Option<CacheToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheToml {
    header_cap: Option<usize>,
    payload_cap: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineToml {
    cores: Option<Vec<usize>>,
    shards: Option<u16>,
    placement: Option<Vec<usize>>,
    io_memory_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageToml {
    fsync: Option<String>,
    segment_bytes: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetToml {
    listen: Option<String>,
    base_port: Option<u16>,
    peers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricsToml {
    address: Option<String>,
}

/// Reads and checks a node config file; the error is one line naming the
/// file and the key.
pub fn load(path: &Path) -> Result<NodeConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("{}: cannot read: {error}", path.display()))?;
    parse(&text).map_err(|message| format!("{}: {message}", path.display()))
}

/// Parses and checks the text of a node config; the error is one line
/// naming the key (or the line and column of a TOML error).
pub fn parse(text: &str) -> Result<NodeConfig, String> {
    let file: FileToml = toml::from_str(text).map_err(|e| one_line_toml_error(text, &e))?;
    let engine = file.engine.unwrap_or(EngineToml {
        cores: None,
        shards: None,
        placement: None,
        io_memory_bytes: None,
    });
    if let Some(cores) = &engine.cores {
        if cores.is_empty() {
            return Err("[engine] cores: lists no core".to_string());
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = cores.iter().find(|core| !seen.insert(**core)) {
            return Err(format!("[engine] cores: core {twice} is listed twice"));
        }
    }
    if let Some(placement) = &engine.placement {
        if let Some(cores) = &engine.cores {
            if let Some((shard, core)) = placement
                .iter()
                .enumerate()
                .find(|(_, core)| **core >= cores.len())
            {
                return Err(format!(
                    "[engine] placement[{shard}] = {core}: only {} cores are listed",
                    cores.len()
                ));
            }
        }
        if let Some(shards) = engine.shards {
            if placement.len() != usize::from(shards) {
                return Err(format!(
                    "[engine] placement: places {} shards but shards = {shards}",
                    placement.len()
                ));
            }
        }
    }
    let storage = file.storage.unwrap_or(StorageToml {
        fsync: None,
        segment_bytes: None,
    });
    let fsync = match &storage.fsync {
        Some(text) => text
            .parse::<Durability>()
            .map_err(|error| format!("[storage] fsync: {error}"))?,
        None => Durability::Batch,
    };
    let segment_bytes = storage.segment_bytes.unwrap_or(DEFAULT_SEGMENT_BYTES);
    LogConfig {
        segment_bytes,
        durability: fsync,
        max_record_bytes: crate::engine::MAX_RECORD_BYTES,
    }
    .validate()
    .map_err(|error| format!("[storage] segment_bytes = {segment_bytes}: {error}"))?;
    let cache = file.node.cache.unwrap_or(CacheToml {
        header_cap: None,
        payload_cap: None,
    });
    let net = file.net.unwrap_or(NetToml {
        listen: None,
        base_port: None,
        peers: None,
    });
    let listen = match &net.listen {
        Some(text) => text
            .parse::<IpAddr>()
            .map_err(|_| format!("[net] listen = {text:?}: not an IP address"))?,
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let base_port = net.base_port.unwrap_or(DEFAULT_BASE_PORT);
    let cores_count = engine.cores.as_ref().map_or(1, Vec::len);
    if base_port == 0 || usize::from(base_port) + cores_count - 1 > usize::from(u16::MAX) {
        return Err(format!(
            "[net] base_port = {base_port}: needs {cores_count} ports from it, each in 1..=65535"
        ));
    }
    let peer_texts = net.peers.unwrap_or_default();
    if peer_texts.len() > MAX_PEERS {
        return Err(format!(
            "[net] peers: {} listed, at most {MAX_PEERS}",
            peer_texts.len()
        ));
    }
    let peers = peer_texts
        .iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse::<SocketAddr>().map_err(|_| {
                format!("[net] peers[{index}] = {text:?}: not an address like 127.0.0.1:7100")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metrics_address = match file.metrics.and_then(|m| m.address) {
        Some(text) => text.parse::<SocketAddr>().map_err(|_| {
            format!("[metrics] address = {text:?}: not an address like 127.0.0.1:9100")
        })?,
        None => DEFAULT_METRICS_ADDRESS,
    };
    Ok(NodeConfig {
        data_dir: file.node.data_dir,
        key: file.node.key,
        cores: engine.cores,
        shards: engine.shards,
        placement: engine.placement,
        io_memory_bytes: engine.io_memory_bytes,
        fsync,
        segment_bytes,
        header_cache_cap: cache.header_cap.unwrap_or(65_536),
        payload_cache_cap: cache.payload_cap.unwrap_or(4_096),
        listen,
        base_port,
        peers,
        metrics_address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_takes_every_default() {
        let config = parse("[node]\ndata_dir = \"d\"\n").unwrap();
        assert_eq!(config.data_dir, PathBuf::from("d"));
        assert_eq!(config.fsync, Durability::Batch);
        assert_eq!(config.segment_bytes, DEFAULT_SEGMENT_BYTES);
        assert_eq!(config.base_port, DEFAULT_BASE_PORT);
        assert_eq!(config.metrics_address, DEFAULT_METRICS_ADDRESS);
        assert!(config.peers.is_empty() && config.key.is_none() && config.cores.is_none());
    }

    #[test]
    fn the_shipped_profiles_and_the_tune_recommendation_parse() {
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
        let probe = crate::tune::Probe {
            cpus: vec![0, 1],
            memlock_bytes: Some(8 << 20),
            io_memory_bytes: 1 << 20,
            io_uring_usable: Ok(()),
            verify_one_core_per_s: 20_000.0,
            verify_all_cores_per_s: 19_000.0,
            append: Vec::new(),
        };
        let config = parse(&crate::tune::recommend(&probe)).unwrap();
        assert_eq!(config.cores, Some(vec![0, 1]));
        assert_eq!(config.placement, Some(vec![0, 1]));
        assert_eq!(config.fsync, Durability::Never);
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
        assert_eq!(config.fsync, Durability::Always);
        assert_eq!(config.segment_bytes, 8 << 20);
        assert_eq!(config.listen, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(config.base_port, 7200);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.metrics_address.port(), 9200);
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
            let error = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(error.contains(names), "{extra:?} gave {error:?}");
            assert!(!error.contains('\n'), "one line: {error:?}");
        }
        assert!(parse("[engine]\ncores = [0]\n")
            .unwrap_err()
            .contains("missing field `node`"));
    }
}
