//! TLS for the stream (rustls, ring): a server acceptor from PEM files and a client connector
//! trusting the system roots plus an optional extra CA.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate found"));
    }
    Ok(certs)
}

/// A TLS acceptor from a PEM certificate chain and private key.
pub fn server_acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let certs = load_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A TLS connector trusting the system roots and, if given, an extra CA file; with `pin`, the
/// server's end-entity certificate must also carry a public key whose SPKI SHA-256 equals it.
pub fn client_connector(
    extra_ca: Option<&Path>,
    pin: Option<[u8; 32]>,
) -> Result<tokio_rustls::TlsConnector, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // A broken system certificate must not stop the others from loading.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca {
        for cert in load_certs(path)? {
            roots.add(cert).map_err(|e| file_error(path, e))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?;
    let config = match pin {
        None => builder.with_root_certificates(roots).with_no_client_auth(),
        Some(pin) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedVerifier { inner, pin }))
                .with_no_client_auth()
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Parses a pin given as 64 hex digits (optionally prefixed `sha256:`).
pub fn parse_pin(text: &str) -> Result<[u8; 32], String> {
    let hex_digits = text.trim().strip_prefix("sha256:").unwrap_or(text.trim());
    hex::decode(hex_digits)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| format!("pin {text:?}: expected the SHA-256 of the certificate's public key as 64 hex digits"))
}

/// SHA-256 of a DER certificate's SubjectPublicKeyInfo, the value a pin names.
pub fn spki_sha256(cert_der: &[u8]) -> Option<[u8; 32]> {
    use sha2::Digest;
    let spki = der::subject_public_key_info(cert_der)?;
    Some(sha2::Sha256::digest(spki).into())
}

/// Chain validation as usual, then the pin.
#[derive(Debug)]
struct PinnedVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pin: [u8; 32],
}

impl rustls::client::danger::ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        match spki_sha256(end_entity.as_ref()) {
            Some(hash) if subtle::ConstantTimeEq::ct_eq(&hash[..], &self.pin[..]).into() => {
                Ok(verified)
            }
            Some(hash) => Err(rustls::Error::General(format!(
                "certificate public key sha256:{} does not match the pinned key",
                hex::encode(hash)
            ))),
            None => Err(rustls::Error::General(
                "cannot read the certificate's public key".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Just enough DER to find a certificate's SubjectPublicKeyInfo.
mod der {
    /// Reads one TLV at `pos`: (tag, content range, end).
    fn tlv(data: &[u8], pos: usize) -> Option<(u8, std::ops::Range<usize>, usize)> {
        let tag = *data.get(pos)?;
        let first = *data.get(pos + 1)? as usize;
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for i in 0..n {
                len = (len << 8) | *data.get(pos + 2 + i)? as usize;
            }
            (len, 2 + n)
        };
        let start = pos + header;
        let end = start.checked_add(len)?;
        (end <= data.len()).then_some((tag, start..end, end))
    }

    /// Certificate ::= SEQUENCE { tbs SEQUENCE { [0] version?, serial, signature, issuer,
    /// validity, subject, subjectPublicKeyInfo, ... }, ... }: returns the whole SPKI TLV.
    pub fn subject_public_key_info(cert: &[u8]) -> Option<&[u8]> {
        let (tag, body, _) = tlv(cert, 0)?;
        if tag != 0x30 {
            return None;
        }
        let (tag, tbs, _) = tlv(cert, body.start)?;
        if tag != 0x30 {
            return None;
        }
        let mut pos = tbs.start;
        let (tag, _, next) = tlv(cert, pos)?;
        if tag == 0xa0 {
            pos = next; // explicit version
        }
        // serial, signature algorithm, issuer, validity, subject
        for _ in 0..5 {
            pos = tlv(cert, pos)?.2;
        }
        let (tag, _, end) = tlv(cert, pos)?;
        (tag == 0x30 && end <= tbs.end).then(|| &cert[pos..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_spki_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let spki = der::subject_public_key_info(cert.der()).unwrap();
        assert_eq!(
            spki,
            rcgen::PublicKeyData::subject_public_key_info(&key).as_slice()
        );
        assert!(spki_sha256(cert.der()).is_some());
        assert!(der::subject_public_key_info(&cert.der()[..40]).is_none());
        assert!(der::subject_public_key_info(b"\x30\x82\xff\xff").is_none());
    }

    #[test]
    fn pins_parse() {
        let hex64 = "ab".repeat(32);
        assert_eq!(parse_pin(&format!("sha256:{hex64}")).unwrap(), [0xab; 32]);
        assert!(parse_pin("abc").is_err());
    }
}
