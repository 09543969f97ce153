//! The `Hello` of DESIGN §7: how a validator proves, on a TLS connection,
//! that the TLS key at the other end speaks for a key of the genesis
//! committee.
//!
//! The TLS certificate is self-signed and carries no authority; what binds
//! it is `binding_signature = BIP340(validator key, derive("tls-binding",
//! tls_spki || network))` (`pc_codec::ids::tls_binding`). The receiver
//! checks it against the SPKI of the certificate the peer actually
//! presented in this handshake, so a Hello replayed over another TLS key
//! fails, and against the genesis network id, so a Hello of another network
//! fails. The shard → port map is not signed: it travels inside the TLS
//! session whose key the signature binds, so nobody else can alter it.

use pc_codec::genesis::Genesis;
use pc_codec::ids::{tls_binding, to_hex};
use pc_codec::wire::{put_count, Decode, DecodeError, Encode, Reader};
use pc_codec::{PublicKeyBytes, SignatureBytes, SignatureVerifier, SigningKey};

/// Most `(shard, port)` entries in a Hello.
pub const MAX_HELLO_PORTS: usize = 1024;

/// The UDP port of the core that owns `shard` on the sending validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardPort {
    /// The shard.
    pub shard: u16,
    /// Its core's port (never 0).
    pub port: u16,
}

/// A validator's first message on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// The validator's x-only key, as listed in the genesis.
    pub validator_key: PublicKeyBytes,
    /// Shard → port, strictly ascending by shard, `0..=MAX_HELLO_PORTS`.
    pub ports: Vec<ShardPort>,
    /// `BIP340(validator key, tls_binding(tls_spki, network))`.
    pub binding_signature: SignatureBytes,
}

impl Hello {
    /// Signs a Hello binding `tls_spki_der` (the local certificate's
    /// SubjectPublicKeyInfo) to `key` on `network`.
    ///
    /// # Panics
    /// If `ports` names a shard twice, has a port 0 or more than
    /// [`MAX_HELLO_PORTS`] entries (the node's own configuration, checked
    /// at start-up).
    pub fn sign(
        key: &SigningKey,
        mut ports: Vec<ShardPort>,
        tls_spki_der: &[u8],
        network: &[u8; 8],
        aux_rand: &[u8; 32],
    ) -> Hello {
        ports.sort();
        assert!(ports.len() <= MAX_HELLO_PORTS, "too many shard ports");
        assert!(
            ports.windows(2).all(|pair| pair[0].shard < pair[1].shard),
            "a shard listed twice in the Hello ports"
        );
        assert!(
            ports.iter().all(|p| p.port != 0),
            "port 0 in the Hello ports"
        );
        let binding = tls_binding(tls_spki_der, network);
        Hello {
            validator_key: key.public_key(),
            ports,
            binding_signature: key.sign(&binding, aux_rand),
        }
    }

    /// Checks the Hello against the certificate the peer presented in this
    /// connection's handshake (`None`: it presented none) and the genesis
    /// committee; on success the peer speaks for `validator_key`.
    pub fn verify(
        &self,
        peer_tls_spki_der: Option<&[u8]>,
        committee: &Committee,
        verifier: &impl SignatureVerifier,
    ) -> Result<(), HelloError> {
        let key = to_hex(&self.validator_key);
        if !committee.contains(&self.validator_key) {
            return Err(HelloError::NotInCommittee { key });
        }
        if let Some(entry) = self.ports.iter().find(|p| p.shard >= committee.shards) {
            return Err(HelloError::UnknownShard {
                key,
                shard: entry.shard,
                shards: committee.shards,
            });
        }
        let spki = peer_tls_spki_der.ok_or(HelloError::NoPeerCertificate { key: key.clone() })?;
        let binding = tls_binding(spki, &committee.network);
        if !verifier.verify(&self.validator_key, &binding, &self.binding_signature) {
            return Err(HelloError::BindingDoesNotVerify {
                key,
                tls_key: short_fingerprint(spki),
                network: to_hex(&committee.network),
            });
        }
        Ok(())
    }

    /// The port of the core that owns `shard`, if the peer serves it.
    pub fn port_of(&self, shard: u16) -> Option<u16> {
        self.ports
            .binary_search_by_key(&shard, |p| p.shard)
            .ok()
            .map(|index| self.ports[index].port)
    }
}

/// The first 8 bytes of the BLAKE3 of a TLS key, in hex, to name it in errors.
fn short_fingerprint(spki: &[u8]) -> String {
    to_hex(&blake3::hash(spki).as_bytes()[..8])
}

impl Encode for Hello {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.validator_key);
        put_count(out, self.ports.len());
        for entry in &self.ports {
            out.extend_from_slice(&entry.shard.to_le_bytes());
            out.extend_from_slice(&entry.port.to_le_bytes());
        }
        out.extend_from_slice(&self.binding_signature);
    }
}

impl Decode for Hello {
    fn decode(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let validator_key = reader.array("hello validator key")?;
        let count = reader.count("hello ports", 0, MAX_HELLO_PORTS, 4)?;
        let mut ports: Vec<ShardPort> = Vec::with_capacity(count);
        for _ in 0..count {
            let offset = reader.offset();
            let entry = ShardPort {
                shard: reader.u16("hello shard")?,
                port: reader.u16("hello port")?,
            };
            if ports.last().is_some_and(|last| last.shard >= entry.shard) {
                return Err(DecodeError::InvalidValue {
                    offset,
                    what: "hello shard (not strictly ascending)",
                });
            }
            if entry.port == 0 {
                return Err(DecodeError::InvalidValue {
                    offset: offset + 2,
                    what: "hello port (zero)",
                });
            }
            ports.push(entry);
        }
        Ok(Hello {
            validator_key,
            ports,
            binding_signature: reader.array("hello binding signature")?,
        })
    }
}

/// What a Hello is checked against: the genesis network id, its shard count
/// and the keys of its validators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committee {
    network: [u8; 8],
    shards: u16,
    keys: Vec<PublicKeyBytes>,
}

impl Committee {
    /// The committee of a (validated) genesis.
    pub fn from_genesis(genesis: &Genesis) -> Committee {
        Committee::new(
            genesis.network(),
            genesis.params.shards,
            genesis.validators.iter().map(|v| v.key).collect(),
        )
    }

    /// A committee of `keys` on `network` with `shards` shards.
    pub fn new(network: [u8; 8], shards: u16, mut keys: Vec<PublicKeyBytes>) -> Committee {
        keys.sort_unstable();
        keys.dedup();
        Committee {
            network,
            shards,
            keys,
        }
    }

    /// The network id Hellos must be bound to.
    pub fn network(&self) -> [u8; 8] {
        self.network
    }

    /// True iff `key` is a validator key of the genesis.
    pub fn contains(&self, key: &PublicKeyBytes) -> bool {
        self.keys.binary_search(key).is_ok()
    }
}

/// Why a Hello was refused; each names the validator key it claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The key is not a validator of the genesis.
    #[error("hello from validator key {key}: not in the genesis committee")]
    NotInCommittee {
        /// The claimed key (hex).
        key: String,
    },
    /// The peer presented no TLS certificate, so nothing can be bound.
    #[error("hello from validator key {key}: the peer presented no TLS certificate")]
    NoPeerCertificate {
        /// The claimed key (hex).
        key: String,
    },
    /// The signature does not bind this connection's TLS key on this
    /// network to the validator key (another TLS key, another network or a
    /// bad signature: the three are indistinguishable by design).
    #[error(
        "hello from validator key {key}: binding signature does not verify for TLS key {tls_key} on network {network}"
    )]
    BindingDoesNotVerify {
        /// The claimed key (hex).
        key: String,
        /// Fingerprint of the TLS key of this connection.
        tls_key: String,
        /// The network id expected (hex).
        network: String,
    },
    /// A port for a shard the genesis does not have.
    #[error("hello from validator key {key}: port for shard {shard}, but the genesis has {shards} shards")]
    UnknownShard {
        /// The claimed key (hex).
        key: String,
        /// The shard named.
        shard: u16,
        /// Shards of the genesis.
        shards: u16,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use pc_codec::Bip340;

    const NETWORK: [u8; 8] = *b"testnet0";
    const SPKI: &[u8] = b"spki of the local tls key";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_secret_bytes(&[seed; 32]).unwrap()
    }

    fn committee() -> Committee {
        Committee::new(NETWORK, 2, vec![key(1).public_key(), key(2).public_key()])
    }

    fn ports() -> Vec<ShardPort> {
        vec![
            ShardPort {
                shard: 1,
                port: 9001,
            },
            ShardPort {
                shard: 0,
                port: 9000,
            },
        ]
    }

    fn hello() -> Hello {
        Hello::sign(&key(1), ports(), SPKI, &NETWORK, &[7; 32])
    }

    #[test]
    fn valid_hello_is_accepted() {
        let hello = hello();
        assert_eq!(hello.verify(Some(SPKI), &committee(), &Bip340), Ok(()));
        assert_eq!(hello.port_of(0), Some(9000));
        assert_eq!(hello.port_of(1), Some(9001));
        assert_eq!(hello.port_of(2), None);
    }

    #[test]
    fn hello_over_another_tls_key_is_refused() {
        let error = hello()
            .verify(Some(b"spki of another tls key"), &committee(), &Bip340)
            .unwrap_err();
        assert!(matches!(error, HelloError::BindingDoesNotVerify { .. }));
        assert!(error.to_string().contains(&to_hex(&key(1).public_key())));
    }

    #[test]
    fn hello_of_another_network_is_refused() {
        let other = Hello::sign(&key(1), ports(), SPKI, b"othernet", &[7; 32]);
        assert!(matches!(
            other.verify(Some(SPKI), &committee(), &Bip340),
            Err(HelloError::BindingDoesNotVerify { .. })
        ));
    }

    #[test]
    fn key_outside_the_committee_is_refused() {
        let stranger = Hello::sign(&key(3), ports(), SPKI, &NETWORK, &[7; 32]);
        assert_eq!(
            stranger.verify(Some(SPKI), &committee(), &Bip340),
            Err(HelloError::NotInCommittee {
                key: to_hex(&key(3).public_key())
            })
        );
    }

    #[test]
    fn bad_signature_is_refused() {
        let mut forged = hello();
        forged.binding_signature[5] ^= 1;
        assert!(matches!(
            forged.verify(Some(SPKI), &committee(), &Bip340),
            Err(HelloError::BindingDoesNotVerify { .. })
        ));
        // Another committee member's key with this signature fails too.
        let mut claimed = hello();
        claimed.validator_key = key(2).public_key();
        assert!(matches!(
            claimed.verify(Some(SPKI), &committee(), &Bip340),
            Err(HelloError::BindingDoesNotVerify { .. })
        ));
    }

    #[test]
    fn hello_without_a_peer_certificate_is_refused() {
        assert!(matches!(
            hello().verify(None, &committee(), &Bip340),
            Err(HelloError::NoPeerCertificate { .. })
        ));
    }

    #[test]
    fn port_for_an_unknown_shard_is_refused() {
        let mut ports = ports();
        ports.push(ShardPort {
            shard: 2,
            port: 9002,
        });
        let hello = Hello::sign(&key(1), ports, SPKI, &NETWORK, &[7; 32]);
        assert!(matches!(
            hello.verify(Some(SPKI), &committee(), &Bip340),
            Err(HelloError::UnknownShard {
                shard: 2,
                shards: 2,
                ..
            })
        ));
    }

    #[test]
    fn hello_round_trips_and_ports_must_ascend() {
        let hello = hello();
        let bytes = hello.to_bytes();
        assert_eq!(Hello::from_bytes(&bytes), Ok(hello.clone()));
        // Swap the two port entries: shards 1, 0 no longer ascend.
        let mut swapped = bytes.clone();
        let entries = 32 + 1;
        let (first, second) = swapped[entries..entries + 8].split_at_mut(4);
        first.swap_with_slice(second);
        assert!(matches!(
            Hello::from_bytes(&swapped),
            Err(DecodeError::InvalidValue { .. })
        ));
        // A duplicate shard is not ascending either.
        let mut duplicate = bytes.clone();
        duplicate[entries + 4..entries + 6].copy_from_slice(&0u16.to_le_bytes());
        assert!(Hello::from_bytes(&duplicate).is_err());
        let mut zero_port = bytes;
        zero_port[entries + 2..entries + 4].copy_from_slice(&0u16.to_le_bytes());
        assert!(matches!(
            Hello::from_bytes(&zero_port),
            Err(DecodeError::InvalidValue { .. })
        ));
    }

    #[test]
    #[should_panic(expected = "a shard listed twice")]
    fn signing_a_duplicate_shard_is_a_programmer_error() {
        let ports = vec![
            ShardPort { shard: 0, port: 1 },
            ShardPort { shard: 0, port: 2 },
        ];
        let _ = Hello::sign(&key(1), ports, SPKI, &NETWORK, &[7; 32]);
    }

    #[test]
    fn committee_from_genesis_holds_every_validator_key() {
        use pc_codec::genesis::{ConsensusParams, GenesisValidator, SeatAssignment};
        let genesis = Genesis {
            params: ConsensusParams::v0(1, 2),
            note_commitment: [0; 32],
            validators: vec![GenesisValidator {
                key: key(1).public_key(),
                bond: 1,
                seats: vec![
                    SeatAssignment { shard: 0, seat: 0 },
                    SeatAssignment { shard: 1, seat: 0 },
                ],
            }],
            allocations: vec![],
        };
        let committee = Committee::from_genesis(&genesis);
        assert_eq!(committee.network(), genesis.network());
        assert!(committee.contains(&key(1).public_key()));
        assert!(!committee.contains(&key(2).public_key()));
        let hello = Hello::sign(&key(1), ports(), SPKI, &genesis.network(), &[0; 32]);
        assert_eq!(hello.verify(Some(SPKI), &committee, &Bip340), Ok(()));
    }
}
