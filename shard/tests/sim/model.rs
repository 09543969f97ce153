//! An independent reference model of the shard state (DESIGN §5), written
//! from the design and not from `state.rs`: it predicts the outcome of every
//! finalized micro-event in order, so a machine that applies a transfer
//! twice, spends a missing output or loses value disagrees with it.

use std::collections::{HashMap, HashSet};

use pc_codec::genesis::Genesis;
use pc_codec::{Hash32, MicroEvent, OutPoint, Transfer, TxOut};
use pc_shard::state::Outcome;

/// The model's UTXO set and slashing record.
pub struct Model {
    network: [u8; 8],
    utxos: HashMap<OutPoint, TxOut>,
    unspent_value: u64,
    fees_paid_out: u64,
    genesis_supply: u64,
    slashed: u64,
    /// Position (in the finalized micro-event sequence) at which each
    /// applied transfer's event was applied.
    applied_at: HashMap<Hash32, u64>,
    /// Every input ever spent, to catch a double spend even if the UTXO
    /// bookkeeping were wrong.
    spent: HashSet<OutPoint>,
    /// Micro-events seen so far.
    position: u64,
}

impl Model {
    /// The genesis state of the (only) shard.
    pub fn new(genesis: &Genesis) -> Self {
        let network = genesis.network();
        let mut utxos = HashMap::new();
        let mut unspent_value = 0u64;
        for (index, allocation) in genesis.allocations.iter().enumerate() {
            for output in 0..allocation.outputs {
                let out_point =
                    Genesis::allocation_out_point(&network, index as u32, output as u16);
                let previous = utxos.insert(
                    out_point,
                    TxOut {
                        amount: allocation.amount,
                        owner: allocation.owner,
                    },
                );
                assert!(previous.is_none(), "genesis out points are distinct");
                unspent_value += allocation.amount;
            }
        }
        Model {
            network,
            utxos,
            unspent_value,
            fees_paid_out: 0,
            genesis_supply: unspent_value,
            slashed: 0,
            applied_at: HashMap::new(),
            spent: HashSet::new(),
            position: 0,
        }
    }

    /// The supply at genesis.
    pub fn genesis_supply(&self) -> u64 {
        self.genesis_supply
    }

    /// Seats slashed so far.
    pub fn slashed(&self) -> u64 {
        self.slashed
    }

    /// Where the transfer with this event id was applied, if it was.
    pub fn applied_at(&self, event_id: &Hash32) -> Option<u64> {
        self.applied_at.get(event_id).copied()
    }

    /// Micro-events applied so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Unspent value plus fees collected (paid out to seats by claim): the
    /// supply, which must stay the genesis supply.
    pub fn accounted_value(&self) -> u64 {
        self.unspent_value + self.fees_paid_out
    }

    /// Applies the next finalized micro-event; returns the predicted outcome
    /// and fee.
    pub fn apply(&mut self, event: &MicroEvent) -> (Outcome, u64) {
        self.position += 1;
        match event {
            MicroEvent::Transfer(transfer) => match self.apply_transfer(transfer) {
                Ok(fee) => {
                    self.applied_at.insert(event.id(), self.position);
                    (Outcome::Applied, fee)
                }
                Err(outcome) => (outcome, 0),
            },
            MicroEvent::Evidence(evidence) => {
                let seat_bit = 1u64 << evidence.first.header.creator;
                if self.slashed & seat_bit != 0 {
                    (Outcome::EvidenceDuplicate, 0)
                } else {
                    self.slashed |= seat_bit;
                    (Outcome::EvidenceRecorded, 0)
                }
            }
            MicroEvent::Mint(_) => (Outcome::InactiveMint, 0),
            MicroEvent::Claim(_) => panic!("model: the simulated clients and seats make no claims"),
            // One shard: no import is ever registered here (a Byzantine
            // seat's would fail its stateless checks first).
            MicroEvent::Import(_) => (Outcome::ImportUnregistered, 0),
        }
    }

    /// DESIGN §5: inputs exist, are unspent and distinct, are the owner's,
    /// and cover the outputs; the difference is the fee. (Every owner is in
    /// the one simulated shard.)
    fn apply_transfer(&mut self, transfer: &Transfer) -> Result<u64, Outcome> {
        let distinct: HashSet<&OutPoint> = transfer.inputs.iter().collect();
        if distinct.len() != transfer.inputs.len() {
            return Err(Outcome::DuplicateInput);
        }
        let mut input_value = 0u64;
        for input in &transfer.inputs {
            let output = self.utxos.get(input).ok_or(Outcome::UnknownOrSpentInput)?;
            if output.owner != transfer.owner {
                return Err(Outcome::WrongOwner);
            }
            input_value = input_value
                .checked_add(output.amount)
                .ok_or(Outcome::ValueNotConserved)?;
        }
        let output_value = transfer
            .outputs
            .iter()
            .try_fold(0u64, |sum, o| sum.checked_add(o.amount))
            .ok_or(Outcome::ValueNotConserved)?;
        let fee = input_value
            .checked_sub(output_value)
            .ok_or(Outcome::ValueNotConserved)?;
        for input in &transfer.inputs {
            self.utxos.remove(input);
            assert!(
                self.spent.insert(*input),
                "model: input {input:?} spent twice"
            );
        }
        let tx_id = transfer.tx_id(&self.network);
        for (index, output) in transfer.outputs.iter().enumerate() {
            let out_point = OutPoint {
                tx_id,
                index: index as u16,
            };
            assert!(
                self.utxos.insert(out_point, *output).is_none(),
                "model: output {out_point:?} created twice"
            );
        }
        self.unspent_value = self.unspent_value - input_value + output_value;
        self.fees_paid_out += fee;
        Ok(fee)
    }
}

#[cfg(test)]
mod tests {
    use pc_codec::genesis::Genesis;
    use pc_codec::{MicroEvent, OutPoint, Transfer, TxOut};
    use pc_shard::state::Outcome;

    use super::Model;
    use crate::sim::crypto::{client_public, genesis};

    /// A transfer of client 0 (the model does not check signatures).
    fn spend(input: OutPoint, amount: u64) -> MicroEvent {
        MicroEvent::Transfer(Transfer {
            inputs: vec![input],
            outputs: vec![TxOut {
                amount,
                owner: client_public(1),
            }],
            owner: client_public(0),
            signature: [0; 64],
        })
    }

    #[test]
    fn the_first_spend_wins_and_value_is_conserved() {
        let genesis = genesis(4, 2, 1_000, 10, 26);
        let mut model = Model::new(&genesis);
        let input = Genesis::allocation_out_point(&genesis.network(), 0, 1);
        assert_eq!(model.apply(&spend(input, 990)), (Outcome::Applied, 10));
        assert_eq!(
            model.apply(&spend(input, 900)),
            (Outcome::UnknownOrSpentInput, 0)
        );
        let foreign = Genesis::allocation_out_point(&genesis.network(), 1, 0);
        assert_eq!(model.apply(&spend(foreign, 1)), (Outcome::WrongOwner, 0));
        assert_eq!(model.accounted_value(), model.genesis_supply());
    }
}
