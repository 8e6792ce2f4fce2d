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
use keep_attest::certificate::AttestedClaims;
use keep_attest::request::{AttestationRequest, Evidence};
use keep_config::StewardUrl;
use keep_config::Tls;
use rcgen::{KeyPair, PublicKeyData as _};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::steward;
use crate::tls::{Identity, LiveIdentity, StewardSource, trusted_roots};

/// Renewal starts when this fraction of the certificate's lifetime has passed.
const RENEW_AT: f64 = 2.0 / 3.0;
/// A failed renewal is retried after this long (or sooner, near expiry).
const RETRY: Duration = Duration::from_secs(30);

/// A certificate issued by the Steward.
struct Attested {
    identity: Identity,
    received: SystemTime,
    not_after: SystemTime,
    statement: AttestedClaims,
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
    statement: AttestedClaims,
    secrets: Vec<ReleasedSecret>,
    /// `[tls]`, for the secrets requests of renewals.
    tls: Tls,
}

/// What happens to the certificate while the Keep runs, for the caller to report.
#[derive(Debug)]
#[non_exhaustive]
pub enum RenewalEvent {
    /// A new certificate is presented from now on.
    Renewed {
        /// Its expiry.
        not_after: SystemTime,
    },
    /// A renewal failed; the current certificate stays until it expires, and renewal is
    /// retried.
    Failed {
        /// Why.
        error: anyhow::Error,
        /// How long the current certificate remains valid.
        expires_in: Duration,
    },
    /// The secrets asked for again with the renewed certificate differ from those the guest
    /// has: these changed, appeared or were withdrawn.
    SecretsChanged {
        /// Their names.
        names: Vec<String>,
    },
    /// The secrets could not be asked for again, or not delivered; the guest keeps those it
    /// has.
    SecretsFailed {
        /// Why.
        error: anyhow::Error,
    },
}

/// The secrets as the Steward answers with a renewed certificate: to deliver in place of
/// the previous ones.
#[derive(Debug)]
pub struct RenewedSecrets {
    /// Those it released, in the order Keep.toml names them.
    pub released: Vec<ReleasedSecret>,
    /// Those it no longer releases (revoked): to take away from the guest.
    pub withdrawn: Vec<keep_config::SecretRef>,
}

/// Obtains the Keep's certificate from its Steward.
pub fn attest(source: &StewardSource, tls: &Tls) -> anyhow::Result<AttestedIdentity> {
    let url = source.url.clone();
    let client = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(trusted_roots(tls)?)
            .with_no_client_auth(),
    );
    let first = request(source, &url, &client)
        .with_context(|| format!("attestation with the Steward at {} failed", source.url))?;
    // An optional secret the Steward does not release is simply absent.
    let secrets = released_secrets(source, &url, tls, &first.identity, Stage::Start)?.released;
    Ok(AttestedIdentity {
        identity: LiveIdentity::new(&first.identity)?,
        source: source.clone(),
        url,
        client,
        expires: first.not_after,
        renew_in: first.renewal_delay(),
        statement: first.statement,
        secrets,
        tls: tls.clone(),
    })
}

/// A secret the Steward released, with the reference that asked for it.
pub struct ReleasedSecret {
    /// How the guest sees it.
    pub reference: keep_config::SecretRef,
    /// Its value, zeroed when dropped.
    pub value: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for ReleasedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the value.
        f.debug_struct("ReleasedSecret")
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// Asks the Steward for each secret of `source` over mTLS with the certificate it just
/// issued. What a refusal means depends on the [`Stage`]; any other failure is an error.
fn released_secrets(
    source: &StewardSource,
    url: &StewardUrl,
    tls: &Tls,
    identity: &Identity,
    stage: Stage,
) -> anyhow::Result<RenewedSecrets> {
    let mut answer = RenewedSecrets {
        released: Vec::new(),
        withdrawn: Vec::new(),
    };
    if source.secrets.is_empty() {
        return Ok(answer);
    }
    let client = Arc::new(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(trusted_roots(tls)?)
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .context("the Keep's certificate as a TLS client identity")?,
    );
    for reference in &source.secrets {
        match steward::request_secret(url, &reference.name, client.clone()) {
            Ok(value) => answer.released.push(ReleasedSecret {
                reference: reference.clone(),
                value,
            }),
            Err(steward::RequestError::Refused { .. })
                if reference.optional || stage == Stage::Renewal =>
            {
                answer.withdrawn.push(reference.clone());
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "secret `{}` from the Steward at {url}: {e}",
                    reference.name
                ));
            }
        }
    }
    Ok(answer)
}

/// When secrets are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the workload starts: a secret the Steward refuses stops the start, unless
    /// it is optional.
    Start,
    /// With a renewed certificate: a secret the Steward refuses is withdrawn from the
    /// running guest (it was revoked).
    Renewal,
}

impl AttestedIdentity {
    /// A client configuration for this Keep's Steward that presents the Keep's current
    /// certificate (renewals included).
    pub fn steward_client(&self) -> anyhow::Result<Arc<ClientConfig>> {
        Ok(Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .context("TLS versions")?
                .with_root_certificates(trusted_roots(&self.tls)?)
                .with_client_cert_resolver(self.identity.clone()),
        ))
    }

    /// When the first certificate expires.
    pub fn not_after(&self) -> SystemTime {
        self.expires
    }

    /// The Steward that issued it.
    pub fn steward(&self) -> &StewardUrl {
        &self.url
    }

    /// What the first certificate states about the Keep (its TEE, whether its evidence
    /// chained to a test root).
    pub fn statement(&self) -> &AttestedClaims {
        &self.statement
    }

    /// The secrets the Steward released, in the order Keep.toml names them.
    pub fn secrets(&self) -> &[ReleasedSecret] {
        &self.secrets
    }

    /// Where the evidence came from (`None`: the process backend, which has no TEE).
    pub fn platform(&self) -> Option<&crate::PlatformEvidence> {
        self.source.platform.as_ref()
    }

    /// The workload digest the evidence bound.
    pub fn workload_digest(&self) -> &[u8; 32] {
        &self.source.workload_digest
    }

    /// A renewal loop to run on a thread of the caller's (started once the process is
    /// confined, so that it is confined too): it renews the certificate before it expires,
    /// asks for the secrets again with the new certificate and hands them to `deliver`
    /// (which returns the names of those that changed), tells `report` of each renewal, and
    /// returns when `stop` receives or is dropped.
    pub fn renewal(
        &self,
        report: impl Fn(RenewalEvent) + Send + 'static,
        deliver: impl Fn(RenewedSecrets) -> anyhow::Result<Vec<String>> + Send + 'static,
    ) -> impl FnOnce(&mpsc::Receiver<()>) + Send + 'static {
        let state = Self {
            identity: self.identity.clone(),
            source: self.source.clone(),
            url: self.url.clone(),
            client: self.client.clone(),
            expires: self.expires,
            renew_in: self.renew_in,
            statement: self.statement.clone(),
            // The secrets of the start are the guest's already.
            secrets: Vec::new(),
            tls: self.tls.clone(),
        };
        move |stop| state.renew(stop, &report, &deliver)
    }

    /// Renews the certificate before it expires, until told to stop.
    fn renew(
        mut self,
        stopped: &mpsc::Receiver<()>,
        report: &dyn Fn(RenewalEvent),
        deliver: &dyn Fn(RenewedSecrets) -> anyhow::Result<Vec<String>>,
    ) {
        loop {
            match stopped.recv_timeout(self.renew_in) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            match request(&self.source, &self.url, &self.client).and_then(|next| {
                self.identity.replace(&next.identity)?;
                Ok(next)
            }) {
                Ok(next) => {
                    report(RenewalEvent::Renewed {
                        not_after: next.not_after,
                    });
                    self.expires = next.not_after;
                    self.renew_in = next.renewal_delay();
                    if !self.source.secrets.is_empty() {
                        match released_secrets(
                            &self.source,
                            &self.url,
                            &self.tls,
                            &next.identity,
                            Stage::Renewal,
                        )
                        .and_then(deliver)
                        {
                            Ok(names) if names.is_empty() => {}
                            Ok(names) => report(RenewalEvent::SecretsChanged { names }),
                            Err(error) => report(RenewalEvent::SecretsFailed { error }),
                        }
                    }
                }
                Err(e) => {
                    let left = self
                        .expires
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    report(RenewalEvent::Failed {
                        error: e,
                        expires_in: left,
                    });
                    // Sooner than the regular schedule near expiry, never a busy loop.
                    self.renew_in = RETRY.min(left / 3).max(Duration::from_millis(200));
                }
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

/// One round: a fresh key, evidence binding it (from the platform in a confidential VM,
/// `none` on the process backend), the request, and the Steward's answer.
fn request(
    source: &StewardSource,
    url: &StewardUrl,
    client: &Arc<ClientConfig>,
) -> anyhow::Result<Attested> {
    let key = KeyPair::generate().context("cannot generate the Keep's key")?;
    let report_data =
        keep_attest::collect::report_data(&key.subject_public_key_info(), &source.workload_digest);
    let (evidence, certificates) = match &source.platform {
        None => (Evidence::None { report_data }, Vec::new()),
        Some(platform) => platform.collect(&report_data)?,
    };
    let content = AttestationRequest {
        evidence,
        workload_digest: source.workload_digest,
        certificates,
        crls: Vec::new(),
        package: source.package.as_deref().cloned(),
        fetch: source.fetch.clone(),
    };
    let csr = steward::certificate_request(&key, &source.names, &content)?;
    let chain_pem = steward::request_certificate(url, &csr, client.clone())?;
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
    let statement = AttestedClaims::from_certificate(leaf)
        .context("the attestation statement of the Steward's certificate")?;
    Ok(Attested {
        identity: Identity {
            chain,
            key: PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            self_signed: false,
        },
        received: SystemTime::now(),
        not_after: validity.not_after.to_system_time(),
        statement,
    })
}
