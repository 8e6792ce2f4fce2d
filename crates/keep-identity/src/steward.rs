//! The Steward's protocol, client side: a Keep's certificate request carrying its evidence,
//! and the HTTPS exchange that turns it into a certificate chain.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use keep_config::StewardUrl;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use keep_attest::cmw::ID_PE_CMW;
use keep_attest::request::AttestationRequest;
use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};

/// Largest body either side of the exchange accepts (a request with evidence and
/// certificates, or an issued chain, is a few KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The media type of a certificate request.
pub const PKCS10: &str = "application/pkcs10";

/// How long a whole exchange with a Steward or a Keep may take.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

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
    let name = ServerName::try_from(url.host().to_owned())
        .map_err(|e| exchange(anyhow::anyhow!("steward host `{}`: {e}", url.host())))?;
    let tcp = TcpStream::connect((url.host(), url.port()))
        .await
        .with_context(|| {
            format!(
                "cannot connect to the Steward at {}:{}",
                url.host(),
                url.port()
            )
        })
        .map_err(exchange)?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with the Steward at {}:{}", url.host(), url.port()))
        .map_err(exchange)?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP with the Steward")
        .map_err(exchange)?;
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/attest", url.base_path()))
        .header(HOST, authority(url))
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

/// The `Host` header for `url`: `host:port`, with an IPv6 address in brackets.
fn authority(url: &StewardUrl) -> String {
    if url.host().contains(':') {
        format!("[{}]:{}", url.host(), url.port())
    } else {
        format!("{}:{}", url.host(), url.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_header_brackets_ipv6() {
        let url = |text: &str| text.parse::<StewardUrl>().unwrap();
        assert_eq!(authority(&url("https://[::1]:9/x")), "[::1]:9");
        assert_eq!(
            authority(&url("https://steward.example")),
            "steward.example:443"
        );
    }
}
