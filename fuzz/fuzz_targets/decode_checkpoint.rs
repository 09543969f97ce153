//! `Checkpoint`, `CheckpointSig`, `CertifiedCheckpoint` and `RoundFinalized`:
//! decoding never panics and an accepted input is canonical.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::{CertifiedCheckpoint, Checkpoint, CheckpointSig, RoundFinalized};
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    decode_canonical::<Checkpoint>(data);
    decode_canonical::<CheckpointSig>(data);
    decode_canonical::<CertifiedCheckpoint>(data);
    decode_canonical::<RoundFinalized>(data);
});
