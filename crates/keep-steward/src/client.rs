//! The other side of the Steward: how a Keep asks it for a certificate, and how a relying
//! party fetches the certificate a Keep presents.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use keep_attest::cmw::ID_PE_CMW;
use keep_attest::request::AttestationRequest;
use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};

use crate::server::{MAX_BODY, PKCS10};

/// How long a whole exchange with a Steward or a Keep may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A Steward's URL, split: `https://HOST[:PORT][/PATH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardUrl {
    host: String,
    port: u16,
    base_path: String,
}

impl StewardUrl {
    /// Parses an `https://` URL.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("https://") else {
            bail!("steward URL {url}: a Steward is reached over https:// only");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => (
                host,
                port.parse()
                    .with_context(|| format!("steward URL {url}: bad port `{port}`"))?,
            ),
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            bail!("steward URL {url}: no host");
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            base_path: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// Why the Steward did not issue a certificate.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The Steward answered with a refusal; `reason` is its explanation.
    #[error("the Steward refused the request ({status}): {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The Steward's reason.
        reason: String,
    },
    /// The Steward could not be reached or spoke nonsense.
    #[error("{0:#}")]
    Exchange(anyhow::Error),
}

/// Sends a DER certificate request to the Steward at `url`, trusting the servers `tls`
/// trusts, and returns the issued chain (PEM: leaf, then CA).
pub fn request_certificate(
    url: &StewardUrl,
    csr_der: &[u8],
    tls: Arc<ClientConfig>,
) -> Result<String, RequestError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RequestError::Exchange(e.into()))?;
    runtime.block_on(async {
        tokio::time::timeout(EXCHANGE_TIMEOUT, post(url, csr_der, tls))
            .await
            .unwrap_or_else(|_| {
                Err(RequestError::Exchange(anyhow::anyhow!(
                    "no answer within {EXCHANGE_TIMEOUT:?}"
                )))
            })
    })
}

async fn post(
    url: &StewardUrl,
    csr_der: &[u8],
    tls: Arc<ClientConfig>,
) -> Result<String, RequestError> {
    let exchange = |e: anyhow::Error| RequestError::Exchange(e);
    let name = ServerName::try_from(url.host.clone())
        .map_err(|e| exchange(anyhow::anyhow!("steward host `{}`: {e}", url.host)))?;
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .with_context(|| format!("cannot connect to the Steward at {}:{}", url.host, url.port))
        .map_err(exchange)?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with the Steward at {}:{}", url.host, url.port))
        .map_err(exchange)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP with the Steward")
        .map_err(exchange)?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/attest", url.base_path))
        .header(HOST, format!("{}:{}", url.host, url.port))
        .header(CONTENT_TYPE, PKCS10)
        .body(Full::new(Bytes::copy_from_slice(csr_der)))
        .context("building the request")
        .map_err(exchange)?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request to the Steward")
        .map_err(exchange)?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| exchange(anyhow::anyhow!("reading the Steward's answer: {e}")))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).trim_end().to_owned();
    if status != StatusCode::OK {
        return Err(RequestError::Refused {
            status: status.as_u16(),
            reason: text,
        });
    }
    Ok(text)
}

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

/// A Keep's PKCS#10 request, signed by `key`: the names asked for (DNS names, and URIs,
/// which contain `://`) and the evidence extension.
pub fn certificate_request(
    key: &KeyPair,
    names: &[String],
    content: &AttestationRequest,
) -> anyhow::Result<Vec<u8>> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|name| {
            Ok(if name.contains("://") {
                SanType::URI(name.as_str().try_into()?)
            } else {
                SanType::DnsName(name.as_str().try_into()?)
            })
        })
        .collect::<Result<_, rcgen::Error>>()
        .context("[tls] names")?;
    let arcs: Vec<u64> = ID_PE_CMW.arcs().map(u64::from).collect();
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &arcs,
        content.to_collection().to_extension_value(),
    )];
    let csr = params
        .serialize_request(key)
        .context("cannot make the certificate request")?;
    Ok(csr.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steward_urls() {
        let url = StewardUrl::parse("https://steward.example:8443/base/").unwrap();
        assert_eq!(
            url,
            StewardUrl {
                host: "steward.example".into(),
                port: 8443,
                base_path: "/base".into()
            }
        );
        assert_eq!(StewardUrl::parse("https://127.0.0.1").unwrap().port, 443);
        assert_eq!(StewardUrl::parse("https://[::1]:9").unwrap().host, "::1");
        for bad in ["http://x", "https://", "https://x:port"] {
            assert!(StewardUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
