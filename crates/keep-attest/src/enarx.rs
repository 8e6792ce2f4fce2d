//! Evidence carried in certificate requests made by Enarx Keeps, so that what Enarx
//! deployments produced can be checked by Keep's verifiers.
//!
//! Enarx put the evidence in an extension of the PKCS#10 request, by TEE:
//! `1.3.6.1.4.1.58270.1.3` for SEV-SNP, `…1.2` for SGX (and `…1.1` for KVM, which has
//! none). The SEV-SNP form is
//! `SEQUENCE { SEQUENCE { vcek Certificate, crls SEQUENCE OF ANY }, report OCTET STRING }`.
//! The request's own signature is checked too: it proves the holder of the key asked.

use std::time::SystemTime;

use der::asn1::{Any, ObjectIdentifier, OctetString};
use der::{Decode as _, Encode as _};
use x509_cert::Certificate;
use x509_cert::ext::Extensions;
use x509_cert::request::CertReq;

use crate::{Claims, Error, snp};

/// Enarx's SEV-SNP evidence extension.
pub const SNP_EVIDENCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.58270.1.3");
/// Enarx's SGX evidence extension.
pub const SGX_EVIDENCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.58270.1.2");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");

#[derive(der::Sequence)]
struct SnpEvidence {
    endorsement: SnpEndorsement,
    report: OctetString,
}

#[derive(der::Sequence)]
struct SnpEndorsement {
    vcek: Certificate,
    crls: Vec<Any>,
}

/// A request with its signature checked, and the value of its evidence extension.
pub struct Request {
    /// The parsed request.
    pub request: CertReq,
    /// Which evidence extension it carries.
    pub kind: ObjectIdentifier,
    /// The extension's value.
    pub evidence: Vec<u8>,
}

impl Request {
    /// Parses a DER request, checks its signature (ECDSA P-384 with SHA-384, as Enarx's SNP
    /// Keeps made them) and finds its one evidence extension.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let request =
            CertReq::from_der(der).map_err(|e| Error::malformed("certificate request", e))?;
        verify_signature(&request)?;
        let mut found = Vec::new();
        for attribute in request
            .info
            .attributes
            .iter()
            .filter(|a| a.oid == EXTENSION_REQUEST)
        {
            for value in attribute.values.iter() {
                let extensions: Extensions = value.decode_as().map_err(|e| {
                    Error::malformed("certificate request", format!("extensions: {e}"))
                })?;
                found.extend(
                    extensions
                        .into_iter()
                        .filter(|ext| ext.extn_id == SNP_EVIDENCE || ext.extn_id == SGX_EVIDENCE),
                );
            }
        }
        match found.len() {
            1 => {
                let extension = found.remove(0);
                Ok(Self {
                    request,
                    kind: extension.extn_id,
                    evidence: extension.extn_value.into_bytes(),
                })
            }
            0 => Err(Error::MissingCollateral(
                "the request carries no evidence extension".into(),
            )),
            n => Err(Error::malformed(
                "certificate request",
                format!("{n} evidence extensions"),
            )),
        }
    }

    /// Verifies SEV-SNP evidence at `at`; `supplied` may add intermediates (the ARK/ASK
    /// chain Enarx's Steward trusted), only AMD's built-in roots are trusted.
    pub fn verify_snp(&self, supplied: &[Certificate], at: SystemTime) -> Result<Claims, Error> {
        if self.kind != SNP_EVIDENCE {
            return Err(Error::Unsupported {
                what: "Enarx evidence",
                detail: format!("extension {} is not SEV-SNP evidence", self.kind),
            });
        }
        let evidence = SnpEvidence::from_der(&self.evidence)
            .map_err(|e| Error::malformed("Enarx SEV-SNP evidence", e))?;
        let mut certs = vec![evidence.endorsement.vcek];
        certs.extend(supplied.iter().cloned());
        snp::verify(evidence.report.as_bytes(), &certs, at)
    }
}

/// The request's signature, by the key it carries. Enarx's SNP Keeps used P-384.
fn verify_signature(request: &CertReq) -> Result<(), Error> {
    use p384::ecdsa::signature::Verifier as _;
    let spki = &request.info.public_key;
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    if curve != Some(SECP384R1) || request.algorithm.oid != ECDSA_WITH_SHA384 {
        return Err(Error::Unsupported {
            what: "certificate request key",
            detail: format!(
                "{} with {} (Keep checks ECDSA P-384 / SHA-384 requests here)",
                curve.map_or("unknown curve".to_owned(), |c| c.to_string()),
                request.algorithm.oid
            ),
        });
    }
    let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(spki.subject_public_key.raw_bytes())
        .map_err(|_| Error::malformed("certificate request", "its key is not a P-384 point"))?;
    let signature = p384::ecdsa::Signature::from_der(request.signature.raw_bytes())
        .map_err(|_| Error::malformed("certificate request", "malformed signature"))?;
    let info = request
        .info
        .to_der()
        .map_err(|e| Error::malformed("certificate request", e))?;
    key.verify(&info, &signature)
        .map_err(|_| Error::Signature("the certificate request is not signed by its key".into()))
}

/// The certificates of a PkiPath (`SEQUENCE OF Certificate`), as Enarx's Steward stored its
/// trusted chains.
pub fn pki_path(der: &[u8]) -> Result<Vec<Certificate>, Error> {
    Vec::<Certificate>::from_der(der).map_err(|e| Error::malformed("PkiPath", e))
}
