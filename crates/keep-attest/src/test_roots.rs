//! Test PKIs standing in for AMD's and Intel's roots, so that simulated TEEs (the tests'
//! `keep-tee-sim`) exercise the real verification path.
//!
//! They are trusted only by a verifier that is handed them explicitly (the Steward's
//! `--insecure-test-roots DIR`), in addition to the vendors' roots, and evidence that
//! chains to one of them says so in its claims ([`crate::Claims::insecure_test_root`]) and
//! in every certificate issued on it.

use std::path::{Path, PathBuf};

use x509_cert::Certificate;

use crate::Error;
use crate::snp::TestAnchor;

/// The SEV-SNP test ARK (self-signed, RSA-PSS SHA-384, as AMD's).
pub const SNP_ARK_FILE: &str = "snp-ark.pem";
/// The SEV-SNP test ASK, signed by the test ARK; it signs the test VCEKs.
pub const SNP_ASK_FILE: &str = "snp-ask.pem";
/// The Intel test root CA (self-signed ECDSA P-256, as Intel's SGX Root CA).
pub const INTEL_ROOT_FILE: &str = "intel-root.pem";

/// Test roots read from a directory.
#[derive(Debug, Clone)]
pub struct TestRoots {
    pub(crate) snp: Option<TestAnchor>,
    pub(crate) intel: Option<Certificate>,
    dir: PathBuf,
}

impl TestRoots {
    /// Reads `dir`: [`SNP_ARK_FILE`] with [`SNP_ASK_FILE`], and/or [`INTEL_ROOT_FILE`]. At
    /// least one set must be there; each certificate must be what its name says.
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let read = |name: &str| -> Result<Option<Certificate>, Error> {
            let path = dir.join(name);
            let bytes = match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::MissingCollateral(format!("{}: {e}", path.display()))),
            };
            let mut certs = crate::load_certificates(&bytes)
                .map_err(|e| Error::malformed("test root", format!("{}: {e}", path.display())))?;
            if certs.len() != 1 {
                return Err(Error::malformed(
                    "test root",
                    format!(
                        "{}: {} certificates, expected one",
                        path.display(),
                        certs.len()
                    ),
                ));
            }
            Ok(certs.pop())
        };
        let snp = match (read(SNP_ARK_FILE)?, read(SNP_ASK_FILE)?) {
            (Some(ark), Some(ask)) => Some(
                TestAnchor::test(ark, ask)
                    .map_err(|e| Error::Chain(format!("{}: {e}", dir.display())))?,
            ),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::MissingCollateral(format!(
                    "{}: an SEV-SNP test root needs both {SNP_ARK_FILE} and {SNP_ASK_FILE}",
                    dir.display()
                )));
            }
        };
        let intel = read(INTEL_ROOT_FILE)?;
        if let Some(root) = &intel
            && root.tbs_certificate.subject != root.tbs_certificate.issuer
        {
            return Err(Error::Chain(format!(
                "{}: the Intel test root is not self-signed",
                dir.join(INTEL_ROOT_FILE).display()
            )));
        }
        if snp.is_none() && intel.is_none() {
            return Err(Error::MissingCollateral(format!(
                "{}: no test root in it (expected {SNP_ARK_FILE} and {SNP_ASK_FILE}, or \
                 {INTEL_ROOT_FILE})",
                dir.display()
            )));
        }
        Ok(Self {
            snp,
            intel,
            dir: dir.to_owned(),
        })
    }

    /// The directory they came from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What they are, for a start-up warning: `SEV-SNP ARK \`CN=…\`, Intel root \`CN=…\``.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(anchor) = &self.snp {
            parts.push(format!(
                "SEV-SNP ARK `{}`",
                crate::x509::subject(&anchor.ark)
            ));
        }
        if let Some(root) = &self.intel {
            parts.push(format!("Intel root `{}`", crate::x509::subject(root)));
        }
        parts.join(", ")
    }
}
