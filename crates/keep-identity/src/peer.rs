//! What a relying party does first: read the certificate chain a Keep presents (judged
//! afterwards with [`keep_attest::certificate::verify_certificate`]).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::steward::EXCHANGE_TIMEOUT;

/// Connects to `host:port` and returns the certificate chain the server presents, without
/// judging it (the caller verifies it with [`keep_attest::certificate::verify_certificate`]).
/// Nothing is sent after the handshake; a server that then demands a client certificate
/// does not stop the chain from being read.
pub fn peer_certificates(host: &str, port: u16) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let recorder = Arc::new(ChainRecorder::default());
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .dangerous()
            .with_custom_certificate_verifier(recorder.clone())
            .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("keep.invalid").expect("a valid DNS name"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handshake = runtime.block_on(async {
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let connect = TlsConnector::from(Arc::new(config)).connect(name, tcp);
        tokio::time::timeout(EXCHANGE_TIMEOUT, connect)
            .await
            .map_err(|_| {
                anyhow::anyhow!("{host}:{port}: no TLS handshake within {EXCHANGE_TIMEOUT:?}")
            })?
            .map(drop)
            .with_context(|| format!("TLS handshake with {host}:{port}"))
    });
    let chain = recorder
        .chain
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    match (chain, handshake) {
        (Some(chain), _) => Ok(chain),
        (None, Err(e)) => Err(e),
        (None, Ok(())) => bail!("{host}:{port} presented no certificate"),
    }
}

/// A verifier that accepts any chain and keeps it: the chain is judged afterwards, against
/// the Steward's CA, with the claims it carries.
#[derive(Debug, Default)]
struct ChainRecorder {
    chain: std::sync::Mutex<Option<Vec<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for ChainRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.chain.lock().unwrap_or_else(|p| p.into_inner()) = Some(chain);
        Ok(ServerCertVerified::assertion())
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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
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
            &rustls::crypto::ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
