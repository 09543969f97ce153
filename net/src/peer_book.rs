//! The peer book of DESIGN §7: what this node remembers about each peer
//! address across restarts, and the order in which it dials them.
//!
//! Each entry holds the validator key proved by a verified Hello, when the
//! peer was first and last seen, dial attempts, successes and failures, a
//! score and a ban. The caller reports what happened ([`PeerEvent`]) with
//! the current unix time; this module never reads a clock, so the same
//! calls give the same book. It touches the disk only in [`PeerBook::load`]
//! and [`PeerBook::save`].
//!
//! Score: 0..=100, kept in tenths ([`PeerEntry::score_tenths`], 0..=1000)
//! so that the +0.1 of a micro-event batch is exact. A new entry starts at
//! 50; each event adds its delta ([`PeerEvent::score_delta_tenths`]) and the
//! result is clamped to the range.
//!
//! Bans: every [`PeerEvent::ProtocolViolation`] adds one to the entry's
//! violation count; the fifth bans the address for [`BAN_DURATION_S`] (24 h)
//! from that moment and resets the count to zero. The ban is the penalty for
//! those five violations, so after it expires the peer starts a new count
//! (and keeps its lowered score, so it is dialled again only once it scores
//! [`DIAL_MIN_SCORE_TENTHS`] or more). Violations during a ban count too; a
//! fifth one extends the ban to 24 h from then. Nothing else resets the
//! count: successes and good anchors raise the score, not forgive
//! violations. A ban expires by time alone.
//!
//! Bound: at most [`MAX_PEER_ENTRIES`] entries. An event about a new address
//! when the book is full evicts the unbanned entry with the lowest score,
//! among those the one seen longest ago, among those the lowest address. If
//! every entry is banned the new address is not recorded: bans must
//! survive an address flood.
//!
//! Addresses are kept canonical: an IPv4-mapped IPv6 address is the IPv4
//! address (a dual-stack socket reports IPv4 peers that way), and IPv6 flow
//! labels are dropped (they are per packet, not per peer).
//!
//! File format: UTF-8 text, a header line [`FILE_HEADER`], then one line per
//! entry in ascending address order (so equal books give equal files):
//!
//! ```text
//! 10.0.0.1:9000 key=<64 hex digits or -> first_seen_unix_s=N last_seen_unix_s=N last_success_unix_s=<N or -> attempts=N successes=N failures=N score_tenths=N violations=N ban_until_unix_s=<N or ->
//! ```
//!
//! [`PeerBook::save`] writes the whole file to `<name>.tmp` in the same
//! directory, fsyncs it, renames it over the book and fsyncs the directory,
//! so a crash leaves either the old book or the new one, never a mix.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Read, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use pc_codec::ids::to_hex;
use pc_codec::PublicKeyBytes;

/// Most entries in a peer book (and in its file).
pub const MAX_PEER_ENTRIES: usize = 4096;
/// Highest score, in tenths (100.0).
pub const SCORE_MAX_TENTHS: u16 = 1000;
/// Score of a new entry, in tenths (50.0).
pub const SCORE_START_TENTHS: u16 = 500;
/// Lowest score, in tenths, at which [`PeerBook::dial_order`] lists a peer
/// (25.0).
pub const DIAL_MIN_SCORE_TENTHS: u16 = 250;
/// Protocol violations that ban a peer.
pub const VIOLATIONS_PER_BAN: u32 = 5;
/// How long a ban lasts (24 h).
pub const BAN_DURATION_S: u64 = 86_400;
/// First line of a peer book file (format version 1).
pub const FILE_HEADER: &str = "phantom-peer-book v1";

/// Longest entry line: the address (at most 57 bytes for an IPv6 address
/// with a scope id), the 64-digit key and seven 20-digit numbers with the
/// field names come to 405 bytes
/// (`longest_entry_line_fits_max_line_bytes`).
const MAX_LINE_BYTES: usize = 512;
/// Largest file `load` reads, so a damaged or hostile file cannot make it
/// allocate without bound.
const MAX_FILE_BYTES: usize = FILE_HEADER.len() + 1 + MAX_PEER_ENTRIES * (MAX_LINE_BYTES + 1);

/// Something that happened with a peer, reported to [`PeerBook::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerEvent {
    /// The peer was heard from, or its address learnt.
    Seen,
    /// This node started dialling the peer.
    Attempt,
    /// A connection to or from the peer was established (+5).
    Success,
    /// Dialling failed or the connection broke (-2).
    Failure,
    /// The peer's Hello verified against the genesis committee for this key.
    Hello(PublicKeyBytes),
    /// The peer sent an anchor that validated (+1).
    ValidAnchor,
    /// The peer relayed a batch of micro-events (+0.1).
    MicroEventBatch,
    /// The peer sent a well-formed but invalid message (-5).
    InvalidMessage,
    /// The peer broke the protocol (-10; the fifth bans it).
    ProtocolViolation,
}

impl PeerEvent {
    /// The score change of this event, in tenths.
    pub fn score_delta_tenths(&self) -> i32 {
        match self {
            PeerEvent::Seen | PeerEvent::Attempt | PeerEvent::Hello(_) => 0,
            PeerEvent::Success => 50,
            PeerEvent::Failure => -20,
            PeerEvent::ValidAnchor => 10,
            PeerEvent::MicroEventBatch => 1,
            PeerEvent::InvalidMessage => -50,
            PeerEvent::ProtocolViolation => -100,
        }
    }

    /// Whether the event shows the peer is there: all but our own dial
    /// attempt and its failure.
    fn peer_was_heard(&self) -> bool {
        !matches!(self, PeerEvent::Attempt | PeerEvent::Failure)
    }
}

/// What the book knows about one address. Read-only outside this module:
/// [`PeerBook::record`] keeps its invariants (score at most
/// [`SCORE_MAX_TENTHS`], violations below [`VIOLATIONS_PER_BAN`], first
/// seen no later than last seen).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerEntry {
    /// The validator key of the last verified Hello from this address.
    pub validator_key: Option<PublicKeyBytes>,
    /// When the entry was created (unix seconds).
    pub first_seen_unix_s: u64,
    /// When the peer was last heard from, or the entry created if never
    /// (unix seconds).
    pub last_seen_unix_s: u64,
    /// When the last connection succeeded (unix seconds).
    pub last_success_unix_s: Option<u64>,
    /// Dial attempts.
    pub attempts: u64,
    /// Connections established.
    pub successes: u64,
    /// Dials failed or connections broken.
    pub failures: u64,
    /// Score in tenths, `0..=SCORE_MAX_TENTHS`.
    pub score_tenths: u16,
    /// Protocol violations since the last ban (or since the entry was
    /// created), `0..VIOLATIONS_PER_BAN`.
    pub violations: u32,
    /// End of the last ban (unix seconds); banned while `now` is before it.
    pub ban_until_unix_s: Option<u64>,
}

impl PeerEntry {
    fn new(now_unix_s: u64) -> PeerEntry {
        PeerEntry {
            validator_key: None,
            first_seen_unix_s: now_unix_s,
            last_seen_unix_s: now_unix_s,
            last_success_unix_s: None,
            attempts: 0,
            successes: 0,
            failures: 0,
            score_tenths: SCORE_START_TENTHS,
            violations: 0,
            ban_until_unix_s: None,
        }
    }

    /// Whether the entry is banned at `now_unix_s`.
    pub fn is_banned(&self, now_unix_s: u64) -> bool {
        self.ban_until_unix_s
            .is_some_and(|until_unix_s| now_unix_s < until_unix_s)
    }

    fn apply(&mut self, event: PeerEvent, now_unix_s: u64) {
        if event.peer_was_heard() {
            self.last_seen_unix_s = self.last_seen_unix_s.max(now_unix_s);
        }
        match event {
            PeerEvent::Seen
            | PeerEvent::ValidAnchor
            | PeerEvent::MicroEventBatch
            | PeerEvent::InvalidMessage => {}
            PeerEvent::Attempt => self.attempts = self.attempts.saturating_add(1),
            PeerEvent::Success => {
                self.successes = self.successes.saturating_add(1);
                let latest_unix_s = self
                    .last_success_unix_s
                    .map_or(now_unix_s, |last_unix_s| last_unix_s.max(now_unix_s));
                self.last_success_unix_s = Some(latest_unix_s);
            }
            PeerEvent::Failure => self.failures = self.failures.saturating_add(1),
            PeerEvent::Hello(key) => self.validator_key = Some(key),
            PeerEvent::ProtocolViolation => {
                self.violations += 1;
                if self.violations == VIOLATIONS_PER_BAN {
                    let until_unix_s = now_unix_s.saturating_add(BAN_DURATION_S);
                    self.ban_until_unix_s = Some(
                        self.ban_until_unix_s
                            .map_or(until_unix_s, |previous_unix_s| {
                                previous_unix_s.max(until_unix_s)
                            }),
                    );
                    self.violations = 0;
                }
            }
        }
        self.score_tenths = add_score_tenths(self.score_tenths, event.score_delta_tenths());
        assert!(self.score_tenths <= SCORE_MAX_TENTHS);
        assert!(self.violations < VIOLATIONS_PER_BAN);
        assert!(self.first_seen_unix_s <= self.last_seen_unix_s);
    }
}

/// `score_tenths + delta_tenths`, clamped to `0..=SCORE_MAX_TENTHS`.
fn add_score_tenths(score_tenths: u16, delta_tenths: i32) -> u16 {
    let sum_tenths = (i32::from(score_tenths) + delta_tenths).clamp(0, i32::from(SCORE_MAX_TENTHS));
    u16::try_from(sum_tenths).expect("clamped to 0..=SCORE_MAX_TENTHS")
}

/// The canonical form of an address, the book's key: an IPv4-mapped IPv6
/// address becomes the IPv4 address, and an IPv6 flow label is dropped.
fn canonical_addr(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => addr,
        SocketAddr::V6(mut v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => {
                v6.set_flowinfo(0);
                SocketAddr::V6(v6)
            }
        },
    }
}

/// A peer book that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PeerBookError {
    /// The path names no file (it ends in `..` or is a root).
    #[error("peer book {}: not a file path", path.display())]
    NotAFilePath {
        /// The path given.
        path: PathBuf,
    },
    /// A file system operation failed.
    #[error("peer book {}: {action}: {source}", path.display())]
    Io {
        /// The file or directory operated on.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The file is larger than any book this module writes.
    #[error("peer book {}: larger than {limit_bytes} bytes", path.display())]
    TooLarge {
        /// The book's file.
        path: PathBuf,
        /// The largest file accepted.
        limit_bytes: usize,
    },
    /// A line of the file does not parse or breaks an invariant.
    #[error("peer book {}: line {line}: {reason}", path.display())]
    Corrupt {
        /// The book's file.
        path: PathBuf,
        /// The line, counting from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// The peer book: the entries, by canonical address, and the file they are
/// saved to.
#[derive(Debug, Clone)]
pub struct PeerBook {
    path: PathBuf,
    entries: BTreeMap<SocketAddr, PeerEntry>,
}

impl PeerBook {
    /// An empty book that will be saved at `path` (nothing is read).
    pub fn empty(path: impl AsRef<Path>) -> PeerBook {
        PeerBook {
            path: path.as_ref().to_path_buf(),
            entries: BTreeMap::new(),
        }
    }

    /// Reads the book saved at `path`; a missing file is an empty book.
    pub fn load(path: impl AsRef<Path>) -> Result<PeerBook, PeerBookError> {
        let path = path.as_ref().to_path_buf();
        if path.file_name().is_none() {
            return Err(PeerBookError::NotAFilePath { path });
        }
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Ok(PeerBook {
                    path,
                    entries: BTreeMap::new(),
                })
            }
            Err(source) => return Err(io_error(&path, "opening", source)),
        };
        let mut bytes = Vec::new();
        let limit_bytes = MAX_FILE_BYTES;
        file.take(u64::try_from(limit_bytes).expect("usize fits u64") + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| io_error(&path, "reading", source))?;
        if bytes.len() > limit_bytes {
            return Err(PeerBookError::TooLarge { path, limit_bytes });
        }
        match parse_book(&bytes) {
            Ok(entries) => Ok(PeerBook { path, entries }),
            Err((line, reason)) => Err(PeerBookError::Corrupt { path, line, reason }),
        }
    }

    /// Writes the book to its file atomically: a crash leaves the old file
    /// or the new one.
    pub fn save(&self) -> Result<(), PeerBookError> {
        write_atomically(&self.path, self.to_text().as_bytes())
    }

    /// What [`PeerBook::save`] would write, to be written elsewhere (a
    /// node's cores hand it to a writer thread with [`BookSave::write`],
    /// so no core waits for a disk).
    pub fn snapshot(&self) -> BookSave {
        BookSave {
            path: self.path.clone(),
            text: self.to_text().into_bytes(),
        }
    }

    /// Records `event` about `addr` at `now_unix_s`, creating the entry if
    /// the address is new (see the module doc for eviction when full).
    /// Events about a banned address count like any other.
    pub fn record(&mut self, addr: SocketAddr, event: PeerEvent, now_unix_s: u64) {
        let addr = canonical_addr(addr);
        if !self.entries.contains_key(&addr) && !self.make_room(now_unix_s) {
            return;
        }
        self.entries
            .entry(addr)
            .or_insert_with(|| PeerEntry::new(now_unix_s))
            .apply(event, now_unix_s);
        assert!(self.entries.len() <= MAX_PEER_ENTRIES);
    }

    /// Whether `addr` is banned at `now_unix_s` (an unknown address is not).
    pub fn is_banned(&self, addr: SocketAddr, now_unix_s: u64) -> bool {
        self.get(addr)
            .is_some_and(|entry| entry.is_banned(now_unix_s))
    }

    /// The addresses worth dialling at `now_unix_s`: unbanned, scoring at
    /// least [`DIAL_MIN_SCORE_TENTHS`], best score first, then the most
    /// recent success (never last), then the lowest address.
    pub fn dial_order(&self, now_unix_s: u64) -> Vec<SocketAddr> {
        let mut candidates: Vec<(&SocketAddr, &PeerEntry)> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                !entry.is_banned(now_unix_s) && entry.score_tenths >= DIAL_MIN_SCORE_TENTHS
            })
            .collect();
        candidates.sort_by_key(|&(addr, entry)| {
            (
                Reverse(entry.score_tenths),
                Reverse(entry.last_success_unix_s),
                *addr,
            )
        });
        candidates.into_iter().map(|(addr, _)| *addr).collect()
    }

    /// The entry of `addr`, if the book has one.
    pub fn get(&self, addr: SocketAddr) -> Option<&PeerEntry> {
        self.entries.get(&canonical_addr(addr))
    }

    /// Entries banned at `now_unix_s`.
    pub fn banned_count(&self, now_unix_s: u64) -> usize {
        self.entries
            .values()
            .filter(|entry| entry.is_banned(now_unix_s))
            .count()
    }

    /// Number of entries, at most [`MAX_PEER_ENTRIES`].
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the book has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The file the book loads from and saves to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees a slot for a new address if the book is full; false if every
    /// entry is banned, so none may go.
    fn make_room(&mut self, now_unix_s: u64) -> bool {
        if self.entries.len() < MAX_PEER_ENTRIES {
            return true;
        }
        let victim = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.is_banned(now_unix_s))
            .min_by_key(|&(addr, entry)| (entry.score_tenths, entry.last_seen_unix_s, *addr))
            .map(|(addr, _)| *addr);
        match victim {
            Some(addr) => {
                self.entries.remove(&addr);
                true
            }
            None => false,
        }
    }

    /// The file text: the header, then one line per entry by address.
    fn to_text(&self) -> String {
        let mut text = String::with_capacity((self.entries.len() + 1) * MAX_LINE_BYTES / 2);
        text.push_str(FILE_HEADER);
        text.push('\n');
        for (addr, entry) in &self.entries {
            let line_start = text.len();
            write_entry_line(&mut text, addr, entry);
            assert!(text.len() - line_start <= MAX_LINE_BYTES);
            text.push('\n');
        }
        text
    }
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> PeerBookError {
    PeerBookError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn write_entry_line(text: &mut String, addr: &SocketAddr, entry: &PeerEntry) {
    let key = entry
        .validator_key
        .map_or_else(|| "-".to_string(), |key| to_hex(&key));
    let optional = |value: Option<u64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    write!(
        text,
        "{addr} key={key} first_seen_unix_s={} last_seen_unix_s={} last_success_unix_s={} \
         attempts={} successes={} failures={} score_tenths={} violations={} ban_until_unix_s={}",
        entry.first_seen_unix_s,
        entry.last_seen_unix_s,
        optional(entry.last_success_unix_s),
        entry.attempts,
        entry.successes,
        entry.failures,
        entry.score_tenths,
        entry.violations,
        optional(entry.ban_until_unix_s),
    )
    .expect("writing to a String cannot fail");
}

/// Parses a whole file; an error carries the 1-based line and the reason.
fn parse_book(bytes: &[u8]) -> Result<BTreeMap<SocketAddr, PeerEntry>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|error| {
        let valid = &bytes[..error.valid_up_to()];
        let line = valid.iter().filter(|&&byte| byte == b'\n').count() + 1;
        (line, "not UTF-8".to_string())
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line));
    match lines.next() {
        Some((_, FILE_HEADER)) => {}
        Some((line, found)) => {
            return Err((
                line,
                format!(
                    "expected header {FILE_HEADER:?}, found {:?}",
                    excerpt(found)
                ),
            ))
        }
        None => return Err((1, format!("empty file, expected header {FILE_HEADER:?}"))),
    }
    let mut entries = BTreeMap::new();
    for (line, line_text) in lines {
        let (addr, entry) = parse_entry_line(line_text).map_err(|reason| (line, reason))?;
        if entries.len() == MAX_PEER_ENTRIES {
            return Err((line, format!("more than {MAX_PEER_ENTRIES} entries")));
        }
        if entries.insert(addr, entry).is_some() {
            return Err((line, format!("{addr} listed twice")));
        }
    }
    Ok(entries)
}

fn parse_entry_line(line: &str) -> Result<(SocketAddr, PeerEntry), String> {
    let mut tokens = line.split_ascii_whitespace();
    let addr_text = tokens
        .next()
        .ok_or_else(|| "empty line, expected an entry".to_string())?;
    let addr: SocketAddr = addr_text
        .parse()
        .map_err(|_| format!("bad address {:?}", excerpt(addr_text)))?;
    let mut fields = Fields(tokens);
    let entry = PeerEntry {
        validator_key: fields.optional("key", parse_key)?,
        first_seen_unix_s: fields.required("first_seen_unix_s", parse_u64)?,
        last_seen_unix_s: fields.required("last_seen_unix_s", parse_u64)?,
        last_success_unix_s: fields.optional("last_success_unix_s", parse_u64)?,
        attempts: fields.required("attempts", parse_u64)?,
        successes: fields.required("successes", parse_u64)?,
        failures: fields.required("failures", parse_u64)?,
        score_tenths: fields.required("score_tenths", parse_u16)?,
        violations: fields.required("violations", parse_u32)?,
        ban_until_unix_s: fields.optional("ban_until_unix_s", parse_u64)?,
    };
    if let Some(extra) = fields.0.next() {
        return Err(format!(
            "unexpected {:?} after the last field",
            excerpt(extra)
        ));
    }
    if entry.score_tenths > SCORE_MAX_TENTHS {
        return Err(format!("score_tenths above {SCORE_MAX_TENTHS}"));
    }
    if entry.violations >= VIOLATIONS_PER_BAN {
        return Err(format!("violations not below {VIOLATIONS_PER_BAN}"));
    }
    if entry.first_seen_unix_s > entry.last_seen_unix_s {
        return Err("first_seen_unix_s after last_seen_unix_s".to_string());
    }
    Ok((canonical_addr(addr), entry))
}

/// The `name=value` fields of an entry line, in their fixed order.
struct Fields<'a>(std::str::SplitAsciiWhitespace<'a>);

impl Fields<'_> {
    fn value(&mut self, name: &str) -> Result<&str, String> {
        let token = self
            .0
            .next()
            .ok_or_else(|| format!("missing field {name}"))?;
        token
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
            .ok_or_else(|| format!("expected field {name}, found {:?}", excerpt(token)))
    }

    fn required<T>(&mut self, name: &str, parse: fn(&str) -> Option<T>) -> Result<T, String> {
        let value = self.value(name)?;
        parse(value).ok_or_else(|| format!("bad {name} {:?}", excerpt(value)))
    }

    /// A field that is `-` when absent.
    fn optional<T>(
        &mut self,
        name: &str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<Option<T>, String> {
        let value = self.value(name)?;
        if value == "-" {
            return Ok(None);
        }
        parse(value)
            .map(Some)
            .ok_or_else(|| format!("bad {name} {:?}", excerpt(value)))
    }
}

/// Decimal digits only (`str::parse` would also take a leading `+`).
fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_u32(text: &str) -> Option<u32> {
    parse_u64(text).and_then(|value| u32::try_from(value).ok())
}

fn parse_u16(text: &str) -> Option<u16> {
    parse_u64(text).and_then(|value| u16::try_from(value).ok())
}

/// 64 lower-case hex digits, as `to_hex` writes them.
fn parse_key(text: &str) -> Option<PublicKeyBytes> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (byte, pair) in key.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
    }
    Some(key)
}

fn hex_digit(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// At most 40 characters of `text`, for error messages.
fn excerpt(text: &str) -> &str {
    text.char_indices()
        .nth(40)
        .map_or(text, |(end, _)| &text[..end])
}

/// The temporary file `save` writes before renaming: `<name>.tmp` beside
/// the book, so the rename stays within one file system.
fn temp_path_of(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .expect("load checked the path names a file")
        .to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A peer book's saved form and its file, taken by [`PeerBook::snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookSave {
    /// The book's file.
    pub path: PathBuf,
    /// Its contents.
    pub text: Vec<u8>,
}

impl BookSave {
    /// Writes the book to its file atomically, as [`PeerBook::save`] does.
    pub fn write(&self) -> Result<(), PeerBookError> {
        write_atomically(&self.path, &self.text)
    }
}

/// Replaces `path` by `bytes`: write and fsync a temporary file beside it,
/// rename it over `path`, fsync the directory. On failure before the rename
/// `path` is untouched and the temporary file is removed if possible.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PeerBookError> {
    let temp_path = temp_path_of(path);
    let written = write_and_sync(&temp_path, bytes).and_then(|()| {
        fs::rename(&temp_path, path).map_err(|source| io_error(path, "renaming over", source))
    });
    if let Err(error) = written {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&temp_path);
        return Err(error);
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory_file| directory_file.sync_all())
        .map_err(|source| io_error(directory, "syncing the directory", source))
}

fn write_and_sync(temp_path: &Path, bytes: &[u8]) -> Result<(), PeerBookError> {
    let mut file = File::create(temp_path)
        .map_err(|source| io_error(temp_path, "creating the temporary file", source))?;
    file.write_all(bytes)
        .map_err(|source| io_error(temp_path, "writing the temporary file", source))?;
    file.sync_all()
        .map_err(|source| io_error(temp_path, "syncing the temporary file", source))
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV6};

    use super::*;

    const T0: u64 = 1_700_000_000;

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
    }

    fn empty_book(directory: &Path) -> PeerBook {
        PeerBook::load(directory.join("peers")).expect("missing file loads empty")
    }

    fn score(book: &PeerBook, addr: SocketAddr) -> u16 {
        book.get(addr).expect("entry").score_tenths
    }

    fn record_n(book: &mut PeerBook, addr: SocketAddr, event: PeerEvent, n: usize, now: u64) {
        for _ in 0..n {
            book.record(addr, event, now);
        }
    }

    #[test]
    fn score_starts_at_50_and_moves_by_the_design_deltas() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        book.record(peer, PeerEvent::Seen, T0);
        assert_eq!(score(&book, peer), 500);
        let steps = [
            (PeerEvent::Success, 550),
            (PeerEvent::Failure, 530),
            (PeerEvent::ValidAnchor, 540),
            (PeerEvent::MicroEventBatch, 541),
            (PeerEvent::InvalidMessage, 491),
            (PeerEvent::ProtocolViolation, 391),
            (PeerEvent::Attempt, 391),
            (PeerEvent::Hello([7; 32]), 391),
            (PeerEvent::Seen, 391),
        ];
        for (event, expected_tenths) in steps {
            book.record(peer, event, T0);
            assert_eq!(score(&book, peer), expected_tenths, "after {event:?}");
        }
    }

    #[test]
    fn ten_micro_event_batches_add_exactly_one_point() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        record_n(&mut book, peer, PeerEvent::MicroEventBatch, 10, T0);
        assert_eq!(score(&book, peer), 510);
    }

    #[test]
    fn score_clamps_at_100_and_at_0() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        record_n(&mut book, peer, PeerEvent::Success, 11, T0);
        assert_eq!(score(&book, peer), SCORE_MAX_TENTHS);
        book.record(peer, PeerEvent::Failure, T0);
        assert_eq!(score(&book, peer), 980, "clamped, not saturated past 100");
        record_n(&mut book, peer, PeerEvent::InvalidMessage, 20, T0);
        assert_eq!(score(&book, peer), 0);
        book.record(peer, PeerEvent::MicroEventBatch, T0);
        assert_eq!(score(&book, peer), 1, "clamped, not wrapped below 0");
    }

    #[test]
    fn counters_key_and_seen_times_follow_the_events() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        book.record(peer, PeerEvent::Attempt, T0);
        book.record(peer, PeerEvent::Failure, T0 + 5);
        let entry = book.get(peer).unwrap();
        assert_eq!((entry.attempts, entry.failures), (1, 1));
        assert_eq!(entry.first_seen_unix_s, T0);
        assert_eq!(
            entry.last_seen_unix_s, T0,
            "our own dial is not hearing the peer"
        );
        book.record(peer, PeerEvent::Attempt, T0 + 10);
        book.record(peer, PeerEvent::Success, T0 + 11);
        book.record(peer, PeerEvent::Hello([9; 32]), T0 + 12);
        book.record(peer, PeerEvent::Seen, T0 + 3);
        let entry = book.get(peer).unwrap();
        assert_eq!((entry.attempts, entry.successes), (2, 1));
        assert_eq!(entry.last_success_unix_s, Some(T0 + 11));
        assert_eq!(entry.validator_key, Some([9; 32]));
        assert_eq!(
            entry.last_seen_unix_s,
            T0 + 12,
            "an earlier time never moves it back"
        );
    }

    #[test]
    fn five_violations_ban_for_24_hours_then_the_ban_expires() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        record_n(&mut book, peer, PeerEvent::ProtocolViolation, 4, T0);
        assert!(!book.is_banned(peer, T0));
        assert_eq!(book.get(peer).unwrap().violations, 4);
        book.record(peer, PeerEvent::ProtocolViolation, T0 + 100);
        let entry = book.get(peer).unwrap();
        assert_eq!(entry.ban_until_unix_s, Some(T0 + 100 + BAN_DURATION_S));
        assert_eq!(entry.violations, 0, "the ban resets the count");
        assert!(book.is_banned(peer, T0 + 100));
        assert!(book.is_banned(peer, T0 + 100 + BAN_DURATION_S - 1));
        assert!(!book.is_banned(peer, T0 + 100 + BAN_DURATION_S));
        assert!(!book.is_banned(v4(2, 9000), T0), "unknown address");
    }

    #[test]
    fn after_an_expired_ban_it_takes_five_new_violations_to_ban_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        record_n(&mut book, peer, PeerEvent::ProtocolViolation, 5, T0);
        let later = T0 + BAN_DURATION_S;
        record_n(&mut book, peer, PeerEvent::ProtocolViolation, 4, later);
        assert!(!book.is_banned(peer, later));
        book.record(peer, PeerEvent::ProtocolViolation, later);
        assert!(book.is_banned(peer, later + BAN_DURATION_S - 1));
    }

    #[test]
    fn invalid_messages_lower_the_score_but_never_ban() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let peer = v4(1, 9000);
        record_n(&mut book, peer, PeerEvent::InvalidMessage, 6, T0);
        assert!(!book.is_banned(peer, T0));
        assert_eq!(book.get(peer).unwrap().violations, 0);
    }

    #[test]
    fn dial_order_excludes_banned_and_low_score_peers() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let (good, banned, at_threshold, below) = (v4(1, 1), v4(2, 1), v4(3, 1), v4(4, 1));
        book.record(good, PeerEvent::Seen, T0);
        record_n(&mut book, banned, PeerEvent::Success, 10, T0);
        record_n(&mut book, banned, PeerEvent::ProtocolViolation, 5, T0);
        assert_eq!(score(&book, banned), 500, "still scores 50");
        record_n(&mut book, at_threshold, PeerEvent::InvalidMessage, 5, T0);
        assert_eq!(score(&book, at_threshold), 250);
        record_n(&mut book, below, PeerEvent::InvalidMessage, 5, T0);
        book.record(below, PeerEvent::Failure, T0);
        assert_eq!(score(&book, below), 230);
        assert_eq!(book.dial_order(T0), vec![good, at_threshold]);
        assert_eq!(
            book.dial_order(T0 + BAN_DURATION_S),
            vec![banned, good, at_threshold],
            "the expired ban makes it a candidate again"
        );
    }

    #[test]
    fn dial_order_is_best_first_then_latest_success_then_address_whatever_the_insertion_order() {
        let best = v4(9, 1);
        let recent_success = v4(5, 1);
        let older_success = v4(4, 1);
        let never_low_address = v4(1, 1);
        let never_high_address = v4(2, 1);
        let script: Vec<(SocketAddr, PeerEvent, u64)> = vec![
            (best, PeerEvent::Success, T0),
            (best, PeerEvent::ValidAnchor, T0),
            (recent_success, PeerEvent::Success, T0 + 20),
            (recent_success, PeerEvent::Failure, T0 + 21),
            (recent_success, PeerEvent::Failure, T0 + 21),
            (older_success, PeerEvent::Success, T0 + 10),
            (older_success, PeerEvent::InvalidMessage, T0 + 10),
            (never_high_address, PeerEvent::Seen, T0),
            (never_low_address, PeerEvent::Seen, T0),
        ];
        let expected = vec![
            best,
            recent_success,
            older_success,
            never_low_address,
            never_high_address,
        ];
        for reversed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut book = empty_book(dir.path());
            let mut events = script.clone();
            if reversed {
                events.reverse();
            }
            for (addr, event, now) in events {
                book.record(addr, event, now);
            }
            assert_eq!(book.dial_order(T0 + 30), expected, "reversed: {reversed}");
        }
    }

    #[test]
    fn ipv4_mapped_and_flow_labelled_addresses_share_the_canonical_entry() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let plain = v4(1, 9000);
        let mapped = SocketAddr::new(
            IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped()),
            9000,
        );
        book.record(plain, PeerEvent::Seen, T0);
        book.record(mapped, PeerEvent::Success, T0);
        let v6_ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
        book.record(
            SocketAddr::V6(SocketAddrV6::new(v6_ip, 9000, 0, 0)),
            PeerEvent::Seen,
            T0,
        );
        book.record(
            SocketAddr::V6(SocketAddrV6::new(v6_ip, 9000, 77, 0)),
            PeerEvent::Success,
            T0,
        );
        assert_eq!(book.len(), 2);
        assert_eq!(score(&book, plain), 550);
        assert_eq!(score(&book, SocketAddr::new(IpAddr::V6(v6_ip), 9000)), 550);
    }

    #[test]
    fn longest_entry_line_fits_max_line_bytes() {
        let longest: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff%4294967295]:65535"
            .parse()
            .unwrap();
        let entry = PeerEntry {
            validator_key: Some([0xff; 32]),
            first_seen_unix_s: u64::MAX,
            last_seen_unix_s: u64::MAX,
            last_success_unix_s: Some(u64::MAX),
            attempts: u64::MAX,
            successes: u64::MAX,
            failures: u64::MAX,
            score_tenths: SCORE_MAX_TENTHS,
            violations: VIOLATIONS_PER_BAN - 1,
            ban_until_unix_s: Some(u64::MAX),
        };
        let mut line = String::new();
        write_entry_line(&mut line, &longest, &entry);
        assert_eq!(line.len(), 405);
        assert!(line.len() <= MAX_LINE_BYTES);
        assert_eq!(parse_entry_line(&line), Ok((longest, entry)));
    }

    #[test]
    fn missing_file_loads_as_an_empty_book() {
        let dir = tempfile::tempdir().unwrap();
        let book = PeerBook::load(dir.path().join("absent")).unwrap();
        assert!(book.is_empty());
        assert_eq!(book.path(), dir.path().join("absent"));
    }

    #[test]
    fn save_then_load_round_trips_every_field_in_address_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        let scoped: SocketAddr = "[fe80::1%3]:9001".parse().unwrap();
        book.record(v4(2, 9000), PeerEvent::Seen, T0);
        book.record(scoped, PeerEvent::Attempt, T0);
        book.record(scoped, PeerEvent::Success, T0 + 1);
        book.record(scoped, PeerEvent::Hello([0xab; 32]), T0 + 2);
        book.record(scoped, PeerEvent::MicroEventBatch, T0 + 3);
        record_n(&mut book, v4(1, 9000), PeerEvent::ProtocolViolation, 6, T0);
        book.save().unwrap();

        let text = fs::read_to_string(book.path()).unwrap();
        let expected = format!(
            "{FILE_HEADER}\n\
             10.0.0.1:9000 key=- first_seen_unix_s={T0} last_seen_unix_s={T0} last_success_unix_s=- attempts=0 successes=0 failures=0 score_tenths=0 violations=1 ban_until_unix_s={ban}\n\
             10.0.0.2:9000 key=- first_seen_unix_s={T0} last_seen_unix_s={T0} last_success_unix_s=- attempts=0 successes=0 failures=0 score_tenths=500 violations=0 ban_until_unix_s=-\n\
             [fe80::1%3]:9001 key={key} first_seen_unix_s={T0} last_seen_unix_s={last} last_success_unix_s={success} attempts=1 successes=1 failures=0 score_tenths=551 violations=0 ban_until_unix_s=-\n",
            ban = T0 + BAN_DURATION_S,
            key = "ab".repeat(32),
            last = T0 + 3,
            success = T0 + 1,
        );
        assert_eq!(text, expected);

        let loaded = PeerBook::load(book.path()).unwrap();
        assert_eq!(loaded.entries, book.entries);
        loaded.save().unwrap();
        assert_eq!(fs::read_to_string(book.path()).unwrap(), expected);
        assert!(
            !temp_path_of(book.path()).exists(),
            "no temporary file left"
        );
    }

    #[test]
    fn a_corrupt_line_is_an_error_naming_the_path_and_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        book.record(v4(1, 9000), PeerEvent::Seen, T0);
        book.record(v4(2, 9000), PeerEvent::Seen, T0);
        book.save().unwrap();
        let text = fs::read_to_string(book.path()).unwrap();
        let damaged = text.replacen("score_tenths=500", "score_tenths=5x0", 2);
        let damaged = damaged.replacen("score_tenths=5x0", "score_tenths=500", 1);
        fs::write(book.path(), damaged).unwrap();
        let error = PeerBook::load(book.path()).unwrap_err();
        assert!(
            matches!(error, PeerBookError::Corrupt { line: 3, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("peer book {}: line 3:", book.path().display())),
            "{message}"
        );
        assert!(message.contains("score_tenths"), "{message}");
    }

    #[test]
    fn damaged_files_are_rejected_with_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers");
        let entry = "10.0.0.1:1 key=- first_seen_unix_s=1 last_seen_unix_s=2 last_success_unix_s=- \
                     attempts=0 successes=0 failures=0 score_tenths=500 violations=0 ban_until_unix_s=-";
        let cases: Vec<(Vec<u8>, usize)> = vec![
            (Vec::new(), 1),
            (b"phantom-peer-book v2\n".to_vec(), 1),
            (format!("{FILE_HEADER}\n{entry}\n{entry}\n").into_bytes(), 3),
            (format!("{FILE_HEADER}\n{entry} extra=1\n").into_bytes(), 2),
            (format!("{FILE_HEADER}\n\n").into_bytes(), 2),
            (
                format!("{FILE_HEADER}\n{}\n", entry.replace("=500", "=1001")).into_bytes(),
                2,
            ),
            (
                format!(
                    "{FILE_HEADER}\n{}\n",
                    entry.replace("violations=0", "violations=5")
                )
                .into_bytes(),
                2,
            ),
            (
                format!(
                    "{FILE_HEADER}\n{}\n",
                    entry.replace("last_seen_unix_s=2", "last_seen_unix_s=0")
                )
                .into_bytes(),
                2,
            ),
            (
                format!("{FILE_HEADER}\n{}\n", entry.replace("key=-", "key=+1")).into_bytes(),
                2,
            ),
            (
                format!(
                    "{FILE_HEADER}\n{}\n",
                    entry.replace("attempts=0", "attempts=+1")
                )
                .into_bytes(),
                2,
            ),
            (
                format!("{FILE_HEADER}\n{}\n", entry.replace(" failures=0", "")).into_bytes(),
                2,
            ),
            (
                [format!("{FILE_HEADER}\n{entry}\n").as_bytes(), b"\xff\n"].concat(),
                3,
            ),
        ];
        for (bytes, line) in cases {
            fs::write(&path, &bytes).unwrap();
            match PeerBook::load(&path) {
                Err(PeerBookError::Corrupt { line: found, .. }) => {
                    assert_eq!(found, line, "{:?}", String::from_utf8_lossy(&bytes));
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&bytes)),
            }
        }
    }

    #[test]
    fn an_oversized_file_is_rejected_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers");
        fs::write(&path, vec![b'x'; MAX_FILE_BYTES + 1]).unwrap();
        assert!(matches!(
            PeerBook::load(&path),
            Err(PeerBookError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_failed_temporary_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let mut book = empty_book(dir.path());
        book.record(v4(1, 9000), PeerEvent::Seen, T0);
        book.save().unwrap();
        let old_text = fs::read_to_string(book.path()).unwrap();

        // A directory where the temporary file goes makes creating it fail,
        // even for root.
        let temp_path = temp_path_of(book.path());
        fs::create_dir(&temp_path).unwrap();
        book.record(v4(2, 9000), PeerEvent::Seen, T0);
        let error = book.save().unwrap_err();
        assert!(
            matches!(&error, PeerBookError::Io { path, .. } if *path == temp_path),
            "{error:?}"
        );
        assert_eq!(fs::read_to_string(book.path()).unwrap(), old_text);
        assert_eq!(PeerBook::load(book.path()).unwrap().len(), 1);

        fs::remove_dir(&temp_path).unwrap();
        book.save().unwrap();
        assert_eq!(PeerBook::load(book.path()).unwrap().len(), 2);
    }

    /// A full book where entry `i` (address 10.x.y.z:1) has score 50 and
    /// was last seen at `T0 + i`.
    fn full_book(directory: &Path) -> (PeerBook, Vec<SocketAddr>) {
        let mut book = empty_book(directory);
        let addrs: Vec<SocketAddr> = (0..MAX_PEER_ENTRIES)
            .map(|i| {
                let [_, b, c, d] = u32::try_from(i).unwrap().to_be_bytes();
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), 1)
            })
            .collect();
        for (i, addr) in addrs.iter().enumerate() {
            book.record(*addr, PeerEvent::Seen, T0 + i as u64);
        }
        assert_eq!(book.len(), MAX_PEER_ENTRIES);
        (book, addrs)
    }

    #[test]
    fn a_full_book_evicts_the_lowest_scored_then_oldest_seen_unbanned_entry() {
        let dir = tempfile::tempdir().unwrap();
        let (mut book, addrs) = full_book(dir.path());
        let now = T0 + 10_000;
        // addrs[0] is the oldest but banned; addrs[1] is older than addrs[3]
        // but scores more; addrs[2] and addrs[3] both score lowest and
        // addrs[2] was seen longer ago.
        record_n(&mut book, addrs[0], PeerEvent::ProtocolViolation, 5, T0);
        book.record(addrs[1], PeerEvent::ValidAnchor, T0 + 1);
        book.record(addrs[2], PeerEvent::Failure, now);
        book.record(addrs[3], PeerEvent::Failure, now);
        let newcomer = v4(200, 2);
        book.record(newcomer, PeerEvent::Seen, now);
        assert_eq!(book.len(), MAX_PEER_ENTRIES);
        assert!(book.get(addrs[2]).is_none(), "lowest score, oldest seen");
        assert!(book.get(newcomer).is_some());
        for kept in [addrs[0], addrs[1], addrs[3]] {
            assert!(book.get(kept).is_some(), "{kept}");
        }
        book.record(v4(201, 2), PeerEvent::Seen, now);
        assert!(book.get(addrs[3]).is_none(), "next lowest score");
        book.record(v4(202, 2), PeerEvent::Seen, now);
        assert!(book.get(addrs[0]).is_some(), "banned entries stay");
        assert!(book.get(addrs[4]).is_none(), "then the oldest seen at 50");
    }

    #[test]
    fn a_full_book_of_banned_peers_does_not_record_a_newcomer() {
        let dir = tempfile::tempdir().unwrap();
        let (mut book, addrs) = full_book(dir.path());
        for addr in &addrs {
            record_n(&mut book, *addr, PeerEvent::ProtocolViolation, 5, T0);
        }
        let newcomer = v4(200, 2);
        book.record(newcomer, PeerEvent::Seen, T0);
        assert!(book.get(newcomer).is_none());
        assert_eq!(book.len(), MAX_PEER_ENTRIES);
        book.record(newcomer, PeerEvent::Seen, T0 + BAN_DURATION_S);
        assert!(book.get(newcomer).is_some(), "expired bans can be evicted");
    }
}
