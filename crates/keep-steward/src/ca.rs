//! The Steward's certificate authority: the key that signs Keeps' certificates, loaded from
//! PEM files or generated into a directory, and the Steward's own HTTPS certificate.

use std::path::Path;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// File names in a `--generate-ca` directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA's private key.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// The CA: its certificate and the issuer that signs with its key.
pub struct CertificateAuthority {
    /// The CA certificate, DER.
    pub certificate: CertificateDer<'static>,
    /// The CA certificate, PEM (sent after each issued certificate).
    pub certificate_pem: String,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl CertificateAuthority {
    /// Loads a CA from its PEM certificate and key files.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let certificate = CertificateDer::from_pem_file(cert)
            .with_context(|| format!("--ca-cert {}: no PEM certificate", cert.display()))?;
        let key_pem = std::fs::read_to_string(key)
            .with_context(|| format!("--ca-key {}: cannot read", key.display()))?;
        let key_pair = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("--ca-key {}: not a usable private key", key.display()))?;
        let issuer = Issuer::from_ca_cert_der(&certificate, key_pair)
            .with_context(|| format!("--ca-cert {}: not a usable certificate", cert.display()))?;
        Ok(Self {
            certificate_pem: pem("CERTIFICATE", &certificate),
            certificate,
            issuer,
        })
    }

    /// Loads the CA in `dir`, generating it first when the directory has none. An existing
    /// CA is never overwritten: Keeps and relying parties already trust it.
    pub fn generate_or_load(dir: &Path) -> anyhow::Result<Self> {
        let (cert, key) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        match (cert.exists(), key.exists()) {
            (true, true) => return Self::load(&cert, &key),
            (false, false) => {}
            _ => bail!(
                "{}: has only one of {CA_CERT_FILE} and {CA_KEY_FILE}; remove it or restore \
                 the other",
                dir.display()
            ),
        }
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let key_pair = KeyPair::generate().context("cannot generate the CA key")?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("Keep Steward CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = params.not_before + time::Duration::days(3650);
        let certificate = params
            .self_signed(&key_pair)
            .context("cannot sign the CA certificate")?;
        write_private(&key, &key_pair.serialize_pem())?;
        write(&cert, &certificate.pem())?;
        tracing::info!("generated a CA in {}", dir.display());
        Self::load(&cert, &key)
    }

    /// The Steward's TLS configuration: a fresh identity for `names` (see
    /// [`Self::server_identity`]), HTTP/1.1, and client certificates this CA issued accepted
    /// but not required (a Keep presents its certificate to have secrets released).
    pub fn server_config(&self, names: &[String]) -> anyhow::Result<rustls::ServerConfig> {
        let (chain, key) = self.server_identity(names)?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.certificate.clone())
            .context("the CA certificate as a trust anchor")?;
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .context("the client certificate verifier")?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(clients)
            .with_single_cert(chain, key)
            .context("the Steward's certificate")?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tls)
    }

    /// A fresh HTTPS identity for the Steward itself, issued by this CA for `names` (DNS
    /// names or IP addresses) and kept in memory: Keeps that trust the CA trust the Steward.
    pub fn server_identity(
        &self,
        names: &[String],
    ) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let key_pair = KeyPair::generate().context("cannot generate the Steward's key")?;
        let mut params = CertificateParams::new(names.to_vec())
            .context("invalid name for the Steward's certificate")?;
        params.distinguished_name = name("Keep Steward");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = params.not_before + time::Duration::days(30);
        let certificate = params
            .signed_by(&key_pair, &self.issuer)
            .context("cannot sign the Steward's certificate")?;
        Ok((
            vec![certificate.der().clone(), self.certificate.clone()],
            PrivateKeyDer::Pkcs8(key_pair.serialize_der().into()),
        ))
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

/// PEM text of DER (rcgen keeps its PEM encoder private).
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text + &format!("-----END {label}-----\n")
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
