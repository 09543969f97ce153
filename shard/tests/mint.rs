//! The mint chain at apply (DESIGN §5.5) through `ShardState`: outcomes
//! 12-16, the race decided by the lowest `(pow_hash, mint_id)` at the end of
//! round `opened + W_race - 1`, the reward output and its maturity (outcome
//! 10, tiers by the winner's anchor index), the target step, the supply
//! equation with minted value, the mint tip in the state digest, and a
//! snapshot taken while a race is open. Apply does not validate, so mints
//! are built directly; their nonces are searched so the pow falls where a
//! test needs it.

use pc_codec::genesis::{
    ConsensusParams, Genesis, GenesisAllocation, GenesisValidator, SeatAssignment, SUPPLY_CAP_UNITS,
};
use pc_codec::ids::{context, derive, state_root};
use pc_codec::mint::{next_target, pow_hash, pow_value, Schedule};
use pc_codec::{
    EventDigest, Hash32, MicroEvent, Mint, OutPoint, PublicKeyBytes, SigningKey, TransferBuilder,
    TxOut,
};
use pc_shard::mint::MintWin;
use pc_shard::state::{FinalizedPayload, Outcome, RoundOutcome, ShardState};

const T_INIT: u128 = 1 << 122;
const T_MAX: u128 = 1 << 125;
/// `I` in anchors: small, so the target moves both ways in a few anchors.
const INTERVAL: u32 = 4;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
}

/// k = 4 seats (keys 10..13, bond 1 000 each), client key 50 owning 8
/// outputs of 1 000, easy mint targets, maturity 5 / 10 / 20 anchors.
fn genesis(shards: u16) -> Genesis {
    let mut params = ConsensusParams::v0(4, shards);
    params.mint_target_initial = T_INIT;
    params.mint_target_max = T_MAX;
    params.mint_interval_anchors = INTERVAL;
    params.mint_race_rounds = 2;
    params.maturity_anchors = [5, 10, 20];
    let genesis = Genesis {
        params,
        note_commitment: [0; 32],
        validators: (0..4u8)
            .map(|seat| GenesisValidator {
                key: key(10 + seat).public_key(),
                bond: 1_000,
                seats: (0..shards)
                    .map(|shard| SeatAssignment { shard, seat })
                    .collect(),
            })
            .collect(),
        allocations: vec![GenesisAllocation {
            owner: key(50).public_key(),
            amount: 1_000,
            outputs: 8,
        }],
    };
    genesis.validate().expect("a valid genesis");
    genesis
}

/// A mint shard applying rounds one after the other, checking after each
/// the supply equation and the minted sum against the races won.
struct Chain {
    genesis: Genesis,
    network: [u8; 8],
    state: ShardState,
    next_round: u64,
    won: u128,
}

impl Chain {
    fn new(genesis: Genesis) -> Self {
        let shard = genesis.params.mint_shard;
        let state = ShardState::from_genesis(&genesis, shard);
        assert!(state.mint().active());
        Chain {
            network: genesis.network(),
            genesis,
            state,
            next_round: 0,
            won: 0,
        }
    }

    /// The anchor index the next finalized anchor gets.
    fn next_index(&self) -> u64 {
        self.state.economics().next_anchor_index()
    }

    fn id(&self, event: &MicroEvent) -> Hash32 {
        EventDigest::of(event, &self.network).id
    }

    /// Applies the next round, one finalized anchor per entry.
    fn round(&mut self, anchors: &[Vec<MicroEvent>]) -> RoundOutcome {
        let digests: Vec<Vec<EventDigest>> = anchors
            .iter()
            .map(|events| {
                events
                    .iter()
                    .map(|e| EventDigest::of(e, &self.network))
                    .collect()
            })
            .collect();
        let distances = [Some(1), Some(2), None, Some(9)];
        let payloads: Vec<FinalizedPayload<'_>> = anchors
            .iter()
            .zip(&digests)
            .map(|(events, digests)| FinalizedPayload {
                creator: 1,
                events,
                digests,
                ack_distances: &distances,
            })
            .collect();
        let round = self.next_round;
        self.next_round += 1;
        let outcome = self.state.apply_round(round, &payloads, &[0, 2]);
        // The mint outcomes are the round's mint events' outcomes, in order.
        let expected_mints: Vec<(Hash32, Outcome)> = anchors
            .iter()
            .flatten()
            .zip(&outcome.outcomes)
            .filter(|(event, _)| matches!(event, MicroEvent::Mint(_)))
            .map(|(_, outcome)| *outcome)
            .collect();
        assert_eq!(outcome.mints, expected_mints, "round {round}");
        if let Some(win) = &outcome.mint_win {
            self.won += u128::from(win.reward);
        }
        self.check_supply();
        outcome
    }

    /// A round of `anchors` empty anchors.
    fn empty(&mut self, anchors: usize) -> RoundOutcome {
        self.round(&vec![Vec::new(); anchors])
    }

    fn check_supply(&self) {
        let state = &self.state;
        assert_eq!(
            state.accounted_value(),
            state.supply(),
            "unspent + owed + bonded + exported - imported = genesis + minted"
        );
        assert_eq!(state.minted(), self.won, "minted = the rewards won");
        assert!(state.minted() <= u128::from(state.mint().schedule().emission));
        assert!(state.supply() <= u128::from(SUPPLY_CAP_UNITS));
    }

    /// `count` distinct mints by `miner` on `prev` whose pow satisfies
    /// `wanted`, searched from nonce `from`.
    fn mints_where(
        &self,
        prev: Hash32,
        miner: PublicKeyBytes,
        from: u64,
        count: usize,
        wanted: impl Fn(u128) -> bool,
    ) -> Vec<Mint> {
        (from..from + 100_000)
            .filter(|nonce| wanted(pow_value(&pow_hash(&self.network, &prev, &miner, *nonce))))
            .take(count)
            .map(|nonce| Mint {
                prev_mint_id: prev,
                miner,
                nonce,
            })
            .collect()
    }

    /// A mint by `miner` on the tip that beats the current target.
    fn candidate(&self, miner: &SigningKey, from: u64) -> Mint {
        let target = self.state.mint().target();
        self.mints_where(
            self.state.mint().tip(),
            miner.public_key(),
            from,
            1,
            |pow| pow < target,
        )
        .remove(0)
    }

    /// (pow_hash, mint_id): the race's order.
    fn rank(&self, mint: &Mint) -> (Hash32, Hash32) {
        (
            mint.pow_hash(&self.network),
            self.id(&MicroEvent::Mint(mint.clone())),
        )
    }

    /// A transfer by `owner` spending `inputs` to `outputs`.
    fn transfer(
        &self,
        owner: &SigningKey,
        inputs: &[OutPoint],
        outputs: &[(u64, PublicKeyBytes)],
    ) -> MicroEvent {
        let mut builder = TransferBuilder::new();
        for input in inputs {
            builder = builder.input(*input);
        }
        for (amount, to) in outputs {
            builder = builder.output(*amount, *to);
        }
        MicroEvent::Transfer(builder.sign(&self.network, owner, &[0; 32]).unwrap())
    }

    /// Wins one race with a candidate of `miner` in its own round and an
    /// empty round after it (`W_race = 2`).
    fn win(&mut self, miner: &SigningKey) -> MintWin {
        let mint = MicroEvent::Mint(self.candidate(miner, 0));
        let opened = self.round(&[vec![mint.clone()]]);
        assert_eq!(opened.mints, vec![(self.id(&mint), Outcome::MintCandidate)]);
        assert_eq!(opened.mint_win, None);
        let decided = self.empty(1);
        let win = decided.mint_win.expect("the race is decided");
        assert_eq!(win.mint_id, self.id(&mint));
        win
    }
}

fn mint_event(mint: &Mint) -> MicroEvent {
    MicroEvent::Mint(mint.clone())
}

fn codes(outcome: &RoundOutcome) -> Vec<Outcome> {
    outcome.outcomes.iter().map(|(_, o)| *o).collect()
}

fn minted_output(win: &MintWin) -> OutPoint {
    OutPoint {
        tx_id: win.mint_id,
        index: 0,
    }
}

#[test]
fn a_first_valid_mint_on_the_tip_opens_a_race_as_a_candidate() {
    let mut chain = Chain::new(genesis(1));
    let tip = chain.genesis.hash();
    assert_eq!(chain.state.mint().tip(), tip, "the chain starts at genesis");
    assert_eq!(chain.state.mint().target(), T_INIT);
    assert!(chain.state.mint().race().is_none());
    let miner = key(60);
    let mint = chain.candidate(&miner, 0);
    let event = mint_event(&mint);
    let outcome = chain.round(&[vec![event.clone()]]);
    assert_eq!(codes(&outcome), vec![Outcome::MintCandidate]);
    assert_eq!(
        outcome.mints,
        vec![(chain.id(&event), Outcome::MintCandidate)]
    );
    assert_eq!(outcome.mint_win, None, "W_race = 2: not decided yet");
    let race = chain.state.mint().race().expect("a race is open");
    assert_eq!(race.opened, 0);
    assert_eq!(race.best.mint_id, chain.id(&event));
    assert_eq!(race.best.miner, miner.public_key());
    assert_eq!(race.best.pow_hash, mint.pow_hash(&chain.network));
    assert_eq!(race.best.anchor_index, 0);
    assert_eq!(chain.state.mint().tip(), tip, "the tip moves only on a win");
    assert_eq!(chain.state.minted(), 0);
    assert!(
        chain
            .state
            .utxo(&OutPoint {
                tx_id: chain.id(&event),
                index: 0
            })
            .is_none(),
        "a candidate has no output"
    );
}

#[test]
fn insufficient_work_is_refused_and_opens_no_race() {
    let mut chain = Chain::new(genesis(1));
    let tip = chain.state.mint().tip();
    let miner = key(60).public_key();
    // At or above T but below T_max: statelessly valid, not enough here.
    let weak = chain.mints_where(tip, miner, 0, 2, |pow| (T_INIT..T_MAX).contains(&pow));
    let good = chain.candidate(&key(60), 0);
    let outcome = chain.round(&[vec![mint_event(&weak[0])]]);
    assert_eq!(codes(&outcome), vec![Outcome::MintInsufficientWork]);
    assert!(chain.state.mint().race().is_none());
    // An open race does not change that either.
    let outcome = chain.round(&[vec![mint_event(&good), mint_event(&weak[1])]]);
    assert_eq!(
        codes(&outcome),
        vec![Outcome::MintCandidate, Outcome::MintInsufficientWork]
    );
    assert_eq!(
        chain.state.mint().race().unwrap().best.mint_id,
        chain.id(&mint_event(&good))
    );
}

#[test]
fn stale_mints_name_another_tip_before_and_after_a_decision() {
    let mut chain = Chain::new(genesis(1));
    let genesis_hash = chain.genesis.hash();
    let miner = key(60).public_key();
    let target = chain.state.mint().target();
    // On no tip at all, with enough work; and the tip is checked before the
    // work: a stale mint with too little work is stale.
    let nowhere = chain.mints_where([7; 32], miner, 0, 1, |pow| pow < target)[0].clone();
    let nowhere_weak = chain.mints_where([7; 32], miner, 0, 1, |pow| pow >= target)[0].clone();
    let outcome = chain.round(&[vec![mint_event(&nowhere), mint_event(&nowhere_weak)]]);
    assert_eq!(
        codes(&outcome),
        vec![Outcome::MintStale, Outcome::MintStale]
    );
    assert!(chain.state.mint().race().is_none());

    // Two candidates on the genesis tip; after the decision both, and any
    // fresh mint on the old tip, are stale.
    let on_genesis = chain.mints_where(genesis_hash, miner, 0, 3, |pow| pow < target);
    chain.round(&[vec![mint_event(&on_genesis[0]), mint_event(&on_genesis[1])]]);
    let win = chain.empty(1).mint_win.expect("decided");
    assert_eq!(chain.state.mint().tip(), win.mint_id);
    let outcome = chain.round(&[on_genesis.iter().map(mint_event).collect()]);
    assert_eq!(codes(&outcome), vec![Outcome::MintStale; 3]);
    assert!(
        chain.state.mint().race().is_none(),
        "no race on the old tip"
    );
    assert_eq!(chain.state.mint().count(), 1);
}

#[test]
fn the_race_best_applied_again_is_a_duplicate_and_a_lesser_candidate_is_not() {
    let mut chain = Chain::new(genesis(1));
    let tip = chain.state.mint().tip();
    let target = chain.state.mint().target();
    let mut mints = chain.mints_where(tip, key(60).public_key(), 0, 2, |pow| pow < target);
    mints.sort_by_key(|m| chain.rank(m));
    let (best, other) = (mint_event(&mints[0]), mint_event(&mints[1]));
    let outcome = chain.round(&[vec![best.clone(), other.clone(), best.clone()]]);
    assert_eq!(
        codes(&outcome),
        vec![
            Outcome::MintCandidate,
            Outcome::MintCandidate,
            Outcome::MintDuplicate
        ]
    );
    // In the next round too, in another anchor; the lesser one again is
    // a candidate that does not beat the best (DESIGN §5.5: only the
    // race's best is a duplicate).
    let outcome = chain.round(&[vec![other.clone()], vec![best.clone()]]);
    assert_eq!(
        codes(&outcome),
        vec![Outcome::MintCandidate, Outcome::MintDuplicate]
    );
    let win = outcome.mint_win.expect("decided at the end of round 1");
    assert_eq!(win.mint_id, chain.id(&best));
    assert_eq!(
        chain.state.mint().count(),
        1,
        "one win, whatever the repeats"
    );
    assert_eq!(chain.state.minted(), u128::from(win.reward));
}

#[test]
fn an_exhausted_schedule_refuses_every_mint() {
    // Allocations and bonds leave M = 10 units; H = 1: rewards 5, 2, 1.
    let mut genesis = genesis(1);
    genesis.params.mint_halving_mints = 1;
    genesis.allocations = vec![GenesisAllocation {
        owner: key(50).public_key(),
        amount: SUPPLY_CAP_UNITS - 10 - 4 * 1_000,
        outputs: 1,
    }];
    genesis.validate().expect("allocations + bonds = CAP - 10");
    let schedule = Schedule::of(&genesis);
    assert_eq!((schedule.emission, schedule.first_reward), (10, 5));
    assert_eq!(schedule.total(), (8, 3));
    let mut chain = Chain::new(genesis);
    let miner = key(60);
    let rewards: Vec<u64> = (0..3).map(|_| chain.win(&miner).reward).collect();
    assert_eq!(rewards, vec![5, 2, 1]);
    assert_eq!(chain.state.minted(), 8);
    assert_eq!(chain.state.mint().next_reward(), 0);
    let tip = chain.state.mint().tip();
    let target = chain.state.mint().target();
    let on_tip = chain.candidate(&miner, 0);
    let weak = chain.mints_where(tip, miner.public_key(), 0, 1, |pow| pow >= target)[0].clone();
    let stale = chain.mints_where([9; 32], miner.public_key(), 0, 1, |_| true)[0].clone();
    let outcome = chain.round(&[vec![
        mint_event(&on_tip),
        mint_event(&weak),
        mint_event(&stale),
    ]]);
    // Exhaustion is judged first, whatever else is wrong with the mint.
    assert_eq!(codes(&outcome), vec![Outcome::MintExhausted; 3]);
    assert!(chain.state.mint().race().is_none());
    let outcome = chain.empty(1);
    assert_eq!(outcome.mint_win, None);
    assert_eq!(chain.state.minted(), 8, "never more than the schedule");
    assert_eq!(chain.state.mint().tip(), tip);
    assert_eq!(
        chain.state.supply(),
        u128::from(SUPPLY_CAP_UNITS) - 2,
        "what is never minted stays unminted"
    );
}

/// One race: `early` (two mints) in round 1, `late` in round 2, round 0
/// empty, `W_race = 2`. Returns the win and the chain after it.
fn race(early: [&Mint; 2], late: &Mint) -> (Chain, MintWin) {
    let mut chain = Chain::new(genesis(1));
    assert_eq!(chain.empty(1).mint_win, None);
    let before = chain.state.state_root();
    let r = chain.round(&[vec![mint_event(early[0]), mint_event(early[1])]]);
    assert_eq!(codes(&r), vec![Outcome::MintCandidate; 2]);
    assert_eq!(r.mint_win, None, "not at the end of the opening round");
    assert_ne!(r.state_root, before);
    let best_early = early.iter().map(|m| chain.rank(m)).min().unwrap();
    let race = chain.state.mint().race().expect("open");
    assert_eq!(race.opened, 1);
    assert_eq!((race.best.pow_hash, race.best.mint_id), best_early);
    assert_eq!(chain.state.mint().tip(), chain.genesis.hash());
    let next = chain.round(&[vec![mint_event(late)]]);
    assert_eq!(codes(&next), vec![Outcome::MintCandidate]);
    let win = next
        .mint_win
        .clone()
        .expect("decided at the end of round 2");
    assert_eq!(win.round, 2);
    assert!(chain.state.mint().race().is_none());
    (chain, win)
}

#[test]
fn the_lowest_pow_hash_wins_at_the_end_of_the_window_whatever_the_order() {
    let chain = Chain::new(genesis(1));
    let miners = [key(60), key(61), key(62)];
    let mut mints: Vec<Mint> = miners
        .iter()
        .enumerate()
        .map(|(n, miner)| chain.candidate(miner, 1_000 * n as u64))
        .collect();
    mints.sort_by_key(|m| chain.rank(m));
    let schedule = Schedule::of(&chain.genesis);
    let reward = schedule.reward(0, 0);
    assert_eq!(reward, schedule.first_reward);
    assert!(reward > 0);
    // Every arrangement: the late one best, middle or worst, the early pair
    // in either order.
    for late in 0..3 {
        let early: Vec<&Mint> = (0..3).filter(|n| *n != late).map(|n| &mints[n]).collect();
        for early in [[early[0], early[1]], [early[1], early[0]]] {
            let (chain, win) = race(early, &mints[late]);
            let best = &mints[0];
            let best_id = chain.id(&mint_event(best));
            // Round 1 carries the early pair at anchor index 1, round 2 the
            // late one at index 2.
            let a_w = if late == 0 { 2 } else { 1 };
            assert_eq!(
                win,
                MintWin {
                    round: 2,
                    prev_mint_id: chain.genesis.hash(),
                    mint_id: best_id,
                    miner: best.miner,
                    reward,
                    mature_at: a_w + 5,
                    number: 0,
                }
            );
            let mint = chain.state.mint();
            assert_eq!(mint.tip(), best_id);
            assert_eq!(mint.count(), 1);
            assert_eq!(mint.last_win_index(), a_w);
            assert_eq!(mint.target(), next_target(T_INIT, a_w, INTERVAL, T_MAX));
            assert!(mint.target() < T_INIT, "a fast win hardens the target");
            assert_eq!(mint.mature_at(&minted_output(&win)), Some(a_w + 5));
            assert_eq!(chain.state.minted(), u128::from(reward));
            assert_eq!(
                chain.state.utxo(&minted_output(&win)),
                Some(&TxOut {
                    amount: reward,
                    owner: best.miner
                })
            );
            for loser in mints.iter().skip(1) {
                let id = chain.id(&mint_event(loser));
                assert!(chain
                    .state
                    .utxo(&OutPoint {
                        tx_id: id,
                        index: 0
                    })
                    .is_none());
            }
            assert_eq!(chain.state.balance_of(&best.miner), reward);
        }
    }
}

#[test]
fn the_race_closes_at_the_end_of_round_opened_plus_w_minus_one() {
    for window in [1u8, 2, 3, 5] {
        let mut genesis = genesis(1);
        genesis.params.mint_race_rounds = window;
        let mut chain = Chain::new(genesis);
        chain.empty(1);
        chain.empty(1);
        let opened = chain.next_round;
        let mint = chain.candidate(&key(60), 0);
        let mut decided = chain.round(&[vec![mint_event(&mint)]]).mint_win;
        while decided.is_none() {
            assert!(chain.state.mint().race().is_some());
            assert!(chain.next_round < opened + 10, "the race never closes");
            decided = chain.empty(1).mint_win;
        }
        let win = decided.unwrap();
        assert_eq!(win.round, opened + u64::from(window) - 1, "W_race {window}");
        assert_eq!(chain.state.mint().tip(), win.mint_id);
    }
}

#[test]
fn a_minted_output_spends_only_from_its_mature_at_anchor_index() {
    let mut chain = Chain::new(genesis(1));
    let miner = key(60);
    let payee = key(61).public_key();
    let win = chain.win(&miner);
    // Won at anchor index 0 (tier 0: 5 anchors).
    assert_eq!(win.mature_at, 5);
    let output = minted_output(&win);
    let spend = chain.transfer(&miner, &[output], &[(win.reward - 10, payee)]);
    let spend_id = chain.id(&spend);
    let MicroEvent::Transfer(transfer) = &spend else {
        unreachable!()
    };
    let created = OutPoint {
        tx_id: transfer.tx_id(&chain.network),
        index: 0,
    };
    let owed = chain.state.owed();
    let unchanged = |chain: &Chain| {
        assert_eq!(
            chain.state.utxo(&output),
            Some(&TxOut {
                amount: win.reward,
                owner: miner.public_key()
            })
        );
        assert_eq!(chain.state.mint().mature_at(&output), Some(5));
        assert!(chain.state.utxo(&created).is_none());
        assert_eq!(chain.state.balance_of(&payee), 0);
        assert_eq!(chain.state.owed(), owed, "no fee was taken");
    };
    // Anchor index 2: immature, and nothing changes.
    assert_eq!(chain.next_index(), 2);
    let outcome = chain.round(&[vec![spend.clone()]]);
    assert_eq!(outcome.outcomes, vec![(spend_id, Outcome::ImmatureInput)]);
    assert_eq!(outcome.fees, 0);
    unchanged(&chain);
    chain.empty(1);
    unchanged(&chain);
    // One round: the anchor of index 4 refuses it, the next (5) applies it.
    assert_eq!(chain.next_index(), 4);
    let outcome = chain.round(&[vec![spend.clone()], vec![spend.clone()]]);
    assert_eq!(
        outcome.outcomes,
        vec![
            (spend_id, Outcome::ImmatureInput),
            (spend_id, Outcome::Applied)
        ]
    );
    assert_eq!(outcome.fees, 10);
    assert!(chain.state.utxo(&output).is_none());
    assert_eq!(chain.state.mint().mature_at(&output), None);
    assert_eq!(chain.state.mint().tracked_outputs(), 0);
    assert_eq!(
        chain.state.utxo(&created),
        Some(&TxOut {
            amount: win.reward - 10,
            owner: payee
        })
    );
    // The spent output is gone, not immature.
    let outcome = chain.round(&[vec![spend]]);
    assert_eq!(codes(&outcome), vec![Outcome::UnknownOrSpentInput]);
    assert_eq!(chain.state.minted(), u128::from(win.reward));
}

#[test]
fn maturity_tier_and_target_follow_the_winners_anchor_index() {
    let mut genesis = genesis(1);
    genesis.params.maturity_tier_bounds = [3, 6];
    let mut chain = Chain::new(genesis);
    let miner = key(60);
    let mut target = T_INIT;
    // Win 1: the candidate at index 0 (tier 0), decided at index 4 (tier 1):
    // the candidate's index counts.
    let first = chain.candidate(&miner, 0);
    chain.round(&[vec![mint_event(&first)], vec![], vec![], vec![]]);
    let win = chain.empty(1).mint_win.expect("decided");
    assert_eq!(chain.next_index(), 5);
    assert_eq!(win.mature_at, 5);
    target = next_target(target, 0, INTERVAL, T_MAX);
    assert_eq!(chain.state.mint().target(), target);
    // Win 2 at index 5 (tier 1: 10 anchors), 5 anchors after the last.
    let second = chain.candidate(&miner, 0);
    chain.round(&[vec![mint_event(&second)]]);
    let win = chain.empty(1).mint_win.expect("decided");
    assert_eq!((win.number, win.mature_at), (1, 15));
    let eased = next_target(target, 5, INTERVAL, T_MAX);
    assert!(eased > target, "a slow win eases the target");
    target = eased;
    assert_eq!(chain.state.mint().target(), target);
    // Win 3 at index 7 (tier 2: 20 anchors).
    let third = chain.candidate(&miner, 0);
    chain.round(&[vec![mint_event(&third)]]);
    let win = chain.empty(1).mint_win.expect("decided");
    assert_eq!((win.number, win.mature_at), (2, 27));
    assert_eq!(
        chain.state.mint().target(),
        next_target(target, 2, INTERVAL, T_MAX)
    );
    assert_eq!(chain.state.mint().last_win_index(), 7);
    assert_eq!(chain.state.mint().tracked_outputs(), 3);
    let schedule = Schedule::of(&chain.genesis);
    assert_eq!(
        chain.state.minted(),
        u128::from(3 * schedule.reward(0, 0)),
        "one halving is 210 000 mints"
    );
}

#[test]
fn minted_value_keeps_the_supply_equation_through_wins_spends_and_fees() {
    let mut chain = Chain::new(genesis(1));
    let miners = [key(60), key(61)];
    let schedule = Schedule::of(&chain.genesis);
    let mut wins = Vec::new();
    for n in 0..4 {
        wins.push(chain.win(&miners[n % 2]));
        assert_eq!(wins[n].number, n as u64);
        assert_eq!(wins[n].reward, schedule.reward(n as u64, 0));
    }
    // Every win's output matured; spend them all with fees, one across to
    // the other miner, one to the client key.
    chain.empty(30);
    for (n, win) in wins.iter().enumerate() {
        let to = if n == 0 {
            key(50).public_key()
        } else {
            miners[(n + 1) % 2].public_key()
        };
        let spend = chain.transfer(
            &miners[n % 2],
            &[minted_output(win)],
            &[(win.reward - 7, to)],
        );
        let outcome = chain.round(&[vec![spend]]);
        assert_eq!(codes(&outcome), vec![Outcome::Applied]);
        assert_eq!(outcome.fees, 7);
    }
    let total: u128 = wins.iter().map(|w| u128::from(w.reward)).sum();
    assert_eq!(chain.state.minted(), total);
    assert_eq!(chain.state.supply(), chain.state.genesis_supply() + total);
    assert_eq!(chain.state.owed(), 4 * 7, "fees are owed, not burned");
    assert_eq!(chain.state.mint().tracked_outputs(), 0);
}

#[test]
fn a_snapshot_taken_during_a_race_resumes_to_the_same_winner_and_roots() {
    let mut chain = Chain::new(genesis(1));
    let miner = key(60);
    // An earlier win whose output is still immature in the snapshot.
    let first = chain.win(&miner);
    assert_eq!(first.mature_at, 5);
    let tip = chain.state.mint().tip();
    let target = chain.state.mint().target();
    let mut mints = chain.mints_where(tip, key(61).public_key(), 0, 3, |pow| pow < target);
    mints.sort_by_key(|m| chain.rank(m));
    // Round 2 opens the race with the middle and worst candidates.
    chain.round(&[vec![mint_event(&mints[2]), mint_event(&mints[1])]]);
    assert!(chain.state.mint().race().is_some());

    let image = chain.state.to_image();
    let mut fresh = ShardState::from_genesis(&chain.genesis, 0);
    fresh.load_image(image).expect("the image loads");
    let mut resumed = Chain {
        genesis: chain.genesis.clone(),
        network: chain.network,
        state: fresh,
        next_round: chain.next_round,
        won: chain.won,
    };
    assert_eq!(resumed.state.state_root(), chain.state.state_root());
    assert_eq!(resumed.state.supply(), chain.state.supply());
    assert_eq!(resumed.state.mint().race(), chain.state.mint().race());
    assert_eq!(resumed.state.mint().target(), target);
    assert_eq!(resumed.next_index(), chain.next_index());
    assert_eq!(
        resumed.state.mint().mature_at(&minted_output(&first)),
        Some(5)
    );
    resumed.check_supply();

    // Round 3 (anchor index 3): the best candidate arrives and the race is
    // decided; the immature output is refused.
    let spend = chain.transfer(
        &miner,
        &[minted_output(&first)],
        &[(first.reward, miner.public_key())],
    );
    let late = vec![mint_event(&mints[0]), spend.clone()];
    let a = chain.round(std::slice::from_ref(&late));
    let b = resumed.round(&[late]);
    assert_eq!(a, b, "the same round outcome, winner and state root");
    assert_eq!(
        codes(&a),
        vec![Outcome::MintCandidate, Outcome::ImmatureInput]
    );
    let win = a.mint_win.expect("decided");
    assert_eq!(win.mint_id, chain.id(&mint_event(&mints[0])));
    assert_eq!(win.mature_at, 3 + 5);
    // Index 4 is mature_at - 1, index 5 is mature_at.
    for expected in [Outcome::ImmatureInput, Outcome::Applied] {
        let a = chain.round(&[vec![spend.clone()]]);
        let b = resumed.round(&[vec![spend.clone()]]);
        assert_eq!(a, b);
        assert_eq!(codes(&a), vec![expected]);
    }
    // The two states agree to the end, and the spend landed at index 5.
    assert_eq!(chain.state.utxo(&minted_output(&first)), None);
    assert_eq!(resumed.state.utxo(&minted_output(&first)), None);
    for state in [&chain.state, &resumed.state] {
        assert_eq!(state.mint().tip(), win.mint_id);
        assert_eq!(state.minted(), u128::from(first.reward + win.reward));
        assert_eq!(state.supply(), chain.state.supply());
        assert_eq!(state.state_root(), chain.state.state_root());
    }
}

/// The round digest of DESIGN §5.1 recomputed from a round's outcome with
/// `tip` as the committed mint tip.
fn state_root_with_tip(previous: &Hash32, outcome: &RoundOutcome, tip: &Hash32) -> Hash32 {
    let mut applied = Vec::new();
    for (id, code) in &outcome.outcomes {
        applied.extend_from_slice(id);
        applied.push(*code as u8);
    }
    let digest = derive(
        context::STATE,
        &[
            &outcome.round.to_le_bytes(),
            &outcome.payout_root,
            &outcome.exports_root,
            &outcome.exports.export_count().to_le_bytes(),
            tip,
            &applied,
        ],
    );
    state_root(previous, &digest)
}

#[test]
fn the_state_root_commits_the_mint_tip_after_the_round() {
    let mut chain = Chain::new(genesis(1));
    let genesis_hash = chain.genesis.hash();
    let previous = chain.state.state_root();
    let outcome = chain.empty(1);
    assert_eq!(
        outcome.state_root,
        state_root_with_tip(&previous, &outcome, &genesis_hash),
        "the mint shard commits its tip: genesis hash before any win"
    );
    let mint = chain.candidate(&key(60), 0);
    let previous = chain.state.state_root();
    let outcome = chain.round(&[vec![mint_event(&mint)]]);
    assert_eq!(
        outcome.state_root,
        state_root_with_tip(&previous, &outcome, &genesis_hash)
    );
    let previous = chain.state.state_root();
    let outcome = chain.empty(1);
    let win = outcome.mint_win.clone().expect("decided");
    assert_eq!(
        outcome.state_root,
        state_root_with_tip(&previous, &outcome, &win.mint_id),
        "the deciding round commits the new tip"
    );
    assert_ne!(
        outcome.state_root,
        state_root_with_tip(&previous, &outcome, &genesis_hash)
    );

    // Another shard commits zeros: with two shards, the same empty round
    // differs between the mint shard and the other only by the tip.
    let two = genesis(2);
    let mut roots = Vec::new();
    for shard in 0..2u16 {
        let mut state = ShardState::from_genesis(&two, shard);
        assert_eq!(state.mint().active(), shard == 0);
        let previous = state.state_root();
        let outcome = state.apply_round(0, &[], &[]);
        let tip = if shard == 0 { two.hash() } else { [0; 32] };
        assert_eq!(
            outcome.state_root,
            state_root_with_tip(&previous, &outcome, &tip)
        );
        roots.push((
            outcome.state_root,
            outcome.payout_root,
            outcome.exports_root,
        ));
    }
    assert_eq!((roots[0].1, roots[0].2), (roots[1].1, roots[1].2));
    assert_ne!(roots[0].0, roots[1].0, "only the tip tells them apart");
}

#[test]
fn a_different_winner_gives_a_different_state_root_chain() {
    let chain = Chain::new(genesis(1));
    let mut mints: Vec<Mint> = [key(60), key(61)]
        .iter()
        .map(|miner| chain.candidate(miner, 0))
        .collect();
    mints.sort_by_key(|m| chain.rank(m));
    // Both runs carry both mints: run A opens the race with the better
    // one, run B with the worse, the other arriving after the decision
    // (stale). Each run's winner is the one that opened its race.
    let run = |events: [Vec<MicroEvent>; 3]| {
        let mut chain = Chain::new(genesis(1));
        let out: Vec<RoundOutcome> = events
            .iter()
            .map(|e| chain.round(std::slice::from_ref(e)))
            .collect();
        (chain, out)
    };
    let (chain_a, a) = run([
        vec![mint_event(&mints[0])],
        vec![],
        vec![mint_event(&mints[1])],
    ]);
    let (chain_b, b) = run([
        vec![mint_event(&mints[1])],
        vec![],
        vec![mint_event(&mints[0])],
    ]);
    let win_a = a[1].mint_win.clone().unwrap();
    let win_b = b[1].mint_win.clone().unwrap();
    assert_eq!(win_a.mint_id, chain_a.id(&mint_event(&mints[0])));
    assert_eq!(win_b.mint_id, chain_b.id(&mint_event(&mints[1])));
    assert_eq!(codes(&a[2]), vec![Outcome::MintStale]);
    assert_eq!(codes(&b[2]), vec![Outcome::MintStale]);
    for n in 0..3 {
        assert_ne!(a[n].state_root, b[n].state_root, "round {n}");
    }
    assert_ne!(chain_a.state.mint().tip(), chain_b.state.mint().tip());
    // Round 1 is empty in both runs: the winner enters its root through
    // the tip alone. With the other run's tip it would not match.
    assert_eq!(
        a[1].state_root,
        state_root_with_tip(&a[0].state_root, &a[1], &win_a.mint_id)
    );
    assert_ne!(
        a[1].state_root,
        state_root_with_tip(&a[0].state_root, &a[1], &win_b.mint_id)
    );
    // Same reward either way: only who holds it differs.
    assert_eq!(win_a.reward, win_b.reward);
    assert_eq!(chain_a.state.supply(), chain_b.state.supply());
}
