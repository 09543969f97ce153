//! Replay (DESIGN §8): feeds each shard's logged anchors, in log order,
//! into a fresh observer machine built from the data dir's own genesis,
//! and checks that the record stream the machine emits is the logged one
//! record for record — every `RoundFinalized` (round, indices, state root,
//! payout root) included. Output depends only on the log: two replays of
//! one data dir print the same bytes.

use std::path::{Path, PathBuf};

use pc_codec::{Bip340, Decode, LogRecordKind, RoundFinalized};
use pc_shard::machine::AnchorRejected;
use pc_shard::machine::{AnchorStatus, Role, Shard, ShardLimits};
use pc_storage::frame::{decode_frame, FrameStatus};
use pc_storage::header::{read_header, HEADER_BYTES};
use pc_storage::{CorruptReason, LogConfig, LogError};
use serde::Serialize;

use crate::runtime::data_dir::read_log_config;
use crate::runtime::driver::shard_log_dir;
use crate::{genesis_file, EngineError};

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplayStart {
    /// From genesis while the log reaches back to record 0, else from the
    /// oldest valid snapshot the log covers.
    #[default]
    Auto,
    /// From genesis; refused when the log was pruned.
    FromGenesis,
    /// From the newest valid snapshot the log covers.
    FromSnapshot,
}

/// Why a replay stopped; `Display` is one line naming the shard and the
/// segment and offset (or round) at fault.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// `--from-genesis` on a pruned log.
    #[error("shard {shard}: --from-genesis: the log in {} starts at record {first_seq} (pruned below it); replay --from-snapshot", .dir.display())]
    Pruned {
        /// The shard.
        shard: u16,
        /// Its log directory.
        dir: PathBuf,
        /// The first record held.
        first_seq: u64,
    },
    /// No usable snapshot where one is needed.
    #[error("shard {shard}: no valid snapshot in {} covers the log (first record {first_seq}){skipped}", .dir.display())]
    NoSnapshot {
        /// The shard.
        shard: u16,
        /// The snapshot directory.
        dir: PathBuf,
        /// The first record held.
        first_seq: u64,
        /// The files passed over and why.
        skipped: String,
    },
    /// A snapshot whose state root is not the logged round's.
    #[error("shard {shard}: snapshot {} of round {round}: state root {snapshot} but the log's RoundFinalized says {logged}", .file.display())]
    SnapshotRoot {
        /// The shard.
        shard: u16,
        /// The file.
        file: PathBuf,
        /// Its round.
        round: u64,
        /// The snapshot's root, hex.
        snapshot: String,
        /// The logged root, hex.
        logged: String,
    },
    /// A snapshot the machine refused.
    #[error("shard {shard}: snapshot {}: {reason}", .file.display())]
    SnapshotRefused {
        /// The shard.
        shard: u16,
        /// The file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// `--shard` past the genesis' shards.
    #[error("--shard {shard}: the genesis of {} has {shards} shards", .data_dir.display())]
    NoSuchShard {
        /// The shard asked for.
        shard: u16,
        /// The data dir.
        data_dir: PathBuf,
        /// Shards of its genesis.
        shards: u16,
    },
    /// A shard without a log directory.
    #[error("shard {shard}: no log at {}", .dir.display())]
    NoLog {
        /// The shard.
        shard: u16,
        /// Where its log should be.
        dir: PathBuf,
    },
    /// A record of a kind the engine never writes.
    #[error("corrupt log segment {} at offset {offset}: unknown record kind {kind}", .path.display())]
    UnknownKind {
        /// The segment file.
        path: PathBuf,
        /// Offset of the record's frame.
        offset: u64,
        /// The kind byte.
        kind: u8,
    },
    /// A logged anchor the replaying machine takes otherwise than as new.
    #[error("corrupt log segment {} at offset {offset}: shard {shard}: logged anchor is {status:?} on replay", .path.display())]
    AnchorStatus {
        /// The segment file.
        path: PathBuf,
        /// Offset of the record's frame.
        offset: u64,
        /// The shard.
        shard: u16,
        /// How the machine took it.
        status: AnchorStatus,
    },
    /// A logged anchor the replaying machine refuses.
    #[error("corrupt log segment {} at offset {offset}: shard {shard}: logged anchor refused: {source}", .path.display())]
    AnchorRefused {
        /// The segment file.
        path: PathBuf,
        /// Offset of the record's frame.
        offset: u64,
        /// The shard.
        shard: u16,
        /// Why.
        source: AnchorRejected,
    },
    /// The machine re-derived another record than the log holds.
    #[error("shard {shard}: round {}: replay mismatch: logged {logged} but re-derived {}", .round.map_or_else(|| "?".to_string(), |r| r.to_string()), .derived.as_ref().map_or_else(|| "nothing".to_string(), ToString::to_string))]
    Mismatch {
        /// The shard.
        shard: u16,
        /// The round concerned, where a record names it.
        round: Option<u64>,
        /// What the log holds.
        logged: RecordSummary,
        /// What the machine emitted (`None`: nothing).
        derived: Option<RecordSummary>,
    },
}

/// A log record as a mismatch names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordSummary {
    /// A `RoundFinalized` record.
    Round(RoundFinalized),
    /// An `AnchorAccepted` record.
    Anchor,
    /// A record that is neither (or does not decode as its kind).
    Other,
}

impl std::fmt::Display for RecordSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordSummary::Round(round) => write!(
                f,
                "round {} (first index {}, {} anchors, state root {}, payout root {})",
                round.round,
                round.first_global_index,
                round.anchor_count,
                pc_codec::to_hex(&round.state_root),
                pc_codec::to_hex(&round.payout_root)
            ),
            RecordSummary::Anchor => f.write_str("an anchor"),
            RecordSummary::Other => f.write_str("another record"),
        }
    }
}

/// What replay derived for one shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayedShard {
    /// The shard.
    pub shard: u16,
    /// Anchors in the log.
    pub anchors: u64,
    /// Finalized rounds re-derived (and matched).
    pub rounds: u64,
    /// Anchors in those rounds.
    pub finalized_anchors: u64,
    /// Micro-events in those rounds.
    pub finalized_events: u64,
    /// State root after the last round, hex.
    pub state_root: String,
    /// The finalized order, hex: `d = blake3(d || blake3(round (u64 LE) ||
    /// the round's anchor ids in order))` over the rounds folded, from 32
    /// zero bytes. Equal digests mean the same anchors in the same order.
    pub order_digest: String,
    /// The last round folded into `order_digest` (`None`: none yet).
    pub order_digest_round: Option<u64>,
    /// The snapshot the replay started from (`None`: genesis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_snapshot: Option<String>,
    /// Its round.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_round: Option<u64>,
    /// Whether its state root was checked against the logged round
    /// (`false`: that record was pruned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_root_checked: Option<bool>,
    /// What the replayed state and the log say about value (the supply
    /// check's input).
    #[serde(skip)]
    pub supply: Option<Box<crate::tools::supply::ShardSupply>>,
    /// The seats' accounts after the last round (DESIGN §5.3, §5.4).
    pub seats: Vec<SeatSummary>,
}

/// One seat's account in the replayed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeatSummary {
    /// The seat.
    pub seat: u8,
    /// Its key, hex.
    pub key: String,
    /// Its bond at genesis.
    pub bond: u64,
    /// What is left of it.
    pub remaining: u64,
    /// Owed and not yet claimed.
    pub owed: u64,
    /// Round of its last claim (0: none).
    pub claim_floor: u64,
    /// Slashed out.
    pub slashed_out: bool,
    /// Its slashes: (class, tier, units, anchor index).
    pub slashes: Vec<(String, u32, u64, u64)>,
}

impl SeatSummary {
    /// Every seat's account of `economics`.
    pub fn of(economics: &pc_shard::economics::Economics) -> Vec<SeatSummary> {
        economics
            .seats()
            .iter()
            .enumerate()
            .map(|(seat, account)| SeatSummary {
                seat: seat as u8,
                key: pc_codec::to_hex(&account.key),
                bond: account.bond,
                remaining: account.remaining,
                owed: account.owed,
                claim_floor: account.claim_floor,
                slashed_out: account.slashed_out,
                slashes: account
                    .slashes
                    .iter()
                    .map(|s| (s.class.name().to_string(), s.tier, s.amount, s.index))
                    .collect(),
            })
            .collect()
    }
}

/// A shard's log, read without opening it for writing: replay never
/// changes a data dir (and runs beside a live engine).
struct ReadOnlyLog {
    /// Segment files with their first seq, in seq order.
    segments: Vec<(PathBuf, u64)>,
    max_record_bytes: u32,
}

/// One record read by [`ReadOnlyLog`].
/// The replay's records as the machine's record source.
struct ReplaySource {
    first_seq: u64,
    records: std::rc::Rc<Vec<OwnedRecord>>,
}

impl pc_shard::machine::RecordSource for ReplaySource {
    fn record_body(&self, token: u64) -> Option<Vec<u8>> {
        let index = usize::try_from(token.checked_sub(self.first_seq)?).ok()?;
        self.records.get(index).map(|record| record.body.clone())
    }
}

struct OwnedRecord {
    kind: u8,
    body: Vec<u8>,
    path: PathBuf,
    offset: u64,
}

impl ReadOnlyLog {
    fn open(dir: &Path, max_record_bytes: u32) -> Result<ReadOnlyLog, EngineError> {
        let entries = std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))?;
        let mut segments = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| EngineError::io(dir, e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(stem) = name.strip_suffix(".seg") else {
                continue;
            };
            let first_seq = stem
                .parse::<u64>()
                .ok()
                .filter(|_| stem.len() == 20)
                .ok_or_else(|| corrupt(&path, 0, CorruptReason::BadFileName))?;
            segments.push((path, first_seq));
        }
        segments.sort_by_key(|(_, first_seq)| *first_seq);
        Ok(ReadOnlyLog {
            segments,
            max_record_bytes,
        })
    }

    /// Every whole record in order. A bad record below the durable
    /// watermark is corruption (file and offset); from the first bad
    /// record above it, or a record cut by the end of the last file, the
    /// log ends there, as recovery would cut it.
    fn records(&self) -> Result<Vec<OwnedRecord>, EngineError> {
        let mut headers = Vec::new();
        let mut files = Vec::new();
        for (path, first_seq) in &self.segments {
            let data = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
            let header =
                read_header(&data, *first_seq).map_err(|reason| corrupt(path, 0, reason))?;
            headers.push(header);
            files.push(data);
        }
        let durable_end_seq = headers
            .iter()
            .map(|h| h.watermark.durable_end_seq)
            .max()
            .unwrap_or(0);
        let mut records = Vec::new();
        let mut seq = self.segments.first().map_or(0, |(_, first)| *first);
        for (index, ((path, first_seq), data)) in self.segments.iter().zip(&files).enumerate() {
            if *first_seq != seq {
                return Err(corrupt(
                    path,
                    0,
                    CorruptReason::SegmentGap {
                        expected_seq: seq,
                        first_seq: *first_seq,
                    },
                ));
            }
            let last = index + 1 == self.segments.len();
            let mut offset = HEADER_BYTES;
            loop {
                match decode_frame(data, offset, seq, self.max_record_bytes) {
                    Ok(FrameStatus::Record(frame)) => {
                        records.push(OwnedRecord {
                            kind: frame.kind,
                            body: frame.body.to_vec(),
                            path: path.clone(),
                            offset: offset as u64,
                        });
                        offset += frame.frame_bytes;
                        seq += 1;
                    }
                    Ok(FrameStatus::End) => break,
                    Err(CorruptReason::CrossesSegmentEnd) if last => return Ok(records),
                    Err(_) if seq >= durable_end_seq => return Ok(records),
                    Err(reason) => return Err(corrupt(path, offset, reason)),
                }
            }
        }
        Ok(records)
    }
}

fn corrupt(path: &Path, offset: usize, reason: CorruptReason) -> EngineError {
    EngineError::Log(LogError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    })
}

/// Replays `shard` (or every shard) of `data_dir`.
pub fn replay(data_dir: &Path, shard: Option<u16>) -> Result<Vec<ReplayedShard>, EngineError> {
    replay_through(data_dir, shard, None)
}

/// [`replay`] from where `start` says.
pub fn replay_from(
    data_dir: &Path,
    shard: Option<u16>,
    start: ReplayStart,
) -> Result<Vec<ReplayedShard>, EngineError> {
    replay_with(data_dir, shard, None, start)
}

/// [`replay`], with the order digest taken over the rounds up to and
/// including `order_through` only (to compare nodes that finalized
/// different numbers of rounds).
pub fn replay_through(
    data_dir: &Path,
    shard: Option<u16>,
    order_through: Option<u64>,
) -> Result<Vec<ReplayedShard>, EngineError> {
    replay_with(data_dir, shard, order_through, ReplayStart::Auto)
}

fn replay_with(
    data_dir: &Path,
    shard: Option<u16>,
    order_through: Option<u64>,
    start: ReplayStart,
) -> Result<Vec<ReplayedShard>, EngineError> {
    let genesis = genesis_file::load(&data_dir.join("genesis.toml"))?.genesis;
    let shards = genesis.params.shards;
    let selected: Vec<u16> = match shard {
        Some(shard) if shard >= shards => {
            return Err(ReplayError::NoSuchShard {
                shard,
                data_dir: data_dir.to_path_buf(),
                shards,
            }
            .into())
        }
        Some(shard) => vec![shard],
        None => (0..shards).collect(),
    };
    let config = read_log_config(data_dir)?;
    // Shards are independent: one thread each (results in shard order).
    std::thread::scope(|scope| {
        let handles: Vec<_> = selected
            .into_iter()
            .map(|shard| {
                let genesis = &genesis;
                scope.spawn(move || {
                    replay_shard(genesis, data_dir, shard, config, order_through, start)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("replay thread panicked"))
            .collect()
    })
}

fn replay_shard(
    genesis: &pc_codec::genesis::Genesis,
    data_dir: &Path,
    shard: u16,
    config: LogConfig,
    order_through: Option<u64>,
    start: ReplayStart,
) -> Result<ReplayedShard, EngineError> {
    let dir = shard_log_dir(data_dir, shard);
    if !dir.is_dir() {
        return Err(ReplayError::NoLog { shard, dir }.into());
    }
    let log = ReadOnlyLog::open(&dir, config.max_record_bytes)?;
    let mut machine: Shard<Bip340, pc_codec::SigningKey> = Shard::new(
        genesis,
        shard,
        Role::Observer,
        Bip340,
        ShardLimits::default(),
    );
    let records = std::rc::Rc::new(log.records()?);
    let first_seq = log.segments.first().map_or(0, |(_, first)| *first);
    // Payloads of anchors a snapshot holds as spilled are read back from
    // the log records, as the node reads them from its log.
    machine.set_record_source(Box::new(ReplaySource {
        first_seq,
        records: records.clone(),
    }));
    let next_seq = first_seq + records.len() as u64;
    let from_genesis = match start {
        ReplayStart::FromGenesis if first_seq > 0 => {
            return Err(ReplayError::Pruned {
                shard,
                dir,
                first_seq,
            }
            .into())
        }
        ReplayStart::FromGenesis => true,
        ReplayStart::Auto => first_seq == 0,
        ReplayStart::FromSnapshot => false,
    };
    let mut snapshot = None;
    if !from_genesis {
        let snapshot_dir = crate::runtime::snapshots::snapshot_dir(&dir);
        let scope = crate::runtime::snapshots::scope(genesis, shard);
        let mut candidates = crate::runtime::snapshots::Candidates::find(&snapshot_dir, scope)
            .map_err(|reason| ReplayError::NoSnapshot {
                shard,
                dir: snapshot_dir.clone(),
                first_seq,
                skipped: format!(": {reason}"),
            })?;
        let mut chosen = None;
        while let Some(candidate) = candidates.next_valid(first_seq, next_seq) {
            chosen = Some(candidate);
            if start == ReplayStart::FromSnapshot {
                break;
            }
        }
        let Some(candidate) = chosen else {
            let skipped: String = candidates
                .skipped
                .iter()
                .map(|(file, reason)| format!("; {}: {reason}", file.display()))
                .collect();
            return Err(ReplayError::NoSnapshot {
                shard,
                dir: snapshot_dir,
                first_seq,
                skipped,
            }
            .into());
        };
        let (round, root, next) = (
            candidate.image.round,
            candidate.image.state.state_root,
            candidate.image.next_token,
        );
        // The logged RoundFinalized of the snapshot's round, if the log
        // still holds it, must carry the snapshot's state root.
        let logged = records
            .iter()
            .take(usize::try_from(next.saturating_sub(first_seq)).unwrap_or(usize::MAX))
            .filter(|r| r.kind == LogRecordKind::RoundFinalized as u8)
            .filter_map(|r| RoundFinalized::from_bytes(&r.body).ok())
            .find(|r| r.round == round);
        if let Some(logged) = &logged {
            if logged.state_root != root {
                return Err(ReplayError::SnapshotRoot {
                    shard,
                    file: candidate.path,
                    round,
                    snapshot: pc_codec::to_hex(&root),
                    logged: pc_codec::to_hex(&logged.state_root),
                }
                .into());
            }
        }
        machine
            .load_image(candidate.image)
            .map_err(|error| ReplayError::SnapshotRefused {
                shard,
                file: candidate.path.clone(),
                reason: error.to_string(),
            })?;
        snapshot = Some((candidate.path, round, logged.is_some(), next));
    }
    let skip = snapshot
        .as_ref()
        .map_or(0, |(_, _, _, next)| (next - first_seq) as usize);
    let mut result = ReplayedShard {
        shard,
        anchors: 0,
        rounds: 0,
        finalized_anchors: 0,
        finalized_events: 0,
        state_root: String::new(),
        order_digest: String::new(),
        order_digest_round: None,
        from_snapshot: snapshot
            .as_ref()
            .map(|(path, ..)| path.display().to_string()),
        snapshot_round: snapshot.as_ref().map(|(_, round, ..)| *round),
        snapshot_root_checked: snapshot.as_ref().map(|(_, _, checked, _)| *checked),
        supply: None,
        seats: Vec::new(),
    };
    let mut order = [0u8; 32];
    // Records the machine emitted that the log has not shown yet.
    let mut derived = std::collections::VecDeque::new();
    for record in records.iter().skip(skip) {
        let (path, offset) = (record.path.clone(), record.offset);
        let kind = LogRecordKind::from_u8(record.kind).ok_or(ReplayError::UnknownKind {
            path: path.clone(),
            offset,
            kind: record.kind,
        })?;
        if kind == LogRecordKind::SnapshotWritten {
            // A snapshot marker takes its token in the machine's record
            // stream as it did live; a malformed one is a corrupt record.
            let marker = snapshot_marker(&record.body).ok_or(ReplayError::UnknownKind {
                path: path.clone(),
                offset,
                kind: record.kind,
            })?;
            if !derived.is_empty() {
                return Err(mismatch(shard, kind, &record.body, None));
            }
            machine.note_snapshot_written(marker.0, marker.1);
            while machine.poll_persist().is_some() {}
            continue;
        }
        if matches!(
            kind,
            LogRecordKind::CheckpointCertified
                | LogRecordKind::ExportsReceived
                | LogRecordKind::ExportsBuilt
        ) {
            // The cross-shard link's records took their tokens in the
            // machine's record stream live; they change no state (imports
            // arrive in anchors), so they are taken as they are.
            if !derived.is_empty() {
                return Err(mismatch(shard, kind, &record.body, None));
            }
            machine.log_record(kind, record.body.clone());
            while machine.poll_persist().is_some() {}
            continue;
        }
        if kind == LogRecordKind::AnchorAccepted && derived.is_empty() {
            match machine.handle_anchor(None, &record.body) {
                Ok(AnchorStatus::Inserted) => result.anchors += 1,
                Ok(status) => {
                    return Err(ReplayError::AnchorStatus {
                        path,
                        offset,
                        shard,
                        status,
                    }
                    .into())
                }
                Err(source) => {
                    return Err(ReplayError::AnchorRefused {
                        path,
                        offset,
                        shard,
                        source,
                    }
                    .into())
                }
            }
            let mut reports = std::collections::VecDeque::new();
            while let Some(report) = machine.poll_finalized() {
                let mut ids = blake3::Hasher::new();
                ids.update(&report.round.round.to_le_bytes());
                for anchor in &report.round.anchors {
                    ids.update(&anchor.id);
                }
                reports.push_back((
                    report.round.anchors.len() as u64,
                    report.outcome.outcomes.len() as u64,
                    report.round.round,
                    ids,
                ));
            }
            while let Some(persist) = machine.poll_persist() {
                let counts = (persist.kind == LogRecordKind::RoundFinalized)
                    .then(|| reports.pop_front().expect("one report per finalized round"));
                derived.push_back((persist, counts));
            }
            while machine.poll_transmit().is_some() {}
        }
        let Some((expected, counts)) = derived.pop_front() else {
            return Err(mismatch(shard, kind, &record.body, None));
        };
        if expected.kind != kind || expected.body != record.body {
            return Err(mismatch(shard, kind, &record.body, Some(&expected.body)));
        }
        // The record is in the log: its payload may leave memory, as in
        // the node.
        machine.handle_appended(expected.token + 1);
        // Counted once the log shows the round: a round derived after the
        // log's last record (a cut tail) does not count.
        if let Some((anchors, events, round, ids)) = counts {
            result.rounds += 1;
            result.finalized_anchors += anchors;
            result.finalized_events += events;
            if order_through.is_none_or(|through| round <= through) {
                let mut chained = blake3::Hasher::new();
                chained.update(&order);
                chained.update(ids.finalize().as_bytes());
                order = *chained.finalize().as_bytes();
                result.order_digest_round = Some(round);
            }
        }
    }
    result.state_root = pc_codec::to_hex(&machine.state().state_root());
    result.supply = Some(Box::new(crate::tools::supply::ShardSupply::new(
        shard,
        machine.state(),
        machine.last_finalized_round(),
        records.iter().filter_map(|record| {
            LogRecordKind::from_u8(record.kind).map(|kind| (kind, record.body.as_slice()))
        }),
        first_seq == 0,
    )));
    result.seats = SeatSummary::of(machine.state().economics());
    result.order_digest = pc_codec::to_hex(&order);
    Ok(result)
}

/// (round, next token) of a `SnapshotWritten` record body.
pub fn snapshot_marker(body: &[u8]) -> Option<(u64, u64)> {
    let round = u64::from_le_bytes(body.get(..8)?.try_into().ok()?);
    let next = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
    (body.len() == 16).then_some((round, next))
}

fn mismatch(shard: u16, kind: LogRecordKind, logged: &[u8], derived: Option<&[u8]>) -> EngineError {
    let summary = |body: &[u8]| match RoundFinalized::from_bytes(body) {
        Ok(round) => RecordSummary::Round(round),
        Err(_) => RecordSummary::Other,
    };
    let logged = match kind {
        LogRecordKind::RoundFinalized => summary(logged),
        LogRecordKind::AnchorAccepted => RecordSummary::Anchor,
        LogRecordKind::SnapshotWritten
        | LogRecordKind::CheckpointCertified
        | LogRecordKind::ExportsReceived
        | LogRecordKind::ExportsBuilt => RecordSummary::Other,
    };
    let derived = derived.map(summary);
    let round = [Some(&logged), derived.as_ref()]
        .into_iter()
        .flatten()
        .find_map(|record| match record {
            RecordSummary::Round(round) => Some(round.round),
            _ => None,
        });
    ReplayError::Mismatch {
        shard,
        round,
        logged,
        derived,
    }
    .into()
}

/// Replay output, one line per shard, identical on every run.
pub fn render_text(shards: &[ReplayedShard]) -> String {
    let mut out =
        String::from("shard  anchors  rounds  finalized_anchors  finalized_events  state_root\n");
    for s in shards {
        out += &format!(
            "{:>5}  {:>7}  {:>6}  {:>17}  {:>16}  {}\n",
            s.shard, s.anchors, s.rounds, s.finalized_anchors, s.finalized_events, s.state_root
        );
        if let (Some(file), Some(round)) = (&s.from_snapshot, s.snapshot_round) {
            let check = if s.snapshot_root_checked == Some(true) {
                "its state root is the logged round's"
            } else {
                "the logged round was pruned: its root is not checked"
            };
            out += &format!(
                "       shard {} replayed from snapshot {file} (round {round}; {check})\n",
                s.shard
            );
        }
    }
    out
}

/// Replay output as one JSON object.
pub fn render_json(shards: &[ReplayedShard]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        shards: &'a [ReplayedShard],
    }
    serde_json::to_string(&Out { shards }).expect("plain data serializes")
}
