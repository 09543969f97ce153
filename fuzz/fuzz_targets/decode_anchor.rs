//! `SignedAnchor`: decoding never panics, an accepted input is canonical, and
//! the data-availability check runs on whatever decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::SignedAnchor;
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    if let Some(anchor) = decode_canonical::<SignedAnchor>(data) {
        let _ = anchor.payload_matches_header();
    }
});
