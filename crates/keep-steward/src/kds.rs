//! The VCEK a report needs, from AMD's Key Distribution Service (KDS), when neither the
//! request nor the Steward's `--collateral` carries it.
//!
//! A VCEK is addressed by product line, chip ID and reported TCB
//! ([`keep_attest::snp::kds_vcek`]); a version-2 report does not name its product line, so
//! each is asked in turn (the KDS answers 404 for the others). What is fetched is kept in a
//! cache directory shared across restarts (a VCEK never changes; it is checked like any other
//! certificate every time it is used). The KDS limits clients (about one VCEK per 10 s per
//! address): a 429 is retried after its `Retry-After`, a few times, within a bound.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::header::{HOST, RETRY_AFTER};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use keep_config::StewardUrl;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// AMD's KDS.
pub use keep_attest::snp::KDS_URL as DEFAULT_URL;

/// Largest certificate accepted from the KDS.
const MAX_CERTIFICATE: usize = 64 * 1024;
/// How long one exchange with the KDS may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts per product line when the KDS answers 429.
const ATTEMPTS: usize = 3;

/// A client of AMD's KDS (or a mirror with the same layout).
#[derive(Debug, Clone)]
pub struct Kds {
    base: StewardUrl,
    tls: Arc<ClientConfig>,
    cache: Option<PathBuf>,
    max_wait: Duration,
}

impl Kds {
    /// A client of the KDS at `base` (`https://HOST[:PORT][/PATH]`), trusting the Mozilla
    /// roots and `extra_roots`, caching what it fetches in `cache`.
    pub fn new(
        base: &str,
        extra_roots: RootCertStore,
        cache: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let base: StewardUrl = base
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{}", e.replace("steward URL", "KDS URL")))?;
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
            base,
            tls: Arc::new(tls),
            cache,
            max_wait: Duration::from_secs(30),
        })
    }

    /// The most a 429's `Retry-After` is waited for.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// The VCEK (DER) that signs `report`, from the cache or the KDS. The error says what
    /// was asked where, and what came back.
    pub fn vcek(&self, report: &[u8]) -> anyhow::Result<Vec<u8>> {
        let candidates = keep_attest::snp::kds_vcek(report)?;
        let mut answers = Vec::new();
        for candidate in &candidates {
            let cached = self
                .cache
                .as_ref()
                .map(|dir| dir.join(&candidate.file_name));
            if let Some(der) = cached.as_ref().and_then(|path| std::fs::read(path).ok()) {
                return Ok(der);
            }
            let url = format!(
                "{}{}",
                self.base.as_str().trim_end_matches('/'),
                candidate.path
            );
            match self.fetch(&candidate.path) {
                Ok(Some(der)) => {
                    if let Some(path) = &cached {
                        store(path, &der);
                    }
                    return Ok(der);
                }
                Ok(None) => answers.push(format!("{url}: not found")),
                Err(e) => bail!("the VCEK could not be fetched from {url}: {e:#}"),
            }
        }
        bail!("AMD's KDS has no such VCEK ({})", answers.join("; "))
    }

    /// GETs `path`; `None` for 404. Retries 429 after its `Retry-After`.
    fn fetch(&self, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        for attempt in 1..=ATTEMPTS {
            let (status, retry_after, body) = self.get(path)?;
            match status {
                StatusCode::OK => return Ok(Some(body)),
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::TOO_MANY_REQUESTS if attempt < ATTEMPTS => {
                    let wait = retry_after.unwrap_or(Duration::from_secs(10));
                    if wait > self.max_wait {
                        bail!(
                            "the KDS asks to wait {}s (429), longer than {}s",
                            wait.as_secs(),
                            self.max_wait.as_secs()
                        );
                    }
                    tracing::info!("the KDS answered 429; retrying in {}s", wait.as_secs());
                    std::thread::sleep(wait);
                }
                status => bail!("the KDS answered {status}"),
            }
        }
        bail!("the KDS kept answering 429 ({ATTEMPTS} attempts)")
    }

    /// One GET on a thread of its own (the Steward's handlers run on a tokio runtime, in
    /// which another cannot be started).
    fn get(&self, path: &str) -> anyhow::Result<(StatusCode, Option<Duration>, Vec<u8>)> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(async {
                        tokio::time::timeout(EXCHANGE_TIMEOUT, self.exchange(path))
                            .await
                            .map_err(|_| anyhow::anyhow!("no answer within {EXCHANGE_TIMEOUT:?}"))?
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the KDS client thread panicked"))?
        })
    }

    async fn exchange(
        &self,
        path: &str,
    ) -> anyhow::Result<(StatusCode, Option<Duration>, Vec<u8>)> {
        let (host, port) = (self.base.host(), self.base.port());
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| anyhow::anyhow!("KDS host `{host}`: {e}"))?;
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
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = Limited::new(response.into_body(), MAX_CERTIFICATE)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))?
            .to_bytes();
        Ok((status, retry_after, body.to_vec()))
    }
}

/// Writes a fetched certificate into the cache, atomically; a cache that cannot be written
/// only costs a fetch next time.
fn store(path: &std::path::Path, der: &[u8]) {
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, der)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = written {
        tracing::warn!("cannot cache {}: {e}", path.display());
    }
}
