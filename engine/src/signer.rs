//! The signer role (`phantom-engine signer`, DESIGN §1, seed t9): a
//! validator key held in its own process, answering over a local Unix
//! socket. It signs only
//!
//! * own anchor headers — one header per (shard, seat, seq), where the key
//!   holds that seat and the header keeps every stateless rule of DESIGN
//!   §3.3 (a node cannot have it sign a slashable header): a repeat of the same header gets the very signature
//!   it got before (BIP-340 signatures vary with the auxiliary randomness,
//!   and two signatures of one header are two anchor ids: a fork, DESIGN
//!   §4), a different header at a used seq or below the highest is refused;
//! * checkpoint ids — one per (shard, round) of its shards, the same rule;
//! * the node's TLS binding (`derive("tls-binding", SPKI || network)`),
//!
//! and refuses anything else. Each decision is appended to its state file
//! and synced (`fdatasync`) before the answer leaves: its high-water marks
//! survive its own crash, so even a node restored from an old backup
//! cannot make it equivocate.
//!
//! Wire: each request and answer is a frame, a u32 little-endian length
//! (at most [`MAX_SIGNER_FRAME`]) and a body whose first byte is the kind.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pc_codec::cross::Checkpoint;
use pc_codec::genesis::Genesis;
use pc_codec::ids::{context, derive, to_hex};
use pc_codec::wire::{Decode, Encode, Reader};
use pc_codec::{AnchorHeader, Hash32, PublicKeyBytes, SignatureBytes, SigningKey};

/// Largest frame either side sends.
pub const MAX_SIGNER_FRAME: usize = 16 << 10;
/// Checkpoint rounds remembered per shard; a round below them is refused.
pub const SIGNER_CHECKPOINT_ROUNDS: usize = 4_096;

const ASK_PUBLIC_KEY: u8 = 0;
const ASK_HEADER: u8 = 1;
const ASK_CHECKPOINT: u8 = 2;
const ASK_TLS_BINDING: u8 = 3;
const ASK_RESET_SECRET: u8 = 4;
const ANSWER_SIGNATURE: u8 = 0;
const ANSWER_REFUSED: u8 = 1;
const ANSWER_PUBLIC_KEY: u8 = 2;
const ANSWER_SECRET: u8 = 3;

/// The stateless-reset key of `core`'s QUIC endpoint from the validator
/// key: the same for a node holding its key and for one whose signer
/// derives it (peers of a restarted node drop its old connections at once).
pub fn reset_secret(key: &SigningKey, core: u64) -> [u8; 32] {
    let mut material = key.secret_bytes().to_vec();
    material.extend_from_slice(&core.to_le_bytes());
    blake3::derive_key("phantom-engine v0 QUIC stateless reset key", &material)
}

/// Why the signer did not sign.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// The signer refused (the reason is its own line).
    #[error("signer refused: {0}")]
    Refused(String),
    /// The socket failed or the signer went away.
    #[error("signer {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The state file could not be read or written.
    #[error("signer state {}: {reason}", .path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What the signer decides for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Decision {
    /// Sign and persist this record first.
    Sign(Record),
    /// The same request was signed before: its signature again.
    Again(SignatureBytes),
    /// Refused, with the reason.
    Refuse(String),
}

/// One persisted decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    /// (shard, seat, seq, header id, signature).
    Header(u16, u8, u64, Hash32, SignatureBytes),
    /// (shard, round, checkpoint id, signature).
    Checkpoint(u16, u64, Hash32, SignatureBytes),
}

impl Record {
    fn line(&self) -> String {
        match self {
            Record::Header(shard, seat, seq, id, sig) => {
                format!("h {shard} {seat} {seq} {} {}\n", to_hex(id), to_hex(sig))
            }
            Record::Checkpoint(shard, round, id, sig) => {
                format!("c {shard} {round} {} {}\n", to_hex(id), to_hex(sig))
            }
        }
    }

    fn parse(line: &str) -> Option<Record> {
        let fields: Vec<&str> = line.split(' ').collect();
        let hash = |t: &str| -> Option<Hash32> { hex::decode(t).ok()?.try_into().ok() };
        let sig = |t: &str| -> Option<SignatureBytes> { hex::decode(t).ok()?.try_into().ok() };
        match fields.as_slice() {
            ["h", shard, seat, seq, id, s] => Some(Record::Header(
                shard.parse().ok()?,
                seat.parse().ok()?,
                seq.parse().ok()?,
                hash(id)?,
                sig(s)?,
            )),
            ["c", shard, round, id, s] => Some(Record::Checkpoint(
                shard.parse().ok()?,
                round.parse().ok()?,
                hash(id)?,
                sig(s)?,
            )),
            _ => None,
        }
    }
}

/// The signer's high-water marks: per (shard, seat) the highest seq signed
/// with its header id and signature; per shard the checkpoints of the last
/// [`SIGNER_CHECKPOINT_ROUNDS`] rounds signed.
#[derive(Debug, Default)]
struct Marks {
    headers: HashMap<(u16, u8), (u64, Hash32, SignatureBytes)>,
    checkpoints: HashMap<u16, BTreeMap<u64, (Hash32, SignatureBytes)>>,
}

impl Marks {
    fn note(&mut self, record: &Record) {
        match *record {
            Record::Header(shard, seat, seq, id, sig) => {
                let slot = self.headers.entry((shard, seat)).or_insert((seq, id, sig));
                if seq >= slot.0 {
                    *slot = (seq, id, sig);
                }
            }
            Record::Checkpoint(shard, round, id, sig) => {
                let rounds = self.checkpoints.entry(shard).or_default();
                rounds.insert(round, (id, sig));
                while rounds.len() > SIGNER_CHECKPOINT_ROUNDS {
                    rounds.pop_first();
                }
            }
        }
    }

    fn header(&self, shard: u16, seat: u8, seq: u64, id: &Hash32) -> Option<Decision> {
        let (top, top_id, sig) = self.headers.get(&(shard, seat))?;
        if seq == *top && id == top_id {
            return Some(Decision::Again(*sig));
        }
        (seq <= *top).then(|| {
            Decision::Refuse(format!(
                "shard {shard} seat {seat}: seq {seq} is at or below seq {top} signed already (a second header there is a fork)"
            ))
        })
    }

    fn checkpoint(&self, shard: u16, round: u64, id: &Hash32) -> Option<Decision> {
        let rounds = self.checkpoints.get(&shard)?;
        if let Some((known, sig)) = rounds.get(&round) {
            return Some(if known == id {
                Decision::Again(*sig)
            } else {
                Decision::Refuse(format!(
                    "shard {shard} round {round}: another checkpoint is signed at this round"
                ))
            });
        }
        let floor = *rounds.keys().next()?;
        (rounds.len() >= SIGNER_CHECKPOINT_ROUNDS && round < floor).then(|| {
            Decision::Refuse(format!(
                "shard {shard} round {round}: below the {SIGNER_CHECKPOINT_ROUNDS} rounds remembered (from {floor})"
            ))
        })
    }
}

/// The signer's state: the key, what it may sign for, its marks and the
/// file they are kept in.
pub struct Signer {
    key: SigningKey,
    network: [u8; 8],
    /// (shard, seat) the key holds.
    seats: Vec<(u16, u8)>,
    /// The validation context of each shard the key holds a seat in.
    contexts: std::collections::BTreeMap<u16, pc_shard::validate::ShardContext>,
    marks: Marks,
    state_path: PathBuf,
    state: std::fs::File,
    /// Requests answered and their latency in µs (receipt to answer,
    /// fsync included), for the stats line.
    latencies_us: Vec<u64>,
    /// Test hook (`PC_SIGNER_CRASH=after-persist:N`): exit right after the
    /// N-th record is synced, before its answer.
    crash_after_persist: Option<u64>,
    persisted: u64,
}

impl Signer {
    /// The signer of `key` under `genesis`, its marks loaded from
    /// `state_path` (created if missing). A torn last line (a crash while
    /// appending) is dropped; any other bad line is an error naming it.
    pub fn open(
        key: SigningKey,
        genesis: &Genesis,
        state_path: &Path,
    ) -> Result<Signer, SignerError> {
        let public = key.public_key();
        let seats: Vec<(u16, u8)> = genesis
            .validators
            .iter()
            .filter(|v| v.key == public)
            .flat_map(|v| v.seats.iter().map(|s| (s.shard, s.seat)))
            .collect();
        if seats.is_empty() {
            return Err(SignerError::State {
                path: state_path.to_path_buf(),
                reason: format!("key {} holds no seat in the genesis", to_hex(&public)),
            });
        }
        let state_error = |reason: String| SignerError::State {
            path: state_path.to_path_buf(),
            reason,
        };
        let mut contexts = std::collections::BTreeMap::new();
        for (shard, _) in &seats {
            let context = pc_shard::validate::ShardContext::from_genesis(genesis, *shard)
                .ok_or_else(|| {
                    state_error(format!("a seat in shard {shard}, not in the genesis"))
                })?;
            contexts.insert(*shard, context);
        }
        let mut marks = Marks::default();
        let mut keep = 0u64;
        if let Ok(file) = std::fs::File::open(state_path) {
            let mut reader = BufReader::new(file);
            let mut line = String::new();
            let mut number = 0;
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .map_err(|e| state_error(e.to_string()))?;
                if read == 0 {
                    break;
                }
                number += 1;
                let complete = line.ends_with('\n');
                match Record::parse(line.trim_end_matches('\n')) {
                    Some(record) if complete => {
                        marks.note(&record);
                        keep += read as u64;
                    }
                    // The last line, cut by a crash mid-append: never
                    // answered, so nothing was signed for it.
                    _ if !complete => break,
                    _ => return Err(state_error(format!("line {number} is not a signer record"))),
                }
            }
        }
        let state = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(state_path)
            .map_err(|e| state_error(e.to_string()))?;
        state
            .set_len(keep)
            .map_err(|e| state_error(e.to_string()))?;
        state.sync_all().map_err(|e| state_error(e.to_string()))?;
        let crash_after_persist = std::env::var("PC_SIGNER_CRASH")
            .ok()
            .and_then(|v| v.strip_prefix("after-persist:")?.parse().ok());
        Ok(Signer {
            key,
            network: genesis.network(),
            seats,
            contexts,
            marks,
            state_path: state_path.to_path_buf(),
            state,
            latencies_us: Vec::new(),
            crash_after_persist,
            persisted: 0,
        })
    }

    /// The key's public half.
    pub fn public_key(&self) -> PublicKeyBytes {
        self.key.public_key()
    }

    fn decide_header(&self, header: &AnchorHeader) -> Decision {
        if header.network != self.network {
            return Decision::Refuse("a header of another network".into());
        }
        if !self.seats.contains(&(header.shard, header.creator)) {
            return Decision::Refuse(format!(
                "the key holds no seat {} in shard {}",
                header.creator, header.shard
            ));
        }
        if let Some(Err(error)) = self
            .contexts
            .get(&header.shard)
            .map(|context| pc_shard::validate::check_header_rules(context, header))
        {
            return Decision::Refuse(format!("the header breaks a rule: {error}"));
        }
        let id = header.id();
        self.marks
            .header(header.shard, header.creator, header.seq, &id)
            .unwrap_or_else(|| {
                let sig = self.key.sign(&id, &rand::random());
                Decision::Sign(Record::Header(
                    header.shard,
                    header.creator,
                    header.seq,
                    id,
                    sig,
                ))
            })
    }

    fn decide_checkpoint(&self, checkpoint: &Checkpoint) -> Decision {
        if !self
            .seats
            .iter()
            .any(|(shard, _)| *shard == checkpoint.shard)
        {
            return Decision::Refuse(format!(
                "the key holds no seat in shard {}",
                checkpoint.shard
            ));
        }
        let id = checkpoint.id(&self.network);
        self.marks
            .checkpoint(checkpoint.shard, checkpoint.round, &id)
            .unwrap_or_else(|| {
                let sig = self.key.sign(&id, &rand::random());
                Decision::Sign(Record::Checkpoint(
                    checkpoint.shard,
                    checkpoint.round,
                    id,
                    sig,
                ))
            })
    }

    /// Appends and syncs `record`: the signature leaves only after this.
    fn persist(&mut self, record: &Record) -> Result<(), SignerError> {
        let error = |e: std::io::Error| SignerError::State {
            path: self.state_path.clone(),
            reason: e.to_string(),
        };
        self.state
            .write_all(record.line().as_bytes())
            .map_err(error)?;
        self.state.sync_data().map_err(error)?;
        self.marks.note(record);
        self.persisted += 1;
        if self.crash_after_persist == Some(self.persisted) {
            // The injected crash of the tests: persisted, never answered.
            std::process::exit(86);
        }
        Ok(())
    }

    /// Answers one request body.
    fn answer(&mut self, body: &[u8]) -> Result<Vec<u8>, SignerError> {
        let refuse = |reason: String| {
            let mut out = vec![ANSWER_REFUSED];
            out.extend_from_slice(reason.as_bytes());
            out
        };
        let Some((&kind, rest)) = body.split_first() else {
            return Ok(refuse("an empty request".into()));
        };
        let decision = match kind {
            ASK_PUBLIC_KEY => {
                let mut out = vec![ANSWER_PUBLIC_KEY];
                out.extend_from_slice(&self.public_key());
                return Ok(out);
            }
            ASK_HEADER => match decode_all::<AnchorHeader>(rest) {
                Ok(header) => self.decide_header(&header),
                Err(e) => Decision::Refuse(format!("not an anchor header: {e}")),
            },
            ASK_CHECKPOINT => match decode_all::<Checkpoint>(rest) {
                Ok(checkpoint) => self.decide_checkpoint(&checkpoint),
                Err(e) => Decision::Refuse(format!("not a checkpoint: {e}")),
            },
            ASK_TLS_BINDING => {
                if rest.is_empty() || rest.len() > 4096 {
                    Decision::Refuse("a TLS SPKI of 1 to 4096 bytes is needed".into())
                } else {
                    let binding = derive(context::TLS_BINDING, &[rest, &self.network]);
                    Decision::Again(self.key.sign(&binding, &rand::random()))
                }
            }
            ASK_RESET_SECRET if rest.len() == 8 => {
                let core = u64::from_le_bytes(rest.try_into().expect("8 bytes"));
                let mut out = vec![ANSWER_SECRET];
                out.extend_from_slice(&reset_secret(&self.key, core));
                return Ok(out);
            }
            other => Decision::Refuse(format!("request kind {other} is not one the signer signs")),
        };
        Ok(match decision {
            Decision::Sign(record) => {
                self.persist(&record)?;
                let (Record::Header(.., sig) | Record::Checkpoint(.., sig)) = record;
                [&[ANSWER_SIGNATURE][..], &sig].concat()
            }
            Decision::Again(sig) => [&[ANSWER_SIGNATURE][..], &sig].concat(),
            Decision::Refuse(reason) => refuse(reason),
        })
    }
}

fn decode_all<T: Decode>(bytes: &[u8]) -> Result<T, pc_codec::DecodeError> {
    let mut reader = Reader::new(bytes);
    let value = T::decode(&mut reader)?;
    reader.finish()?;
    Ok(value)
}

fn read_frame(stream: &mut UnixStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut prefix = [0u8; 4];
    match stream.read_exact(&mut prefix) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > MAX_SIGNER_FRAME {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a frame of {len} bytes (at most {MAX_SIGNER_FRAME})"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body)?;
    Ok(Some(body))
}

fn write_frame(stream: &mut UnixStream, body: &[u8]) -> std::io::Result<()> {
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(body);
    stream.write_all(&frame)
}

/// Serves `signer` on the Unix socket at `path` (replacing a stale socket
/// file) until the process is stopped; a stats line (requests, latency p50
/// and p99 from receipt to answer, fsync included) every `stats_every`.
pub fn serve(signer: Signer, path: &Path, stats_every: Duration) -> Result<(), SignerError> {
    let io = |source| SignerError::Io {
        path: path.display().to_string(),
        source,
    };
    if path.exists() {
        std::fs::remove_file(path).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    eprintln!(
        "{}",
        serde_json::json!({
            "type": "signer_listening", "socket": path.display().to_string(),
            "key": to_hex(&signer.public_key()), "seats": signer.seats.len(),
        })
    );
    let signer = Arc::new(Mutex::new(signer));
    let stats = signer.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(stats_every);
        let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
        if s.latencies_us.is_empty() {
            continue;
        }
        let mut l = std::mem::take(&mut s.latencies_us);
        l.sort_unstable();
        let at = |q: f64| l[((l.len() - 1) as f64 * q) as usize];
        eprintln!(
            "{}",
            serde_json::json!({
                "type": "signer", "requests": l.len(), "latency_p50_us": at(0.5),
                "latency_p99_us": at(0.99), "latency_max_us": l[l.len() - 1],
            })
        );
    });
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let signer = signer.clone();
        std::thread::spawn(move || {
            while let Ok(Some(body)) = read_frame(&mut stream) {
                let began = Instant::now();
                let mut s = signer.lock().unwrap_or_else(|p| p.into_inner());
                let answer = match s.answer(&body) {
                    Ok(answer) => answer,
                    Err(error) => {
                        // The state cannot be written: nothing more is
                        // signed; the line says why.
                        eprintln!("error: {error}");
                        std::process::exit(1);
                    }
                };
                s.latencies_us.push(began.elapsed().as_micros() as u64);
                drop(s);
                if write_frame(&mut stream, &answer).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// A connection to a signer.
pub struct SignerClient {
    path: String,
    stream: UnixStream,
}

impl SignerClient {
    /// Connects to the signer at `path` (`unix:` prefix optional).
    pub fn connect(path: &str) -> Result<SignerClient, SignerError> {
        let path = path.strip_prefix("unix:").unwrap_or(path).to_string();
        let stream = UnixStream::connect(&path).map_err(|source| SignerError::Io {
            path: path.clone(),
            source,
        })?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|source| SignerError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(SignerClient { path, stream })
    }

    fn ask(&mut self, body: &[u8]) -> Result<Vec<u8>, SignerError> {
        let io = |source| SignerError::Io {
            path: self.path.clone(),
            source,
        };
        write_frame(&mut self.stream, body).map_err(io)?;
        match read_frame(&mut self.stream).map_err(io)? {
            Some(answer) => Ok(answer),
            None => Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the signer closed the connection without an answer",
            ))),
        }
    }

    fn signature(&mut self, body: &[u8]) -> Result<SignatureBytes, SignerError> {
        let answer = self.ask(body)?;
        match answer.split_first() {
            Some((&ANSWER_SIGNATURE, sig)) if sig.len() == 64 => {
                Ok(sig.try_into().expect("64 bytes"))
            }
            Some((&ANSWER_REFUSED, reason)) => Err(SignerError::Refused(
                String::from_utf8_lossy(reason).into_owned(),
            )),
            _ => Err(SignerError::Refused("a malformed answer".into())),
        }
    }

    /// The signer's public key.
    pub fn public_key(&mut self) -> Result<PublicKeyBytes, SignerError> {
        let answer = self.ask(&[ASK_PUBLIC_KEY])?;
        match answer.split_first() {
            Some((&ANSWER_PUBLIC_KEY, key)) if key.len() == 32 => Ok(key.try_into().expect("32")),
            _ => Err(SignerError::Refused("a malformed answer".into())),
        }
    }

    /// A signature of `header`'s id, or the refusal.
    pub fn sign_header(&mut self, header: &AnchorHeader) -> Result<SignatureBytes, SignerError> {
        self.signature(&[&[ASK_HEADER][..], &header.to_bytes()].concat())
    }

    /// A signature of `checkpoint`'s id, or the refusal.
    pub fn sign_checkpoint(
        &mut self,
        checkpoint: &Checkpoint,
    ) -> Result<SignatureBytes, SignerError> {
        self.signature(&[&[ASK_CHECKPOINT][..], &checkpoint.to_bytes()].concat())
    }

    /// A signature of the TLS binding of `spki`.
    pub fn sign_tls_binding(&mut self, spki: &[u8]) -> Result<SignatureBytes, SignerError> {
        self.signature(&[&[ASK_TLS_BINDING][..], spki].concat())
    }

    /// The stateless-reset key of `core` (see [`reset_secret`]).
    pub fn reset_secret(&mut self, core: u64) -> Result<[u8; 32], SignerError> {
        let answer = self.ask(&[&[ASK_RESET_SECRET][..], &core.to_le_bytes()].concat())?;
        match answer.split_first() {
            Some((&ANSWER_SECRET, secret)) if secret.len() == 32 => {
                Ok(secret.try_into().expect("32"))
            }
            _ => Err(SignerError::Refused("a malformed answer".into())),
        }
    }

    /// Sends a raw request body (tests: kinds the signer must refuse).
    pub fn raw(&mut self, body: &[u8]) -> Result<SignatureBytes, SignerError> {
        self.signature(body)
    }
}

/// The node's side of a signer process: every signature of its validator
/// key is asked over the socket. A refusal means this node was about to
/// sign twice where once is allowed (a restored data dir, a bug): it stops
/// with one line rather than go on. A lost connection is dialed again
/// (three tries, 200 ms apart) before it stops.
pub struct RemoteSigner {
    path: String,
    public: PublicKeyBytes,
    client: Mutex<Option<SignerClient>>,
}

impl RemoteSigner {
    /// Connects to the signer at `path` (`unix:PATH`) and learns its key.
    pub fn connect(path: &str) -> Result<RemoteSigner, SignerError> {
        let mut client = SignerClient::connect(path)?;
        let public = client.public_key()?;
        Ok(RemoteSigner {
            path: path.to_string(),
            public,
            client: Mutex::new(Some(client)),
        })
    }

    fn call<T>(&self, what: &str, ask: impl Fn(&mut SignerClient) -> Result<T, SignerError>) -> T {
        let mut last = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(200));
            }
            let mut slot = self.client.lock().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                match SignerClient::connect(&self.path) {
                    Ok(client) => *slot = Some(client),
                    Err(error) => {
                        last = error.to_string();
                        continue;
                    }
                }
            }
            match ask(slot.as_mut().expect("connected above")) {
                Ok(value) => return value,
                Err(SignerError::Refused(reason)) => fatal(&format!("{what}: {reason}")),
                Err(error) => {
                    last = error.to_string();
                    *slot = None;
                }
            }
        }
        fatal(&format!("{what}: {last}"))
    }

    /// The signature of the TLS binding of `spki`.
    pub fn tls_binding(&self, spki: &[u8]) -> SignatureBytes {
        self.call("TLS binding", |c| c.sign_tls_binding(spki))
    }

    /// The stateless-reset key of `core`.
    pub fn reset_secret(&self, core: u64) -> [u8; 32] {
        self.call("reset key", |c| c.reset_secret(core))
    }
}

/// Stops the node: its signer refused or is gone.
fn fatal(what: &str) -> ! {
    eprintln!("error: signer: {what}; stopping (nothing is signed without the signer)");
    std::process::exit(1)
}

impl pc_shard::machine::AnchorSigner for RemoteSigner {
    fn public_key(&self) -> PublicKeyBytes {
        self.public
    }
    fn sign(&self, _message: &[u8]) -> SignatureBytes {
        fatal("asked for a signature of a bare message, which the signer never gives")
    }
    fn sign_again(&self, _message: &[u8]) -> SignatureBytes {
        fatal("asked to sign a header twice (--test-equivocate needs a local key)")
    }
    fn sign_header(&self, header: &AnchorHeader) -> SignatureBytes {
        self.call("anchor header", |c| c.sign_header(header))
    }
    fn sign_checkpoint(&self, checkpoint: &Checkpoint, _id: &Hash32) -> SignatureBytes {
        self.call("checkpoint", |c| c.sign_checkpoint(checkpoint))
    }
}
