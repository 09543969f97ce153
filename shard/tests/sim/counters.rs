//! Coverage counters, summed over a run and printed at its end.

macro_rules! counters {
    (sum { $($sum:ident: $sum_doc:literal,)* } max { $($max:ident: $max_doc:literal,)* }) => {
        /// What a run exercised.
        #[derive(Debug, Default, Clone, Copy)]
        pub struct Counters {
            $(#[doc = $sum_doc] pub $sum: u64,)*
            $(#[doc = $max_doc] pub $max: u64,)*
        }

        impl Counters {
            /// Adds another run's counters (sums and maxima).
            pub fn merge(&mut self, other: &Counters) {
                $(self.$sum += other.$sum;)*
                $(self.$max = self.$max.max(other.$max);)*
            }

            /// `name value` lines.
            pub fn lines(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($sum), self.$sum),)* $((stringify!($max), self.$max),)*]
            }
        }
    };
}

counters! {
    sum {
        seeds: "seeds run",
        steps: "steps simulated",
        rounds_finalized: "rounds finalized (canonical)",
        anchors_finalized: "anchors finalized (canonical)",
        events_finalized: "micro-events finalized (canonical)",
        rounds_decided_late: "rounds decided with at least C rounds of DAG above them",
        coin_round_votes: "fame votes cast in coin rounds (most at one node)",
        coin_flips: "coin-round votes that took the coin bit (no supermajority)",
        forks_created: "forks made by equivocating seats",
        forks_exposed: "forks whose two anchors both reached honest seats",
        evidence_finalized: "EvidenceRecorded outcomes",
        evidence_duplicate: "EvidenceDuplicate outcomes",
        evidence_relayed: "relayed evidence and offences a seat queued",
        offence_invalid_anchor: "InvalidAnchor offences finalized (VFI, kind 0)",
        offence_invalid_parent: "InvalidParent offences finalized (VFI, kind 1)",
        offence_conflicting_ref: "ConflictingRef offences finalized (CDA, kind 3)",
        offence_unsatisfiable: "Unsatisfiable offences finalized (CDA, kind 4)",
        offence_checkpoint: "checkpoint offences finalized (kinds 2 and 5)",
        slashes_equivocation: "slashes of class EQ",
        slashes_vote_for_invalid: "slashes of class VFI",
        slashes_conflicting_data: "slashes of class CDA",
        slashes_repeat_tier: "slashes at a repeat tier (2 or more)",
        slash_tier_resets: "slashes whose class had an older slash of the seat past W_slash",
        claims_submitted: "claims taken into an honest mempool",
        claims_refused_stale: "claims refused at submission: stale",
        claims_refused_other: "claims refused at submission: root unknown, expired or bad proof",
        claims_applied: "claims applied",
        claims_stale: "claims finalized stale (ClaimStale)",
        claims_expired: "claims finalized with an unknown or expired root (ClaimRootUnknown)",
        seeds_short_claim_window: "seeds with W_claim = 30 anchors",
        mints_submitted: "mints taken into an honest mempool (pre-checked)",
        mints_carried_unchecked: "mints an honest seat carried without the pre-check",
        mints_refused: "mints refused at submission (stale, no work, not the best)",
        mint_candidates: "mints finalized as race candidates (outcome 12)",
        mint_stale: "mints finalized stale (13)",
        mint_insufficient_work: "mints finalized without enough work (14)",
        mint_exhausted: "mints finalized after the schedule was spent (15)",
        mint_duplicates: "mints finalized as the race's best again (16)",
        mint_races_decided: "mint races decided",
        mint_races_contested: "mint races decided among several candidates",
        immature_spends_rejected: "spends of minted outputs finalized immature (10)",
        immature_spends_refused: "spends of minted outputs refused at submission as immature",
        matured_spends_applied: "spends of minted outputs applied after maturity",
        seeds_mint_exhaust: "seeds whose genesis leaves 10 units to mint (H = 1)",
        restarts: "crash-restarts of honest seats (restored from the log)",
        crashes_skipped: "planned crashes skipped (over the fault budget)",
        late_joins: "late-joining seats started",
        partitions_healed: "partitions healed",
        double_spend_pairs: "double-spend pairs sent",
        rejected_double_spends: "double spends finalized as UnknownOrSpentInput",
        chained_applied: "chained spends applied",
        transfers_applied: "client transfers applied",
        finalized_again: "client transfers finalized a second time (fork copies)",
        mempool_full: "submissions refused: mempool full",
        submissions_lost: "submissions to an absent seat",
        rejected_bad_signature: "anchors refused: bad header signature",
        rejected_bad_payload_signature: "anchors refused: badly signed micro-event",
        rejected_far_future: "anchors refused: birth round",
        rejected_parent_mismatch: "anchors refused: parent ref mismatch",
        rejected_other: "anchors refused: other reasons",
        forged_held_pending: "forged anchors held pending",
        forged_sent: "forged anchors sent (floods, bad signatures)",
        pulls_served: "anchors served for Get requests",
        gets_sent: "Get requests sent",
        announces_sent: "Announce messages sent",
        catch_ups_sent: "GetRange requests sent (catch-up)",
        range_anchors_served: "anchors served for GetRange requests",
        messages_sent: "messages handed to the network",
        messages_lost: "messages lost",
        messages_duplicated: "messages duplicated",
        messages_partitioned: "messages dropped by a partition",
        token_gaps: "persist tokens that skipped a number (after a restore)",
        seeds_calm: "seeds without faults",
        seeds_bip340: "seeds with BIP-340",
        seeds_short_coin_period: "seeds with coin-round period C = 3",
        seeds_short_window: "seeds with non-ancient window G = 4",
        seeds_short_slash_window: "seeds with W_slash = 25 anchors",
        seeds_pruned: "seeds in which a node pruned its DAG",
        seeds_equivocate: "seeds with an equivocating seat",
        seeds_invalid_signatures: "seeds with an invalid-signature seat",
        seeds_random_parents: "seeds with a random-parents seat",
        seeds_far_future: "seeds with a far-future seat",
        seeds_silent: "seeds with a silent seat",
        seeds_crashes: "seeds with planned crashes",
        seeds_partitions: "seeds with partitions",
        seeds_late_join: "seeds with a late joiner",
        seeds_double_spends: "seeds that sent double spends",
    }
    max {
        max_pending_anchors: "most anchors pending at one honest node",
        max_mempool_events: "largest honest mempool",
        max_dag_vertices: "largest honest DAG (vertices, pruned below last decided - 3G - 2)",
        max_progress_gap_steps: "longest wait for a new round while healthy",
        max_decision_lag_rounds: "largest fame decision lag in rounds",
        max_rounds_per_seed: "most rounds in one seed",
    }
}
