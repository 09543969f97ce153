//! `Genesis`: decoding never panics and an accepted input is canonical. A
//! decoded genesis is then validated and asked for shard 0's committee:
//! neither panics, and a genesis that validates has every seat of shard 0
//! filled.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::genesis::Genesis;
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    if let Some(genesis) = decode_canonical::<Genesis>(data) {
        let valid = genesis.validate().is_ok();
        let committee = genesis.committee(0);
        if valid {
            let seats = committee.map(|keys| keys.len());
            assert_eq!(
                seats,
                Some(usize::from(genesis.params.k)),
                "a valid genesis lacks a full committee for shard 0"
            );
        }
    }
});
