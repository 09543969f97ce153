//! The bench workload (DESIGN §8): per shard, a signed k-seat DAG whose
//! anchors carry transfers spending genesis outputs (each output once),
//! generated outside the timed region and cached on disk by its parameters.
//!
//! The DAG is made by `k` in-memory seat machines (`pc_shard`'s own anchor
//! creation, so birth rounds, parents and payload commitments are what a
//! real committee produces) that hand every anchor to each other in one
//! global order; that order is the workload order. The seats skip signature
//! checks ([`Unchecked`]) because they check their own freshly signed
//! objects. For `bench` every signature is real BIP-340 ([`Bip340Signing`])
//! and the node under test checks them all; the criterion benches, which
//! measure ordering with signature checks aside, run this same generator
//! with a [`WorkloadSigning`] of the simulator's fast scheme.
//!
//! Every seat spends from its own queue of outputs: its share of the
//! genesis outputs first, then the outputs of transfers it put in its own
//! earlier anchors (chained spends: an anchor's self-parent chain is among
//! its ancestors, so on every node the creating transfer is ordered first;
//! DESIGN §4 layers). Each output is spent once. The genesis holds at most
//! [`GENESIS_OUTPUTS_CAP`] outputs per shard, which also bounds the node's
//! UTXO set: it reaches its full size within the first
//! `GENESIS_OUTPUTS_CAP` transfers (a few seconds of a run) and stays
//! there, so memory is flat however long the run (DESIGN §11).
//!
//! A workload file is `MAGIC`, then per anchor a [`ITEM_HEADER_BYTES`]-byte
//! header (body length u32, event count u32, birth round u64, anchor id)
//! and the encoded `SignedAnchor`. It is read through a memory map, so the
//! workload never counts as anonymous memory of the node.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
    MAX_OUTPUTS_PER_ALLOCATION,
};
use pc_codec::ids::shard_of;
use pc_codec::{
    Hash32, MicroEvent, OutPoint, PublicKeyBytes, SignatureBytes, SignatureVerifier, SignedAnchor,
    SigningKey, Transfer, TxOut,
};
use pc_shard::crosslink::{CrossLink, CrossTarget, CrossTransmit};
use pc_shard::machine::{AnchorSigner, Role, Shard, ShardLimits, ShardMessage};
use pc_shard::validate::ShardContext;

use crate::genesis_file;

/// First bytes of a workload file (the format version is its last digit).
pub const MAGIC: &[u8; 8] = b"PCWLOAD1";
/// Bytes of an item header: body length, event count, birth round, anchor id.
pub const ITEM_HEADER_BYTES: usize = 4 + 4 + 8 + 32;
/// Units in every bench genesis output.
pub const OUTPUT_UNITS: u64 = 1_000_000;
/// Units each bench transfer pays back to its owner (the rest is the fee).
pub const TRANSFER_PAYS_UNITS: u64 = OUTPUT_UNITS - 1_000;

/// Changes whenever the generator makes a different DAG from the same
/// parameters, so that no stale cached workload is used.
pub const GENERATOR_VERSION: u32 = 8;

/// Genesis outputs per shard at most, after which each seat spends the
/// outputs of its own earlier transfers. Also the most outputs the node's
/// UTXO set of a shard holds during a bench run: a realistic table of
/// 64 Ki outputs (some 10 MiB), full after 65 536 transfers, so a
/// 10-second run is already at its steady-state size.
pub const GENESIS_OUTPUTS_CAP: u32 = 65_536;

/// What a workload is made of; the cache key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadParams {
    /// Shards of the genesis (one workload file each).
    pub shards: u16,
    /// Seats per shard.
    pub committee: u8,
    /// Transfers per anchor (`1..=256`).
    pub tx_per_anchor: u16,
    /// Transfers per shard.
    pub events_per_shard: u32,
    /// Per mille of each shard's transfers that pay into another shard
    /// (`0..=1000`; above 0 needs two shards or more).
    pub cross_per_mille: u16,
}

impl WorkloadParams {
    /// The directory name of this workload in a cache.
    pub fn cache_name(&self) -> String {
        let cross = if self.cross_per_mille > 0 {
            format!("-x{}", self.cross_per_mille)
        } else {
            String::new()
        };
        format!(
            "g{GENERATOR_VERSION}-s{}-k{}-b{}-e{}{cross}",
            self.shards, self.committee, self.tx_per_anchor, self.events_per_shard
        )
    }
}

/// A verifier that accepts everything: only for the generator's seats,
/// which see nothing but objects the generator itself just signed, and for
/// benches that measure a machine with its signature checks taken out.
/// Never the product's verifier.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unchecked;

impl SignatureVerifier for Unchecked {
    fn verify(&self, _: &PublicKeyBytes, _: &[u8], _: &SignatureBytes) -> bool {
        true
    }
}

/// How the generator signs its seats' anchors and its transfers. The keys
/// are always [`bench_key`]s (the bench genesis names them); the scheme is
/// the implementor's.
pub trait WorkloadSigning: Sync {
    /// A seat's anchor signer.
    type Seat: AnchorSigner;
    /// Appended to [`WorkloadParams::cache_name`] for this scheme's cache
    /// directory (empty for BIP-340, the bench's own).
    const CACHE_SUFFIX: &'static str;
    /// The anchor signer of the seat whose bench key is `key`.
    fn seat(&self, key: SigningKey) -> Self::Seat;
    /// `client`'s signature of transfer number `number` (from 0, in
    /// signing order), whose id is `tx_id`.
    fn sign_transfer(&self, client: &SigningKey, tx_id: &Hash32, number: u64) -> SignatureBytes;
}

/// BIP-340 for everything: the workload of `phantom-engine bench`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bip340Signing;

impl WorkloadSigning for Bip340Signing {
    type Seat = SigningKey;
    const CACHE_SUFFIX: &'static str = "";

    fn seat(&self, key: SigningKey) -> SigningKey {
        key
    }

    /// Auxiliary randomness derived from `number`, so the workload is a
    /// function of its parameters.
    fn sign_transfer(&self, client: &SigningKey, tx_id: &Hash32, number: u64) -> SignatureBytes {
        client.sign(tx_id, blake3::hash(&number.to_le_bytes()).as_bytes())
    }
}

/// A deterministic key from a label and an index (bench keys need no secrecy).
pub fn bench_key(label: &str, index: u32) -> SigningKey {
    let mut counter = 0u32;
    loop {
        let secret = blake3::derive_key(
            "phantom-engine bench key v1",
            format!("{label}/{index}/{counter}").as_bytes(),
        );
        if let Ok(key) = SigningKey::from_secret_bytes(&secret) {
            return key;
        }
        counter += 1;
    }
}

/// The first client key whose owner falls into `shard`.
pub fn client_key(shard: u16, shards: u16) -> SigningKey {
    (0u32..)
        .map(|index| bench_key("client", index))
        .find(|key| shard_of(&key.public_key(), shards) == shard)
        .expect("some key falls into every shard")
}

/// The bench genesis: validator `i` holds seat `i` of every shard; one
/// client per shard owns `min(events_per_shard, GENESIS_OUTPUTS_CAP)`
/// outputs of [`OUTPUT_UNITS`].
/// Returns the genesis and its note.
pub fn bench_genesis(params: &WorkloadParams) -> (Genesis, Vec<u8>) {
    let validators = (0..params.committee)
        .map(|seat| GenesisValidator {
            key: bench_key("seat", u32::from(seat)).public_key(),
            bond: 10_000 * pc_codec::genesis::UNITS_PER_PC,
            seats: (0..params.shards)
                .map(|shard| SeatAssignment { shard, seat })
                .collect(),
        })
        .collect();
    let mut allocations = Vec::new();
    for shard in 0..params.shards {
        let owner = client_key(shard, params.shards).public_key();
        let mut left = params.events_per_shard.min(GENESIS_OUTPUTS_CAP);
        while left > 0 {
            let outputs = left.min(MAX_OUTPUTS_PER_ALLOCATION);
            allocations.push(GenesisAllocation {
                owner,
                amount: OUTPUT_UNITS,
                outputs,
            });
            left -= outputs;
        }
    }
    let note = format!("phantom-engine bench {}", params.cache_name()).into_bytes();
    let genesis = Genesis {
        params: ConsensusParams::v0(params.committee, params.shards),
        note_commitment: *blake3::hash(&note).as_bytes(),
        validators,
        allocations,
    };
    genesis.validate().expect("the bench genesis is valid");
    (genesis, note)
}

/// The genesis out points owned by `shard`'s client, in allocation order.
fn shard_out_points(genesis: &Genesis, shard: u16) -> Vec<OutPoint> {
    let network = genesis.network();
    let mut points = Vec::new();
    for (index, allocation) in genesis.allocations.iter().enumerate() {
        if shard_of(&allocation.owner, genesis.params.shards) != shard {
            continue;
        }
        for output in 0..allocation.outputs {
            points.push(Genesis::allocation_out_point(
                &network,
                index as u32,
                output as u16,
            ));
        }
    }
    points
}

/// Why a workload cannot be made or read.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An I/O error on a file.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A workload file that does not parse.
    #[error("{path}: bad workload item at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the bad item.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The generator's committees did not finalize every transfer or did
    /// not import every export.
    #[error("workload generation stalled after {anchors} anchors with {finalized} of {events} transfers finalized and {imported} of {exported} exports imported")]
    Stalled {
        /// Anchors made (of the shard with the most).
        anchors: usize,
        /// Transfers finalized.
        finalized: u64,
        /// Transfers in the workload.
        events: u64,
        /// Cross-shard transfers finalized.
        exported: u64,
        /// Imports finalized.
        imported: u64,
    },
}

fn io_error(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let path = path.to_path_buf();
    move |source| WorkloadError::Io {
        path,
        action,
        source,
    }
}

/// One anchor of a workload, as written to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadItem {
    /// The anchor id.
    pub anchor_id: Hash32,
    /// Its claimed round.
    pub birth_round: u64,
    /// Micro-events in its payload.
    pub events: u32,
    /// The encoded `SignedAnchor`.
    pub bytes: Vec<u8>,
}

fn item_of(anchor_bytes: Vec<u8>) -> WorkloadItem {
    use pc_codec::Decode;
    let anchor = SignedAnchor::from_bytes(&anchor_bytes).expect("a seat's own anchor decodes");
    WorkloadItem {
        anchor_id: anchor.anchor_id(),
        birth_round: anchor.header.header.birth_round,
        events: anchor.payload.events.len() as u32,
        bytes: anchor_bytes,
    }
}

/// Whether seat `creator` sends nothing in `wave` (about half the seats
/// each wave, pseudo-randomly): seats of a real committee do not all make
/// their anchors in lock step.
fn sits_out(wave: u64, creator: usize) -> bool {
    let digest = blake3::hash(&[wave.to_le_bytes(), (creator as u64).to_le_bytes()].concat());
    digest.as_bytes()[0].is_multiple_of(2)
}

/// Longest delay of an anchor on its way to another seat, in waves.
const MAX_DELAY_WAVES: u64 = 2;

/// The delay of anchor `item` to seat `receiver`: a fixed pseudo-random
/// jitter, so that seats see anchors in different orders as they would on
/// a real network (with every seat seeing the same anchors at the same
/// moment, every seat picks the same parents and rounds advance slowly).
fn delay_waves(item: usize, receiver: usize) -> u64 {
    let digest =
        blake3::hash(&[(item as u64).to_le_bytes(), (receiver as u64).to_le_bytes()].concat());
    1 + u64::from(digest.as_bytes()[0]) % MAX_DELAY_WAVES
}

/// Milliseconds of the cross-shard links' clock per wave (their quiet
/// tick, [`pc_shard::crosslink::RETRY_TICK_MS`], comes every few waves).
const WAVE_MS: u64 = 10;

/// Waves without an anchor sent after which generation counts as stalled
/// (well past the links' backup and retry delays in ticks).
const QUIET_WAVES_MAX: u64 = 400;

/// The generator's cross-shard link of one seat.
type GenLink<S> = CrossLink<Unchecked, S>;

/// One generator seat: its machine and cross-shard link, the records it
/// emitted but was not yet told are durable (which holds back its next
/// anchor: one in flight at a time), the anchors on their way to it, and
/// the outputs it may spend.
struct WaveSeat<S> {
    machine: Shard<Unchecked, S>,
    link: GenLink<S>,
    unacknowledged_token: Option<u64>,
    /// Anchors of other seats with the wave they arrive in.
    inbox: Vec<(u64, std::rc::Rc<Vec<u8>>)>,
    /// Outputs this seat spends, first in first out: its round-robin
    /// share of the genesis outputs, then the outputs of its own transfers
    /// (pushed as it signs them) and of imports it saw finalized.
    spendable: std::collections::VecDeque<OutPoint>,
    /// Imports its link handed over, submitted with its next transfers.
    imports: Vec<MicroEvent>,
    /// (source, round, leaf index) of `imports`.
    waiting: std::collections::HashSet<(u16, u64, u64)>,
    /// Cross-shard messages to deliver.
    outbox: Vec<CrossTransmit>,
}

impl<S: AnchorSigner> WaveSeat<S> {
    /// The imports the link hands over now (told first which ones other
    /// seats' anchors already carry).
    fn take_imports(&mut self) {
        let seen = self.machine.take_seen_imports();
        self.link.on_seen_imports(&seen);
        let imports = self.link.take_imports(self.machine.state());
        for event in imports {
            // The link offers a leaf again after a while; one copy waits.
            if let MicroEvent::Import(import) = &event {
                let key = (import.source, import.round, import.leaf_proof.index);
                if self.waiting.insert(key) {
                    self.imports.push(event);
                }
            }
        }
    }

    /// Takes what the machine and the link emitted: records (the link's go
    /// through the machine's record stream, as in the node), finalized
    /// rounds (to the link, whose imports wait in `imports`; imported
    /// outputs of seat `index` of `k` become spendable), messages.
    fn collect(&mut self, index: usize, k: usize) {
        loop {
            let mut moved = false;
            while let Some(record) = self.machine.poll_persist() {
                self.unacknowledged_token = Some(record.token);
                moved = true;
            }
            while let Some(report) = self.machine.poll_finalized() {
                for (_, tx_id) in &report.outcome.imported {
                    // Every generated transfer has one output: a leaf is
                    // output 0 of its transfer.
                    if usize::from(tx_id[0]) % k == index {
                        self.spendable.push_back(OutPoint {
                            tx_id: *tx_id,
                            index: 0,
                        });
                    }
                }
                self.link.on_round(&report.outcome);
                self.take_imports();
                moved = true;
            }
            while let Some(record) = self.link.poll_record() {
                // Durable as soon as the seat's token is acknowledged; its
                // ack goes out now (the generator loses no record).
                self.machine.log_record(record.kind, record.body);
                self.outbox.extend(record.ack);
                moved = true;
            }
            if !moved {
                break;
            }
        }
        while let Some(transmit) = self.link.poll_transmit() {
            self.outbox.push(transmit);
        }
    }
}

/// The generation of one shard's workload (see [`generate_shards`]).
struct ShardGen<S> {
    shard: u16,
    shards: u16,
    network: [u8; 8],
    tx_per_anchor: u16,
    events: u64,
    cross_per_mille: u16,
    client: SigningKey,
    seats: Vec<WaveSeat<S>>,
    /// Event ids of every signed transfer not yet finalized, with whether
    /// it pays into another shard.
    in_flight: std::collections::HashMap<Hash32, bool>,
    signed: u64,
    /// Cross-shard transfers signed.
    crossed: u64,
    /// An observer of exactly the workload's anchors (a seat's own view
    /// runs ahead of it).
    observer: Shard<Unchecked, S>,
    items: Vec<WorkloadItem>,
    /// Transfers the observer saw finalized (all apply).
    finalized: u64,
    /// Of them, those that paid into another shard (one export each).
    exported: u64,
    /// Imports the observer saw applied.
    imported: u64,
    /// Imports the observer saw finalized but refused (a leaf carried
    /// twice; the dedupe state refuses the second).
    duplicate_imports: u64,
}

impl<S: AnchorSigner> ShardGen<S> {
    fn new<W: WorkloadSigning<Seat = S>>(
        genesis: &Genesis,
        shard: u16,
        tx_per_anchor: u16,
        events: u64,
        cross_per_mille: u16,
        signing: &W,
    ) -> Self {
        let k = genesis.params.k;
        let context = ShardContext::from_genesis(genesis, shard).expect("a shard of the genesis");
        let mut seats: Vec<WaveSeat<S>> = (0..k)
            .map(|seat| WaveSeat {
                machine: Shard::new(
                    genesis,
                    shard,
                    Role::Seat {
                        seat,
                        signer: signing.seat(bench_key("seat", u32::from(seat))),
                    },
                    Unchecked,
                    ShardLimits::default(),
                ),
                link: CrossLink::new(
                    context.network,
                    shard,
                    context.committees.clone(),
                    Some((seat, signing.seat(bench_key("seat", u32::from(seat))))),
                    Unchecked,
                ),
                unacknowledged_token: None,
                inbox: Vec::new(),
                spendable: std::collections::VecDeque::new(),
                imports: Vec::new(),
                waiting: std::collections::HashSet::new(),
                outbox: Vec::new(),
            })
            .collect();
        for (index, out_point) in shard_out_points(genesis, shard).into_iter().enumerate() {
            seats[index % usize::from(k)].spendable.push_back(out_point);
        }
        ShardGen {
            shard,
            shards: genesis.params.shards,
            network: genesis.network(),
            tx_per_anchor,
            events,
            cross_per_mille,
            client: client_key(shard, genesis.params.shards),
            seats,
            in_flight: std::collections::HashMap::new(),
            signed: 0,
            crossed: 0,
            observer: Shard::new(
                genesis,
                shard,
                Role::Observer,
                Unchecked,
                ShardLimits::default(),
            ),
            items: Vec::new(),
            finalized: 0,
            exported: 0,
            imported: 0,
            duplicate_imports: 0,
        }
    }

    /// Whether transfer number `number` pays into another shard: spread
    /// evenly, `cross_per_mille` of every thousand.
    fn crosses(&self, number: u64) -> bool {
        let share = u64::from(self.cross_per_mille);
        (number + 1) * share / 1000 > number * share / 1000
    }

    /// The shard the `nth` cross-shard transfer pays into: the others in
    /// turn.
    fn destination(&self, nth: u64) -> u16 {
        let others = u64::from(self.shards - 1);
        ((u64::from(self.shard) + 1 + nth % others) % u64::from(self.shards)) as u16
    }

    /// The first half of a wave: every seat hears the links' clock, takes
    /// its share of transfers (with the imports its link handed over) and
    /// the anchors that reached it (one or two waves after they were sent).
    fn receive<W: WorkloadSigning<Seat = S>>(
        &mut self,
        wave: u64,
        signing: &W,
        progress: &mut impl FnMut(u16, u64, u64),
    ) {
        let k = self.seats.len();
        for index in 0..k {
            {
                let seat = &mut self.seats[index];
                if seat.link.handle_tick(wave * WAVE_MS) {
                    seat.take_imports();
                }
            }
            let room =
                usize::from(self.tx_per_anchor).saturating_sub(self.seats[index].imports.len());
            let take = ((self.events - self.signed) as usize)
                .min(room)
                .min(self.seats[index].spendable.len());
            if (take > 0 || !self.seats[index].imports.is_empty())
                && self.seats[index].machine.mempool_len() == 0
            {
                let mut submitted = std::mem::take(&mut self.seats[index].imports);
                self.seats[index].waiting.clear();
                let spent: Vec<OutPoint> = self.seats[index].spendable.drain(..take).collect();
                for out_point in spent {
                    let cross = self.crosses(self.signed);
                    let payee = if cross {
                        let dest = self.destination(self.crossed);
                        self.crossed += 1;
                        client_key(dest, self.shards).public_key()
                    } else {
                        self.client.public_key()
                    };
                    let owner = self.client.public_key();
                    let mut transfer = Transfer {
                        inputs: vec![out_point],
                        outputs: vec![TxOut {
                            amount: TRANSFER_PAYS_UNITS,
                            owner: payee,
                        }],
                        owner,
                        signature: [0; 64],
                    };
                    let tx_id = transfer.tx_id(&self.network);
                    transfer.signature = signing.sign_transfer(&self.client, &tx_id, self.signed);
                    self.signed += 1;
                    if !cross {
                        // Spent by a later anchor of this seat (the queue
                        // is first in, first out; an empty mempool means
                        // the earlier transfers are in an own anchor
                        // already).
                        self.seats[index]
                            .spendable
                            .push_back(OutPoint { tx_id, index: 0 });
                    }
                    let event = MicroEvent::Transfer(transfer);
                    self.in_flight.insert(event.id(), cross);
                    submitted.push(event);
                }
                // Submitted together, as a client's poll: the seat's next
                // own anchor carries them all (imports first).
                for status in self.seats[index].machine.handle_micro_events(submitted) {
                    // The mempool (65 536) holds far more than one anchor's
                    // worth, which is all a seat submits at a time.
                    if let Err(error) = status {
                        panic!("a generated micro-event is queued: {error}");
                    }
                }
                if take > 0 {
                    progress(self.shard, self.signed, self.events);
                }
            }
            let seat = &mut self.seats[index];
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut seat.inbox)
                .into_iter()
                .partition(|(at, _)| *at <= wave);
            seat.inbox = later;
            for (_, bytes) in due {
                // An anchor whose parents have not arrived yet waits in the
                // machine; its pull requests are not needed: every anchor
                // arrives within MAX_DELAY_WAVES.
                seat.machine
                    .handle_anchor(None, &bytes)
                    .expect("a seat accepts another seat's anchor");
                while seat
                    .machine
                    .poll_transmit()
                    .is_some_and(|t| matches!(t.message, ShardMessage::Get(_)))
                {}
            }
            seat.collect(index, k);
        }
    }

    /// The second half of a wave: about half the seats send their next
    /// anchor (a seat's durability is acknowledged at most once per wave,
    /// which holds back its next anchor); the observer takes each. Returns
    /// the anchors sent.
    fn send(&mut self, wave: u64) -> usize {
        let k = self.seats.len();
        let mut sent = 0;
        for creator in 0..k {
            if sits_out(wave, creator) {
                continue;
            }
            {
                let seat = &mut self.seats[creator];
                if let Some(token) = seat.unacknowledged_token.take() {
                    seat.machine.handle_durable(token);
                }
                seat.collect(creator, k);
            }
            while let Some(transmit) = self.seats[creator].machine.poll_transmit() {
                let ShardMessage::Anchor(bytes) = transmit.message else {
                    continue;
                };
                let bytes = std::rc::Rc::new(bytes);
                for (index, other) in self.seats.iter_mut().enumerate() {
                    if index != creator {
                        other
                            .inbox
                            .push((wave + delay_waves(self.items.len(), index), bytes.clone()));
                    }
                }
                self.observe(&bytes);
                self.items.push(item_of(bytes.to_vec()));
                sent += 1;
            }
        }
        sent
    }

    /// The observer takes one anchor and counts what it finalized.
    fn observe(&mut self, bytes: &[u8]) {
        self.observer
            .handle_anchor(None, bytes)
            .expect("the observer accepts every seat's anchor");
        while self.observer.poll_persist().is_some() {}
        while let Some(report) = self.observer.poll_finalized() {
            let imported = report.outcome.imported.len() as u64;
            let mut imports_seen = 0u64;
            for (id, outcome) in &report.outcome.outcomes {
                match self.in_flight.remove(id) {
                    Some(cross) => {
                        assert_eq!(
                            *outcome,
                            pc_shard::state::Outcome::Applied,
                            "a generated transfer applies"
                        );
                        self.finalized += 1;
                        self.exported += u64::from(cross);
                    }
                    None => imports_seen += 1,
                }
            }
            self.imported += imported;
            self.duplicate_imports += imports_seen - imported;
        }
    }

    fn quiet(&self) -> bool {
        self.seats.iter().all(|s| {
            s.inbox.is_empty()
                && s.unacknowledged_token.is_none()
                && s.imports.is_empty()
                && s.outbox.is_empty()
        })
    }
}

/// Delivers the cross-shard messages of every seat of `gens` (the shards
/// `gens[i].shard`), and what they cause, until none is left. A message to
/// a shard not among them is dropped.
fn route<S: AnchorSigner>(gens: &mut [ShardGen<S>]) {
    for _ in 0..64 {
        let mut mail = Vec::new();
        for gen in gens.iter_mut() {
            let k = gen.seats.len();
            for (index, seat) in gen.seats.iter_mut().enumerate() {
                seat.collect(index, k);
                for transmit in seat.outbox.drain(..) {
                    mail.push((gen.shard, index as u8, transmit));
                }
            }
        }
        if mail.is_empty() {
            return;
        }
        for (shard, seat, transmit) in mail {
            let from = CrossTarget::Seat { shard, seat };
            let targets: Vec<(u16, u8)> = match transmit.to {
                CrossTarget::Committee => {
                    let k = gens
                        .iter()
                        .find(|g| g.shard == shard)
                        .map_or(0, |g| g.seats.len());
                    (0..k as u8)
                        .filter(|s| *s != seat)
                        .map(|s| (shard, s))
                        .collect()
                }
                CrossTarget::Seat { shard, seat } => vec![(shard, seat)],
            };
            for (to_shard, to_seat) in targets {
                let Some(gen) = gens.iter_mut().find(|g| g.shard == to_shard) else {
                    continue;
                };
                let Some(target) = gen.seats.get_mut(usize::from(to_seat)) else {
                    continue;
                };
                let refused = target
                    .link
                    .on_message(from, transmit.message.clone(), target.machine.state())
                    .err();
                if let Some(violation) = refused {
                    panic!("a generator seat refused another's cross-shard message: {violation}");
                }
            }
        }
    }
}

/// Generates the workload of `shard` alone (no transfer leaves it):
/// [`generate_shards`] of one shard at a cross-shard share of 0.
pub fn generate_shard<W: WorkloadSigning>(
    genesis: &Genesis,
    shard: u16,
    tx_per_anchor: u16,
    events: u64,
    signing: &W,
    mut progress: impl FnMut(u64, u64),
) -> Result<Vec<WorkloadItem>, WorkloadError> {
    let mut all = generate_shards(
        genesis,
        &[shard],
        tx_per_anchor,
        events,
        0,
        signing,
        |_, done, total| progress(done, total),
    )?;
    Ok(all.pop().expect("one shard asked, one made"))
}

/// Generates the workloads of `shards` together, in waves: in each wave
/// every seat takes the anchors that reached it and its share of
/// transfers, then about half the seats send their next anchor; after
/// each half the seats' cross-shard links (the product's
/// [`CrossLink`], one per seat) exchange checkpoint signatures,
/// certificates, export bundles and acks at once, and carry the imports
/// into their seats' anchors. `cross_per_mille` of each shard's transfers
/// pay into the other shards in turn (their value leaves as an export);
/// an imported output becomes spendable by a seat of its destination once
/// that seat saw it finalized, so the shards' value keeps circulating.
/// Generation ends when an observer of each shard finalized its
/// `events` transfers and every export was imported. Calls
/// `progress(shard, transfers_signed, total)` now and then; returns each
/// shard's anchors in delivery order.
pub fn generate_shards<W: WorkloadSigning>(
    genesis: &Genesis,
    shards: &[u16],
    tx_per_anchor: u16,
    events: u64,
    cross_per_mille: u16,
    signing: &W,
    mut progress: impl FnMut(u16, u64, u64),
) -> Result<Vec<Vec<WorkloadItem>>, WorkloadError> {
    assert!(cross_per_mille <= 1000, "a share in per mille");
    assert!(
        cross_per_mille == 0 || genesis.params.shards > 1,
        "cross-shard transfers need two shards"
    );
    let mut gens: Vec<ShardGen<W::Seat>> = shards
        .iter()
        .map(|&shard| {
            ShardGen::new(
                genesis,
                shard,
                tx_per_anchor,
                events,
                cross_per_mille,
                signing,
            )
        })
        .collect();
    let per_shard_anchors = (events as usize * (1000 + usize::from(cross_per_mille))
        / 1000
        / usize::from(tx_per_anchor.max(1))
        + 1)
        * 8
        + 4096;
    let mut wave = 0u64;
    let mut quiet_waves = 0u64;
    loop {
        let done = gens.iter().all(|g| g.finalized == events)
            && gens.iter().map(|g| g.exported).sum::<u64>()
                == gens.iter().map(|g| g.imported).sum::<u64>();
        if done {
            break;
        }
        wave += 1;
        for gen in &mut gens {
            gen.receive(wave, signing, &mut progress);
        }
        route(&mut gens);
        let mut sent = 0;
        for gen in &mut gens {
            sent += gen.send(wave);
        }
        route(&mut gens);
        quiet_waves = if sent == 0 && gens.iter().all(ShardGen::quiet) {
            quiet_waves + 1
        } else {
            0
        };
        let anchors = gens.iter().map(|g| g.items.len()).max().unwrap_or(0);
        if anchors > per_shard_anchors || quiet_waves > QUIET_WAVES_MAX {
            return Err(WorkloadError::Stalled {
                anchors,
                finalized: gens.iter().map(|g| g.finalized).sum(),
                events: events * gens.len() as u64,
                exported: gens.iter().map(|g| g.exported).sum(),
                imported: gens.iter().map(|g| g.imported).sum(),
            });
        }
    }
    if std::env::var_os("PHANTOM_WORKLOAD_TRACE").is_some() {
        for g in &gens {
            eprintln!(
                "workload shard {}: {} anchors in {wave} waves, {} transfers ({} exported), {} imports, {} imports refused as duplicates",
                g.shard,
                g.items.len(),
                g.finalized,
                g.exported,
                g.imported,
                g.duplicate_imports
            );
        }
    }
    Ok(gens.into_iter().map(|g| g.items).collect())
}

/// Writes `items` to `path` (through a temporary file and a rename).
pub fn write_items(path: &Path, items: &[WorkloadItem]) -> Result<(), WorkloadError> {
    // A per-process temporary name: two benches filling one cache never
    // write the same file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let file = fs::File::create(&tmp).map_err(io_error(&tmp, "create"))?;
    let mut out = BufWriter::new(file);
    let write = |out: &mut BufWriter<fs::File>| -> std::io::Result<()> {
        out.write_all(MAGIC)?;
        for item in items {
            out.write_all(&(item.bytes.len() as u32).to_le_bytes())?;
            out.write_all(&item.events.to_le_bytes())?;
            out.write_all(&item.birth_round.to_le_bytes())?;
            out.write_all(&item.anchor_id)?;
            out.write_all(&item.bytes)?;
        }
        out.flush()?;
        out.get_ref().sync_all()
    };
    write(&mut out).map_err(io_error(&tmp, "write"))?;
    fs::rename(&tmp, path).map_err(io_error(path, "rename"))
}

/// A workload file mapped into memory.
#[derive(Debug)]
pub struct WorkloadFile {
    path: PathBuf,
    map: memmap2::Mmap,
    /// Item start offsets.
    offsets: Vec<usize>,
}

/// One item borrowed from a [`WorkloadFile`].
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    /// The anchor id.
    pub anchor_id: Hash32,
    /// Its claimed round.
    pub birth_round: u64,
    /// Micro-events in its payload.
    pub events: u32,
    /// The encoded anchor.
    pub bytes: &'a [u8],
}

impl WorkloadFile {
    /// Maps and indexes `path`; a bad item is named by its offset.
    pub fn open(path: &Path) -> Result<WorkloadFile, WorkloadError> {
        let file = fs::File::open(path).map_err(io_error(path, "open"))?;
        // SAFETY: workload files are written once (temp file and rename) and
        // never modified while mapped. Populated up front, so that reading
        // the workload costs no page faults in the timed region.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
            .map_err(io_error(path, "map"))?;
        let corrupt = |offset: usize, reason| WorkloadError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if map.len() < MAGIC.len() || &map[..MAGIC.len()] != MAGIC {
            return Err(corrupt(0, "not a workload file (bad magic)"));
        }
        let mut offsets = Vec::new();
        let mut at = MAGIC.len();
        while at < map.len() {
            if map.len() - at < ITEM_HEADER_BYTES {
                return Err(corrupt(at, "truncated item header"));
            }
            let len = u32::from_le_bytes(map[at..at + 4].try_into().expect("4 bytes")) as usize;
            if map.len() - at - ITEM_HEADER_BYTES < len {
                return Err(corrupt(at, "item body runs past the end of the file"));
            }
            offsets.push(at);
            at += ITEM_HEADER_BYTES + len;
        }
        Ok(WorkloadFile {
            path: path.to_path_buf(),
            map,
            offsets,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of anchors.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True if the file holds no anchor.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Item `index`.
    pub fn item(&self, index: usize) -> ItemRef<'_> {
        let at = self.offsets[index];
        let header = &self.map[at..at + ITEM_HEADER_BYTES];
        let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        ItemRef {
            events: u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")),
            birth_round: u64::from_le_bytes(header[8..16].try_into().expect("8 bytes")),
            anchor_id: header[16..48].try_into().expect("32 bytes"),
            bytes: &self.map[at + ITEM_HEADER_BYTES..at + ITEM_HEADER_BYTES + len],
        }
    }

    /// Total micro-events in the file.
    pub fn total_events(&self) -> u64 {
        (0..self.len())
            .map(|index| u64::from(self.item(index).events))
            .sum()
    }
}

/// A workload on disk: its genesis and one file per shard.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The directory.
    pub dir: PathBuf,
    /// The parameters.
    pub params: WorkloadParams,
}

impl Workload {
    /// The genesis file of the workload.
    pub fn genesis_path(&self) -> PathBuf {
        self.dir.join("genesis.toml")
    }

    /// The workload file of `shard`.
    pub fn shard_path(&self, shard: u16) -> PathBuf {
        self.dir.join(format!("shard-{shard:03}.workload"))
    }
}

/// The BIP-340 workload of `params` in `cache_dir` (the bench's), generated
/// unless a complete copy is already there: [`load_or_generate_with`].
pub fn load_or_generate(
    cache_dir: &Path,
    params: WorkloadParams,
    show_progress: bool,
) -> Result<Workload, WorkloadError> {
    load_or_generate_with(cache_dir, params, &Bip340Signing, show_progress)
}

/// The workload of `params` signed by `signing`, in `cache_dir`, generated
/// (shards in parallel threads, progress on stderr) unless a complete copy
/// is already there.
pub fn load_or_generate_with<W: WorkloadSigning>(
    cache_dir: &Path,
    params: WorkloadParams,
    signing: &W,
    show_progress: bool,
) -> Result<Workload, WorkloadError> {
    let workload = Workload {
        dir: cache_dir.join(format!("{}{}", params.cache_name(), W::CACHE_SUFFIX)),
        params,
    };
    let complete = workload.dir.join("COMPLETE");
    if complete.exists() {
        return Ok(workload);
    }
    fs::create_dir_all(&workload.dir).map_err(io_error(&workload.dir, "create directory"))?;
    let (genesis, note) = bench_genesis(&params);
    let genesis_path = workload.genesis_path();
    fs::write(&genesis_path, genesis_file::render(&genesis, &note))
        .map_err(io_error(&genesis_path, "write"))?;
    let progress = std::sync::Mutex::new(vec![(0u64, 0u64); usize::from(params.shards)]);
    let show = |shard: u16, done: u64, total: u64| {
        if !show_progress || done % 4096 > u64::from(params.tx_per_anchor) {
            return;
        }
        let mut all = progress.lock().expect("no panics while held");
        all[usize::from(shard)] = (done, total);
        let (done, total) = all.iter().fold((0, 0), |(d, t), (a, b)| (d + a, t + b));
        eprint!(
            "\rgenerating workload: {done}/{total} transfers signed ({}%)",
            done * 100 / total.max(1)
        );
    };
    let results: Vec<Result<(), WorkloadError>> = if params.cross_per_mille > 0 {
        // Value moves between the shards: they are made together.
        let all: Vec<u16> = (0..params.shards).collect();
        vec![generate_shards(
            &genesis,
            &all,
            params.tx_per_anchor,
            u64::from(params.events_per_shard),
            params.cross_per_mille,
            signing,
            show,
        )
        .and_then(|items| {
            items
                .iter()
                .zip(&all)
                .try_for_each(|(items, shard)| write_items(&workload.shard_path(*shard), items))
        })]
    } else {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let next_shard = std::sync::atomic::AtomicU16::new(0);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads.min(usize::from(params.shards)))
                .map(|_| {
                    scope.spawn(|| -> Result<(), WorkloadError> {
                        loop {
                            let shard =
                                next_shard.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if shard >= params.shards {
                                return Ok(());
                            }
                            let items = generate_shard(
                                &genesis,
                                shard,
                                params.tx_per_anchor,
                                u64::from(params.events_per_shard),
                                signing,
                                |done, total| show(shard, done, total),
                            )?;
                            write_items(&workload.shard_path(shard), &items)?;
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("generator thread panicked"))
                .collect()
        })
    };
    if show_progress {
        eprintln!();
    }
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    fs::write(&complete, b"").map_err(io_error(&complete, "write"))?;
    Ok(workload)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(committee: u8, events: u32) -> WorkloadParams {
        WorkloadParams {
            shards: 1,
            committee,
            tx_per_anchor: 16,
            events_per_shard: events,
            cross_per_mille: 0,
        }
    }

    #[test]
    fn generated_dag_finalizes_every_transfer_and_spends_each_output_once() {
        for committee in [1, 4] {
            let (genesis, _) = bench_genesis(&small(committee, 256));
            let items = generate_shard(&genesis, 0, 16, 256, &Bip340Signing, |_, _| {}).unwrap();
            let events: u64 = items.iter().map(|i| u64::from(i.events)).sum();
            assert_eq!(events, 256, "k={committee}");
            assert!(items.iter().all(|i| i.events <= 16));
        }
    }

    #[test]
    fn transfers_past_the_genesis_outputs_chain_on_own_outputs_and_spend_each_once() {
        use pc_codec::Decode;
        use pc_shard::state::Outcome;
        let (genesis, _) = bench_genesis(&small(4, 64));
        assert_eq!(shard_out_points(&genesis, 0).len(), 64);
        let items = generate_shard(&genesis, 0, 16, 256, &Bip340Signing, |_, _| {}).unwrap();
        let genesis_points: std::collections::HashSet<_> =
            shard_out_points(&genesis, 0).into_iter().collect();
        let mut observer: Shard<pc_codec::Bip340, SigningKey> = Shard::new(
            &genesis,
            0,
            Role::Observer,
            pc_codec::Bip340,
            ShardLimits::default(),
        );
        let mut spent = std::collections::HashSet::<OutPoint>::new();
        let mut applied = 0;
        for item in &items {
            let anchor = SignedAnchor::from_bytes(&item.bytes).unwrap();
            for event in &anchor.payload.events {
                let MicroEvent::Transfer(transfer) = event else {
                    panic!("only transfers");
                };
                assert!(transfer.inputs.iter().all(|input| spent.insert(*input)));
            }
            observer.handle_anchor(None, &item.bytes).unwrap();
            while observer.poll_persist().is_some() {}
            while let Some(report) = observer.poll_finalized() {
                for (_, outcome) in &report.outcome.outcomes {
                    assert_eq!(*outcome, Outcome::Applied);
                    applied += 1;
                }
            }
        }
        assert_eq!(applied, 256);
        assert_eq!(spent.len(), 256);
        assert_eq!(spent.intersection(&genesis_points).count(), 64);
    }

    #[test]
    fn cross_shard_workload_imports_every_export_once_and_spends_imported_outputs() {
        use pc_codec::Decode;
        use pc_shard::state::Outcome;
        let params = WorkloadParams {
            shards: 2,
            committee: 4,
            tx_per_anchor: 16,
            events_per_shard: 64,
            cross_per_mille: 500,
        };
        let (genesis, _) = bench_genesis(&params);
        // 64 genesis outputs per shard and 512 transfers each: half of
        // them leave, so the shards run dry unless imported outputs are
        // spent again.
        let workloads = generate_shards(
            &genesis,
            &[0, 1],
            16,
            512,
            500,
            &Bip340Signing,
            |_, _, _| {},
        )
        .unwrap();
        let mut exported = 0u64;
        let mut imported = 0u64;
        let mut imported_spent = 0u64;
        let mut landed = std::collections::HashSet::new();
        let mut import_outputs = std::collections::HashSet::new();
        for (shard, items) in workloads.iter().enumerate() {
            let mut observer: Shard<pc_codec::Bip340, SigningKey> = Shard::new(
                &genesis,
                shard as u16,
                Role::Observer,
                pc_codec::Bip340,
                ShardLimits::default(),
            );
            let mut transfers = 0u64;
            for item in items {
                let anchor = SignedAnchor::from_bytes(&item.bytes).unwrap();
                for event in &anchor.payload.events {
                    match event {
                        MicroEvent::Transfer(transfer) => {
                            transfers += 1;
                            let payee = transfer.outputs[0].owner;
                            if shard_of(&payee, 2) != shard as u16 {
                                exported += 1;
                            }
                        }
                        MicroEvent::Import(import) => {
                            import_outputs.insert(OutPoint {
                                tx_id: import.leaf.tx_id,
                                index: 0,
                            });
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
                observer.handle_anchor(None, &item.bytes).unwrap();
                while observer.poll_persist().is_some() {}
                while let Some(report) = observer.poll_finalized() {
                    for (_, outcome) in &report.outcome.outcomes {
                        assert!(matches!(
                            outcome,
                            Outcome::Applied
                                | Outcome::ImportDuplicate
                                | Outcome::ImportUnregistered
                                | Outcome::ImportWindowFull
                        ));
                    }
                    for (source, tx_id) in &report.outcome.imported {
                        assert_ne!(usize::from(*source), shard);
                        assert!(landed.insert(*tx_id), "one leaf imported once");
                        imported += 1;
                    }
                }
            }
            assert_eq!(transfers, 512, "shard {shard}");
            // Spends of imported outputs: a transfer input among them.
            for item in items {
                let anchor = SignedAnchor::from_bytes(&item.bytes).unwrap();
                for event in &anchor.payload.events {
                    if let MicroEvent::Transfer(transfer) = event {
                        imported_spent += transfer
                            .inputs
                            .iter()
                            .filter(|input| import_outputs.contains(input))
                            .count() as u64;
                    }
                }
            }
        }
        assert_eq!(exported, 512, "half of 2 x 512 transfers export");
        assert_eq!(imported, exported, "every export imported, each once");
        assert!(imported_spent > 0, "imported outputs are spent again");
    }
}
