//! The cross-shard formats: `Import`, `ExportsBundle`, `BuiltExports`,
//! `ExportLeaf` and `DestEntry` — decoding never panics and an accepted
//! input is canonical; a decoded import's and bundle's stateless checks
//! never panic either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pc_codec::wire::Decode;
use pc_codec::{BuiltExports, DestEntry, ExportLeaf, ExportsBundle, Import};
use pc_codec_fuzz::decode_canonical;

fuzz_target!(|data: &[u8]| {
    decode_canonical::<Import>(data);
    decode_canonical::<ExportsBundle>(data);
    decode_canonical::<BuiltExports>(data);
    decode_canonical::<ExportLeaf>(data);
    decode_canonical::<DestEntry>(data);
    if let Ok(import) = Import::from_bytes(data) {
        let _ = import.check_structure(1, 4, |owner| u16::from(owner[0]) % 4);
    }
    if let Ok(bundle) = ExportsBundle::from_bytes(data) {
        let _ = bundle.check_structure();
    }
});
