//! The Keep's attested identity: a fresh key, evidence binding it to the workload, a
//! certificate request to the Steward, and renewal before the certificate expires.
//!
//! This runs before any listener is opened or anything is fetched, so a Keep that fails
//! attestation never starts its workload.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use der::Decode as _;
use keep_attest::request::{AttestationRequest, Evidence};
use keep_config::Tls;
use keep_steward::client::{self, StewardUrl};
use rcgen::{KeyPair, PublicKeyData as _};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::net::tls::{Identity, LiveIdentity, StewardSource, trusted_roots};

/// Renewal starts when this fraction of the certificate's lifetime has passed.
const RENEW_AT: f64 = 2.0 / 3.0;
/// A failed renewal is retried after this long (or sooner, near expiry).
const RETRY: Duration = Duration::from_secs(30);

/// A certificate issued by the Steward.
struct Attested {
    identity: Identity,
    received: SystemTime,
    not_after: SystemTime,
}

/// The Keep's attested identity, and what renewing it needs.
pub struct AttestedIdentity {
    /// What the Keep presents.
    pub identity: Arc<LiveIdentity>,
    source: StewardSource,
    url: StewardUrl,
    client: Arc<ClientConfig>,
    expires: SystemTime,
    renew_in: Duration,
}

/// The thread renewing the certificate; dropping this stops it.
pub struct Renewal {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Renewal {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Obtains the Keep's certificate from its Steward.
pub fn attest(source: &StewardSource, tls: &Tls) -> anyhow::Result<AttestedIdentity> {
    let url = StewardUrl::parse(&source.url)?;
    let client = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(trusted_roots(tls)?)
            .with_no_client_auth(),
    );
    let first = request(source, &url, &client)
        .with_context(|| format!("attestation with the Steward at {} failed", source.url))?;
    eprintln!(
        "keep: attested by the Steward at {}: certificate for workload sha256:{} valid until {}",
        source.url,
        hex::encode(source.workload_digest),
        humantime::format_rfc3339_seconds(first.not_after)
    );
    Ok(AttestedIdentity {
        identity: LiveIdentity::new(&first.identity)?,
        source: source.clone(),
        url,
        client,
        expires: first.not_after,
        renew_in: first.renewal_delay(),
    })
}

impl AttestedIdentity {
    /// Starts renewing the certificate before it expires (a thread, started once the
    /// process is confined so that it is confined too).
    pub fn start_renewal(&self) -> anyhow::Result<Renewal> {
        let (stop, stopped) = mpsc::channel();
        let identity = self.identity.clone();
        let (source, url, client) = (self.source.clone(), self.url.clone(), self.client.clone());
        let (expires, renew_in) = (self.expires, self.renew_in);
        let thread = std::thread::Builder::new()
            .name("keep-renewal".into())
            .spawn(move || {
                renew(
                    &identity, &source, &url, &client, expires, renew_in, &stopped,
                )
            })
            .context("cannot start the certificate renewal thread")?;
        Ok(Renewal {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Renews the certificate before it expires, until told to stop.
fn renew(
    identity: &LiveIdentity,
    source: &StewardSource,
    url: &StewardUrl,
    client: &Arc<ClientConfig>,
    mut expires: SystemTime,
    mut wait: Duration,
    stopped: &mpsc::Receiver<()>,
) {
    loop {
        match stopped.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match request(source, url, client).and_then(|next| {
            identity.replace(&next.identity)?;
            Ok(next)
        }) {
            Ok(next) => {
                tracing::info!(
                    "renewed the Keep's certificate: valid until {}",
                    humantime::format_rfc3339_seconds(next.not_after)
                );
                expires = next.not_after;
                wait = next.renewal_delay();
            }
            Err(e) => {
                let left = expires
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                eprintln!(
                    "keep: warning: renewing the certificate failed ({e:#}); the current one \
                     expires in {}s, retrying",
                    left.as_secs()
                );
                // Sooner than the regular schedule near expiry, never a busy loop.
                wait = RETRY.min(left / 3).max(Duration::from_millis(200));
            }
        }
    }
}

impl Attested {
    /// How long until renewal is due: [`RENEW_AT`] of the time from receipt to expiry (the
    /// certificate's own start is back-dated for clock skew).
    fn renewal_delay(&self) -> Duration {
        self.not_after
            .duration_since(self.received)
            .unwrap_or_default()
            .mul_f64(RENEW_AT)
            .saturating_sub(self.received.elapsed().unwrap_or_default())
    }
}

/// One round: a fresh key, `none` evidence (the process backend has no TEE), the request,
/// and the Steward's answer.
fn request(
    source: &StewardSource,
    url: &StewardUrl,
    client: &Arc<ClientConfig>,
) -> anyhow::Result<Attested> {
    let key = KeyPair::generate().context("cannot generate the Keep's key")?;
    let report_data =
        keep_attest::collect::report_data(&key.subject_public_key_info(), &source.workload_digest);
    let content = AttestationRequest {
        evidence: Evidence::None { report_data },
        workload_digest: source.workload_digest,
        certificates: Vec::new(),
        crls: Vec::new(),
    };
    let csr = client::certificate_request(&key, &source.names, &content)?;
    let chain_pem = client::request_certificate(url, &csr, client.clone())?;
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the Steward's answer is not a PEM certificate chain")?;
    let leaf = chain
        .first()
        .context("the Steward's answer holds no certificate")?;
    let validity = x509_cert::Certificate::from_der(leaf)
        .context("the Steward's certificate")?
        .tbs_certificate
        .validity;
    Ok(Attested {
        identity: Identity {
            chain,
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            self_signed: false,
        },
        received: SystemTime::now(),
        not_after: validity.not_after.to_system_time(),
    })
}
