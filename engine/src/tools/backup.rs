//! `backup` and `restore` of a data dir (issue: the operator's life
//! cycle). A backup is a tar archive of the data dir's settings
//! (`genesis.toml`, `engine.toml` and any other `*.toml` at its top) and
//! every shard's newest snapshot and log segments, ending in
//! `MANIFEST.json`: each file's
//! path, size and BLAKE3. It is consistent for a running node too: a
//! segment is read from its start, so its durable watermark (in the
//! header page) is read before the records above it, and records below a
//! watermark are never rewritten — the copy is what a crash at that moment
//! would have left, and recovery truncates the rest as after a crash.
//!
//! `restore` unpacks into a new directory beside the target, checks every
//! file against the manifest (a missing, extra, resized or altered file is
//! named and refused), and only then renames it into place; an existing
//! non-empty target is refused. A restored data dir is marked
//! ([`RESTORED_MARKER`]): the node runs its seats there as observers, since
//! the backup may end before the seat's last anchors and signing again at
//! a used seq would be an equivocation.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The file marking a data dir restored from a backup.
pub const RESTORED_MARKER: &str = "restored-from-backup.json";
/// The manifest's name in the archive.
const MANIFEST: &str = "MANIFEST.json";
/// Format of the manifest.
const FORMAT: u32 = 1;

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackedUpFile {
    /// Path relative to the data dir.
    pub path: String,
    /// Bytes.
    pub bytes: u64,
    /// BLAKE3 of the bytes, hex.
    pub blake3: String,
}

/// The manifest ending a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The data dir it was taken from.
    pub source: String,
    /// Every file, in archive order.
    pub files: Vec<BackedUpFile>,
}

fn bad(path: &Path, why: impl std::fmt::Display) -> EngineError {
    EngineError::Config(format!("{}: {why}", path.display()))
}

/// The files of `data_dir` a backup holds, relative, in order.
fn files_to_back_up(data_dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let mut files = Vec::new();
    let mut shard_dirs = Vec::new();
    let entries = std::fs::read_dir(data_dir).map_err(|e| EngineError::io(data_dir, e))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if path.is_file() && name.ends_with(".toml") {
            files.push(PathBuf::from(name));
        } else if path.is_dir() && name.starts_with("shard-") {
            shard_dirs.push(name);
        }
    }
    files.sort();
    shard_dirs.sort();
    for shard in shard_dirs {
        let dir = data_dir.join(&shard);
        let mut segments: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| EngineError::io(&dir, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".seg"))
            .collect();
        segments.sort();
        // The newest snapshot first (complete files only: a snapshot is
        // renamed into place once written), then the segments: one pruned
        // meanwhile lies below it and is left out (see `backup`).
        let snapshots = crate::runtime::snapshots::list_snapshots(
            &crate::runtime::snapshots::snapshot_dir(&dir),
        )
        .map_err(|reason| bad(&dir, reason))?;
        if let Some((_, newest)) = snapshots.first() {
            if let Ok(relative) = newest.strip_prefix(data_dir) {
                files.push(relative.to_path_buf());
            }
        }
        files.extend(segments.into_iter().map(|s| Path::new(&shard).join(s)));
    }
    Ok(files)
}

/// Hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Writes a backup of `data_dir` to `out` (through a temporary file and a
/// rename); its manifest.
pub fn backup(data_dir: &Path, out: &Path) -> Result<Manifest, EngineError> {
    if !data_dir.join("genesis.toml").is_file() {
        return Err(bad(
            data_dir,
            "not a phantom-engine data dir (no genesis.toml)",
        ));
    }
    let files = files_to_back_up(data_dir)?;
    let temp = out.with_extension("tmp");
    let file = File::create(&temp).map_err(|e| EngineError::io(&temp, e))?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(file));
    let mut manifest = Manifest {
        format: FORMAT,
        source: data_dir.display().to_string(),
        files: Vec::new(),
    };
    let mut copied_segment = std::collections::BTreeSet::new();
    for relative in &files {
        let path = data_dir.join(relative);
        let shard_dir = relative.parent().map(Path::to_path_buf);
        let is_segment = relative.extension().is_some_and(|e| e == "seg");
        let source = match File::open(&path) {
            Ok(source) => source,
            // A running node pruned it after the listing: the oldest
            // segments go first and only below its kept snapshots, so the
            // copy starts at the next segment, which the snapshot covers.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && is_segment
                    && !copied_segment.contains(&shard_dir) =>
            {
                continue
            }
            Err(e) => return Err(EngineError::io(&path, e)),
        };
        if is_segment {
            copied_segment.insert(shard_dir);
        }
        let bytes = source
            .metadata()
            .map_err(|e| EngineError::io(&path, e))?
            .len();
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes);
        header.set_mode(0o600);
        header.set_cksum();
        let mut reader = Hashing {
            inner: source.take(bytes),
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        archive
            .append_data(&mut header, relative, &mut reader)
            .map_err(|e| EngineError::io(&temp, e))?;
        if reader.bytes != bytes {
            return Err(bad(&path, "changed size while it was read"));
        }
        manifest.files.push(BackedUpFile {
            path: relative.to_string_lossy().into_owned(),
            bytes,
            blake3: reader.hasher.finalize().to_hex().to_string(),
        });
    }
    let text = serde_json::to_vec_pretty(&manifest).expect("the manifest serializes");
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o600);
    header.set_cksum();
    archive
        .append_data(&mut header, MANIFEST, text.as_slice())
        .map_err(|e| EngineError::io(&temp, e))?;
    let mut writer = archive
        .into_inner()
        .map_err(|e| EngineError::io(&temp, e))?;
    writer.flush().map_err(|e| EngineError::io(&temp, e))?;
    let file = writer
        .into_inner()
        .map_err(|e| EngineError::io(&temp, e.into_error()))?;
    file.sync_all().map_err(|e| EngineError::io(&temp, e))?;
    std::fs::rename(&temp, out).map_err(|e| EngineError::io(out, e))?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(manifest)
}

/// A relative path with no `..`, root or prefix.
fn safe_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Restores the backup `from` into `data_dir` (which must not exist or be
/// empty); its manifest.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, EngineError> {
    if data_dir.exists() {
        let empty = std::fs::read_dir(data_dir)
            .map_err(|e| EngineError::io(data_dir, e))?
            .next()
            .is_none();
        if !empty {
            return Err(bad(
                data_dir,
                "exists and is not empty: restore into a new or empty directory",
            ));
        }
    }
    let staging = data_dir.with_extension("restoring");
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| EngineError::io(&staging, e))?;
    }
    let result = unpack_and_check(from, &staging);
    let manifest = match result {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    let marker = serde_json::json!({
        "restored_from": from.display().to_string(),
        "source": manifest.source,
        "note": "seats run as observers here: the backup may end before a seat's last anchors",
    });
    let marker_path = staging.join(RESTORED_MARKER);
    std::fs::write(&marker_path, marker.to_string())
        .map_err(|e| EngineError::io(&marker_path, e))?;
    if data_dir.exists() {
        std::fs::remove_dir(data_dir).map_err(|e| EngineError::io(data_dir, e))?;
    }
    std::fs::rename(&staging, data_dir).map_err(|e| EngineError::io(data_dir, e))?;
    Ok(manifest)
}

fn unpack_and_check(from: &Path, staging: &Path) -> Result<Manifest, EngineError> {
    let file = File::open(from).map_err(|e| EngineError::io(from, e))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    std::fs::create_dir_all(staging).map_err(|e| EngineError::io(staging, e))?;
    let mut found: Vec<BackedUpFile> = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let entries = archive
        .entries()
        .map_err(|e| bad(from, format!("not a backup: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(from, format!("damaged archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(from, format!("damaged archive: {e}")))?
            .into_owned();
        if !safe_relative(&path) {
            return Err(bad(
                from,
                format!("entry {} leaves the data dir", path.display()),
            ));
        }
        if path == Path::new(MANIFEST) {
            let mut text = Vec::new();
            entry
                .read_to_end(&mut text)
                .map_err(|e| bad(from, format!("damaged archive: {e}")))?;
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| bad(from, format!("its manifest does not parse: {e}")))?,
            );
            continue;
        }
        let target = staging.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| EngineError::io(parent, e))?;
        }
        let mut out = File::create(&target).map_err(|e| EngineError::io(&target, e))?;
        let mut reader = Hashing {
            inner: &mut entry,
            hasher: blake3::Hasher::new(),
            bytes: 0,
        };
        std::io::copy(&mut reader, &mut out)
            .map_err(|e| bad(from, format!("damaged archive at {}: {e}", path.display())))?;
        out.sync_all().map_err(|e| EngineError::io(&target, e))?;
        found.push(BackedUpFile {
            path: path.to_string_lossy().into_owned(),
            bytes: reader.bytes,
            blake3: reader.hasher.finalize().to_hex().to_string(),
        });
    }
    let manifest = manifest.ok_or_else(|| bad(from, "no manifest: not a complete backup"))?;
    if manifest.format != FORMAT {
        return Err(bad(
            from,
            format!(
                "backup format {} (this build reads {FORMAT})",
                manifest.format
            ),
        ));
    }
    for expected in &manifest.files {
        match found.iter().find(|f| f.path == expected.path) {
            None => return Err(bad(from, format!("{} is missing", expected.path))),
            Some(got) if got != expected => {
                return Err(bad(
                    from,
                    format!(
                        "{} does not match the manifest ({} bytes, BLAKE3 {}; the manifest says {} bytes, {})",
                        expected.path, got.bytes, got.blake3, expected.bytes, expected.blake3
                    ),
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = found
        .iter()
        .find(|f| !manifest.files.iter().any(|m| m.path == f.path))
    {
        return Err(bad(from, format!("{} is not in the manifest", extra.path)));
    }
    Ok(manifest)
}
