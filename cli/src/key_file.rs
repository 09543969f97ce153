//! Key files: a TOML file holding one BIP-340 secret key and its public key,
//! created readable and writable by its owner only (mode 0600) and never
//! overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use pc_codec::{to_hex, SigningKey};
use serde::Deserialize;

use crate::error::CliError;

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
    let bad = |message: String| CliError::Input {
        file: path.display().to_string(),
        message,
    };
    let metadata = std::fs::metadata(path).map_err(|e| CliError::io(path, "read key file", e))?;
    if metadata.permissions().mode() & 0o077 != 0 {
        return Err(bad(format!(
            "key file is accessible by group or others (mode {:o}); run chmod 600",
            metadata.permissions().mode() & 0o777
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| CliError::io(path, "read key file", e))?;
    let parsed: KeyFileToml = toml::from_str(&text)
        .map_err(|e| bad(pc_engine::genesis_file::one_line_toml_error(&text, &e)))?;
    let secret: [u8; 32] =
        pc_engine::genesis_file::hex_array(&parsed.secret_key, "secret_key").map_err(bad)?;
    let public: [u8; 32] =
        pc_engine::genesis_file::hex_array(&parsed.public_key, "public_key").map_err(bad)?;
    let key =
        SigningKey::from_secret_bytes(&secret).map_err(|e| bad(format!("secret_key: {e}")))?;
    if key.public_key() != public {
        return Err(bad("public_key does not belong to secret_key".to_string()));
    }
    Ok(key)
}
