//! Arrival-order independence: the anchors of one run, fed to fresh
//! observers in shuffled orders (parents often after their children, so DA
//! gating holds them until the parents come), give the same finalized
//! sequence, state roots and payout roots as the observer that saw them live.

mod common;

use common::{genesis, Machine, Network, SEATS};
use pc_codec::LogRecordKind;
use pc_shard::machine::{FinalizedReport, Role, Shard, ShardLimits};
use pc_shard::sim_crypto::FastVerifier;
use proptest::prelude::*;

/// The anchors and finalized reports of one live run with `transfers`
/// client transfers spread over the seats.
fn live_run(transfers: u16) -> (Vec<Vec<u8>>, Vec<FinalizedReport>) {
    let genesis = genesis();
    let mut network = Network::new(&genesis);
    network.submit_spread(&genesis, transfers, 999);
    network.run(200_000);
    let observer = &network.nodes[SEATS];
    let anchors = observer
        .log
        .iter()
        .filter(|(kind, _)| *kind == LogRecordKind::AnchorAccepted)
        .map(|(_, body)| body.clone())
        .collect();
    (anchors, observer.finalized.clone())
}

fn replay_in_order(anchors: &[Vec<u8>]) -> Vec<FinalizedReport> {
    let genesis = genesis();
    let mut observer: Machine = Shard::new(
        &genesis,
        0,
        Role::Observer,
        FastVerifier,
        ShardLimits::default(),
    );
    let mut finalized = Vec::new();
    for bytes in anchors {
        observer
            .handle_anchor(None, bytes)
            .expect("anchors of an honest run are valid");
        while observer.poll_transmit().is_some() {}
        while observer.poll_persist().is_some() {}
        while let Some(report) = observer.poll_finalized() {
            finalized.push(report);
        }
    }
    assert_eq!(
        observer.pending_anchors(),
        0,
        "every held anchor was released"
    );
    finalized
}

/// Fisher-Yates with SplitMix64, so a failure replays from the seed.
fn shuffled(anchors: &[Vec<u8>], mut seed: u64) -> Vec<Vec<u8>> {
    let mut out = anchors.to_vec();
    for i in (1..out.len()).rev() {
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let j = ((z ^ (z >> 31)) % (i as u64 + 1)) as usize;
        out.swap(i, j);
    }
    out
}

#[test]
fn reversed_arrival_gives_the_live_sequence() {
    let (anchors, live) = live_run(30);
    assert!(
        live.len() >= 2,
        "the live run finalized {} rounds",
        live.len()
    );
    let reversed: Vec<Vec<u8>> = anchors.iter().rev().cloned().collect();
    assert_eq!(replay_in_order(&reversed), live);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn shuffled_arrival_gives_the_live_sequence(seed in any::<u64>(), transfers in 8u16..48) {
        let (anchors, live) = live_run(transfers);
        prop_assert!(live.len() >= 2);
        prop_assert_eq!(replay_in_order(&shuffled(&anchors, seed)), live);
    }
}
