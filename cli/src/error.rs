//! The command line's errors: each reaches the operator as one line naming
//! the file, key or value at fault.

use std::path::Path;

/// An error of a `phantom-engine` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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
    Engine(pc_engine::EngineError),
    /// A bad command-line argument.
    #[error("{0}")]
    Usage(String),
}

impl From<pc_engine::genesis_file::GenesisFileError> for CliError {
    fn from(error: pc_engine::genesis_file::GenesisFileError) -> Self {
        use pc_engine::genesis_file::GenesisFileError;
        match error {
            GenesisFileError::Io { file, source } => CliError::Io {
                file,
                action: "read genesis",
                source,
            },
            GenesisFileError::Input { file, message } => CliError::Input { file, message },
        }
    }
}

impl From<pc_engine::EngineError> for CliError {
    fn from(error: pc_engine::EngineError) -> Self {
        CliError::Engine(error)
    }
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
