//! rustls configurations built from `[tls]`: the Keep's identity, the server configuration of
//! each `tls` listener (with its client-certificate policy) and the client configuration of
//! `tls` connects.
//!
//! Every configuration presents the one [`LiveIdentity`] of the run, which can be replaced
//! while connections are open: a Keep renews its Steward-issued certificate that way, and
//! only handshakes after the renewal see the new one.

use std::sync::{Arc, RwLock};

use anyhow::{Context as _, bail};
use keep_config::{CaFile, ClientAuth, IdentityFiles, StewardUrl, Tls, TlsVersion};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest as _, Sha256};

/// Where the Keep's TLS certificate comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IdentitySource {
    /// A fresh key and self-signed certificate made at start-up (no client can verify it).
    #[default]
    SelfSigned,
    /// Certificate chain and key files supplied by the operator (`[tls] cert`, `key`).
    Files(IdentityFiles),
    /// A certificate the Keep's Steward issues after attestation (`steward` in Keep.toml).
    Steward(Box<StewardSource>),
}

/// What the Keep tells its Steward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StewardSource {
    /// The Steward's `https://` URL.
    pub url: StewardUrl,
    /// The names to be certified under (`[tls] names`).
    pub names: Vec<String>,
    /// The workload digest the evidence binds.
    pub workload_digest: [u8; 32],
    /// Where the evidence comes from: the confidential VM's attestation interface, or `None`
    /// for evidence of kind `none` (the process backend, which has no TEE).
    pub platform: Option<PlatformEvidence>,
    /// The secrets to ask for once certified (`[[secrets]]`).
    pub secrets: Vec<keep_config::SecretRef>,
    /// Where the guest finds those delivered as files (`secrets_dir`).
    pub secrets_dir: String,
    /// The package the whole workload came from, stated to the Steward so that its policy
    /// can judge the workload by who signed it.
    pub package: Option<Box<keep_attest::request::PackageStatement>>,
    /// The package this Keep is about to fetch, when it attests before fetching (its
    /// workload digest is then [`keep_attest::request::fetch_digest`] of it).
    pub fetch: Option<String>,
}

/// The attestation interface of a confidential VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEvidence {
    /// The configfs-tsm report directory (`/sys/kernel/config/tsm/report`); SEV-SNP guests
    /// without it fall back to `/dev/sev-guest`.
    pub tsm_root: std::path::PathBuf,
    /// The TEE that must answer.
    pub provider: keep_attest::collect::Provider,
    /// The SEV-SNP guest device (`/dev/sev-guest`), for keys the firmware derives.
    pub sev_guest: std::path::PathBuf,
}

impl PlatformEvidence {
    /// Evidence carrying `report_data` from the confidential VM's attestation interface, and
    /// the certificates the host supplied with it (SEV-SNP's VCEK or VLEK chain, when it has
    /// them).
    pub fn collect(
        &self,
        report_data: &[u8; 64],
    ) -> anyhow::Result<(keep_attest::request::Evidence, Vec<Vec<u8>>)> {
        use keep_attest::collect::{self, Provider};
        use keep_attest::request::Evidence;
        let collected = collect::collect(&self.tsm_root, report_data, Some(self.provider))
            .context("cannot collect evidence from the platform")?;
        Ok(match collected.provider {
            Provider::SevGuest => {
                let certificates = keep_attest::snp::certtable::parse(&collected.auxblob)
                    .context("the certificates the host supplied with the report")?;
                (
                    Evidence::SevSnp(collected.evidence),
                    certificates.into_iter().map(|c| c.der).collect(),
                )
            }
            Provider::TdxGuest => (Evidence::IntelQuote(collected.evidence), Vec::new()),
        })
    }
}

/// The Keep's certificate chain and private key.
#[derive(Debug)]
pub struct Identity {
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// Whether this is a self-signed certificate made at start-up.
    pub self_signed: bool,
}

impl Identity {
    /// Obtains the identity from a local source; a Steward's certificate comes from
    /// [`crate::attested`].
    pub fn obtain(source: &IdentitySource) -> anyhow::Result<Self> {
        match source {
            IdentitySource::SelfSigned => Self::self_signed(),
            IdentitySource::Files(files) => Self::from_files(files),
            IdentitySource::Steward(source) => bail!(
                "internal: the identity from {} is obtained by attestation",
                source.url
            ),
        }
    }

    fn from_files(files: &IdentityFiles) -> anyhow::Result<Self> {
        let chain = CertificateDer::pem_file_iter(&files.cert)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow::anyhow!("[tls] cert `{}`: {e}", files.cert.display()))?;
        if chain.is_empty() {
            bail!(
                "[tls] cert `{}`: no PEM certificate in the file",
                files.cert.display()
            );
        }
        let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
            anyhow::anyhow!(
                "[tls] key `{}`: no usable private key: {e}",
                files.key.display()
            )
        })?;
        Ok(Self {
            chain,
            key,
            self_signed: false,
        })
    }

    /// A fresh P-256 key and a self-signed certificate for `localhost` and the loopback
    /// addresses.
    fn self_signed() -> anyhow::Result<Self> {
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let certified = rcgen::generate_simple_self_signed(names)
            .context("cannot generate a self-signed TLS certificate")?;
        Ok(Self {
            chain: vec![certified.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
            self_signed: true,
        })
    }

    /// SHA-256 of the leaf certificate, as hex with colons (what `openssl x509 -fingerprint
    /// -sha256` prints), so an operator can pin a self-signed certificate.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.chain.first().map_or(&[][..], |c| c.as_ref()));
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    }

    fn certified(&self) -> anyhow::Result<Arc<CertifiedKey>> {
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(self.chain.clone(), self.key.clone_key(), &provider)
            .map(Arc::new)
            .context("the Keep's TLS certificate and key do not match")
    }
}

/// The identity every TLS configuration of a run presents, replaceable at any time.
#[derive(Debug)]
pub struct LiveIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl LiveIdentity {
    /// Starts presenting `identity`.
    pub fn new(identity: &Identity) -> anyhow::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            current: RwLock::new(identity.certified()?),
        }))
    }

    /// Presents `identity` from the next handshake on; open connections are not touched.
    pub fn replace(&self, identity: &Identity) -> anyhow::Result<()> {
        let certified = identity.certified()?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = certified;
        Ok(())
    }

    fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for LiveIdentity {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for LiveIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The rustls configurations of one run.
pub struct TlsSetup {
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static SupportedProtocolVersion],
    identity: Arc<LiveIdentity>,
    client: Arc<ClientConfig>,
}

/// The servers `[tls]` trusts: its `ca` files and, unless switched off, the Mozilla roots.
pub fn trusted_roots(tls: &Tls) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if tls.mozilla_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    add_anchors(&mut roots, &tls.ca, "[tls] ca")?;
    if roots.is_empty() {
        bail!(
            "[tls] trusts no certificate authority (mozilla_roots = false and no `ca`): \
             no tls connect could succeed"
        );
    }
    Ok(roots)
}

impl TlsSetup {
    /// Builds the client configuration and checks the protocol policy.
    pub fn new(tls: &Tls, identity: Arc<LiveIdentity>) -> anyhow::Result<Self> {
        let provider = Arc::new(provider(&tls.cipher_suites)?);
        let versions: &'static [&'static SupportedProtocolVersion] = match tls.min_version {
            TlsVersion::Tls12 => rustls::ALL_VERSIONS,
            TlsVersion::Tls13 => TLS13_ONLY,
        };
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(trusted_roots(tls)?),
            provider.clone(),
        )
        .build()
        .context("cannot build the TLS server verifier")?;
        let client = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .context("[tls] min_version and cipher_suites leave no usable protocol")?
            .with_webpki_verifier(verifier)
            .with_client_cert_resolver(identity.clone());
        Ok(Self {
            provider,
            versions,
            identity,
            client: Arc::new(client),
        })
    }

    /// The configuration of `tls` connects.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }

    /// The configuration of a `tls` listener with its client-certificate policy.
    pub fn server(&self, client_auth: &ClientAuth) -> anyhow::Result<Arc<ServerConfig>> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)
            .context("[tls] min_version and cipher_suites leave no usable protocol")?;
        let builder = match client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Optional { ca } | ClientAuth::Required { ca } => {
                let mut roots = RootCertStore::empty();
                add_anchors(&mut roots, ca, "client_ca")?;
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                );
                let verifier = if matches!(client_auth, ClientAuth::Optional { .. }) {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(
                    verifier
                        .build()
                        .context("cannot build the client certificate verifier")?,
                )
            }
        };
        Ok(Arc::new(builder.with_cert_resolver(self.identity.clone())))
    }
}

/// The ring provider, restricted to the named cipher suites when some are named.
fn provider(names: &[String]) -> anyhow::Result<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    if names.is_empty() {
        return Ok(provider);
    }
    let available: Vec<&str> = provider
        .cipher_suites
        .iter()
        .filter_map(|s| s.suite().as_str())
        .collect();
    for name in names {
        if !available.contains(&name.as_str()) {
            bail!(
                "[tls] cipher_suites: unknown cipher suite `{name}` (available: {})",
                available.join(", ")
            );
        }
    }
    provider.cipher_suites.retain(|s| {
        s.suite()
            .as_str()
            .is_some_and(|n| names.iter().any(|m| m == n))
    });
    Ok(provider)
}

fn add_anchors(roots: &mut RootCertStore, files: &[CaFile], what: &str) -> anyhow::Result<()> {
    for file in files {
        // The content read with the configuration (and digested), not the file as it is now.
        let certs = CertificateDer::pem_slice_iter(&file.pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("{what} `{}`: {e}", file.path.display()))?;
        if certs.is_empty() {
            bail!(
                "{what} `{}`: no PEM certificate in the file",
                file.path.display()
            );
        }
        for cert in certs {
            roots.add(cert).with_context(|| {
                format!(
                    "{what} `{}`: not a usable CA certificate",
                    file.path.display()
                )
            })?;
        }
    }
    Ok(())
}
