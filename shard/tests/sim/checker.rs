//! The continuous checks on finalized output. The first node to report a
//! round defines it ("canonical"); every later report of that round by any
//! honest node must be identical (anchors, global indexes, outcomes, fees,
//! state root, payout root), so every honest sequence is a prefix of every
//! other. A canonical round is checked once, against the reference model.

use std::collections::HashSet;
use std::rc::Rc;

use pc_codec::{Decode, Hash32, MicroEvent, SignedAnchor};
use pc_shard::machine::FinalizedReport;
use pc_shard::state::Outcome;

use crate::sim::model::Model;

/// One finalized micro-event, in total order.
#[derive(Debug, Clone)]
pub struct FinalizedEvent {
    /// Its id.
    pub id: Hash32,
    /// The event.
    pub event: MicroEvent,
    /// The outcome the machines agreed on (and the model predicted).
    pub outcome: Outcome,
    /// Its position in the finalized micro-event sequence, from 1.
    pub position: u64,
}

/// The canonical finalized sequence and the reference model.
pub struct Checker {
    canonical: Vec<FinalizedReport>,
    model: Model,
    finalized_anchors: HashSet<Hash32>,
    next_global_index: u64,
    /// The model's (owed, bonded) after each canonical round.
    after: Vec<(u64, u64)>,
    /// Mint races decided, and those with more than one candidate.
    pub races_decided: u64,
    pub races_contested: u64,
}

impl Checker {
    /// Nothing finalized yet.
    pub fn new(model: Model) -> Self {
        Checker {
            canonical: Vec::new(),
            model,
            finalized_anchors: HashSet::new(),
            next_global_index: 0,
            after: Vec::new(),
            races_decided: 0,
            races_contested: 0,
        }
    }

    /// Rounds finalized so far (by the fastest honest node).
    pub fn rounds(&self) -> u64 {
        self.canonical.len() as u64
    }

    /// The canonical report of `round`.
    pub fn round(&self, round: u64) -> Option<&FinalizedReport> {
        self.canonical.get(round as usize)
    }

    /// The model's (owed, bonded) after canonical round `round`: what every
    /// node's state must hold after it.
    pub fn economics_after(&self, round: u64) -> Option<(u64, u64)> {
        self.after.get(round as usize).copied()
    }

    /// The reference model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Checks a report of `node`, which expected `next_round`; `lookup`
    /// finds an anchor the node inserted. Returns the micro-events of a
    /// round seen for the first time, `None` for a round already canonical.
    pub fn observe(
        &mut self,
        node: usize,
        next_round: u64,
        report: &FinalizedReport,
        lookup: impl Fn(&Hash32) -> Option<Rc<[u8]>>,
    ) -> Result<Option<Vec<FinalizedEvent>>, String> {
        let round = report.round.round;
        if round != next_round || report.outcome.round != round {
            return Err(format!(
                "node {node} reported round {round} (outcome round {}), expected round {next_round}",
                report.outcome.round
            ));
        }
        if let Some(canonical) = self.canonical.get(round as usize) {
            if canonical != report {
                return Err(format!(
                    "node {node} diverged at round {round}:\n  canonical {}\n  node      {}",
                    summarize(canonical),
                    summarize(report)
                ));
            }
            return Ok(None);
        }
        assert_eq!(
            round,
            self.rounds(),
            "a node cannot skip ahead of canonical"
        );
        let events = self.check_new_round(report, lookup)?;
        self.canonical.push(report.clone());
        self.after.push((self.model.owed(), self.model.bonded()));
        Ok(Some(events))
    }

    fn check_new_round(
        &mut self,
        report: &FinalizedReport,
        lookup: impl Fn(&Hash32) -> Option<Rc<[u8]>>,
    ) -> Result<Vec<FinalizedEvent>, String> {
        let round = report.round.round;
        if report.round.unique_famous_witnesses.is_empty() {
            return Err(format!("round {round} has no unique famous witness"));
        }
        let mut events = Vec::new();
        for anchor in &report.round.anchors {
            if anchor.global_index != self.next_global_index {
                return Err(format!(
                    "round {round}: global index {} where {} was next",
                    anchor.global_index, self.next_global_index
                ));
            }
            self.next_global_index += 1;
            if !self.finalized_anchors.insert(anchor.id) {
                return Err(format!(
                    "round {round}: anchor {} finalized a second time",
                    short(&anchor.id)
                ));
            }
            let body = lookup(&anchor.id).ok_or_else(|| {
                format!(
                    "round {round}: finalized anchor {} is not in the node's log",
                    short(&anchor.id)
                )
            })?;
            let signed = SignedAnchor::from_bytes(&body).expect("logged anchors decode");
            events.extend(
                signed
                    .payload
                    .events
                    .into_iter()
                    .map(|event| (anchor.global_index, event)),
            );
        }
        if events.len() != report.outcome.outcomes.len() {
            return Err(format!(
                "round {round}: {} micro-events finalized but {} outcomes",
                events.len(),
                report.outcome.outcomes.len()
            ));
        }
        let mut fees = 0u64;
        let mut finalized = Vec::with_capacity(events.len());
        for ((index, event), (id, outcome)) in events.into_iter().zip(&report.outcome.outcomes) {
            let expected_id = event.id();
            if *id != expected_id {
                return Err(format!(
                    "round {round}: outcome for {} where event {} was next",
                    short(id),
                    short(&expected_id)
                ));
            }
            let (predicted, fee) = self.model.apply(&event, index);
            if predicted != *outcome {
                return Err(format!(
                    "round {round}: event {} has outcome {outcome:?}, the model predicts {predicted:?}",
                    short(id)
                ));
            }
            fees += fee;
            finalized.push(FinalizedEvent {
                id: *id,
                event,
                outcome: *outcome,
                position: self.model.position(),
            });
        }
        let expected = self.model.take_expected_slashes();
        let applied: Vec<_> = report
            .outcome
            .slashes
            .iter()
            .map(|s| (s.seat, s.slash.class as u8, s.slash.tier, s.slash.amount))
            .collect();
        if applied != expected {
            return Err(format!(
                "round {round}: slashes {applied:?} (seat, class, tier, units), the model expects {expected:?}"
            ));
        }
        let expected = self.model.take_expected_claims();
        if report.outcome.claims != expected {
            return Err(format!(
                "round {round}: claims {:?} (seat, units) applied, the model expects {expected:?}",
                report.outcome.claims
            ));
        }
        self.model.finish_round(
            round,
            report.outcome.payout_root,
            report.outcome.payout_leaves,
            self.next_global_index,
        );
        if fees != report.outcome.fees {
            return Err(format!(
                "round {round}: fees {} reported, {fees} by the model",
                report.outcome.fees
            ));
        }
        let expected = self.model.take_expected_win();
        let decided = report
            .outcome
            .mint_win
            .as_ref()
            .map(|w| (w.mint_id, w.reward, w.mature_at));
        if decided != expected.map(|(win, _)| win) {
            return Err(format!(
                "round {round}: mint race decided {decided:?} (id, reward, mature at), the model expects {expected:?}"
            ));
        }
        if let Some((_, candidates)) = expected {
            self.races_decided += 1;
            self.races_contested += u64::from(candidates > 1);
        }
        if self.model.minted() > self.model.emission() {
            return Err(format!(
                "round {round}: {} minted, over CAP - genesis = {}",
                self.model.minted(),
                self.model.emission()
            ));
        }
        if self.model.accounted_value() != self.model.genesis_supply() + self.model.minted() {
            return Err(format!(
                "round {round}: the model accounts {} of a {} supply ({} minted)",
                self.model.accounted_value(),
                self.model.genesis_supply() + self.model.minted(),
                self.model.minted()
            ));
        }
        Ok(finalized)
    }
}

/// The first bytes of an id in hex.
pub fn short(id: &Hash32) -> String {
    id[..6].iter().map(|b| format!("{b:02x}")).collect()
}

fn summarize(report: &FinalizedReport) -> String {
    format!(
        "round {} anchors [{}] ufw [{}] outcomes {} fees {} state {} payout {}",
        report.round.round,
        report
            .round
            .anchors
            .iter()
            .map(|a| format!("{}@{}", short(&a.id), a.global_index))
            .collect::<Vec<_>>()
            .join(" "),
        report
            .round
            .unique_famous_witnesses
            .iter()
            .map(short)
            .collect::<Vec<_>>()
            .join(" "),
        report.outcome.outcomes.len(),
        report.outcome.fees,
        short(&report.outcome.state_root),
        short(&report.outcome.payout_root),
    )
}

#[cfg(test)]
mod tests {
    use pc_shard::machine::FinalizedReport;
    use pc_shard::state::RoundOutcome;
    use pc_shard::FinalizedRound;

    use super::Checker;
    use crate::sim::crypto::genesis;
    use crate::sim::model::Model;

    fn empty_round(round: u64, state_root: [u8; 32]) -> FinalizedReport {
        FinalizedReport {
            round: FinalizedRound {
                round,
                unique_famous_witnesses: vec![[round as u8 + 1; 32]],
                anchors: Vec::new(),
            },
            outcome: RoundOutcome {
                round,
                outcomes: Vec::new(),
                fees: 0,
                payout_root: [0; 32],
                exports: Default::default(),
                exports_root: [0; 32],
                imported: Vec::new(),
                slashes: Vec::new(),
                claims: Vec::new(),
                payout_leaves: 0,
                mints: Vec::new(),
                mint_win: None,
                state_root,
            },
        }
    }

    fn checker() -> Checker {
        Checker::new(Model::new(&genesis(4, 2, 10, 10, 26)))
    }

    #[test]
    fn a_report_that_differs_from_the_canonical_round_is_a_divergence() {
        let mut checker = checker();
        let none = |_: &[u8; 32]| None;
        assert!(checker
            .observe(0, 0, &empty_round(0, [1; 32]), none)
            .unwrap()
            .is_some());
        assert!(checker
            .observe(1, 0, &empty_round(0, [1; 32]), none)
            .unwrap()
            .is_none());
        let error = checker
            .observe(2, 0, &empty_round(0, [2; 32]), none)
            .unwrap_err();
        assert!(error.contains("node 2 diverged at round 0"), "{error}");
    }

    #[test]
    fn a_skipped_round_or_a_round_without_famous_witness_is_refused() {
        let mut checker = checker();
        let none = |_: &[u8; 32]| None;
        let error = checker
            .observe(0, 0, &empty_round(1, [1; 32]), none)
            .unwrap_err();
        assert!(error.contains("expected round 0"), "{error}");
        let mut witnessless = empty_round(0, [1; 32]);
        witnessless.round.unique_famous_witnesses.clear();
        let error = checker.observe(0, 0, &witnessless, none).unwrap_err();
        assert!(error.contains("no unique famous witness"), "{error}");
    }
}
