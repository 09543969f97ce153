//! Local snapshots of a shard machine (DESIGN §6.1): the machine's
//! deterministic state after its last finalized round — the UTXO slice and
//! accounting, the consensus DAG of the kept window, the side tables that
//! derive from inserted anchors, the seat's own chain — as typed sections,
//! archived with rkyv and validated with bytecheck on load (a file's bytes
//! are never trusted: the archive is checked, then every index and length
//! is checked again as the machine is rebuilt from it).
//!
//! A local snapshot uses the node's own encoding (DESIGN §6.1 allows it for
//! snapshots that never enter a checkpoint): the consensus section is the
//! arena itself, so a machine loaded from a snapshot is the machine that
//! wrote it, and replaying the log records after [`ShardImage::next_token`]
//! gives exactly the machine a full replay from genesis gives.
//!
//! The file ([`SnapshotFile`]) carries the header fields a loader checks
//! before it rebuilds anything (magic, format, network, shard, round, state
//! root) and `snapshot_root = derive("snapshot", image_bytes u64 ||
//! chunk_root)` over the image cut into 1 MiB chunks, recomputed on load.

use pc_codec::ids::derive;
use pc_codec::Hash32;
use rkyv::rancor::Error as RkyvError;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};

/// The file's magic bytes.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"PCSNAP01";
/// The file format this build writes and reads.
pub const SNAPSHOT_FORMAT: u32 = 3;
/// Chunk size of the snapshot root's Merkle tree.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Derivation context of the snapshot root.
pub const SNAPSHOT_CONTEXT: &str = pc_codec::ids::context::SNAPSHOT;

/// One consensus vertex, indices absolute (`u64::MAX`: none).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct VertexImage {
    /// Anchor id.
    pub id: Hash32,
    /// Creator seat.
    pub creator: u8,
    /// Creator's seq.
    pub seq: u64,
    /// Coin bit.
    pub coin: bool,
    /// Self-parent index.
    pub self_parent: u64,
    /// Self-chain skip list.
    pub skips: Vec<u64>,
    /// Parent indices.
    pub parents: Vec<u64>,
    /// Round.
    pub round: u64,
    /// Witness or not.
    pub witness: bool,
    /// Seats with a fork in the ancestry.
    pub fork_mask: u64,
    /// Per forked seat, the highest fork round.
    pub fork_rounds: Vec<(u8, u64)>,
    /// Per seat, its single top (`u64::MAX`: none or several).
    pub last_ancestor: Vec<u64>,
    /// Seats with several tops.
    pub multi_tops: Vec<(u8, u64)>,
    /// Strongly seen witnesses of the previous round.
    pub strongly_seen_previous: Vec<u64>,
    /// Fame, once decided.
    pub fame: Option<bool>,
}

/// Memoized fame votes on one candidate: (voter, yes, decides), by voter.
pub type VotesImage = Vec<(u64, bool, bool)>;

/// The consensus DAG of the kept window.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ConsensusImage {
    /// Vertices dropped from the front of the arena.
    pub pruned: u64,
    /// The lowest round held.
    pub floor: u64,
    /// The arena, in insertion order.
    pub vertices: Vec<VertexImage>,
    /// Per seat: (seq, vertex indices).
    pub by_seat: Vec<Vec<(u64, Vec<u64>)>>,
    /// Seats whose ancestry questions walk the chain.
    pub walk_seats: u64,
    /// Seats with a seq-0 anchor.
    pub started_seats: u64,
    /// Witnesses per round, in insertion order.
    pub witnesses: Vec<(u64, Vec<u64>)>,
    /// Memoized fame votes: candidate -> (voter, yes, decides), sorted.
    pub votes: Vec<(u64, VotesImage)>,
    /// The lowest undecided round.
    pub next_undecided_round: u64,
    /// Vertices not yet received, in insertion order.
    pub unreceived: Vec<u64>,
    /// The next global anchor index.
    pub next_global_index: u64,
    /// Coin-round votes and flips.
    pub coin_stats: (u64, u64),
    /// Stale anchors.
    pub stale: u64,
    /// Dragged anchors.
    pub dragged: u64,
}

/// The unspent outputs of one genesis allocation of the shard.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct GenesisLineImage {
    /// The allocation's tx id.
    pub tx_id: Hash32,
    /// Unspent bitmap words (bit i = word i/64, bit i mod 64).
    pub unspent: Vec<u64>,
    /// Unspent outputs.
    pub unspent_count: u64,
}

/// One unspent output created by a transfer.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct UtxoImage {
    /// Creating transfer.
    pub tx_id: Hash32,
    /// Output index.
    pub index: u16,
    /// Amount in units.
    pub amount: u64,
    /// Owner's x-only key.
    pub owner: Hash32,
}

/// The UTXO slice and the accounting of the shard.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct StateImage {
    /// Genesis allocations with unspent outputs, by tx id.
    pub genesis: Vec<GenesisLineImage>,
    /// Outputs created by transfers, by (tx id, index).
    pub utxos: Vec<UtxoImage>,
    /// Export chains, exported / imported sums and import dedupe.
    pub cross: crate::cross::image::CrossImage,
    /// The seats' section: bonds, owed balances, claims, slashes, roots.
    pub seats: SeatsImage,
    /// The mint section: the chain, its race and the minted outputs'
    /// maturity.
    pub mint: MintImage,
    /// The state root after the last finalized round.
    pub state_root: Hash32,
    /// Supply held by the shard.
    pub supply: u64,
}

/// The mint chain (DESIGN §5.5).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MintImage {
    /// The last winner's id (the genesis hash before the first).
    pub tip: Hash32,
    /// Mints won.
    pub count: u64,
    /// The target, u128 little-endian.
    pub target: [u8; 16],
    /// Anchor index of the last win.
    pub last: u64,
    /// Units minted.
    pub minted: u64,
    /// The open race.
    pub race: Option<RaceImage>,
    /// Minted outputs not yet spent, by out point.
    pub outputs: Vec<MintOutputImage>,
}

/// The best candidate of an open race.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RaceImage {
    /// Round it opened in.
    pub opened: u64,
    /// Best candidate's id.
    pub mint_id: Hash32,
    /// Its pow hash.
    pub pow_hash: Hash32,
    /// Its miner.
    pub miner: Hash32,
    /// Its carrying anchor's index.
    pub anchor_index: u64,
}

/// A minted output and the anchor index it matures at.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MintOutputImage {
    /// The mint id (the output's tx id).
    pub tx_id: Hash32,
    /// Output index (0).
    pub index: u16,
    /// Anchor index it spends from.
    pub mature_at: u64,
}

/// One seat's account (DESIGN §5.3, §5.4); its key and genesis bond come
/// from the genesis.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SeatAccountImage {
    /// What is left of the bond.
    pub remaining: u64,
    /// Owed and not yet claimed.
    pub owed: u64,
    /// Round of the last applied claim.
    pub claim_floor: u64,
    /// Anchor index the cool-down lasts until.
    pub cool_until: u64,
    /// Slashed out.
    pub slashed_out: bool,
    /// Its slashes, oldest first.
    pub slashes: Vec<SlashImage>,
}

/// One applied slash.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SlashImage {
    /// The offence id.
    pub offence_id: Hash32,
    /// Offence class code.
    pub class: u8,
    /// Anchor index of the carrying anchor.
    pub index: u64,
    /// Units taken.
    pub amount: u64,
    /// Repeat tier.
    pub tier: u32,
}

/// A retained payout root.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct RootImage {
    /// The round.
    pub round: u64,
    /// The root.
    pub root: Hash32,
    /// Its leaf count.
    pub leaf_count: u64,
    /// The anchor index after the round.
    pub next_index: u64,
    /// The shard's checkpoint id of the round.
    pub checkpoint_id: Hash32,
}

/// The seats' section of the state.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SeatsImage {
    /// One account per seat, by seat.
    pub seats: Vec<SeatAccountImage>,
    /// Value no eligible seat could be paid yet.
    pub undistributed: u64,
    /// The index of the next finalized anchor.
    pub next_anchor_index: u64,
    /// The retained payout roots, oldest first.
    pub roots: Vec<RootImage>,
}

/// A parent reference.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentImage {
    /// Anchor id.
    pub anchor_id: Hash32,
    /// Creator seat.
    pub creator: u8,
    /// Seq.
    pub seq: u64,
    /// Birth round.
    pub birth_round: u64,
}

pub use unfinalized::UnfinalizedImage;

// rkyv's derive makes resolver types for the variants' fields that carry no
// docs of their own.
#[allow(missing_docs)]
mod unfinalized {
    use super::{Archive, Deserialize, Hash32, Serialize};

    /// An inserted, not yet finalized anchor.
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
    pub enum UnfinalizedImage {
        /// Held in memory: its encoded signed anchor, and the token of its
        /// record when it may leave memory once appended.
        Resident {
            /// The encoded anchor.
            bytes: Vec<u8>,
            /// Its record's token, when it may be spilled.
            token: Option<u64>,
        },
        /// Its payload is read back from its record.
        Spilled {
            /// Anchor id.
            id: Hash32,
            /// Record token.
            token: u64,
            /// Creator seat.
            creator: u8,
            /// Birth round.
            birth_round: u64,
            /// Micro-events in the payload.
            events: u16,
        },
    }
}

/// The seat's own chain and bookkeeping.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SeatImage {
    /// The seat.
    pub seat: u8,
    /// The next own seq.
    pub next_seq: u64,
    /// The last own anchor.
    pub last_own: Option<ParentImage>,
    /// Latest anchor per other seat.
    pub latest: Vec<(u8, ParentImage)>,
    /// Seats not yet acknowledged (their waiting order starts over, as
    /// after a replay of the log).
    pub unacknowledged: Vec<u8>,
    /// Seats with an anchor since the last own one.
    pub fresh: Vec<u8>,
    /// Highest own seq named by another seat.
    pub acked_seq: Option<u64>,
    /// Unacknowledged own chain: seq -> birth round.
    pub unacked_births: Vec<(u64, u64)>,
}

/// The machine's tables that derive from inserted anchors.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct MachineImage {
    /// Inserted anchors not finalized, by id.
    pub unfinalized: Vec<UnfinalizedImage>,
    /// Own anchors whose events went back to the mempool, sorted.
    pub reincluded: Vec<Hash32>,
    /// First header per (seat, seq), encoded, sorted by key.
    pub first_headers: Vec<(u8, u64, Vec<u8>)>,
    /// Seats with evidence queued (mask).
    pub evidence_queued: u64,
    /// The consensus floor at the last side-table prune.
    pub pruned_floor: u64,
    /// The highest birth round inserted.
    pub top_round: u64,
    /// The seat, if the machine holds one.
    pub seat: Option<SeatImage>,
}

/// Everything a machine needs to continue from its last finalized round.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ShardImage {
    /// The shard.
    pub shard: u16,
    /// The last finalized round (`u64::MAX`: none yet).
    pub round: u64,
    /// Records the machine emitted before this snapshot; replay goes on
    /// from this token.
    pub next_token: u64,
    /// State section.
    pub state: StateImage,
    /// Consensus section.
    pub consensus: ConsensusImage,
    /// Machine section.
    pub machine: MachineImage,
}

impl ShardImage {
    /// Puts the large sections in their canonical order (genesis lines by
    /// tx id, outputs by out point), so equal states archive to equal
    /// bytes. The core hands the image over unsorted.
    pub fn normalize(&mut self) {
        self.state.genesis.sort_unstable_by_key(|line| line.tx_id);
        self.state
            .utxos
            .sort_unstable_by_key(|u| (u.tx_id, u.index));
        self.state
            .mint
            .outputs
            .sort_unstable_by_key(|o| (o.tx_id, o.index));
    }

    /// The lowest log record the snapshot still needs: the oldest spilled
    /// unfinalized anchor's record, or `next_token` (DESIGN §6.1
    /// `replay_from_seq`).
    pub fn replay_from_seq(&self) -> u64 {
        self.machine
            .unfinalized
            .iter()
            .filter_map(|u| match u {
                UnfinalizedImage::Spilled { token, .. } => Some(*token),
                UnfinalizedImage::Resident { .. } => None,
            })
            .min()
            .unwrap_or(self.next_token)
            .min(self.next_token)
    }

    /// The seat's last used seq, if it signed any.
    pub fn own_last_seq(&self) -> Option<u64> {
        self.machine
            .seat
            .as_ref()
            .and_then(|seat| seat.next_seq.checked_sub(1))
    }
}

/// The snapshot file: header fields checked before anything is rebuilt,
/// and the archived [`ShardImage`].
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFile {
    /// [`SNAPSHOT_MAGIC`].
    pub magic: [u8; 8],
    /// [`SNAPSHOT_FORMAT`].
    pub format: u32,
    /// The genesis' network id.
    pub network: [u8; 8],
    /// The genesis hash.
    pub genesis: Hash32,
    /// The shard.
    pub shard: u16,
    /// The last finalized round (`u64::MAX`: none).
    pub round: u64,
    /// The state root after it.
    pub state_root: Hash32,
    /// `derive("snapshot", image_bytes u64 || chunk_root)`.
    pub snapshot_root: Hash32,
    /// The image's `next_token`.
    pub next_token: u64,
    /// The lowest log record the snapshot needs.
    pub replay_from_seq: u64,
    /// The seat's last used seq (`u64::MAX`: none).
    pub own_last_seq: u64,
    /// The archived [`ShardImage`].
    pub image: Vec<u8>,
}

/// Why a snapshot file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The archive does not validate.
    #[error("not a valid snapshot archive: {0}")]
    Archive(String),
    /// Wrong magic or format.
    #[error("not a snapshot of format {SNAPSHOT_FORMAT} (magic {magic}, format {format})")]
    Format {
        /// The magic found, hex.
        magic: String,
        /// The format found.
        format: u32,
    },
    /// Another network, genesis or shard.
    #[error("snapshot of {what} {found}, this node's is {expected}")]
    Foreign {
        /// What differs.
        what: &'static str,
        /// The file's.
        found: String,
        /// Ours.
        expected: String,
    },
    /// The recomputed root differs.
    #[error("snapshot root mismatch: file says {stated}, content hashes to {computed}")]
    Root {
        /// The file's root.
        stated: String,
        /// The recomputed one.
        computed: String,
    },
    /// The image's sections are inconsistent.
    #[error("inconsistent image: {0}")]
    Image(String),
}

/// `derive("snapshot", image_bytes u64 || chunk_root)` of `image`.
pub fn snapshot_root(image: &[u8]) -> Hash32 {
    let chunks: Vec<Hash32> = if image.is_empty() {
        vec![pc_codec::merkle::leaf_hash(&[])]
    } else {
        image
            .chunks(SNAPSHOT_CHUNK_BYTES)
            .map(pc_codec::merkle::leaf_hash)
            .collect()
    };
    let chunk_root = pc_codec::merkle::root_of_leaves(chunks);
    derive(
        SNAPSHOT_CONTEXT,
        &[&(image.len() as u64).to_le_bytes(), &chunk_root],
    )
}

/// Identity of the genesis a snapshot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotScope {
    /// Network id.
    pub network: [u8; 8],
    /// Genesis hash.
    pub genesis: Hash32,
    /// Shard.
    pub shard: u16,
}

/// Archives `image` (normalized first) into the bytes of a snapshot file
/// of `scope`.
pub fn encode_snapshot(scope: SnapshotScope, image: &mut ShardImage) -> Vec<u8> {
    image.normalize();
    let image_bytes = rkyv::to_bytes::<RkyvError>(&*image)
        .expect("archiving owned data cannot fail")
        .into_vec();
    let file = SnapshotFile {
        magic: SNAPSHOT_MAGIC,
        format: SNAPSHOT_FORMAT,
        network: scope.network,
        genesis: scope.genesis,
        shard: scope.shard,
        round: image.round,
        state_root: image.state.state_root,
        snapshot_root: snapshot_root(&image_bytes),
        next_token: image.next_token,
        replay_from_seq: image.replay_from_seq(),
        own_last_seq: image.own_last_seq().unwrap_or(u64::MAX),
        image: image_bytes,
    };
    rkyv::to_bytes::<RkyvError>(&file)
        .expect("archiving owned data cannot fail")
        .into_vec()
}

fn aligned(bytes: &[u8]) -> AlignedVec {
    let mut buffer = AlignedVec::with_capacity(bytes.len());
    buffer.extend_from_slice(bytes);
    buffer
}

/// The header of a snapshot file, validated (archive, magic, format,
/// scope) without decoding the image.
pub fn decode_snapshot_header(
    bytes: &[u8],
    scope: SnapshotScope,
) -> Result<SnapshotFile, SnapshotError> {
    let buffer = aligned(bytes);
    let file = rkyv::from_bytes::<SnapshotFile, RkyvError>(&buffer)
        .map_err(|error| SnapshotError::Archive(error.to_string()))?;
    if file.magic != SNAPSHOT_MAGIC || file.format != SNAPSHOT_FORMAT {
        return Err(SnapshotError::Format {
            magic: pc_codec::ids::to_hex(&file.magic),
            format: file.format,
        });
    }
    if file.network != scope.network {
        return Err(SnapshotError::Foreign {
            what: "network",
            found: pc_codec::ids::to_hex(&file.network),
            expected: pc_codec::ids::to_hex(&scope.network),
        });
    }
    if file.genesis != scope.genesis {
        return Err(SnapshotError::Foreign {
            what: "genesis",
            found: pc_codec::ids::to_hex(&file.genesis),
            expected: pc_codec::ids::to_hex(&scope.genesis),
        });
    }
    if file.shard != scope.shard {
        return Err(SnapshotError::Foreign {
            what: "shard",
            found: file.shard.to_string(),
            expected: scope.shard.to_string(),
        });
    }
    Ok(file)
}

/// A snapshot file's image, fully validated: the archive, its scope, the
/// recomputed root, and the image's own archive and header fields.
pub fn decode_snapshot(
    bytes: &[u8],
    scope: SnapshotScope,
) -> Result<(SnapshotFile, ShardImage), SnapshotError> {
    let mut file = decode_snapshot_header(bytes, scope)?;
    let computed = snapshot_root(&file.image);
    if computed != file.snapshot_root {
        return Err(SnapshotError::Root {
            stated: pc_codec::ids::to_hex(&file.snapshot_root),
            computed: pc_codec::ids::to_hex(&computed),
        });
    }
    let buffer = aligned(&file.image);
    file.image = Vec::new();
    let image = rkyv::from_bytes::<ShardImage, RkyvError>(&buffer)
        .map_err(|error| SnapshotError::Archive(format!("image: {error}")))?;
    let consistent = image.shard == file.shard
        && image.round == file.round
        && image.state.state_root == file.state_root
        && image.next_token == file.next_token
        && image.replay_from_seq() == file.replay_from_seq
        && image.own_last_seq().unwrap_or(u64::MAX) == file.own_last_seq;
    if !consistent {
        return Err(SnapshotError::Image(
            "the header disagrees with the image".to_string(),
        ));
    }
    Ok((file, image))
}
