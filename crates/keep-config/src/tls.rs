//! `[tls]`: the Keep's TLS identity, the trust anchors of its outgoing connections and the
//! protocol policy, and the per-listener client-certificate policy of `[[files]]`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The `[tls]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawTls")]
pub struct Tls {
    /// The Keep's certificate chain and key (PEM files). `None`: a fresh self-signed
    /// certificate is generated at start-up.
    pub identity: Option<IdentityFiles>,
    /// Extra trust anchors (PEM files) for outgoing `tls` connections.
    pub ca: Vec<CaFile>,
    /// Whether the Mozilla root store (from `webpki-roots`) is trusted as well.
    pub mozilla_roots: bool,
    /// The oldest protocol version accepted.
    pub min_version: TlsVersion,
    /// Cipher suites by their IANA names (`TLS13_AES_256_GCM_SHA384`, ...); empty means
    /// rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// Names the Keep asks its Steward to certify: DNS names, and URIs (which contain
    /// `://`, such as SPIFFE IDs). The Steward's policy decides which a workload may have.
    pub names: Vec<String>,
}

impl Default for Tls {
    fn default() -> Self {
        Self {
            identity: None,
            ca: Vec::new(),
            mozilla_roots: true,
            min_version: TlsVersion::default(),
            cipher_suites: Vec::new(),
            names: Vec::new(),
        }
    }
}

impl Tls {
    pub(crate) fn resolve_against(&mut self, base: &Path) {
        if let Some(identity) = &mut self.identity {
            identity.cert = base.join(&identity.cert);
            identity.key = base.join(&identity.key);
        }
        for ca in &mut self.ca {
            ca.path = base.join(&ca.path);
        }
    }
}

/// A PEM file of CA certificates named in the configuration, and its content.
///
/// The content is read once, with the configuration file ([`crate::Config::from_path`]):
/// the workload digest and the TLS set-up both use these bytes, so that a file replaced on
/// disk during start-up cannot make the Keep trust a CA its digest does not name.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    /// The file (relative to the configuration file once loaded).
    pub path: PathBuf,
    /// The path as the configuration writes it: the name a package stores the file under.
    pub name: String,
    /// Its content; empty until loaded.
    pub pem: Vec<u8>,
}

impl CaFile {
    /// A reference to `path`, not read yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        Self {
            name: path.to_string_lossy().into_owned(),
            path,
            pem: Vec::new(),
        }
    }
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("name", &self.name)
            .field("pem_len", &self.pem.len())
            .finish()
    }
}

impl<'de> Deserialize<'de> for CaFile {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        PathBuf::deserialize(de).map(Self::new)
    }
}

/// The certificate chain and private key files of the Keep's TLS identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize)]
pub enum TlsVersion {
    /// TLS 1.2 (and 1.3).
    #[default]
    #[serde(rename = "1.2")]
    Tls12,
    /// TLS 1.3 only.
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    #[serde(default)]
    ca: Vec<CaFile>,
    #[serde(default = "yes")]
    mozilla_roots: bool,
    #[serde(default)]
    min_version: TlsVersion,
    #[serde(default)]
    cipher_suites: Vec<String>,
    #[serde(default)]
    names: Vec<String>,
}

fn yes() -> bool {
    true
}

impl TryFrom<RawTls> for Tls {
    type Error = String;

    fn try_from(raw: RawTls) -> Result<Self, String> {
        let identity = match (raw.cert, raw.key) {
            (Some(cert), Some(key)) => Some(IdentityFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => return Err("`cert` is given without `key`".into()),
            (None, Some(_)) => return Err("`key` is given without `cert`".into()),
        };
        if let Some(bad) = raw.names.iter().find(|n| !is_certifiable_name(n)) {
            return Err(format!(
                "names: `{bad}` is neither a DNS name nor a URI (scheme://...)"
            ));
        }
        Ok(Self {
            identity,
            ca: raw.ca,
            mozilla_roots: raw.mozilla_roots,
            min_version: raw.min_version,
            cipher_suites: raw.cipher_suites,
            names: raw.names,
        })
    }
}

/// A DNS name (letters, digits, `-`, `.`, `*`) or a URI with a scheme.
fn is_certifiable_name(name: &str) -> bool {
    if let Some((scheme, rest)) = name.split_once("://") {
        return !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            && !rest.is_empty()
            && !rest.contains(char::is_whitespace);
    }
    !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.*".contains(c))
}

/// Whether a `tls` listener asks its clients for a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is requested.
    #[default]
    None,
    /// A certificate is requested; clients without one are accepted, clients with one
    /// must present one that chains to `ca`.
    Optional {
        /// Trust anchors for client certificates (PEM files).
        ca: Vec<CaFile>,
    },
    /// Every client must present a certificate that chains to `ca`.
    Required {
        /// Trust anchors for client certificates (PEM files).
        ca: Vec<CaFile>,
    },
}

/// The `client_auth` spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClientAuthMode {
    None,
    Optional,
    Required,
}

impl ClientAuth {
    pub(crate) fn new(
        mode: Option<ClientAuthMode>,
        ca: Option<Vec<CaFile>>,
    ) -> Result<Self, String> {
        match (mode.unwrap_or(ClientAuthMode::None), ca) {
            (ClientAuthMode::None, None) => Ok(Self::None),
            (ClientAuthMode::None, Some(_)) => Err(
                "`client_ca` is given but `client_auth` is \"none\"; set client_auth = \
                 \"optional\" or \"required\""
                    .into(),
            ),
            (_, None) => Err(
                "`client_auth` requests client certificates but `client_ca` (the PEM files of \
                 the CAs that sign them) is missing"
                    .into(),
            ),
            (_, Some(ca)) if ca.is_empty() => Err("`client_ca` must name at least one file".into()),
            (ClientAuthMode::Optional, Some(ca)) => Ok(Self::Optional { ca }),
            (ClientAuthMode::Required, Some(ca)) => Ok(Self::Required { ca }),
        }
    }

    /// The trust anchors of client certificates, if any are requested.
    pub fn ca(&self) -> &[CaFile] {
        match self {
            Self::None => &[],
            Self::Optional { ca } | Self::Required { ca } => ca,
        }
    }

    pub(crate) fn resolve_against(&mut self, base: &Path) {
        if let Self::Optional { ca } | Self::Required { ca } = self {
            for file in ca {
                file.path = base.join(&file.path);
            }
        }
    }
}
