//! Snapshot files of a shard (DESIGN §6.1): `shard-NNN/snapshots/
//! snap-<round:020>.rkyv`, written by a writer thread off the core (temp
//! file, fdatasync, rename, directory fsync; the newest `keep` kept), and
//! found at start-up newest first, each validated (rkyv bytecheck, magic,
//! format, network, genesis, shard, the recomputed snapshot root) before it
//! is used; a bad one is named with its reason and the next older one (or
//! the log from genesis) is used.
//!
//! Kill points for the crash tests: `PC_CRASH_AT=snapshot-temp` aborts the
//! process once a temp file is written and synced, `snapshot-rename` after
//! the rename and before the directory fsync, `prune-between` after the
//! first of two segment deletions (see `runtime::driver::prune_log`).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use crossbeam_channel::{bounded, Receiver, Sender};
use pc_codec::genesis::Genesis;
use pc_node::SnapshotMark;
use pc_shard::snapshot::{
    decode_snapshot, decode_snapshot_header, encode_snapshot, ShardImage, SnapshotScope,
};

/// The snapshot directory of a shard's log directory.
pub fn snapshot_dir(shard_dir: &Path) -> PathBuf {
    shard_dir.join("snapshots")
}

/// The file name of the snapshot of `round`.
pub fn snapshot_file_name(round: u64) -> String {
    format!("snap-{round:020}.rkyv")
}

const TEMP_SUFFIX: &str = ".tmp";

/// The scope a shard's snapshots must match.
pub fn scope(genesis: &Genesis, shard: u16) -> SnapshotScope {
    SnapshotScope {
        network: genesis.network(),
        genesis: genesis.hash(),
        shard,
    }
}

/// Aborts the process at a named kill point when `PC_CRASH_AT` names it
/// (crash tests only; unset in production).
pub fn crash_point(name: &str) {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    let at = AT.get_or_init(|| std::env::var("PC_CRASH_AT").ok());
    if at.as_deref() == Some(name) {
        eprintln!("PC_CRASH_AT={name}: aborting here");
        std::process::abort();
    }
}

/// The snapshot files of `dir`, newest (highest round) first; leftover
/// temp files of an interrupted write are removed.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>, String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("{}: read directory: {error}", dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|error| format!("{}: read directory: {error}", dir.display()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(TEMP_SUFFIX) {
            fs::remove_file(&path)
                .map_err(|error| format!("{}: remove: {error}", path.display()))?;
            continue;
        }
        let round = name
            .strip_prefix("snap-")
            .and_then(|rest| rest.strip_suffix(".rkyv"))
            .filter(|digits| digits.len() == 20)
            .and_then(|digits| digits.parse::<u64>().ok());
        if let Some(round) = round {
            found.push((round, path));
        }
    }
    found.sort_unstable_by_key(|(round, _)| std::cmp::Reverse(*round));
    Ok(found)
}

/// A snapshot written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The shard.
    pub shard: u16,
    /// What the host counts.
    pub mark: SnapshotMark,
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Time to archive and hash the image, and to write and sync the file.
    pub encode_ms: u64,
    /// Time to write, sync, rename and sync the directory.
    pub write_ms: u64,
}

fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|error| format!("{}: fsync directory: {error}", dir.display()))
}

/// Writes `image` of `scope` into `dir` atomically and keeps the newest
/// `keep` snapshot files. Blocking: the writer thread's work.
pub fn write_snapshot(
    dir: &Path,
    scope: SnapshotScope,
    mut image: ShardImage,
    keep: usize,
) -> Result<Written, String> {
    let started = Instant::now();
    if !dir.is_dir() {
        fs::create_dir_all(dir).map_err(|error| format!("{}: create: {error}", dir.display()))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let mark = SnapshotMark::of(&image);
    let bytes = encode_snapshot(scope, &mut image);
    drop(image);
    let encode_ms = started.elapsed().as_millis() as u64;
    let path = dir.join(snapshot_file_name(mark.round));
    let temp = dir.join(format!("{}{TEMP_SUFFIX}", snapshot_file_name(mark.round)));
    let io = |operation: &str, path: &Path, error: std::io::Error| {
        format!("{}: {operation}: {error}", path.display())
    };
    {
        let mut file = File::create(&temp).map_err(|e| io("create", &temp, e))?;
        file.write_all(&bytes).map_err(|e| io("write", &temp, e))?;
        file.sync_data().map_err(|e| io("fdatasync", &temp, e))?;
    }
    crash_point("snapshot-temp");
    fs::rename(&temp, &path).map_err(|e| io("rename", &temp, e))?;
    crash_point("snapshot-rename");
    sync_dir(dir)?;
    for (_, old) in list_snapshots(dir)?.into_iter().skip(keep.max(1)) {
        fs::remove_file(&old).map_err(|e| io("remove", &old, e))?;
    }
    Ok(Written {
        shard: scope.shard,
        mark,
        path,
        bytes: bytes.len() as u64,
        encode_ms,
        write_ms: started.elapsed().as_millis() as u64 - encode_ms,
    })
}

/// A snapshot file that passed every check, with its image.
#[derive(Debug)]
pub struct Candidate {
    /// The file.
    pub path: PathBuf,
    /// The image.
    pub image: ShardImage,
}

/// The snapshot files of `dir`, newest first, each validated in full when
/// asked for ([`Candidates::next`]); the marks of every file whose header
/// validates (for the prune bound); the files skipped, with their reasons.
pub struct Candidates {
    files: std::vec::IntoIter<(u64, PathBuf)>,
    scope: SnapshotScope,
    /// (file, reason) of every file skipped so far.
    pub skipped: Vec<(PathBuf, String)>,
    /// Marks of the files whose header validates.
    pub marks: Vec<SnapshotMark>,
}

impl Candidates {
    /// The snapshot files of `dir` for `scope`.
    pub fn find(dir: &Path, scope: SnapshotScope) -> Result<Candidates, String> {
        let files = list_snapshots(dir)?;
        let mut marks = Vec::new();
        for (_, path) in &files {
            if let Ok(bytes) = fs::read(path) {
                if let Ok(file) = decode_snapshot_header(&bytes, scope) {
                    marks.push(SnapshotMark {
                        round: file.round,
                        next_token: file.next_token,
                        replay_from_seq: file.replay_from_seq,
                    });
                }
            }
        }
        Ok(Candidates {
            files: files.into_iter(),
            scope,
            skipped: Vec::new(),
            marks,
        })
    }

    /// The next (older) valid snapshot whose records the log `first..next`
    /// holds; the ones passed over are in `skipped`.
    pub fn next_valid(&mut self, log_first: u64, log_next: u64) -> Option<Candidate> {
        for (_, path) in self.files.by_ref() {
            let checked = fs::read(&path)
                .map_err(|error| format!("read: {error}"))
                .and_then(|bytes| {
                    decode_snapshot(&bytes, self.scope).map_err(|error| error.to_string())
                })
                .and_then(|(file, image)| {
                    if file.replay_from_seq < log_first {
                        Err(format!(
                            "it needs log record {}, the log starts at {log_first} (pruned)",
                            file.replay_from_seq
                        ))
                    } else if file.next_token > log_next {
                        Err(format!(
                            "it covers log records up to {}, the log ends at {log_next}",
                            file.next_token
                        ))
                    } else {
                        Ok(image)
                    }
                });
            match checked {
                Ok(image) => return Some(Candidate { path, image }),
                Err(reason) => self.skipped.push((path, reason)),
            }
        }
        None
    }

    /// Marks a candidate the machine refused as skipped.
    pub fn refused(&mut self, path: PathBuf, reason: String) {
        self.skipped.push((path, reason));
    }
}

/// One snapshot to write.
pub struct Job {
    /// The shard's snapshot directory.
    pub dir: PathBuf,
    /// Its scope.
    pub scope: SnapshotScope,
    /// The image.
    pub image: ShardImage,
    /// Files to keep.
    pub keep: usize,
}

/// What the writer reports per job: the written file, or (shard, error).
pub type JobResult = Result<Written, (u16, String)>;

/// A snapshot writer thread of one core: at most one job per shard is in
/// flight (the host takes the next only once this one is reported), so the
/// queue is bounded by the core's shards.
pub struct SnapshotWriter {
    jobs: Option<Sender<Job>>,
    results: Receiver<JobResult>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SnapshotWriter {
    /// Starts the writer for a core of `shards` shards.
    pub fn spawn(core: usize, shards: usize) -> SnapshotWriter {
        let (jobs, queue) = bounded::<Job>(shards.max(1));
        let (report, results) = bounded::<JobResult>(shards.max(1));
        let thread = std::thread::Builder::new()
            .name(format!("pc-snap-{core}"))
            .spawn(move || {
                for job in queue {
                    let shard = job.scope.shard;
                    let result = write_snapshot(&job.dir, job.scope, job.image, job.keep)
                        .map_err(|error| (shard, error));
                    if report.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn a snapshot writer");
        SnapshotWriter {
            jobs: Some(jobs),
            results,
            thread: Some(thread),
        }
    }

    /// Hands a job over without waiting; false if the writer is gone or
    /// full (the job is dropped).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|jobs| jobs.try_send(job).is_ok())
    }

    /// A finished job, if one finished.
    pub fn poll(&self) -> Option<JobResult> {
        self.results.try_recv().ok()
    }

    /// Waits for the jobs handed over so far and ends the thread; their
    /// results, in order.
    pub fn finish(mut self) -> Vec<JobResult> {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.results.try_iter().collect()
    }
}

/// The snapshot side of one core: its writer thread and, per shard, where
/// the files go. The driver hands due images over after each turn
/// ([`CoreSnapshots::submit_due`]) and applies finished ones
/// ([`CoreSnapshots::poll`], [`apply`]).
pub struct CoreSnapshots {
    writer: SnapshotWriter,
    shards: std::collections::BTreeMap<u16, (PathBuf, SnapshotScope)>,
    keep: usize,
}

impl CoreSnapshots {
    /// The snapshot side of `core` holding `shards` of `data_dir`.
    pub fn new(
        core: usize,
        data_dir: &Path,
        genesis: &Genesis,
        shards: impl IntoIterator<Item = u16>,
        keep: usize,
    ) -> CoreSnapshots {
        let shards: std::collections::BTreeMap<u16, (PathBuf, SnapshotScope)> = shards
            .into_iter()
            .map(|shard| {
                let dir = snapshot_dir(&crate::runtime::driver::shard_log_dir(data_dir, shard));
                (shard, (dir, scope(genesis, shard)))
            })
            .collect();
        CoreSnapshots {
            writer: SnapshotWriter::spawn(core, shards.len()),
            shards,
            keep,
        }
    }

    /// Hands `host`'s due snapshot (if any) to the writer.
    pub fn submit_due(&self, shard: u16, host: &mut pc_node::ShardHost) {
        let Some((dir, scope)) = self.shards.get(&shard) else {
            return;
        };
        if let Some(image) = host.poll_snapshot() {
            let job = Job {
                dir: dir.clone(),
                scope: *scope,
                image,
                keep: self.keep,
            };
            if !self.writer.submit(job) {
                host.snapshot_failed();
                crate::logging::emit(&pc_node::telemetry::Event::SnapshotFailed(
                    pc_node::telemetry::SnapshotFailed {
                        shard,
                        error: "the snapshot writer is gone or behind".to_string(),
                    },
                ));
            }
        }
    }

    /// A finished job, if one finished.
    pub fn poll(&self) -> Option<JobResult> {
        self.writer.poll()
    }

    /// Ends the writer once the jobs handed over are written.
    pub fn finish(self) -> Vec<JobResult> {
        self.writer.finish()
    }
}

/// Applies a finished job to its shard: a written snapshot's marker is
/// logged and the log pruned to the host's bound (one line each); a failed
/// one is reported and the next is taken when due.
pub fn apply(
    result: JobResult,
    host: &mut pc_node::ShardHost,
    sync: &mut crate::runtime::driver::LogSync,
    now_us: u64,
) -> Result<(), crate::EngineError> {
    use pc_node::telemetry::{Event, SnapshotFailed, SnapshotWritten};
    match result {
        Ok(written) => {
            crate::logging::emit(&Event::SnapshotWritten(SnapshotWritten {
                shard: written.shard,
                round: written.mark.round,
                file: written.path.display().to_string(),
                bytes: written.bytes,
                encode_ms: written.encode_ms,
                write_ms: written.write_ms,
            }));
            let bound = host.snapshot_written(written.mark, now_us)?;
            crate::runtime::driver::prune_log(written.shard, sync.log(), bound)?;
            sync.forget_pruned();
            host.log_pruned(sync.log().borrow().first_seq());
        }
        Err((shard, error)) => {
            host.snapshot_failed();
            crate::logging::emit(&Event::SnapshotFailed(SnapshotFailed { shard, error }));
        }
    }
    Ok(())
}
