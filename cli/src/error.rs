//! The command line's errors: each reaches the operator as one line naming
//! the file, key or value at fault.

use std::path::Path;

/// An error of a `phantom-engine` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `health` found the node unhealthy (its JSON line says why).
    #[error("the node is not healthy (see the health line)")]
    Unhealthy,
    /// An operating-system error on a file.
    #[error("{file}: cannot {action}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad content in an input file.
    #[error("{file}: {message}")]
    Input {
        /// The file.
        file: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The engine, bench or replay failed.
    #[error(transparent)]
    Engine(#[from] pc_engine::EngineError),
    /// A genesis file that cannot be used.
    #[error(transparent)]
    Genesis(#[from] pc_engine::genesis_file::GenesisFileError),
    /// A node config file, or a setting it contradicts.
    #[error(transparent)]
    Config(#[from] pc_engine::config::ConfigError),
    /// A hex value of a flag.
    #[error(transparent)]
    Hex(#[from] pc_engine::genesis_file::HexError),
    /// A request to a node failed.
    #[error(transparent)]
    Client(#[from] pc_engine::client::ClientError),
    /// A genesis that breaks a rule of DESIGN §9.
    #[error(transparent)]
    InvalidGenesis(#[from] pc_codec::genesis::GenesisError),
    /// A key file that cannot be used.
    #[error("{file}: {error}")]
    KeyFile {
        /// The file.
        file: String,
        /// What is wrong.
        error: crate::key_file::KeyFileError,
    },
    /// A transfer the builder refuses.
    #[error(transparent)]
    Transfer(#[from] pc_codec::BuildError),
    /// A bad command-line argument.
    #[error("{0}")]
    Usage(String),
}

impl CliError {
    /// An I/O error on `path` while doing `action`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        CliError::Io {
            file: path.display().to_string(),
            action,
            source,
        }
    }
}
