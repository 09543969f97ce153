//! `SignedAnchorHeader` and `AnchorHeader`: decoding never panics and an
//! accepted input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::{AnchorHeader, SignedAnchorHeader};
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    decode_canonical::<SignedAnchorHeader>(data);
    decode_canonical::<AnchorHeader>(data);
});
