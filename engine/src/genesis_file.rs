//! The genesis TOML file (DESIGN §9): parsing into [`pc_codec::Genesis`],
//! the seed's commitment check of the genesis note, validation, and writing
//! a fresh genesis for `genesis new`.

use std::path::{Path, PathBuf};

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisError, GenesisValidator, SeatAssignment,
};
use pc_codec::{to_hex, Hash32};
use serde::Deserialize;

/// Longest genesis note accepted, in bytes.
const MAX_NOTE_BYTES: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisToml {
    consensus: ConsensusToml,
    validators: Vec<ValidatorToml>,
    #[serde(default)]
    allocations: Vec<AllocationToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsensusToml {
    k: u64,
    shards: u64,
    genesis_note: String,
    commitment: String,
    coin_round_period: Option<u32>,
    ancient_window_rounds: Option<u32>,
    fee_split_pct: Option<[u8; 4]>,
    ack_alpha: Option<[u32; 2]>,
    ack_distance_max: Option<u8>,
    maturity_anchors: Option<[u64; 3]>,
    maturity_tier_bounds: Option<[u64; 2]>,
    mint_shard: Option<u16>,
    mint_interval_anchors: Option<u32>,
    mint_halving_mints: Option<u64>,
    mint_race_rounds: Option<u8>,
    /// Hex (u128), optionally with `0x`.
    mint_target_initial: Option<String>,
    /// Hex (u128), optionally with `0x`.
    mint_target_max: Option<String>,
    snapshot_interval_rounds: Option<u32>,
    slash_window_anchors: Option<u64>,
    slash_cooldown_anchors: Option<u64>,
    claim_window_anchors: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidatorToml {
    key: String,
    bond: u64,
    seats: Vec<SeatToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatToml {
    shard: u16,
    seat: u8,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AllocationToml {
    owner: String,
    amount: u64,
    #[serde(default = "one")]
    outputs: u32,
}

fn one() -> u32 {
    1
}

/// A genesis file that parsed, matched its commitment and validated.
#[derive(Debug, Clone)]
pub struct LoadedGenesis {
    /// The genesis.
    pub genesis: Genesis,
    /// `blake3_32(genesis_note)`, as checked.
    pub commitment: Hash32,
}

impl LoadedGenesis {
    /// The `genesis_loaded` event of DESIGN §9.
    pub fn loaded_event(&self) -> pc_node::telemetry::Event {
        pc_node::telemetry::Event::GenesisLoaded(pc_node::telemetry::GenesisLoaded {
            k: self.genesis.params.k,
            commitment: to_hex(&self.commitment),
        })
    }

    /// The `genesis_loaded` log line of DESIGN §9, as the seed gives it.
    pub fn loaded_line(&self) -> String {
        self.loaded_event().to_line()
    }
}

/// A hex value that is not the bytes its key needs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HexError {
    /// Not hex at all.
    #[error("{key}: bad hex ({source})")]
    Bad {
        /// The key (or flag) holding it.
        key: String,
        /// The decoder's reason.
        source: hex::FromHexError,
    },
    /// Hex of another length.
    #[error("{key}: expected {expected} bytes of hex, found {found}")]
    Length {
        /// The key (or flag) holding it.
        key: String,
        /// Bytes needed.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// Not a hex number of at most 128 bits.
    #[error("{key}: {reason}")]
    Number {
        /// The key holding it.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// Decodes a hex string into exactly `N` bytes, naming `key` on failure.
pub fn hex_array<const N: usize>(text: &str, key: &str) -> Result<[u8; N], HexError> {
    let bytes = hex::decode(text).map_err(|source| HexError::Bad {
        key: key.to_string(),
        source,
    })?;
    let found = bytes.len();
    bytes.try_into().map_err(|_| HexError::Length {
        key: key.to_string(),
        expected: N,
        found,
    })
}

/// A TOML text that does not parse into the expected tables; `Display` is
/// `line L, column C: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", at.map_or_else(String::new, |(line, column)| format!("line {line}, column {column}: ")))]
pub struct TomlError {
    /// Line and column (from 1) of the fault, where the parser names one.
    pub at: Option<(usize, usize)>,
    /// The parser's message, on one line.
    pub message: String,
}

impl TomlError {
    /// The error `error` of parsing `text`, located in it.
    pub fn new(text: &str, error: &toml::de::Error) -> TomlError {
        let at = error.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (line, column)
        });
        TomlError {
            at,
            message: error.message().replace('\n', " "),
        }
    }
}

/// Why a genesis text is refused; `Display` is one line naming the key.
#[derive(Debug, thiserror::Error)]
pub enum GenesisTextError {
    /// Not TOML of the genesis' shape.
    #[error(transparent)]
    Toml(#[from] TomlError),
    /// A required section is missing.
    #[error("missing section {0}")]
    MissingSection(&'static str),
    /// `consensus.k` outside 1..=64.
    #[error("consensus.k = {0} is outside 1..=64")]
    Committee(u64),
    /// `consensus.shards` outside 1..=65535.
    #[error("consensus.shards = {0} is outside 1..=65535")]
    Shards(u64),
    /// A hex value.
    #[error(transparent)]
    Hex(#[from] HexError),
    /// An empty or too long note.
    #[error("consensus.genesis_note: must be 1..={MAX_NOTE_BYTES} bytes")]
    NoteLength,
    /// The commitment is not the note's hash.
    #[error("consensus.commitment {} does not match blake3(genesis_note) = {}", to_hex(.claimed), to_hex(.computed))]
    Commitment {
        /// What the file says.
        claimed: Hash32,
        /// What the note hashes to.
        computed: Hash32,
    },
    /// A rule of DESIGN §9.
    #[error(transparent)]
    Invalid(#[from] GenesisError),
}

/// A genesis file that cannot be used; `Display` is one line naming the file.
#[derive(Debug, thiserror::Error)]
pub enum GenesisFileError {
    /// The file cannot be read.
    #[error("{}: cannot read genesis: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file's content is wrong.
    #[error("{}: {error}", .path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key (boxed: it holds u128 targets).
        error: Box<GenesisTextError>,
    },
}

/// Reads, checks and validates the genesis file at `path`.
pub fn load(path: &Path) -> Result<LoadedGenesis, GenesisFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| GenesisFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|error| GenesisFileError::Input {
        path: path.to_path_buf(),
        error: Box::new(error),
    })
}

/// Parses and validates genesis TOML text; errors are one line naming the key.
pub fn parse(text: &str) -> Result<LoadedGenesis, GenesisTextError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| TomlError::new(text, &e))?;
    for (section, shown) in [
        ("consensus", "[consensus]"),
        ("validators", "[[validators]]"),
    ] {
        if !table.contains_key(section) {
            return Err(GenesisTextError::MissingSection(shown));
        }
    }
    let parsed: GenesisToml = toml::from_str(text).map_err(|e| TomlError::new(text, &e))?;
    let consensus = &parsed.consensus;
    if consensus.k == 0 || consensus.k > 64 {
        return Err(GenesisTextError::Committee(consensus.k));
    }
    if consensus.shards == 0 || consensus.shards > u64::from(u16::MAX) {
        return Err(GenesisTextError::Shards(consensus.shards));
    }
    let note = hex::decode(&consensus.genesis_note).map_err(|source| HexError::Bad {
        key: "consensus.genesis_note".to_string(),
        source,
    })?;
    if note.is_empty() || note.len() > MAX_NOTE_BYTES {
        return Err(GenesisTextError::NoteLength);
    }
    let commitment: Hash32 = hex_array(&consensus.commitment, "consensus.commitment")?;
    let computed = *blake3::hash(&note).as_bytes();
    if computed != commitment {
        return Err(GenesisTextError::Commitment {
            claimed: commitment,
            computed,
        });
    }
    let genesis = Genesis {
        params: params(consensus)?,
        note_commitment: commitment,
        validators: validators(&parsed.validators)?,
        allocations: allocations(&parsed.allocations)?,
    };
    genesis.validate()?;
    Ok(LoadedGenesis {
        genesis,
        commitment,
    })
}

/// A u128 given as hex (`0x` optional), or the error naming the key.
fn hex_u128(text: &str, key: &str) -> Result<u128, HexError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 32 {
        return Err(HexError::Number {
            key: key.to_string(),
            reason: format!("{text:?} is not 1 to 32 hex digits"),
        });
    }
    u128::from_str_radix(digits, 16).map_err(|e| HexError::Number {
        key: key.to_string(),
        reason: format!("{text:?}: {e}"),
    })
}

fn params(consensus: &ConsensusToml) -> Result<ConsensusParams, HexError> {
    let defaults = ConsensusParams::v0(consensus.k as u8, consensus.shards as u16);
    let target = |text: &Option<String>, key: &str, default: u128| {
        text.as_deref()
            .map_or(Ok(default), |t| hex_u128(t, &format!("consensus.{key}")))
    };
    Ok(ConsensusParams {
        mint_shard: consensus.mint_shard.unwrap_or(defaults.mint_shard),
        mint_interval_anchors: consensus
            .mint_interval_anchors
            .unwrap_or(defaults.mint_interval_anchors),
        mint_halving_mints: consensus
            .mint_halving_mints
            .unwrap_or(defaults.mint_halving_mints),
        mint_race_rounds: consensus
            .mint_race_rounds
            .unwrap_or(defaults.mint_race_rounds),
        mint_target_initial: target(
            &consensus.mint_target_initial,
            "mint_target_initial",
            defaults.mint_target_initial,
        )?,
        mint_target_max: target(
            &consensus.mint_target_max,
            "mint_target_max",
            defaults.mint_target_max,
        )?,
        snapshot_interval_rounds: consensus
            .snapshot_interval_rounds
            .unwrap_or(defaults.snapshot_interval_rounds),
        coin_round_period: consensus
            .coin_round_period
            .unwrap_or(defaults.coin_round_period),
        ancient_window_rounds: consensus
            .ancient_window_rounds
            .unwrap_or(defaults.ancient_window_rounds),
        fee_split_pct: consensus.fee_split_pct.unwrap_or(defaults.fee_split_pct),
        ack_alpha: consensus.ack_alpha.unwrap_or(defaults.ack_alpha),
        ack_distance_max: consensus
            .ack_distance_max
            .unwrap_or(defaults.ack_distance_max),
        maturity_anchors: consensus
            .maturity_anchors
            .unwrap_or(defaults.maturity_anchors),
        maturity_tier_bounds: consensus
            .maturity_tier_bounds
            .unwrap_or(defaults.maturity_tier_bounds),
        slash_window_anchors: consensus
            .slash_window_anchors
            .unwrap_or(defaults.slash_window_anchors),
        slash_cooldown_anchors: consensus
            .slash_cooldown_anchors
            .unwrap_or(defaults.slash_cooldown_anchors),
        claim_window_anchors: consensus
            .claim_window_anchors
            .unwrap_or(defaults.claim_window_anchors),
        ..defaults
    })
}

fn validators(list: &[ValidatorToml]) -> Result<Vec<GenesisValidator>, HexError> {
    list.iter()
        .enumerate()
        .map(|(index, v)| {
            Ok(GenesisValidator {
                key: hex_array(&v.key, &format!("validators[{index}].key"))?,
                bond: v.bond,
                seats: v
                    .seats
                    .iter()
                    .map(|s| SeatAssignment {
                        shard: s.shard,
                        seat: s.seat,
                    })
                    .collect(),
            })
        })
        .collect()
}

fn allocations(list: &[AllocationToml]) -> Result<Vec<GenesisAllocation>, HexError> {
    list.iter()
        .enumerate()
        .map(|(index, a)| {
            Ok(GenesisAllocation {
                owner: hex_array(&a.owner, &format!("allocations[{index}].owner"))?,
                amount: a.amount,
                outputs: a.outputs,
            })
        })
        .collect()
}

/// Renders a genesis and its note as TOML that [`parse`] reads back.
pub fn render(genesis: &Genesis, note: &[u8]) -> String {
    let p = &genesis.params;
    let mut out = format!(
        "# Phantom-Coin genesis. Every value below is consensus-critical: all\n\
         # validators of a network must hold byte-identical copies.\n\
         [consensus]\n\
         k = {}\n\
         shards = {}\n\
         genesis_note = \"{}\"\n\
         commitment = \"{}\"   # blake3_32(genesis_note)\n\
         coin_round_period = {}\n\
         ancient_window_rounds = {}\n\
         fee_split_pct = {:?}   # base, proposer, performance, attestor\n\
         ack_alpha = {:?}\n\
         ack_distance_max = {}\n\
         maturity_anchors = {:?}\n\
         maturity_tier_bounds = {:?}\n\
         mint_shard = {}\n\
         mint_interval_anchors = {}   # I\n\
         mint_halving_mints = {}   # H\n\
         mint_race_rounds = {}   # W_race\n\
         mint_target_initial = \"{:#x}\"   # T_init\n\
         mint_target_max = \"{:#x}\"   # T_max\n\
         snapshot_interval_rounds = {}   # N_snap\n\
         slash_window_anchors = {}   # W_slash\n\
         slash_cooldown_anchors = {}   # W_cool\n\
         claim_window_anchors = {}   # W_claim\n",
        p.k,
        p.shards,
        to_hex(note),
        to_hex(&genesis.note_commitment),
        p.coin_round_period,
        p.ancient_window_rounds,
        p.fee_split_pct,
        p.ack_alpha,
        p.ack_distance_max,
        p.maturity_anchors,
        p.maturity_tier_bounds,
        p.mint_shard,
        p.mint_interval_anchors,
        p.mint_halving_mints,
        p.mint_race_rounds,
        p.mint_target_initial,
        p.mint_target_max,
        p.snapshot_interval_rounds,
        p.slash_window_anchors,
        p.slash_cooldown_anchors,
        p.claim_window_anchors,
    );
    for validator in &genesis.validators {
        let seats: Vec<String> = validator
            .seats
            .iter()
            .map(|s| format!("{{ shard = {}, seat = {} }}", s.shard, s.seat))
            .collect();
        out += &format!(
            "\n[[validators]]\nkey = \"{}\"\nbond = {}\nseats = [{}]\n",
            to_hex(&validator.key),
            validator.bond,
            seats.join(", ")
        );
    }
    for allocation in &genesis.allocations {
        out += &format!(
            "\n[[allocations]]\nowner = \"{}\"\namount = {}\noutputs = {}\n",
            to_hex(&allocation.owner),
            allocation.amount,
            allocation.outputs
        );
    }
    out
}
