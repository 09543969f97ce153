//! `MicroEvent` and `AnchorPayload`: decoding never panics and an accepted
//! input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::{AnchorPayload, MicroEvent};
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    decode_canonical::<MicroEvent>(data);
    decode_canonical::<AnchorPayload>(data);
});
