//! The steady-state workload of DESIGN §11: a k = 21 committee of in-memory
//! seat machines (`pc_shard`'s own anchor creation, so parents, birth rounds
//! and payload commitments are what a real committee produces) makes a DAG
//! of anchors that carry 256 transfers each, signed with the simulator's fast
//! scheme. Generated once, outside any timed region.
//!
//! The seats run in jittered waves like the engine's bench generator: in
//! each wave every seat takes the anchors that reached it (one or two waves
//! after they were sent) and, when its mempool is empty, 256 fresh
//! transfers; about half the seats then send their next anchor. The order in
//! which anchors are sent is the workload order.
//!
//! Transfers spend one output each and pay it back to the client minus a
//! fee of one unit. The outputs they spend come from a pool that starts with
//! the genesis outputs and is refilled with every output an observer (fed
//! the workload in its order) has seen *finalized and applied*: the UTXO set
//! keeps a constant size (a steady state, not a genesis set draining away),
//! and every transfer is valid when it is applied in the workload order.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment,
    MAX_OUTPUTS_PER_ALLOCATION, UNITS_PER_PC,
};
use pc_codec::{
    Hash32, MicroEvent, OutPoint, PublicKeyBytes, SignatureBytes, SignatureVerifier, Transfer,
    TxOut,
};
use pc_shard::machine::{FastSeatKey, Role, Shard, ShardLimits, ShardMessage};
use pc_shard::sim_crypto::FastSigner;
use pc_shard::state::Outcome;

/// Seats of the committee.
pub const SEATS: u8 = 21;
/// Transfers per anchor.
pub const TX_PER_ANCHOR: usize = 256;
/// Genesis allocations of [`MAX_OUTPUTS_PER_ALLOCATION`] outputs each.
pub const GENESIS_ALLOCATIONS: u32 = 6;
/// Units in every genesis output.
pub const OUTPUT_UNITS: u64 = 1_000_000;

/// A verifier that accepts every signature: the node under test with its
/// signature checks taken out (DESIGN §11 measures ordering "signature
/// checks aside"), and the generator's seats, which see nothing but objects
/// the generator itself just signed. Never the product.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSignatureCheck;

impl SignatureVerifier for NoSignatureCheck {
    fn verify(&self, _: &PublicKeyBytes, _: &[u8], _: &SignatureBytes) -> bool {
        true
    }
}

/// The public key of seat `seat` (any 32 bytes do for the fast scheme; a
/// real x-only key keeps the genesis realistic).
pub fn seat_key(seat: u8) -> PublicKeyBytes {
    crate::key(10 + seat).public_key()
}

/// The client that owns every output.
pub fn client() -> PublicKeyBytes {
    crate::key(200).public_key()
}

/// The k = 21, one-shard genesis of the workload.
pub fn genesis() -> Genesis {
    let genesis = Genesis {
        params: ConsensusParams::v0(SEATS, 1),
        note_commitment: [0x5e; 32],
        validators: (0..SEATS)
            .map(|seat| GenesisValidator {
                key: seat_key(seat),
                bond: 10_000 * UNITS_PER_PC,
                seats: vec![SeatAssignment { shard: 0, seat }],
            })
            .collect(),
        allocations: (0..GENESIS_ALLOCATIONS)
            .map(|_| GenesisAllocation {
                owner: client(),
                amount: OUTPUT_UNITS,
                outputs: MAX_OUTPUTS_PER_ALLOCATION,
            })
            .collect(),
    };
    genesis
        .validate()
        .expect("the steady-state genesis is valid");
    genesis
}

/// The generated workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The genesis the anchors were made for.
    pub genesis: Genesis,
    /// Encoded `SignedAnchor`s, in the order they were sent.
    pub anchors: Vec<Vec<u8>>,
    /// Anchors carrying exactly [`TX_PER_ANCHOR`] transfers.
    pub full_anchors: usize,
    /// Transfers in all anchors.
    pub transfers: usize,
    /// Transfers the generator's observer saw finalized and applied.
    pub applied: usize,
    /// Waves the generation took.
    pub waves: u64,
}

type Seat = Shard<NoSignatureCheck, FastSeatKey>;

struct WaveSeat {
    machine: Seat,
    unacknowledged_token: Option<u64>,
    inbox: Vec<(u64, Rc<Vec<u8>>)>,
}

impl WaveSeat {
    fn collect(&mut self) {
        while let Some(record) = self.machine.poll_persist() {
            self.unacknowledged_token = Some(record.token);
        }
        while self.machine.poll_finalized().is_some() {}
    }
}

/// A deterministic 64-bit mix (splitmix64's finalizer).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether `seat` sends nothing in `wave` (about half the seats each wave).
fn sits_out(wave: u64, seat: usize) -> bool {
    mix(wave << 8 | seat as u64) & 1 == 0
}

/// The delay of anchor `item` to seat `receiver`: one or two waves.
fn delay_waves(item: usize, receiver: usize) -> u64 {
    1 + (mix((item as u64) << 8 | receiver as u64 | 1 << 62) & 1)
}

/// A transfer of `input` (worth `amount`) back to the client, minus a fee of
/// one unit, signed with the fast scheme.
fn transfer(network: &[u8; 8], client: PublicKeyBytes, input: OutPoint, amount: u64) -> Transfer {
    let mut transfer = Transfer {
        inputs: vec![input],
        outputs: vec![TxOut {
            amount: amount - 1,
            owner: client,
        }],
        owner: client,
        signature: [0; 64],
    };
    transfer.signature = FastSigner.sign(&client, &transfer.tx_id(network));
    transfer
}

/// Generates at least `min_anchors` anchors (a few more: the last wave is
/// completed). Panics if the committee stalls.
pub fn generate(min_anchors: usize) -> Workload {
    let genesis = genesis();
    let network = genesis.network();
    let client = client();
    let new_machine =
        |role| Shard::new(&genesis, 0, role, NoSignatureCheck, ShardLimits::default());
    let mut seats: Vec<WaveSeat> = (0..SEATS)
        .map(|seat| WaveSeat {
            machine: new_machine(Role::Seat {
                seat,
                signer: FastSeatKey(seat_key(seat)),
            }),
            unacknowledged_token: None,
            inbox: Vec::new(),
        })
        .collect();
    let mut observer: Seat = new_machine(Role::Observer);
    let mut pool: VecDeque<(OutPoint, u64)> = (0..GENESIS_ALLOCATIONS)
        .flat_map(|allocation| {
            (0..MAX_OUTPUTS_PER_ALLOCATION).map(move |output| {
                (
                    Genesis::allocation_out_point(&network, allocation, output as u16),
                    OUTPUT_UNITS,
                )
            })
        })
        .collect();
    // Micro-event id -> (tx id, value of its output), until finalized.
    let mut in_flight: HashMap<Hash32, (Hash32, u64)> = HashMap::new();
    let (mut anchors, mut full_anchors, mut transfers, mut applied) = (Vec::new(), 0, 0, 0);
    let mut wave = 0u64;
    let started = std::time::Instant::now();
    while anchors.len() < min_anchors {
        wave += 1;
        if wave.is_multiple_of(100) {
            eprintln!(
                "generating: wave {wave}, {} anchors, {applied} transfers applied, {:.1?}",
                anchors.len(),
                started.elapsed()
            );
        }
        assert!(
            wave < 100 * min_anchors as u64 / usize::from(SEATS) as u64 + 1000,
            "the generator's committee stalled after {} anchors",
            anchors.len()
        );
        for seat in &mut seats {
            if seat.machine.mempool_len() == 0 && pool.len() >= TX_PER_ANCHOR {
                for (input, amount) in pool.drain(..TX_PER_ANCHOR) {
                    let transfer = transfer(&network, client, input, amount);
                    let event = MicroEvent::Transfer(transfer);
                    let MicroEvent::Transfer(t) = &event else {
                        unreachable!()
                    };
                    in_flight.insert(event.id(), (t.tx_id(&network), amount - 1));
                    seat.machine
                        .handle_micro_event(event)
                        .expect("a fresh transfer is accepted");
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut seat.inbox)
                .into_iter()
                .partition(|(at, _)| *at <= wave);
            seat.inbox = later;
            for (_, bytes) in due {
                seat.machine
                    .handle_anchor(None, &bytes)
                    .expect("a seat accepts another seat's anchor");
                // Every anchor arrives within two waves: pulls are not needed.
                while seat
                    .machine
                    .poll_transmit()
                    .is_some_and(|t| matches!(t.message, ShardMessage::Get(_)))
                {}
            }
            seat.collect();
        }
        for creator in 0..usize::from(SEATS) {
            if sits_out(wave, creator) {
                continue;
            }
            let seat = &mut seats[creator];
            if let Some(token) = seat.unacknowledged_token.take() {
                seat.machine.handle_durable(token);
            }
            seat.collect();
            while let Some(transmit) = seats[creator].machine.poll_transmit() {
                let ShardMessage::Anchor(bytes) = transmit.message else {
                    continue;
                };
                let bytes = Rc::new(bytes);
                for (index, other) in seats.iter_mut().enumerate() {
                    if index != creator {
                        other
                            .inbox
                            .push((wave + delay_waves(anchors.len(), index), bytes.clone()));
                    }
                }
                observer
                    .handle_anchor(None, &bytes)
                    .expect("the observer accepts every seat's anchor");
                while observer.poll_persist().is_some() {}
                while let Some(report) = observer.poll_finalized() {
                    for (id, outcome) in &report.outcome.outcomes {
                        if let Some((tx_id, amount)) = in_flight.remove(id) {
                            assert_eq!(*outcome, Outcome::Applied, "a workload transfer failed");
                            applied += 1;
                            pool.push_back((OutPoint { tx_id, index: 0 }, amount));
                        }
                    }
                }
                let events = {
                    use pc_codec::Decode;
                    pc_codec::SignedAnchor::from_bytes(&bytes)
                        .expect("a seat's anchor decodes")
                        .payload
                        .events
                        .len()
                };
                full_anchors += usize::from(events == TX_PER_ANCHOR);
                transfers += events;
                anchors.push(Rc::unwrap_or_clone(bytes));
            }
        }
    }
    Workload {
        genesis,
        anchors,
        full_anchors,
        transfers,
        applied,
        waves: wave,
    }
}

/// Changes whenever [`generate`] makes a different workload, so that a
/// stale cached one is never used.
pub const GENERATOR_VERSION: u32 = 1;

/// [`generate`], cached in the system's temporary directory (generation
/// takes minutes; the cache file is a few hundred MB, keyed by
/// [`GENERATOR_VERSION`] and `min_anchors`). A cache that does not read
/// back is generated again.
pub fn load_or_generate(min_anchors: usize) -> Workload {
    let path = std::env::temp_dir().join(format!(
        "pc-benches-steady-g{GENERATOR_VERSION}-k{SEATS}-b{TX_PER_ANCHOR}-a{min_anchors}.bin"
    ));
    if let Some(workload) = read_cache(&path) {
        eprintln!("workload: read from {}", path.display());
        return workload;
    }
    let workload = generate(min_anchors);
    if let Err(error) = write_cache(&path, &workload) {
        eprintln!("workload: not cached at {}: {error}", path.display());
    }
    workload
}

fn write_cache(path: &std::path::Path, workload: &Workload) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    for value in [
        workload.anchors.len() as u64,
        workload.full_anchors as u64,
        workload.transfers as u64,
        workload.applied as u64,
        workload.waves,
    ] {
        out.write_all(&value.to_le_bytes())?;
    }
    for anchor in &workload.anchors {
        out.write_all(&(anchor.len() as u64).to_le_bytes())?;
        out.write_all(anchor)?;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn read_cache(path: &std::path::Path) -> Option<Workload> {
    let bytes = std::fs::read(path).ok()?;
    let mut at = 0usize;
    let next_u64 = |at: &mut usize| -> Option<u64> {
        let value = u64::from_le_bytes(bytes.get(*at..*at + 8)?.try_into().ok()?);
        *at += 8;
        Some(value)
    };
    let count = next_u64(&mut at)? as usize;
    let full_anchors = next_u64(&mut at)? as usize;
    let transfers = next_u64(&mut at)? as usize;
    let applied = next_u64(&mut at)? as usize;
    let waves = next_u64(&mut at)?;
    let mut anchors = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        let len = next_u64(&mut at)? as usize;
        anchors.push(bytes.get(at..at.checked_add(len)?)?.to_vec());
        at += len;
    }
    (at == bytes.len()).then_some(Workload {
        genesis: genesis(),
        anchors,
        full_anchors,
        transfers,
        applied,
        waves,
    })
}
