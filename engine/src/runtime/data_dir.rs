//! A data dir's layout, one place for the node, the bench engine and
//! replay: `genesis.toml` (a copy of the genesis it runs), `engine.toml`
//! (the log settings replay reads back), the shard logs
//! (`shard-NNN/`, opened by [`crate::runtime::driver::open_shard`]) and
//! the peer books (`peers-core-N.book`, the node's).

use std::path::Path;

use pc_codec::genesis::Genesis;
use pc_storage::{Durability, LogConfig};
use serde::{Deserialize, Serialize};

use crate::config::ConfigError;
use crate::genesis_file::TomlError;
use crate::{genesis_file, EngineError};

/// The settings written next to the logs, read back by replay.
pub const ENGINE_FILE: &str = "engine.toml";

/// Largest log record: the largest anchor a shard accepts, plus room for
/// the record's own framing.
pub const MAX_RECORD_BYTES: u32 = (1 << 20) + 4096;

/// `engine.toml`: the log settings a data dir's logs were written with,
/// written by [`prepare_data_dir_for`] and read back by replay.
#[derive(Serialize, Deserialize)]
struct EngineFile {
    storage: EngineFileStorage,
}

#[derive(Serialize, Deserialize)]
struct EngineFileStorage {
    segment_bytes: u64,
    max_record_bytes: u32,
    fsync: String,
}

/// Copies the genesis at `source` into `data_dir` (or checks that the copy
/// already there is the same file) and writes `engine.toml` with the log
/// settings replay reads back; prints the `genesis_loaded` line.
pub fn prepare_data_dir_for(
    data_dir: &Path,
    source: &Path,
    segment_bytes: u64,
    fsync: Durability,
) -> Result<Genesis, EngineError> {
    let loaded = genesis_file::load(source)?;
    crate::logging::emit(&loaded.loaded_event());
    std::fs::create_dir_all(data_dir).map_err(|e| EngineError::io(data_dir, e))?;
    let copy = data_dir.join("genesis.toml");
    let text = std::fs::read(source).map_err(|e| EngineError::io(source, e))?;
    match std::fs::read(&copy) {
        Ok(existing) if existing == text => {}
        Ok(_) => {
            return Err(EngineError::OtherGenesis {
                copy,
                genesis: source.to_path_buf(),
            })
        }
        Err(_) => write_atomically(&copy, &text)?,
    }
    let settings = EngineFile {
        storage: EngineFileStorage {
            segment_bytes,
            max_record_bytes: MAX_RECORD_BYTES,
            fsync: fsync.to_string(),
        },
    };
    let settings = toml::to_string(&settings).expect("plain settings serialize");
    write_atomically(
        &data_dir.join(ENGINE_FILE),
        format!("# written by phantom-engine; read by replay\n{settings}").as_bytes(),
    )?;
    Ok(loaded.genesis)
}

/// The log configuration `data_dir`'s `engine.toml` names, read-only
/// (durability `never`); a data dir without one has the defaults.
pub fn read_log_config(data_dir: &Path) -> Result<LogConfig, EngineError> {
    let path = data_dir.join(ENGINE_FILE);
    let mut config = LogConfig {
        durability: Durability::Never,
        max_record_bytes: MAX_RECORD_BYTES,
        ..LogConfig::default()
    };
    if let Ok(text) = std::fs::read_to_string(&path) {
        let parsed: EngineFile = toml::from_str(&text).map_err(|e| ConfigError::InFile {
            path: path.clone(),
            error: Box::new(TomlError::new(&text, &e).into()),
        })?;
        config.segment_bytes = parsed.storage.segment_bytes;
        config.max_record_bytes = parsed.storage.max_record_bytes;
    }
    Ok(config)
}

/// Writes `bytes` to `path` through a temporary file and a rename.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| EngineError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))
}
