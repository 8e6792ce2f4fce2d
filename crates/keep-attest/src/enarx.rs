//! Evidence carried in certificate requests made by Enarx Keeps, so that what Enarx
//! deployments produced can be checked by Keep's verifiers.
//!
//! Enarx put the evidence in an extension of the PKCS#10 request, by TEE:
//! `1.3.6.1.4.1.58270.1.3` for SEV-SNP, `…1.2` for SGX (and `…1.1` for KVM, which has
//! none):
//!
//! - SEV-SNP: `SEQUENCE { SEQUENCE { vcek Certificate, crls SEQUENCE { SEQUENCE OF
//!   SEQUENCE { url UTF8String, crl CertificateList } } }, report OCTET STRING }`
//! - SGX: `SEQUENCE { quote OCTET STRING, crls ANY, SEQUENCE { tcbSigningChain SEQUENCE OF
//!   Certificate, tcbInfo OCTET STRING (the PCS response, JSON) } }`
//!
//! The request's own signature is checked too: it proves the holder of the key asked.
//! The SEV-SNP evidence's CRLs (AMD's, as Enarx fetched them) are checked like supplied ones,
//! so such evidence verifies only at a time when they were current; the SGX evidence's CRLs
//! are not used.

use std::time::SystemTime;

use der::Decode as _;
use der::asn1::{Any, ObjectIdentifier, OctetString};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::csr::SignedRequest;
use crate::{Claims, Error, intel, snp};

/// Enarx's SEV-SNP evidence extension.
pub const SNP_EVIDENCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.58270.1.3");
/// Enarx's SGX evidence extension.
pub const SGX_EVIDENCE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.58270.1.2");
pub use crate::csr::{SECP256R1, SECP384R1};

#[derive(der::Sequence)]
struct SnpEvidence {
    endorsement: SnpEndorsement,
    report: OctetString,
}

#[derive(der::Sequence)]
struct SnpEndorsement {
    vcek: Certificate,
    crls: CrlList,
}

/// Enarx's `CrlList`: a SEQUENCE wrapping the SEQUENCE OF its entries.
#[derive(der::Sequence)]
struct CrlList {
    entries: Vec<EnarxCrl>,
}

impl CrlList {
    fn into_certificate_lists(self) -> Vec<CertificateList> {
        self.entries.into_iter().map(|entry| entry.crl).collect()
    }
}

/// A CRL with the URL Enarx fetched it from.
#[derive(der::Sequence)]
struct EnarxCrl {
    url: String,
    crl: CertificateList,
}

#[derive(der::Sequence)]
struct SgxEvidence {
    quote: OctetString,
    crls: Any,
    tcb: SgxTcb,
}

#[derive(der::Sequence)]
struct SgxTcb {
    signing_chain: Vec<Certificate>,
    tcb_info: OctetString,
}

/// A request with its signature checked, and the value of its evidence extension.
pub struct Request {
    /// The request, its signature checked.
    pub request: SignedRequest,
    /// Which evidence extension it carries.
    pub kind: ObjectIdentifier,
    /// The extension's value.
    pub evidence: Vec<u8>,
}

impl Request {
    /// Parses a DER request, checks its signature (ECDSA P-384 with SHA-384 or P-256 with
    /// SHA-256, as Enarx's Keeps made them) and finds its one evidence extension.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        Self::from_signed(SignedRequest::from_der(der)?)
    }

    /// Finds the one Enarx evidence extension of a request whose signature is checked.
    pub fn from_signed(request: SignedRequest) -> Result<Self, Error> {
        let mut found: Vec<_> = request
            .extensions()?
            .into_iter()
            .filter(|ext| ext.extn_id == SNP_EVIDENCE || ext.extn_id == SGX_EVIDENCE)
            .collect();
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
        let evidence: SnpEvidence = self.decode(SNP_EVIDENCE)?;
        let crls = evidence.endorsement.crls.into_certificate_lists();
        let mut certs = vec![evidence.endorsement.vcek];
        certs.extend(supplied.iter().cloned());
        snp::verify_with_crls(evidence.report.as_bytes(), &certs, &crls, None, at)
    }
}

impl Request {
    /// The evidence as `T`, when the extension is `kind`.
    fn decode<'a, T: der::Decode<'a>>(&'a self, kind: ObjectIdentifier) -> Result<T, Error> {
        let name = if kind == SNP_EVIDENCE {
            "SEV-SNP"
        } else {
            "SGX"
        };
        if self.kind != kind {
            return Err(Error::Unsupported {
                what: "Enarx evidence",
                detail: format!("extension {} is not {name} evidence", self.kind),
            });
        }
        T::from_der(&self.evidence)
            .map_err(|e| Error::malformed("Enarx evidence", format!("{name}: {e}")))
    }

    /// The curve of the request's key: [`SECP384R1`] or [`SECP256R1`].
    pub fn key_curve(&self) -> Option<ObjectIdentifier> {
        self.request.key_curve()
    }

    /// The CRLs carried by SEV-SNP evidence.
    pub fn snp_crls(&self) -> Result<Vec<CertificateList>, Error> {
        Ok(self
            .decode::<SnpEvidence>(SNP_EVIDENCE)?
            .endorsement
            .crls
            .into_certificate_lists())
    }

    /// The report or quote inside the evidence, for inspection.
    pub fn evidence_bytes(&self) -> Result<Vec<u8>, Error> {
        Ok(if self.kind == SNP_EVIDENCE {
            self.decode::<SnpEvidence>(SNP_EVIDENCE)?
                .report
                .as_bytes()
                .to_vec()
        } else {
            self.decode::<SgxEvidence>(SGX_EVIDENCE)?
                .quote
                .as_bytes()
                .to_vec()
        })
    }

    /// Verifies the evidence, whichever TEE it is from.
    pub fn verify(&self, supplied: &[Certificate], at: SystemTime) -> Result<Claims, Error> {
        if self.kind == SNP_EVIDENCE {
            self.verify_snp(supplied, at)
        } else {
            self.verify_sgx(at)
        }
    }

    /// Verifies SGX evidence at `at`: the quote to the Intel SGX Root CA, and the platform's
    /// TCB status and advisories from the TCB info in the evidence.
    pub fn verify_sgx(&self, at: SystemTime) -> Result<Claims, Error> {
        let evidence: SgxEvidence = self.decode(SGX_EVIDENCE)?;
        let quote = evidence.quote.as_bytes();
        let root = intel::production_root();
        let mut claims = intel::verify(quote, None, None, at)?;
        let pck_chain = intel::ParsedQuote::parse(quote)?.pck_chain()?;
        let tcb_info = std::str::from_utf8(evidence.tcb.tcb_info.as_bytes())
            .map_err(|_| Error::malformed("Enarx SGX evidence", "the TCB info is not text"))?;
        let (status, advisories) = intel::evaluate_sgx(
            tcb_info,
            &evidence.tcb.signing_chain,
            &pck_chain[0],
            root,
            at,
        )?;
        claims.tcb_status = status;
        claims.advisories = advisories;
        Ok(claims)
    }
}

/// The certificates of a PkiPath (`SEQUENCE OF Certificate`), as Enarx's Steward stored its
/// trusted chains.
pub fn pki_path(der: &[u8]) -> Result<Vec<Certificate>, Error> {
    Vec::<Certificate>::from_der(der).map_err(|e| Error::malformed("PkiPath", e))
}
