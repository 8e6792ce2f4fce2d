//! GETs from a collateral service (AMD's KDS, Intel's PCS or a PCCS, or a mirror of one)
//! over HTTPS: the Mozilla roots and any extra anchors, a bound on each exchange and on the
//! answer's size, and `429 Too Many Requests` retried after its `Retry-After` (within a
//! bound), as both vendors rate-limit clients.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header::{HOST, RETRY_AFTER};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use keep_config::StewardUrl;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts of one GET when the service answers 429.
const ATTEMPTS: usize = 3;

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Its headers (PCS issuer chains travel in them).
    pub headers: HeaderMap,
    /// Its body.
    pub body: Vec<u8>,
}

/// One collateral service.
#[derive(Debug, Clone)]
pub(crate) struct Service {
    /// What to call it in errors: `the KDS`, `the PCS`.
    name: &'static str,
    base: StewardUrl,
    tls: Arc<ClientConfig>,
    max_wait: Duration,
}

impl Service {
    /// The service at `base` (`https://HOST[:PORT][/PATH]`), trusting the Mozilla roots and
    /// `extra_roots`.
    pub fn new(name: &'static str, base: &str, extra_roots: RootCertStore) -> anyhow::Result<Self> {
        let base: StewardUrl = base
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}", e.replace("steward URL", "URL")))?;
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        roots.roots.extend(extra_roots.roots);
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS versions")?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Self {
            name,
            base,
            tls: Arc::new(tls),
            max_wait: Duration::from_secs(30),
        })
    }

    /// The most a 429's `Retry-After` is waited for.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The full URL of `path` (with its query), for messages.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// Whether the service is at `base`.
    pub fn is_at(&self, base: &str) -> bool {
        self.base.as_str().trim_end_matches('/') == base.trim_end_matches('/')
    }

    /// GETs `path` (under the base URL), answers up to `limit` bytes; `None` for 404.
    pub fn get(&self, path: &str, limit: usize) -> anyhow::Result<Option<Answer>> {
        for attempt in 1..=ATTEMPTS {
            let (status, headers, body) = self.exchange_on_own_thread(path, limit)?;
            match status {
                StatusCode::OK => return Ok(Some(Answer { headers, body })),
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::TOO_MANY_REQUESTS if attempt < ATTEMPTS => {
                    let wait = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map_or(Duration::from_secs(10), Duration::from_secs);
                    if wait > self.max_wait {
                        bail!(
                            "{} asks to wait {}s (429), longer than {}s",
                            self.name,
                            wait.as_secs(),
                            self.max_wait.as_secs()
                        );
                    }
                    tracing::info!(
                        "{} answered 429; retrying in {}s",
                        self.name,
                        wait.as_secs()
                    );
                    std::thread::sleep(wait);
                }
                status => bail!("{} answered {status}", self.name),
            }
        }
        bail!("{} kept answering 429 ({ATTEMPTS} attempts)", self.name)
    }

    /// One GET on a thread of its own (the Steward's handlers run on a tokio runtime, in
    /// which another cannot be started).
    fn exchange_on_own_thread(
        &self,
        path: &str,
        limit: usize,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(path, limit))
                            .await
                            .map_err(|_| anyhow::anyhow!("no answer within {EXCHANGE_TIMEOUT:?}"))?
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the {} client thread panicked", self.name))?
        })
    }

    async fn exchange(
        &self,
        path: &str,
        limit: usize,
    ) -> anyhow::Result<(StatusCode, HeaderMap, Vec<u8>)> {
        let (host, port) = (self.base.host(), self.base.port());
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| anyhow::anyhow!("host `{host}`: {e}"))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let stream = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .with_context(|| format!("TLS with {host}:{port}"))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP")?;
        tokio::spawn(connection);
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{path}", self.base.base_path()))
            .header(HOST, authority)
            .body(Empty::<Bytes>::new())
            .context("building the request")?;
        let response = sender
            .send_request(request)
            .await
            .context("sending the request")?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, headers, body.to_vec()))
    }
}

/// Writes fetched collateral into a cache file, atomically; a cache that cannot be written
/// only costs a fetch next time.
pub(crate) fn store(path: &std::path::Path, bytes: &[u8]) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        tracing::warn!("cannot cache {}: {e}", path.display());
    }
}
