//! Evidence of any supported kind: recognise it, inspect it, verify it.

use std::path::Path;
use std::time::SystemTime;

use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::intel::{self, Collateral};
use crate::{Claims, Error, enarx, snp};

/// What a file of evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvidenceKind {
    /// An AMD SEV-SNP attestation report (binary or hex text).
    SnpReport,
    /// An Intel DCAP quote (SGX or TDX).
    IntelQuote,
    /// SEV-SNP evidence as JSON: a report's fields and its certificates.
    SnpJson,
    /// A certificate request made by an Enarx Keep, with its evidence extension.
    EnarxRequest,
}

impl EvidenceKind {
    /// A name for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SnpReport => "AMD SEV-SNP attestation report",
            Self::IntelQuote => "Intel DCAP quote",
            Self::SnpJson => "AMD SEV-SNP evidence (JSON)",
            Self::EnarxRequest => "certificate request with Enarx evidence",
        }
    }
}

/// Recognises evidence by its header.
pub fn detect(bytes: &[u8]) -> Result<EvidenceKind, Error> {
    let le16 = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    // DCAP quotes: version 3–5, attestation key type 2 (ECDSA P-256).
    if matches!(le16(0), Some(3..=5)) && le16(2) == Some(2) {
        return Ok(EvidenceKind::IntelQuote);
    }
    // A DER SEQUENCE: a PKCS#10 request (reports and quotes never start with 0x30 0x82).
    if bytes.starts_with(&[0x30, 0x82]) {
        return Ok(EvidenceKind::EnarxRequest);
    }
    if bytes.trim_ascii_start().starts_with(b"{") {
        return Ok(EvidenceKind::SnpJson);
    }
    let is_hex_text = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
    if bytes.len() == snp::REPORT_LEN || is_hex_text {
        return Ok(EvidenceKind::SnpReport);
    }
    Err(Error::Unsupported {
        what: "evidence",
        detail: format!(
            "{} bytes that are neither an SEV-SNP report ({} bytes or hex text) nor a DCAP quote",
            bytes.len(),
            snp::REPORT_LEN
        ),
    })
}

/// The claims evidence states, unverified.
pub fn inspect(bytes: &[u8]) -> Result<(EvidenceKind, Claims), Error> {
    let kind = detect(bytes)?;
    let claims = match kind {
        EvidenceKind::SnpReport => snp::unverified_claims(bytes)?,
        EvidenceKind::IntelQuote => intel::unverified_claims(bytes)?,
        EvidenceKind::SnpJson => snp::unverified_claims(&snp::from_json(bytes)?.0)?,
        EvidenceKind::EnarxRequest => {
            let request = enarx::Request::from_der(bytes)?;
            let evidence = request.evidence_bytes()?;
            if request.kind == enarx::SNP_EVIDENCE {
                snp::unverified_claims(&evidence)?
            } else {
                intel::unverified_claims(&evidence)?
            }
        }
    };
    Ok((kind, claims))
}

/// What verification may use besides the evidence.
#[derive(Debug, Clone, Default)]
pub struct Endorsements {
    /// Certificates: SEV-SNP VCEK/VLEK and intermediates.
    pub certificates: Vec<Certificate>,
    /// AMD CRLs (`*.crl`), checked for SEV-SNP chains.
    pub crls: Vec<CertificateList>,
    /// Intel TCB collateral.
    pub intel: Option<Collateral>,
    /// Test roots trusted besides AMD's and Intel's (never by default).
    pub test_roots: Option<std::sync::Arc<crate::TestRoots>>,
}

impl Endorsements {
    /// Reads a collateral directory: every `*.pem`, `*.crt`, `*.cer` and `*.der` file holding
    /// certificates, every `*.crl` (DER or PEM), and Intel's collateral files
    /// ([`intel::COLLATERAL_FILES`]).
    pub fn from_dir(dir: &Path) -> Result<Self, Error> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::MissingCollateral(format!("{}: {e}", dir.display())))?;
        let mut certificates = Vec::new();
        let mut crls = Vec::new();
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let extension = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or_default();
            let is_crl = extension == "crl";
            let is_cert_file = ["pem", "crt", "cer", "der"].contains(&extension)
                && !intel::COLLATERAL_FILES.contains(&name);
            if !is_crl && !is_cert_file {
                continue;
            }
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::MissingCollateral(format!("{}: {e}", path.display())))?;
            let malformed =
                |e: String| Error::malformed("collateral", format!("{}: {e}", path.display()));
            if is_crl {
                crls.push(crate::x509::load_crl(&bytes).map_err(malformed)?);
            } else {
                certificates.extend(
                    crate::load_certificates(&bytes).map_err(|e| malformed(e.to_string()))?,
                );
            }
        }
        Ok(Self {
            certificates,
            crls,
            intel: Collateral::from_dir(dir)?,
            test_roots: None,
        })
    }
}

/// Verifies evidence of any kind at `at`.
pub fn verify(bytes: &[u8], endorsements: &Endorsements, at: SystemTime) -> Result<Claims, Error> {
    match detect(bytes)? {
        EvidenceKind::SnpReport => snp::verify_with_crls(
            bytes,
            &endorsements.certificates,
            &endorsements.crls,
            endorsements.test_roots.as_deref(),
            at,
        ),
        EvidenceKind::EnarxRequest => {
            enarx::Request::from_der(bytes)?.verify(&endorsements.certificates, at)
        }
        EvidenceKind::SnpJson => {
            let (report, mut certificates) = snp::from_json(bytes)?;
            certificates.extend(endorsements.certificates.iter().cloned());
            snp::verify_with_crls(
                &report,
                &certificates,
                &endorsements.crls,
                endorsements.test_roots.as_deref(),
                at,
            )
        }
        EvidenceKind::IntelQuote => intel::verify(
            bytes,
            endorsements.intel.as_ref(),
            endorsements.test_roots.as_deref(),
            at,
        ),
    }
}
