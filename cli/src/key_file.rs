//! Key files: a TOML file holding one BIP-340 secret key and its public key,
//! created readable and writable by its owner only (mode 0600) and never
//! overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use pc_codec::{to_hex, SigningKey};
use pc_engine::genesis_file::{hex_array, HexError, TomlError};
use serde::Deserialize;

use crate::error::CliError;

/// A key file that cannot be used; its `Display` follows the file's name.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Others may read the secret.
    #[error("key file is accessible by group or others (mode {mode:o}); run chmod 600")]
    Permissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// Not TOML of a key file's shape.
    #[error(transparent)]
    Toml(#[from] TomlError),
    /// A key that is not 32 bytes of hex.
    #[error(transparent)]
    Hex(#[from] HexError),
    /// Bytes that are no secp256k1 secret key.
    #[error("secret_key: {0}")]
    Secret(pc_codec::crypto::InvalidKey),
    /// A public key of another secret.
    #[error("public_key does not belong to secret_key")]
    Mismatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileToml {
    secret_key: String,
    public_key: String,
}

/// Writes `key` to a new file at `path` with mode 0600.
pub fn write(path: &Path, key: &SigningKey, role: &str) -> Result<(), CliError> {
    let text = format!(
        "# phantom-engine {role} key. Keep this file secret: it signs for the public key below.\n\
         secret_key = \"{}\"\n\
         public_key = \"{}\"\n",
        to_hex(&key.secret_bytes()),
        to_hex(&key.public_key()),
    );
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| CliError::io(path, "create key file", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| CliError::io(path, "write key file", e))?;
    Ok(())
}

/// Reads a key file, refusing one that others can read or whose public key
/// does not match its secret key.
pub fn read(path: &Path) -> Result<SigningKey, CliError> {
    let metadata = std::fs::metadata(path).map_err(|e| CliError::io(path, "read key file", e))?;
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, "read key file", e))?;
    parse(metadata.permissions().mode(), &text).map_err(|error| CliError::KeyFile {
        file: path.display().to_string(),
        error,
    })
}

/// The key in a key file's `text`, whose permission bits are `mode`.
fn parse(mode: u32, text: &str) -> Result<SigningKey, KeyFileError> {
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions { mode: mode & 0o777 });
    }
    let parsed: KeyFileToml = toml::from_str(text).map_err(|e| TomlError::new(text, &e))?;
    let secret: [u8; 32] = hex_array(&parsed.secret_key, "secret_key")?;
    let public: [u8; 32] = hex_array(&parsed.public_key, "public_key")?;
    let key = SigningKey::from_secret_bytes(&secret).map_err(KeyFileError::Secret)?;
    if key.public_key() != public {
        return Err(KeyFileError::Mismatch);
    }
    Ok(key)
}
