//! SEV-SNP evidence as JSON, the form virtee's `sev` crate serializes and attestation
//! services such as Trustee exchange: `{"attestation_report": {...}, "cert_chain": [{"cert_type":
//! "VCEK", "data": [bytes]}]}`. The report is re-encoded to its binary form (the JSON carries
//! its fields, not its bytes) and verified like any other.

use der::Decode as _;
use serde::Deserialize;
use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;
use x509_cert::Certificate;

use crate::Error;

#[derive(Deserialize)]
struct Evidence {
    attestation_report: AttestationReport,
    #[serde(default)]
    cert_chain: Vec<CertEntry>,
}

#[derive(Deserialize)]
struct CertEntry {
    cert_type: String,
    data: Vec<u8>,
}

/// The binary report and the certificates of a JSON evidence document.
pub fn from_json(text: &[u8]) -> Result<(Vec<u8>, Vec<Certificate>), Error> {
    let evidence: Evidence =
        serde_json::from_slice(text).map_err(|e| Error::malformed("SEV-SNP JSON evidence", e))?;
    let report = evidence
        .attestation_report
        .to_bytes()
        .map_err(|e| Error::malformed("SEV-SNP JSON evidence", format!("attestation_report: {e}")))?
        .to_vec();
    let certs = evidence
        .cert_chain
        .iter()
        .map(|entry| {
            Certificate::from_der(&entry.data).map_err(|e| {
                Error::malformed(
                    "SEV-SNP JSON evidence",
                    format!("cert_chain {}: {e}", entry.cert_type),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok((report, certs))
}
