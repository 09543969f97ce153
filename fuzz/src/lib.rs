//! The one property every `pc-codec` fuzz target checks: a byte string the
//! strict decoder accepts is the canonical encoding of the value it decodes
//! to, so re-encoding gives back exactly the input (one encoding per value).
//! Decoding itself must never panic; libFuzzer reports a panic as a crash.
//!
//! This crate never fixes or works around a decoder finding: an assertion
//! here that fails is a bug in `pc-codec`, to be reported with its input.
#![warn(missing_docs)]

use std::fmt::Debug;

use pc_codec::wire::{Decode, Encode};

/// Decodes `data` as a whole `T`; when it decodes, asserts that the value
/// re-encodes to `data` byte for byte and returns it for further checks.
pub fn decode_canonical<T: Decode + Encode + Debug>(data: &[u8]) -> Option<T> {
    let value = T::from_bytes(data).ok()?;
    let encoded = value.to_bytes();
    assert!(
        encoded == data,
        "{} accepted a non-canonical encoding:\n input      {}\n re-encoded {}\n value      {value:?}",
        std::any::type_name::<T>(),
        pc_codec::to_hex(data),
        pc_codec::to_hex(&encoded),
    );
    Some(value)
}
