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
use zeroize::Zeroizing;

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
    let body = exchange(url, "/v1/attest", PKCS10, csr_der, tls)?;
    Ok(String::from_utf8_lossy(&body).trim_end().to_owned())
}

/// Asks the Steward at `url` for the secret `name`, presenting the certificate it issued
/// (the client identity of `tls`). The value is zeroed when dropped.
pub fn request_secret(
    url: &StewardUrl,
    name: &str,
    tls: Arc<ClientConfig>,
) -> Result<Zeroizing<Vec<u8>>, RequestError> {
    use base64::Engine as _;
    let wanted = serde_json::json!({ "secrets": [name] }).to_string();
    let body = Zeroizing::new(exchange(
        url,
        "/v1/secrets",
        "application/json",
        wanted.as_bytes(),
        tls,
    )?);
    let malformed = |what: &str| {
        RequestError::Exchange(anyhow::anyhow!(
            "the Steward's answer for secret `{name}` {what}"
        ))
    };
    // Typed, so that the base64 text lands straight in a buffer zeroed when dropped (a
    // `serde_json::Value` would keep an unzeroed copy).
    #[derive(serde::Deserialize)]
    struct Answer {
        secrets: std::collections::BTreeMap<String, Zeroizing<String>>,
    }
    let mut answer: Answer =
        serde_json::from_slice(&body).map_err(|_| malformed("is not {\"secrets\": {…}}"))?;
    let encoded = answer
        .secrets
        .remove(name)
        .ok_or_else(|| malformed("does not hold it"))?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map(Zeroizing::new)
        .map_err(|_| malformed("is not base64"))
}

/// Asks the Steward of `session` for the version of the sealed store `store` whose key
/// comes from `secret` (`None`: from the TEE alone; the store is then the workload's), after
/// recording `advance` if given, presenting the Keep's certificate (the client identity of
/// the session's TLS configuration). `None`: the Steward has recorded no version of it.
pub fn sealed_version(
    session: &mut StewardSession,
    secret: Option<&str>,
    store: &[u8; 16],
    advance: Option<u64>,
) -> Result<Option<u64>, RequestError> {
    let asked = serde_json::json!({
        "secret": secret,
        "store": hex::encode(store),
        "advance": advance,
    })
    .to_string();
    let body = session.post("/v1/sealed", "application/json", asked.as_bytes())?;
    #[derive(serde::Deserialize)]
    struct Answer {
        version: Option<u64>,
    }
    serde_json::from_slice::<Answer>(&body)
        .map(|answer| answer.version)
        .map_err(|_| {
            RequestError::Exchange(anyhow::anyhow!(
                "the Steward's answer for a sealed store's version is not {{\"version\": N}}"
            ))
        })
}

/// POSTs `body` to `path` at the Steward and returns the answer of a 200.
fn exchange(
    url: &StewardUrl,
    path: &str,
    content_type: &'static str,
    body: &[u8],
    tls: Arc<ClientConfig>,
) -> Result<Vec<u8>, RequestError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| RequestError::Exchange(e.into()))?;
    runtime.block_on(async {
        tokio::time::timeout(EXCHANGE_TIMEOUT, post(url, path, content_type, body, tls))
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
    path: &str,
    content_type: &'static str,
    payload: &[u8],
    tls: Arc<ClientConfig>,
) -> Result<Vec<u8>, RequestError> {
    let mut sender = connect(url, tls).await?;
    send(&mut sender, url, path, content_type, payload).await
}

/// An HTTP/1.1 connection to the Steward at `url` over TLS (`tls`).
async fn connect(
    url: &StewardUrl,
    tls: Arc<ClientConfig>,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, RequestError> {
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
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP with the Steward")
        .map_err(exchange)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// POSTs `payload` to `path` on the connection `sender`; the answer of a 200.
async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    url: &StewardUrl,
    path: &str,
    content_type: &'static str,
    payload: &[u8],
) -> Result<Vec<u8>, RequestError> {
    let exchange = |e: anyhow::Error| RequestError::Exchange(e);
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path}", url.base_path()))
        .header(HOST, authority(url))
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::copy_from_slice(payload)))
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
    if status != StatusCode::OK {
        return Err(RequestError::Refused {
            status: status.as_u16(),
            reason: String::from_utf8_lossy(&body).trim_end().to_owned(),
        });
    }
    Ok(body.to_vec())
}

/// A connection to the Steward kept open across requests (a sealed store asks at every
/// commit): reopened when the Steward closed it.
pub struct StewardSession {
    url: StewardUrl,
    tls: Arc<ClientConfig>,
    runtime: tokio::runtime::Runtime,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl StewardSession {
    /// A session with the Steward at `url`, trusting and presenting what `tls` says.
    pub fn new(url: &StewardUrl, tls: Arc<ClientConfig>) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.clone(),
            tls,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the Steward session's runtime")?,
            sender: None,
        })
    }

    /// POSTs `payload` to `path`; the answer of a 200. A connection the Steward closed is
    /// opened again, once.
    fn post(
        &mut self,
        path: &str,
        content_type: &'static str,
        payload: &[u8],
    ) -> Result<Vec<u8>, RequestError> {
        let Self {
            url,
            tls,
            runtime,
            sender,
        } = self;
        runtime.block_on(async {
            tokio::time::timeout(EXCHANGE_TIMEOUT, async {
                if let Some(open) = sender.as_mut().filter(|s| !s.is_closed()) {
                    match send(open, url, path, content_type, payload).await {
                        Err(RequestError::Exchange(_)) => {}
                        answer => return answer,
                    }
                }
                *sender = None;
                let mut fresh = connect(url, tls.clone()).await?;
                let answer = send(&mut fresh, url, path, content_type, payload).await;
                *sender = Some(fresh);
                answer
            })
            .await
            .unwrap_or_else(|_| {
                Err(RequestError::Exchange(anyhow::anyhow!(
                    "no answer within {EXCHANGE_TIMEOUT:?}"
                )))
            })
        })
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
