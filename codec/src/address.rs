//! Wallet addresses: an x-only public key as a bech32m string (BIP-350)
//! with the human-readable part `pc`.
//!
//! Layout: `pc` `1` then the 32 key bytes as 52 five-bit characters (the
//! last 4 bits zero) then the 6-character bech32m checksum, 61 characters
//! in all, lowercase: no version byte, nothing but the key. Decoding takes
//! either case (not mixed), checks the bech32m checksum (a bech32 one is
//! refused), the HRP, the length, the zero padding, and that the bytes are
//! an x-only key on the curve.

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};

use crate::crypto::{is_valid_public_key, PublicKeyBytes};

/// The human-readable part of every address.
pub const ADDRESS_HRP: &str = "pc";

/// Characters of an address: `pc1`, 52 data characters, 6 of checksum.
pub const ADDRESS_CHARS: usize = 3 + 52 + 6;

/// Why a string is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Not a bech32m string (characters, separator, case, checksum).
    #[error("not a bech32m string: {0}")]
    Bech32m(String),
    /// Another human-readable part than `pc`.
    #[error("human-readable part {0:?}, not \"pc\"")]
    WrongHrp(String),
    /// The data is not 32 bytes with zero padding.
    #[error("{0} data bytes, not a 32-byte key")]
    WrongLength(usize),
    /// The padding bits are not zero.
    #[error("non-zero padding")]
    Padding,
    /// The 32 bytes are not an x-only key on the curve.
    #[error("the key is not a valid x-only public key")]
    NotAKey,
}

fn hrp() -> Hrp {
    Hrp::parse_unchecked(ADDRESS_HRP)
}

/// The address of `key` (lowercase).
pub fn encode_address(key: &PublicKeyBytes) -> String {
    bech32::encode_lower::<Bech32m>(hrp(), key).expect("32 bytes fit a bech32m string")
}

/// The key of an address.
pub fn decode_address(text: &str) -> Result<PublicKeyBytes, AddressError> {
    let checked =
        CheckedHrpstring::new::<Bech32m>(text).map_err(|e| AddressError::Bech32m(e.to_string()))?;
    if checked.hrp() != hrp() {
        return Err(AddressError::WrongHrp(checked.hrp().to_string()));
    }
    if checked.data_part_ascii_no_checksum().len() != 52 {
        return Err(AddressError::WrongLength(
            checked.data_part_ascii_no_checksum().len() * 5 / 8,
        ));
    }
    checked
        .validate_segwit_padding()
        .map_err(|_| AddressError::Padding)?;
    let bytes: Vec<u8> = checked.byte_iter().collect();
    let key: PublicKeyBytes = bytes
        .as_slice()
        .try_into()
        .map_err(|_| AddressError::WrongLength(bytes.len()))?;
    if !is_valid_public_key(&key) {
        return Err(AddressError::NotAKey);
    }
    Ok(key)
}

/// An owner given as an address (`pc1…`) or 64 hex digits.
pub fn parse_owner(text: &str) -> Result<PublicKeyBytes, AddressError> {
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mut key = [0u8; 32];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex digits");
        }
        return if is_valid_public_key(&key) {
            Ok(key)
        } else {
            Err(AddressError::NotAKey)
        };
    }
    decode_address(text)
}
