//! Clients: they hold every genesis output, submit signed transfers to
//! seats — fresh spends, double spends (one input, two transfers, two
//! seats), chained spends of outputs the shard finalized, and chains in
//! flight (parent and child to one seat back to back) — and check what the
//! finalized sequence did with them.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use pc_codec::genesis::Genesis;
use pc_codec::{Hash32, MicroEvent, OutPoint, Transfer, TxOut};
use pc_shard::state::Outcome;

use crate::sim::checker::{short, FinalizedEvent};
use crate::sim::crypto::{client_public, SimCrypto, CLIENTS};
use crate::sim::model::Model;
use crate::sim::rng::Rng;

/// Largest fee a client pays, in units.
const MAX_FEE_UNITS: u64 = 100;

/// An output a client can spend.
#[derive(Debug, Clone, Copy)]
pub struct Spendable {
    out_point: OutPoint,
    amount: u64,
    client: usize,
}

/// Why a transfer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Spends an output nobody else spends.
    Fresh,
    /// One of two transfers of one input, sent to two seats.
    DoubleSpend,
    /// Spends an output of a finalized transfer.
    ChainedAfterFinality,
    /// Spends an output of a transfer sent just before to the same honest
    /// seat, not yet finalized.
    ChainedInFlight,
    /// Spends a minted output, mature or not.
    SpendMinted,
}

/// A transfer to submit to `seat`.
pub struct Submission {
    /// True for a spend of a minted output.
    pub spends_minted: bool,
    /// The seat.
    pub seat: u8,
    /// The transfer.
    pub event: MicroEvent,
    kind: Kind,
    parent: Option<Hash32>,
    outputs: Vec<Spendable>,
    input: Option<Spendable>,
}

struct Accepted {
    kind: Kind,
    parent: Option<Hash32>,
    seat: u8,
    incarnation: u32,
    honest: bool,
    outputs: Vec<Spendable>,
    input: Option<Spendable>,
}

/// What the clients saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientStats {
    /// Transfers handed to a running seat.
    pub submitted: u64,
    /// Taken into a mempool.
    pub accepted: u64,
    /// Sent to a seat that was down, silent or not yet joined.
    pub lost_to_absent_seat: u64,
    /// Refused because the mempool was full.
    pub mempool_full: u64,
    /// Double-spend pairs sent.
    pub double_spend_pairs: u64,
    /// Double spends finalized as `UnknownOrSpentInput`.
    pub rejected_double_spends: u64,
    /// Chained spends (after finality or in flight) applied.
    pub chained_applied: u64,
    /// Client transfers applied.
    pub applied: u64,
    /// A transfer finalized again (a fork's copy of a payload).
    pub finalized_again: u64,
    /// Spends of minted outputs finalized as immature.
    pub immature_rejected: u64,
    /// Spends of minted outputs applied.
    pub matured_spent: u64,
    /// Spends of minted outputs refused at submission as immature.
    pub immature_refused: u64,
}

/// The clients of one seed.
pub struct Clients<C> {
    network: [u8; 8],
    genesis_unspent: Vec<Spendable>,
    finalized_unspent: Vec<Spendable>,
    /// Won mints' outputs owned by clients, spent (and retried while
    /// immature) now and then.
    minted: Vec<Spendable>,
    accepted: HashMap<Hash32, Accepted>,
    finalized: HashSet<Hash32>,
    /// Parents of in-flight children that were finalized as rejected before
    /// their parent applied.
    rejected_children: HashMap<Hash32, Hash32>,
    pub stats: ClientStats,
    crypto: PhantomData<C>,
}

impl<C: SimCrypto> Clients<C> {
    /// Clients owning every genesis output, in a seeded order.
    pub fn new(genesis: &Genesis, rng: &mut Rng) -> Self {
        let network = genesis.network();
        let mut genesis_unspent: Vec<Spendable> = genesis
            .allocations
            .iter()
            .enumerate()
            .flat_map(|(index, allocation)| {
                let client = (0..CLIENTS)
                    .find(|c| client_public(*c) == allocation.owner)
                    .expect("every allocation is a client's");
                (0..allocation.outputs).map(move |output| Spendable {
                    out_point: Genesis::allocation_out_point(&network, index as u32, output as u16),
                    amount: allocation.amount,
                    client,
                })
            })
            .collect();
        rng.shuffle(&mut genesis_unspent);
        Clients {
            network,
            genesis_unspent,
            finalized_unspent: Vec::new(),
            minted: Vec::new(),
            accepted: HashMap::new(),
            finalized: HashSet::new(),
            rejected_children: HashMap::new(),
            stats: ClientStats::default(),
            crypto: PhantomData,
        }
    }

    /// The next batch of transfers: `honest_seats` (non-empty) are the
    /// seats a chain in flight may go to.
    pub fn next_batch(&mut self, rng: &mut Rng, k: usize, honest_seats: &[u8]) -> Vec<Submission> {
        let any_seat = |rng: &mut Rng| rng.below(k as u64) as u8;
        if !self.minted.is_empty() && rng.chance(100) {
            let input = take_random(rng, &mut self.minted).expect("not empty");
            let (event, outputs) = self.transfer(rng, input);
            let mut submission =
                self.submission(any_seat(rng), event, Kind::SpendMinted, None, outputs);
            submission.input = Some(input);
            return vec![submission];
        }
        match rng.below(100) {
            0..60 => self.fresh(rng).map_or_else(Vec::new, |(event, outputs)| {
                vec![self.submission(any_seat(rng), event, Kind::Fresh, None, outputs)]
            }),
            60..75 => self.double_spend(rng, k),
            75..90 => match take_random(rng, &mut self.finalized_unspent) {
                Some(input) => {
                    let (event, outputs) = self.transfer(rng, input);
                    vec![self.submission(
                        any_seat(rng),
                        event,
                        Kind::ChainedAfterFinality,
                        None,
                        outputs,
                    )]
                }
                None => Vec::new(),
            },
            _ => {
                let seat = honest_seats[rng.index(honest_seats.len())];
                self.chain_in_flight(rng, seat)
            }
        }
    }

    fn submission(
        &self,
        seat: u8,
        event: MicroEvent,
        kind: Kind,
        parent: Option<Hash32>,
        outputs: Vec<Spendable>,
    ) -> Submission {
        Submission {
            spends_minted: kind == Kind::SpendMinted,
            seat,
            event,
            kind,
            parent,
            outputs,
            input: None,
        }
    }

    fn fresh(&mut self, rng: &mut Rng) -> Option<(MicroEvent, Vec<Spendable>)> {
        let input = take_random(rng, &mut self.genesis_unspent)?;
        Some(self.transfer(rng, input))
    }

    fn double_spend(&mut self, rng: &mut Rng, k: usize) -> Vec<Submission> {
        let Some(input) = take_random(rng, &mut self.genesis_unspent) else {
            return Vec::new();
        };
        let (first, first_outputs) = self.transfer(rng, input);
        let (second, second_outputs) = loop {
            let candidate = self.transfer(rng, input);
            if candidate.0 != first {
                break candidate;
            }
        };
        let seat = rng.below(k as u64) as u8;
        let other = if k == 1 {
            seat
        } else {
            ((u64::from(seat) + rng.between(1, k as u64 - 1)) % k as u64) as u8
        };
        self.stats.double_spend_pairs += 1;
        vec![
            self.submission(seat, first, Kind::DoubleSpend, None, first_outputs),
            self.submission(other, second, Kind::DoubleSpend, None, second_outputs),
        ]
    }

    fn chain_in_flight(&mut self, rng: &mut Rng, seat: u8) -> Vec<Submission> {
        let Some((parent, parent_outputs)) = self.fresh(rng) else {
            return Vec::new();
        };
        let parent_id = parent.id();
        let (child, child_outputs) = self.transfer(rng, parent_outputs[0]);
        let rest = parent_outputs[1..].to_vec();
        vec![
            self.submission(seat, parent, Kind::Fresh, None, rest),
            self.submission(
                seat,
                child,
                Kind::ChainedInFlight,
                Some(parent_id),
                child_outputs,
            ),
        ]
    }

    /// A signed transfer of `input` to one or two random clients.
    fn transfer(&self, rng: &mut Rng, input: Spendable) -> (MicroEvent, Vec<Spendable>) {
        let fee = rng.between(0, MAX_FEE_UNITS.min(input.amount / 2));
        let value = input.amount - fee;
        let amounts = if value >= 2 && rng.chance(200) {
            let first = rng.between(1, value - 1);
            vec![first, value - first]
        } else {
            vec![value]
        };
        let recipients: Vec<usize> = amounts.iter().map(|_| rng.index(CLIENTS)).collect();
        let mut transfer = Transfer {
            inputs: vec![input.out_point],
            outputs: amounts
                .iter()
                .zip(&recipients)
                .map(|(amount, client)| TxOut {
                    amount: *amount,
                    owner: client_public(*client),
                })
                .collect(),
            owner: client_public(input.client),
            signature: [0; 64],
        };
        C::sign_transfer(input.client, &mut transfer, &self.network);
        let tx_id = transfer.tx_id(&self.network);
        let outputs = amounts
            .iter()
            .zip(&recipients)
            .enumerate()
            .map(|(index, (amount, client))| Spendable {
                out_point: OutPoint {
                    tx_id,
                    index: index as u16,
                },
                amount: *amount,
                client: *client,
            })
            .collect();
        (MicroEvent::Transfer(transfer), outputs)
    }

    /// Records a submission the seat took into its mempool.
    pub fn record_accepted(&mut self, submission: Submission, incarnation: u32, honest: bool) {
        self.stats.accepted += 1;
        self.accepted.insert(
            submission.event.id(),
            Accepted {
                kind: submission.kind,
                parent: submission.parent,
                seat: submission.seat,
                incarnation,
                honest,
                outputs: submission.outputs,
                input: submission.input,
            },
        );
    }

    /// Checks newly finalized micro-events: a chained spend applies only
    /// after its parent, and a chain in flight to an honest seat is never
    /// ordered before its parent. Applied outputs become spendable.
    pub fn on_finalized(&mut self, events: &[FinalizedEvent], model: &Model) -> Result<(), String> {
        for event in events {
            let Some(accepted) = self.accepted.get(&event.id) else {
                continue;
            };
            if !self.finalized.insert(event.id) {
                self.stats.finalized_again += 1;
            }
            match event.outcome {
                Outcome::Applied => {
                    self.stats.applied += 1;
                    self.stats.matured_spent += u64::from(accepted.kind == Kind::SpendMinted);
                    if let Some(parent) = accepted.parent {
                        let parent_position = model.applied_at(&parent);
                        if parent_position.is_none_or(|p| p >= event.position) {
                            return Err(format!(
                                "chained transfer {} applied at {} before its parent {} ({parent_position:?})",
                                short(&event.id),
                                event.position,
                                short(&parent)
                            ));
                        }
                        self.stats.chained_applied += 1;
                    }
                    if let Some(child) = self.rejected_children.get(&event.id) {
                        return Err(format!(
                            "transfer {} applied at {} after its child {} (sent after it to the same honest seat) was ordered first",
                            short(&event.id),
                            event.position,
                            short(child)
                        ));
                    }
                    self.finalized_unspent
                        .extend(accepted.outputs.iter().copied());
                }
                Outcome::UnknownOrSpentInput => {
                    if accepted.kind == Kind::DoubleSpend {
                        self.stats.rejected_double_spends += 1;
                    }
                    if let (Kind::ChainedInFlight, true, Some(parent)) =
                        (accepted.kind, accepted.honest, accepted.parent)
                    {
                        if model.applied_at(&parent).is_none() {
                            self.rejected_children.insert(parent, event.id);
                        }
                    }
                }
                Outcome::ImmatureInput if accepted.kind == Kind::SpendMinted => {
                    self.stats.immature_rejected += 1;
                    // Tried again later, once it may have matured.
                    self.minted.extend(accepted.input);
                }
                other => {
                    return Err(format!(
                        "client transfer {} finalized as {other:?}",
                        short(&event.id)
                    ))
                }
            }
        }
        Ok(())
    }

    /// A spend of a minted output refused at submission as immature: the
    /// output is tried again later.
    pub fn refused_immature(&mut self, submission: Submission) {
        self.stats.immature_refused += 1;
        self.minted.extend(submission.input);
    }

    /// A won mint: its output is spendable by its miner (a client) — from
    /// its maturity on; spends before are tried too and must be refused.
    pub fn on_mint_won(&mut self, win: &pc_shard::mint::MintWin) {
        if let Some(client) = (0..CLIENTS).find(|c| client_public(*c) == win.miner) {
            self.minted.push(Spendable {
                out_point: OutPoint {
                    tx_id: win.mint_id,
                    index: 0,
                },
                amount: win.reward,
                client,
            });
        }
    }

    /// Transfers an honest seat accepted in incarnation `incarnation_of`
    /// (still the current one) that never reached the finalized sequence.
    pub fn unfinalized(&self, incarnation_of: impl Fn(u8) -> u32) -> Vec<(Hash32, u8)> {
        let mut missing: Vec<(Hash32, u8)> = self
            .accepted
            .iter()
            .filter(|(id, a)| {
                a.honest && a.incarnation == incarnation_of(a.seat) && !self.finalized.contains(*id)
            })
            .map(|(id, a)| (*id, a.seat))
            .collect();
        missing.sort();
        missing
    }
}

fn take_random<T>(rng: &mut Rng, items: &mut Vec<T>) -> Option<T> {
    if items.is_empty() {
        return None;
    }
    let index = rng.index(items.len());
    Some(items.swap_remove(index))
}
