//! The mint and wallet requests of the client protocol (DESIGN §5.5, §7):
//! mint templates, solutions (pre-checked against the finalized chain and
//! admitted like submissions: the source's budget, then the shard's
//! capacity signal), mint status, and an owner's unspent outputs a page at
//! a time. Every answer comes from the finalized state of a local shard.
//! Templates, solutions and statuses are charged to the source's
//! submission budget; balances and unspent pages, which scan the UTXO
//! slice, to the scan budget (per source and over every source, in entries
//! visited). Past a budget a query goes unanswered and the client asks
//! again.

use std::net::SocketAddr;

use pc_codec::{Hash32, MicroEvent, Mint, OutPoint, PublicKeyBytes};
use pc_net::frame::{
    UnspentOutput, MAX_UNSPENT_PER_PAGE, MINT_INVALID, MINT_NOT_BEST, MINT_NOT_SERVED, MINT_TAKEN,
};
use pc_net::peer_book::PeerEvent;
use pc_net::NetMessage;
use pc_shard::machine::SubmitRejected;

use crate::core::{
    NodeCore, NodeIo, Now, CATCH_UP_LAG_ROUNDS, SCAN_OUTPUTS_PER_S, SCAN_SOURCE_SHARE,
};
use crate::forward::Origin;
use crate::intake::source_bucket;
use crate::NodeError;

impl NodeCore {
    /// The mint chain's tip, target and race as the finalized state of the
    /// mint shard (local: the dispatcher routed it here) shows them.
    pub(crate) fn answer_mint_template(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        (remote, now): (SocketAddr, Now),
        shard: u16,
        request: u64,
    ) {
        if self.submit_allowance(remote, 1, now) < 1 {
            return;
        }
        let host = &self.shards[&shard];
        let state = host.machine().state();
        let chain = state.mint();
        let race = chain.race();
        let answer = NetMessage::MintTemplate {
            request,
            network: self.genesis.network(),
            mint_shard: shard,
            prev_mint_id: chain.tip(),
            target: chain.target(),
            mint_count: chain.count(),
            reward: chain.next_reward(),
            race_open: u8::from(race.is_some()),
            race_best_pow: race.map_or([0; 32], |r| r.best.pow_hash),
            finalized_round: host.counters().last_round.unwrap_or(0),
            next_anchor_index: state.economics().next_anchor_index(),
        };
        self.reply(io, origin, answer);
    }

    /// A miner's solution: within the source's submission budget and the
    /// shard's capacity, pre-checked by the seat's machine, answered with
    /// the outcome code of `MintSubmitted`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn take_mint_solution(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        remote: SocketAddr,
        shard: u16,
        request: u64,
        mint: Mint,
        now: Now,
    ) -> Result<(), NodeError> {
        let event = MicroEvent::Mint(mint);
        let mint_id: Hash32 = event.id();
        let lag = self.round_lag(shard);
        let outcome = if self.submit_allowance(remote, 1, now) == 0 || lag > CATCH_UP_LAG_ROUNDS {
            MINT_NOT_SERVED
        } else {
            let host = self.shards.get_mut(&shard).expect("local");
            if host.admit(1, now.mono_us).taken == 0 {
                // Refused before any check: given back, as a submission's.
                self.submit_refund(remote, 1, now);
                MINT_NOT_SERVED
            } else {
                let mut results = host.submit_micro_events(vec![event], now.mono_us)?;
                match results.pop().map(|(_, status)| status) {
                    Some(Ok(())) => MINT_TAKEN,
                    Some(Err(SubmitRejected::MintRefused { outcome })) => outcome as u8,
                    Some(Err(SubmitRejected::MintNotBest { .. })) => MINT_NOT_BEST,
                    Some(Err(SubmitRejected::Invalid(_))) => MINT_INVALID,
                    _ => MINT_NOT_SERVED,
                }
            }
        };
        if outcome == MINT_INVALID {
            self.record(remote, PeerEvent::InvalidMessage, now);
        }
        let answer = NetMessage::MintSubmitted {
            request,
            mint_id,
            outcome,
        };
        self.reply(io, origin, answer);
        Ok(())
    }

    /// What this node knows of a mint.
    pub(crate) fn answer_mint_status(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        (remote, now): (SocketAddr, Now),
        shard: u16,
        request: u64,
        mint_id: Hash32,
    ) {
        if self.submit_allowance(remote, 1, now) < 1 {
            return;
        }
        let status = self.shards[&shard].machine().mint_status(&mint_id);
        let answer = NetMessage::MintStatus {
            request,
            mint_id,
            status: status.state as u8,
            round: status.round,
            reward: status.reward,
            mature_at: status.mature_at,
        };
        self.reply(io, origin, answer);
    }

    /// A page of `owner`'s unspent outputs in the finalized state of its
    /// shard, after `after`, at most `max` (clamped to
    /// `1..=MAX_UNSPENT_PER_PAGE`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn answer_unspent(
        &mut self,
        io: &mut dyn NodeIo,
        origin: Origin,
        (remote, now): (SocketAddr, Now),
        shard: u16,
        request: u64,
        owner: PublicKeyBytes,
        after: Option<OutPoint>,
        max: u16,
    ) {
        let cost = self.shards[&shard]
            .machine()
            .state()
            .unspent_scan_len(&owner);
        if !self.scan_allowed(remote, cost, now) {
            return;
        }
        let host = &self.shards[&shard];
        let state = host.machine().state();
        let max = usize::from(max).clamp(1, MAX_UNSPENT_PER_PAGE);
        let (page, more) = state.unspent_of(&owner, after.as_ref(), max);
        let outputs = page
            .into_iter()
            .map(|(out_point, output)| UnspentOutput {
                out_point,
                amount: output.amount,
                mature_at: state.mint().mature_at(&out_point).unwrap_or(0),
            })
            .collect();
        let answer = NetMessage::Unspent {
            request,
            owner,
            finalized_round: host.counters().last_round.unwrap_or(0),
            next_anchor_index: state.economics().next_anchor_index(),
            outputs,
            more: u8::from(more),
        };
        self.reply(io, origin, answer);
    }

    /// Whether a query from `remote` that visits `cost` entries of a UTXO
    /// slice is answered now: while both the source's share of the scan
    /// budget and the core's budget over every source have some left
    /// ([`SCAN_SOURCE_SHARE`], [`SCAN_OUTPUTS_PER_S`]), each takes the
    /// whole cost (owing what it lacks). A query the core's budget refuses
    /// gives the source its share back; refusals are counted as
    /// `throttled`.
    pub(crate) fn scan_allowed(&mut self, remote: SocketAddr, cost: usize, now: Now) -> bool {
        let rate = SCAN_OUTPUTS_PER_S / SCAN_SOURCE_SHARE;
        let source = source_bucket(&mut self.scan_sources, remote, rate, now);
        let answered = source.take_owing(rate, cost, now.mono_us)
            && (self
                .scan_budget
                .take_owing(SCAN_OUTPUTS_PER_S, cost, now.mono_us)
                || {
                    source.refund(rate, cost);
                    false
                });
        self.counters.throttled += u64::from(!answered);
        answered
    }
}
