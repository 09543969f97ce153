//! Wallet addresses (bech32m, HRP `pc`) against the official BIP-350
//! vectors (`tests/vectors/bech32m-test-vectors.tsv`): the valid strings
//! pass the bech32m checksum (and are refused as addresses only for their
//! HRP or length), the invalid ones are refused; addresses round-trip keys,
//! take either case but not both, and refuse a bech32 (not bech32m)
//! checksum, another HRP, another length and bytes that are no key.

use bech32::{Bech32, Bech32m, Hrp};
use pc_codec::address::{decode_address, encode_address, parse_owner, AddressError, ADDRESS_CHARS};
use pc_codec::{to_hex, SigningKey};

/// The vectors: (valid, string). A leading `\xNN` is one byte.
fn vectors() -> Vec<(bool, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/bech32m-test-vectors.tsv"
    );
    let text = std::fs::read_to_string(path).expect("the BIP-350 vectors are in the repository");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let mut fields = line.split('\t');
            let verdict = fields.next().unwrap();
            let raw = fields.next().unwrap();
            let string = match raw.strip_prefix("\\x") {
                Some(rest) => {
                    let byte = u8::from_str_radix(&rest[..2], 16).unwrap();
                    format!("{}{}", char::from(byte), &rest[2..])
                }
                None => raw.to_string(),
            };
            (verdict == "valid", string)
        })
        .collect()
}

#[test]
fn the_bip350_vectors_are_judged_as_bech32m() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 21, "7 valid and 14 invalid strings");
    for (valid, string) in vectors {
        let checked = bech32::primitives::decode::CheckedHrpstring::new::<Bech32m>(&string).is_ok();
        assert_eq!(checked, valid, "{string:?}");
        // As an address: a valid string fails only for its HRP or size,
        // an invalid one already as bech32m.
        match decode_address(&string) {
            Ok(key) => panic!("{string:?} decoded to {}", to_hex(&key)),
            Err(AddressError::Bech32m(_)) => assert!(!valid, "{string:?}"),
            Err(other) => assert!(valid, "{string:?}: {other}"),
        }
    }
}

fn key(seed: u8) -> [u8; 32] {
    SigningKey::from_secret_bytes(&[seed; 32])
        .unwrap()
        .public_key()
}

#[test]
fn an_address_is_the_key_and_nothing_else() {
    for seed in 1..=40u8 {
        let key = key(seed);
        let address = encode_address(&key);
        assert_eq!(address.len(), ADDRESS_CHARS);
        assert!(address.starts_with("pc1"), "{address}");
        assert_eq!(decode_address(&address), Ok(key));
        assert_eq!(decode_address(&address.to_uppercase()), Ok(key));
        assert_eq!(parse_owner(&address), Ok(key));
        assert_eq!(parse_owner(&to_hex(&key)), Ok(key));
    }
    let address = encode_address(&key(7));
    let mixed = format!("PC{}", &address[2..]);
    assert!(matches!(
        decode_address(&mixed),
        Err(AddressError::Bech32m(_))
    ));
    // One character changed: the checksum catches it.
    let mut changed: Vec<char> = address.chars().collect();
    changed[10] = if changed[10] == 'q' { 'p' } else { 'q' };
    let changed: String = changed.into_iter().collect();
    assert!(matches!(
        decode_address(&changed),
        Err(AddressError::Bech32m(_))
    ));
}

#[test]
fn a_bech32_checksum_another_hrp_length_or_a_non_key_is_refused() {
    let pc = Hrp::parse("pc").unwrap();
    let key = key(3);
    let bech32 = bech32::encode_lower::<Bech32>(pc, &key).unwrap();
    assert!(matches!(
        decode_address(&bech32),
        Err(AddressError::Bech32m(_))
    ));
    let bc = bech32::encode_lower::<Bech32m>(Hrp::parse("bc").unwrap(), &key).unwrap();
    assert_eq!(
        decode_address(&bc),
        Err(AddressError::WrongHrp("bc".into()))
    );
    let short = bech32::encode_lower::<Bech32m>(pc, &key[..31]).unwrap();
    assert!(matches!(
        decode_address(&short),
        Err(AddressError::WrongLength(_))
    ));
    let long = bech32::encode_lower::<Bech32m>(pc, &[key.as_slice(), &[0]].concat()).unwrap();
    assert!(matches!(
        decode_address(&long),
        Err(AddressError::WrongLength(_))
    ));
    // x = p + 1 is no field element: no key.
    let not_a_key = bech32::encode_lower::<Bech32m>(pc, &[0xff; 32]).unwrap();
    assert_eq!(decode_address(&not_a_key), Err(AddressError::NotAKey));
    assert_eq!(parse_owner(&"ff".repeat(32)), Err(AddressError::NotAKey));
}
