//! `ParentRef`, `OutPoint` and `TxOut`: decoding never panics and an accepted
//! input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::{OutPoint, ParentRef, TxOut};
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    decode_canonical::<ParentRef>(data);
    decode_canonical::<OutPoint>(data);
    decode_canonical::<TxOut>(data);
});
