//! TLS 1.3 for QUIC: rustls with the `ring` provider, ALPN [`ALPN`], a
//! self-signed certificate per node, and one verifier for both sides that
//! takes any certificate but still checks every handshake signature.
//!
//! Peers do not authenticate by a certificate authority: a validator binds
//! its TLS key to its genesis key with the `Hello` (`crate::identity`).
//! What TLS must still prove is possession: the peer's CertificateVerify
//! signature is checked against the public key of the certificate it
//! presented ([`rustls::crypto::verify_tls13_signature`] with the
//! provider's algorithms), so the SPKI this module reports for a connection
//! is one the peer holds the private key of. Servers ask for a client
//! certificate but do not require one: validators present theirs, plain
//! clients (submitting micro-events, asking balances) need none.

use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::NoServerSessionStorage;
use rustls::time_provider::TimeProvider;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The only application protocol spoken: protocol v0 of Phantom-Coin.
pub const ALPN: &[u8] = b"phantom/0";

/// The DNS name in every node certificate and the default server name a
/// client asks for (the verifier does not check names).
pub const CERTIFICATE_NAME: &str = "phantom-node";

/// An error building or loading TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen could not make a key or certificate.
    #[error("generating the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused a configuration or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// A PEM file without the expected section, or with a broken one.
    #[error("TLS identity PEM: no valid {what} section")]
    Pem {
        /// `CERTIFICATE` or `PRIVATE KEY`.
        what: &'static str,
    },
    /// A certificate whose DER does not lead to a SubjectPublicKeyInfo.
    #[error("TLS certificate: {0}")]
    Certificate(#[from] CertificateParseError),
    /// A private key that does not belong to the certificate.
    #[error("TLS identity: the private key does not match the certificate's public key")]
    KeyMismatch,
}

/// The certificate DER could not be walked to its SubjectPublicKeyInfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed X.509 certificate: {what}")]
pub struct CertificateParseError {
    /// The element that did not parse.
    pub what: &'static str,
}

/// The ring provider of the product.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A node's TLS key and its self-signed certificate (ECDSA P-256: every
/// TLS 1.3 stack verifies it).
pub struct TlsIdentity {
    certificate: CertificateDer<'static>,
    private_key: PrivatePkcs8KeyDer<'static>,
    spki: Vec<u8>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            certificate: self.certificate.clone(),
            private_key: self.private_key.clone_key(),
            spki: self.spki.clone(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("spki", &pc_codec::to_hex(&self.spki))
            .finish_non_exhaustive()
    }
}

impl TlsIdentity {
    /// A fresh key (from the operating system's RNG, through ring) and its
    /// self-signed certificate for [`CERTIFICATE_NAME`].
    pub fn generate() -> Result<TlsIdentity, TlsError> {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let params = rcgen::CertificateParams::new(vec![CERTIFICATE_NAME.to_owned()])?;
        let certificate = params.self_signed(&key_pair)?;
        TlsIdentity::from_der(
            certificate.der().clone(),
            PrivatePkcs8KeyDer::from(key_pair.serialize_der()),
        )
    }

    /// An identity from a certificate and its PKCS#8 private key; refuses a
    /// key that does not belong to the certificate.
    pub fn from_der(
        certificate: CertificateDer<'static>,
        private_key: PrivatePkcs8KeyDer<'static>,
    ) -> Result<TlsIdentity, TlsError> {
        let spki = spki_of_certificate(&certificate)?.to_vec();
        let signing_key = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(private_key.clone_key()))?;
        match signing_key.public_key() {
            Some(public) if public.as_ref() == spki.as_slice() => {}
            _ => return Err(TlsError::KeyMismatch),
        }
        Ok(TlsIdentity {
            certificate,
            private_key,
            spki,
        })
    }

    /// The identity as PEM: the certificate, then the private key (the
    /// file a node keeps in its data dir; it holds a secret).
    pub fn to_pem(&self) -> String {
        let mut pem = pem_section("CERTIFICATE", self.certificate.as_ref());
        pem.push_str(&pem_section(
            "PRIVATE KEY",
            self.private_key.secret_pkcs8_der(),
        ));
        pem
    }

    /// An identity read back from [`TlsIdentity::to_pem`]'s output.
    pub fn from_pem(pem: &[u8]) -> Result<TlsIdentity, TlsError> {
        let certificate = CertificateDer::from_pem_slice(pem).map_err(|_| TlsError::Pem {
            what: "CERTIFICATE",
        })?;
        let private_key = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| TlsError::Pem {
            what: "PRIVATE KEY",
        })?;
        TlsIdentity::from_der(certificate, private_key)
    }

    /// The certificate (DER).
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The private key (PKCS#8 DER).
    pub fn private_key_der(&self) -> &PrivatePkcs8KeyDer<'static> {
        &self.private_key
    }

    /// The certificate's SubjectPublicKeyInfo (DER): what a Hello binds.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }
}

/// One PEM section with lines of 64 base64 characters.
fn pem_section(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut base64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let group = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        for index in 0..4 {
            if index <= chunk.len() {
                base64.push(ALPHABET[(group >> (18 - 6 * index) & 0x3f) as usize] as char);
            } else {
                base64.push('=');
            }
        }
    }
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// The rustls server configuration of a node: TLS 1.3 only, ALPN
/// [`ALPN`] only (a client offering anything else is refused with the
/// `no_application_protocol` alert), the node's certificate, client
/// certificates asked for but optional, no session resumption.
pub fn server_config(identity: &TlsIdentity) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let verifier = AnyCertificate::new(&provider);
    let mut config = rustls::ServerConfig::builder_with_details(provider, Arc::new(NoClock))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![identity.certificate.clone()],
            PrivateKeyDer::Pkcs8(identity.private_key.clone_key()),
        )?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// The rustls client configuration: TLS 1.3 only, ALPN [`ALPN`], any
/// server certificate (signatures checked), and the node's certificate as
/// client certificate when `identity` is given (validators) or none
/// (plain clients).
pub fn client_config(identity: Option<&TlsIdentity>) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = AnyCertificate::new(&provider);
    let builder = rustls::ClientConfig::builder_with_details(provider, Arc::new(NoClock))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder.with_client_auth_cert(
            vec![identity.certificate.clone()],
            PrivateKeyDer::Pkcs8(identity.private_key.clone_key()),
        )?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(config)
}

/// The wall time rustls is told: always the Unix epoch. rustls asks for it
/// only to check certificate validity periods, which the verifiers here do
/// not check (a node's certificate never expires in a way that matters:
/// the Hello binds the key), and to date session tickets, which are off.
/// So the TLS layer reads no clock, like the rest of the crate.
#[derive(Debug)]
struct NoClock;

impl TimeProvider for NoClock {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::ZERO))
    }
}

/// The one certificate verifier of both sides: it accepts any well-formed
/// certificate (peers authenticate by the `Hello`, not by a certificate
/// authority) and checks the handshake signature made with its key. As a
/// server's client-certificate verifier it asks for a certificate without
/// requiring one.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyCertificate {
    /// A verifier with `provider`'s signature algorithms.
    fn new(provider: &CryptoProvider) -> Arc<AnyCertificate> {
        Arc::new(AnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

/// The handshake-signature methods, which `ServerCertVerifier` and
/// `ClientCertVerifier` declare alike: TLS 1.2 refused, TLS 1.3 checked
/// with the provider's algorithms.
macro_rules! handshake_signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            _message: &[u8],
            _cert: &CertificateDer<'_>,
            _dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Err(tls12_refused())
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        check_certificate(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    handshake_signature_checks!();
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        check_certificate(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    handshake_signature_checks!();
}

/// TLS 1.2 is not enabled; a TLS 1.2 signature can never be asked for.
fn tls12_refused() -> rustls::Error {
    rustls::Error::PeerIncompatible(rustls::PeerIncompatible::Tls13RequiredForQuic)
}

/// A certificate is usable iff its SPKI can be found (the Hello binds it).
fn check_certificate(certificate: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    spki_of_certificate(certificate)
        .map(|_| ())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))
}

/// The SubjectPublicKeyInfo (DER, with its SEQUENCE header) of an X.509
/// certificate: a minimal walk of `Certificate → tbsCertificate →` the
/// seventh field (after the optional version, serial, signature algorithm,
/// issuer, validity and subject). The signature checks of the handshake
/// parse the certificate fully; this only finds the key the Hello binds.
pub fn spki_of_certificate(certificate: &[u8]) -> Result<&[u8], CertificateParseError> {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const VERSION: u8 = 0xa0;
    let (certificate, _) = der_element(certificate, SEQUENCE, "certificate")?;
    let (tbs, _) = der_element(certificate.contents, SEQUENCE, "tbsCertificate")?;
    let mut rest = tbs.contents;
    if rest.first() == Some(&VERSION) {
        rest = der_element(rest, VERSION, "version")?.1;
    }
    rest = der_element(rest, INTEGER, "serial number")?.1;
    for what in ["signature algorithm", "issuer", "validity", "subject"] {
        rest = der_element(rest, SEQUENCE, what)?.1;
    }
    Ok(der_element(rest, SEQUENCE, "subjectPublicKeyInfo")?.0.whole)
}

/// One DER element: the whole encoding and its contents.
struct DerElement<'a> {
    whole: &'a [u8],
    contents: &'a [u8],
}

/// Reads one definite-length DER element with tag `tag` from the front of
/// `input`; returns it and the bytes after it.
fn der_element<'a>(
    input: &'a [u8],
    tag: u8,
    what: &'static str,
) -> Result<(DerElement<'a>, &'a [u8]), CertificateParseError> {
    let error = CertificateParseError { what };
    let (&found, rest) = input.split_first().ok_or(error.clone())?;
    if found != tag {
        return Err(error);
    }
    let (&first, rest) = rest.split_first().ok_or(error.clone())?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: 1..=4 length bytes (certificates are far below 4 GiB),
        // minimal as DER requires.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count || rest[0] == 0 {
            return Err(error);
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |len, byte| len << 8 | usize::from(*byte));
        if len < 0x80 {
            return Err(error);
        }
        (len, &rest[count..])
    };
    if rest.len() < len {
        return Err(error);
    }
    let header = input.len() - rest.len();
    Ok((
        DerElement {
            whole: &input[..header + len],
            contents: &rest[..len],
        },
        &rest[len..],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_of_a_generated_certificate_is_its_key_pairs_public_key() {
        let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let params = rcgen::CertificateParams::new(vec!["x".to_owned()]).unwrap();
        let certificate = params.clone().self_signed(&key_pair).unwrap();
        assert_eq!(
            spki_of_certificate(certificate.der()).unwrap(),
            key_pair.public_key_der().as_slice()
        );
        let ed25519 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let certificate = params.self_signed(&ed25519).unwrap();
        assert_eq!(
            spki_of_certificate(certificate.der()).unwrap(),
            ed25519.public_key_der().as_slice()
        );
    }

    #[test]
    fn truncated_or_garbage_certificates_are_refused_without_panic() {
        let identity = TlsIdentity::generate().unwrap();
        let der = identity.certificate_der().as_ref();
        for len in 0..der.len() {
            assert!(
                spki_of_certificate(&der[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = spki_of_certificate(&bytes);
        }
        assert!(matches!(
            spki_of_certificate(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            Err(CertificateParseError {
                what: "certificate"
            })
        ));
        // A non-minimal long-form length is not DER.
        assert!(spki_of_certificate(&[0x30, 0x81, 0x01, 0x00]).is_err());
    }

    #[test]
    fn pem_sections_of_every_padding_parse_back() {
        for len in 0..=7u8 {
            let der: Vec<u8> = (0..len).map(|i| i.wrapping_mul(97) ^ 0xa5).collect();
            let pem = pem_section("CERTIFICATE", &der);
            let parsed = CertificateDer::from_pem_slice(pem.as_bytes());
            if len == 0 {
                assert!(parsed.is_err() || parsed.unwrap().as_ref().is_empty());
            } else {
                assert_eq!(parsed.unwrap().as_ref(), der.as_slice(), "{len} bytes");
            }
        }
        let long = vec![0xffu8; 100];
        let pem = pem_section("CERTIFICATE", &long);
        assert!(pem.lines().all(|line| line.len() <= 64));
        assert_eq!(
            CertificateDer::from_pem_slice(pem.as_bytes())
                .unwrap()
                .as_ref(),
            long.as_slice()
        );
    }

    #[test]
    fn identity_round_trips_through_pem_and_der() {
        let identity = TlsIdentity::generate().unwrap();
        let pem = identity.to_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(pem.contains("-----BEGIN PRIVATE KEY-----\n"));
        let loaded = TlsIdentity::from_pem(pem.as_bytes()).unwrap();
        assert_eq!(loaded.spki_der(), identity.spki_der());
        assert_eq!(loaded.certificate_der(), identity.certificate_der());
        let again = TlsIdentity::from_der(
            identity.certificate_der().clone(),
            identity.private_key_der().clone_key(),
        )
        .unwrap();
        assert_eq!(again.spki_der(), identity.spki_der());
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let first = TlsIdentity::generate().unwrap();
        let second = TlsIdentity::generate().unwrap();
        assert_ne!(first.spki_der(), second.spki_der());
        assert!(matches!(
            TlsIdentity::from_der(
                first.certificate_der().clone(),
                second.private_key_der().clone_key()
            ),
            Err(TlsError::KeyMismatch)
        ));
        assert!(matches!(
            TlsIdentity::from_pem(b"no pem here"),
            Err(TlsError::Pem {
                what: "CERTIFICATE"
            })
        ));
    }

    #[test]
    fn the_verifier_takes_a_generated_certificate_and_refuses_garbage_on_both_sides() {
        let verifier = AnyCertificate::new(&provider());
        let identity = TlsIdentity::generate().unwrap();
        let name = ServerName::try_from(CERTIFICATE_NAME).unwrap();
        let now = UnixTime::since_unix_epoch(Duration::ZERO);
        let good = identity.certificate_der();
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]);
        assert!(verifier
            .verify_server_cert(good, &[], &name, &[], now)
            .is_ok());
        assert!(verifier.verify_client_cert(good, &[], now).is_ok());
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
        assert_eq!(
            verifier
                .verify_server_cert(&garbage, &[], &name, &[], now)
                .unwrap_err(),
            bad
        );
        assert_eq!(
            verifier.verify_client_cert(&garbage, &[], now).unwrap_err(),
            bad
        );
        assert!(verifier.offer_client_auth() && !verifier.client_auth_mandatory());
        assert_eq!(
            ServerCertVerifier::supported_verify_schemes(&*verifier),
            ClientCertVerifier::supported_verify_schemes(&*verifier)
        );
    }

    #[test]
    fn configs_offer_only_the_phantom_alpn_and_optional_client_certificates() {
        let identity = TlsIdentity::generate().unwrap();
        let server = server_config(&identity).unwrap();
        assert_eq!(server.alpn_protocols, vec![b"phantom/0".to_vec()]);
        let client = client_config(Some(&identity)).unwrap();
        assert_eq!(client.alpn_protocols, vec![b"phantom/0".to_vec()]);
        assert!(client.client_auth_cert_resolver.has_certs());
        let anonymous = client_config(None).unwrap();
        assert!(!anonymous.client_auth_cert_resolver.has_certs());
    }
}
