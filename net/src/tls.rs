//! TLS for QUIC. Nodes and clients trust exactly one certificate: the one whose SHA-256
//! fingerprint their token carries (no CA, no host name check), as kubeadm's discovery hash.
use mlt_protocol::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// SHA-256 of a DER certificate.
pub fn fingerprint(cert_der: &[u8]) -> [u8; 32] {
    Sha256::digest(cert_der).into()
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn transport(idle_timeout: Duration) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        idle_timeout.try_into().expect("idle timeout in range"),
    ));
    t.keep_alive_interval(Some(idle_timeout / 4));
    // The protocol is one bidirectional control stream per connection, opened by the
    // connecting peer: allow exactly that (a peer cannot make the other side buffer more).
    t.max_concurrent_bidi_streams(1u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    t
}

/// The scheduler's QUIC server configuration.
pub fn server_config(
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
    idle_timeout: Duration,
) -> Result<quinn::ServerConfig, rustls::Error> {
    let cert = CertificateDer::from(cert_der);
    let key =
        PrivateKeyDer::try_from(key_der).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic =
        QuicServerConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport(idle_timeout)));
    Ok(cfg)
}

/// Accepts exactly the certificate with the pinned fingerprint; records a mismatch so the
/// caller can say which fingerprint it saw.
#[derive(Debug)]
pub struct PinnedVerifier {
    pinned: [u8; 32],
    provider: Arc<CryptoProvider>,
    /// The fingerprint of a refused certificate, as hex.
    pub mismatch: Mutex<Option<String>>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = fingerprint(end_entity.as_ref());
        if seen == self.pinned {
            return Ok(ServerCertVerified::assertion());
        }
        let seen = hex::encode(seen);
        *self.mismatch.lock().expect("verifier lock") = Some(seen.clone());
        Err(rustls::Error::General(format!(
            "certificate fingerprint {seen} is not the pinned one"
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that pins `fingerprint`; the verifier is returned so a failed
/// connection can report what it saw.
pub fn client_config(
    pinned: [u8; 32],
    idle_timeout: Duration,
) -> Result<(quinn::ClientConfig, Arc<PinnedVerifier>), rustls::Error> {
    let verifier = Arc::new(PinnedVerifier {
        pinned,
        provider: provider(),
        mismatch: Mutex::new(None),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic =
        QuicClientConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut cfg = quinn::ClientConfig::new(Arc::new(quic));
    cfg.transport_config(Arc::new(transport(idle_timeout)));
    Ok((cfg, verifier))
}
