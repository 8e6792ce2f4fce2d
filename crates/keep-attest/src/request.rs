//! Keep's attestation request: the PKCS#10 certificate request a Keep sends the Steward,
//! with its evidence in an `id-pe-cmw` extension ([`crate::cmw`]).
//!
//! The extension holds a CMW collection with these records (values base64url, no padding):
//!
//! | label | media type | value |
//! |---|---|---|
//! | `evidence` | `application/x.keep.evidence.none` | the 64 bytes of report data (no TEE: nothing vouches for them) |
//! | | `application/x.keep.evidence.sev-snp-report` | an SEV-SNP attestation report |
//! | | `application/x.keep.evidence.intel-dcap-quote` | a TDX or SGX DCAP quote |
//! | `workload` | `application/x.keep.workload-digest` | the 32-byte workload digest (`keep digest`) |
//! | `cert.N` | `application/pkix-cert` | an endorsing certificate (VCEK/VLEK, ASK/ASVK), DER |
//! | `crl.N` | `application/pkix-crl` | a CRL for those certificates, DER |
//!
//! The report data inside the evidence must equal [`crate::collect::report_data`] of the
//! request's key and the workload digest: that binds the certificate the Steward issues to
//! the TEE and to the workload.
//!
//! [`verify`] is what the Steward runs on every request: the request's signature, the
//! evidence, and the binding. Legacy requests from Enarx Keeps are verified too (their
//! evidence), but name no workload.

use std::time::SystemTime;

use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::cmw::{self, Collection, ID_PE_CMW, Record};
use crate::csr::SignedRequest;
use crate::evidence::Endorsements;
use crate::{Claims, Error, TcbStatus, TeeKind, collect, enarx, intel, snp};

/// Media type of `none` evidence.
pub const MEDIA_NONE: &str = "application/x.keep.evidence.none";
/// Media type of an SEV-SNP report.
pub const MEDIA_SEV_SNP: &str = "application/x.keep.evidence.sev-snp-report";
/// Media type of an Intel DCAP quote.
pub const MEDIA_INTEL_QUOTE: &str = "application/x.keep.evidence.intel-dcap-quote";
/// Media type of the workload digest.
pub const MEDIA_WORKLOAD: &str = "application/x.keep.workload-digest";
/// Media type of a DER certificate (RFC 2585).
pub const MEDIA_CERT: &str = "application/pkix-cert";
/// Media type of a DER CRL (RFC 2585).
pub const MEDIA_CRL: &str = "application/pkix-crl";

/// The evidence a Keep presents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// No TEE (the process backend): the report data, vouched for by nothing.
    None {
        /// The report data the Keep computed.
        report_data: [u8; 64],
    },
    /// An AMD SEV-SNP attestation report.
    SevSnp(Vec<u8>),
    /// An Intel DCAP quote (TDX or SGX).
    IntelQuote(Vec<u8>),
}

impl Evidence {
    fn to_record(&self) -> Record {
        let (media_type, value) = match self {
            Self::None { report_data } => (MEDIA_NONE, report_data.to_vec()),
            Self::SevSnp(report) => (MEDIA_SEV_SNP, report.clone()),
            Self::IntelQuote(quote) => (MEDIA_INTEL_QUOTE, quote.clone()),
        };
        Record::new(media_type, value, cmw::IND_EVIDENCE)
    }

    fn from_record(record: &Record) -> Result<Self, Error> {
        match record.media_type.as_str() {
            MEDIA_NONE => Ok(Self::None {
                report_data: record.value.as_slice().try_into().map_err(|_| {
                    Error::malformed(
                        "attestation request",
                        format!(
                            "`none` evidence is {} bytes of report data, not 64",
                            record.value.len()
                        ),
                    )
                })?,
            }),
            MEDIA_SEV_SNP => Ok(Self::SevSnp(record.value.clone())),
            MEDIA_INTEL_QUOTE => Ok(Self::IntelQuote(record.value.clone())),
            other => Err(Error::Unsupported {
                what: "evidence",
                detail: format!(
                    "media type `{other}` (Keep verifies {MEDIA_NONE}, {MEDIA_SEV_SNP} and \
                     {MEDIA_INTEL_QUOTE})"
                ),
            }),
        }
    }
}

/// What a Keep's request carries in its `id-pe-cmw` extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationRequest {
    /// The evidence.
    pub evidence: Evidence,
    /// The workload digest (SHA-256).
    pub workload_digest: [u8; 32],
    /// Endorsing certificates (DER), such as the VCEK the host supplied.
    pub certificates: Vec<Vec<u8>>,
    /// CRLs (DER) for those certificates.
    pub crls: Vec<Vec<u8>>,
}

impl AttestationRequest {
    /// The CMW collection.
    pub fn to_collection(&self) -> Collection {
        let mut collection = Collection::default();
        collection.push("evidence", self.evidence.to_record());
        collection.push(
            "workload",
            Record {
                media_type: MEDIA_WORKLOAD.into(),
                value: self.workload_digest.to_vec(),
                ind: None,
            },
        );
        for (i, cert) in self.certificates.iter().enumerate() {
            let record = Record::new(MEDIA_CERT, cert.clone(), cmw::IND_ENDORSEMENTS);
            collection.push(format!("cert.{i}"), record);
        }
        for (i, crl) in self.crls.iter().enumerate() {
            let record = Record::new(MEDIA_CRL, crl.clone(), cmw::IND_ENDORSEMENTS);
            collection.push(format!("crl.{i}"), record);
        }
        collection
    }

    /// Reads the CMW collection; every record must be one Keep knows.
    pub fn from_collection(collection: &Collection) -> Result<Self, Error> {
        let malformed = |reason: String| Error::malformed("attestation request", reason);
        let evidence = collection
            .get("evidence")
            .ok_or_else(|| malformed("no `evidence` record".into()))?;
        let workload = collection
            .get("workload")
            .ok_or_else(|| malformed("no `workload` record".into()))?;
        if workload.media_type != MEDIA_WORKLOAD {
            return Err(malformed(format!(
                "the `workload` record is `{}`, not `{MEDIA_WORKLOAD}`",
                workload.media_type
            )));
        }
        let workload_digest = workload.value.as_slice().try_into().map_err(|_| {
            malformed(format!(
                "the workload digest is {} bytes, not 32",
                workload.value.len()
            ))
        })?;
        let mut certificates = Vec::new();
        let mut crls = Vec::new();
        for (label, record) in collection.iter() {
            let (list, media_type) = if label.starts_with("cert.") {
                (&mut certificates, MEDIA_CERT)
            } else if label.starts_with("crl.") {
                (&mut crls, MEDIA_CRL)
            } else if label == "evidence" || label == "workload" {
                continue;
            } else {
                return Err(malformed(format!("unknown record `{label}`")));
            };
            if record.media_type != media_type {
                return Err(malformed(format!(
                    "record `{label}` is `{}`, not `{media_type}`",
                    record.media_type
                )));
            }
            list.push(record.value.clone());
        }
        Ok(Self {
            evidence: Evidence::from_record(evidence)?,
            workload_digest,
            certificates,
            crls,
        })
    }
}

/// A name a Keep asks to be certified under (from its request's subjectAltName).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectName {
    /// A DNS name.
    Dns(String),
    /// A URI (such as a SPIFFE ID).
    Uri(String),
}

/// As written in `Keep.toml` and policies: the DNS name, or the URI.
impl std::fmt::Display for SubjectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) | Self::Uri(name) => f.write_str(name),
        }
    }
}

/// What the request carried, after verification.
#[derive(Debug, Clone)]
pub enum Workload {
    /// A Keep request: the workload digest, bound into the evidence with the key.
    Digest([u8; 32]),
    /// A legacy Enarx request: its evidence binds only the key, never a workload.
    EnarxLegacy,
}

/// A request whose signature, evidence and binding have been verified.
#[derive(Debug, Clone)]
pub struct VerifiedRequest {
    /// What the evidence says.
    pub claims: Claims,
    /// Which workload the Keep runs.
    pub workload: Workload,
    /// The request's key, DER SubjectPublicKeyInfo: the key to certify.
    pub public_key: Vec<u8>,
    /// The names the Keep asks for.
    pub names: Vec<SubjectName>,
}

/// Verifies a DER certificate request at `at`: its signature, its evidence (with the
/// request's own endorsements and `endorsements`, the verifier's cached collateral) and, for
/// Keep requests, that the report data binds the request's key and workload digest.
///
/// Evidence of kind `none` verifies (nothing can be checked but the binding); whether to
/// accept it is the caller's decision.
pub fn verify(
    der: &[u8],
    endorsements: &Endorsements,
    at: SystemTime,
) -> Result<VerifiedRequest, Error> {
    let request = SignedRequest::from_der(der)?;
    let names = requested_names(&request)?;
    let public_key = request.public_key_der()?;
    let Some(extension) = request.single_extension(ID_PE_CMW)? else {
        let enarx = enarx::Request::from_signed(request).map_err(|_| {
            Error::MissingCollateral(format!(
                "the request carries no evidence: Keep requests carry it in extension {ID_PE_CMW}"
            ))
        })?;
        let claims = enarx.verify(&endorsements.certificates, at)?;
        return Ok(VerifiedRequest {
            claims,
            workload: Workload::EnarxLegacy,
            public_key,
            names,
        });
    };
    let content = AttestationRequest::from_collection(&Collection::from_extension_value(
        extension.extn_value.as_bytes(),
    )?)?;
    let claims = verify_evidence(&content, endorsements, at)?;
    let expected = collect::report_data(&public_key, &content.workload_digest);
    if !claims
        .report_data
        .eq_ignore_ascii_case(&hex::encode(expected))
    {
        return Err(Error::Binding(format!(
            "the evidence's report data {} is not the binding of the request's key and \
             workload digest sha256:{} ({})",
            claims.report_data,
            hex::encode(content.workload_digest),
            hex::encode(expected)
        )));
    }
    Ok(VerifiedRequest {
        claims,
        workload: Workload::Digest(content.workload_digest),
        public_key,
        names,
    })
}

/// The evidence a Keep request carries, if it is a Keep request (unverified: to find the
/// collateral its verification needs).
pub fn evidence(der: &[u8]) -> Result<Option<Evidence>, Error> {
    let request = SignedRequest::from_der(der)?;
    let Some(extension) = request.single_extension(ID_PE_CMW)? else {
        return Ok(None);
    };
    let content = AttestationRequest::from_collection(&Collection::from_extension_value(
        extension.extn_value.as_bytes(),
    )?)?;
    Ok(Some(content.evidence))
}

fn verify_evidence(
    request: &AttestationRequest,
    endorsements: &Endorsements,
    at: SystemTime,
) -> Result<Claims, Error> {
    match &request.evidence {
        Evidence::None { report_data } => Ok(none_claims(report_data)),
        Evidence::SevSnp(report) => {
            let mut certificates = parse_all(&request.certificates, "certificate", |der| {
                der::Decode::from_der(der)
            })?;
            certificates.extend(endorsements.certificates.iter().cloned());
            let mut crls = parse_all(&request.crls, "CRL", |der| der::Decode::from_der(der))?;
            crls.extend(endorsements.crls.iter().cloned());
            snp::verify_with_crls(
                report,
                &certificates,
                &crls,
                endorsements.test_roots.as_deref(),
                at,
            )
        }
        Evidence::IntelQuote(quote) => intel::verify(
            quote,
            endorsements.intel.as_ref(),
            endorsements.test_roots.as_deref(),
            at,
        ),
    }
}

fn parse_all<T>(
    items: &[Vec<u8>],
    what: &str,
    parse: impl Fn(&[u8]) -> der::Result<T>,
) -> Result<Vec<T>, Error> {
    items
        .iter()
        .enumerate()
        .map(|(i, der)| {
            parse(der)
                .map_err(|e| Error::malformed("attestation request", format!("{what} {i}: {e}")))
        })
        .collect()
}

/// The claims of `none` evidence: no TEE, no measurement, nothing evaluated.
fn none_claims(report_data: &[u8; 64]) -> Claims {
    Claims {
        tee: TeeKind::None,
        measurements: Default::default(),
        report_data: hex::encode(report_data),
        host_data: None,
        signers: Default::default(),
        tcb: Default::default(),
        tcb_status: TcbStatus::NotEvaluated,
        insecure_test_root: false,
        debug: false,
        advisories: Vec::new(),
        details: [(
            "note".to_owned(),
            "no TEE: the host can read and change this Keep".to_owned(),
        )]
        .into(),
    }
}

/// The DNS names and URIs of the request's subjectAltName extension.
fn requested_names(request: &SignedRequest) -> Result<Vec<SubjectName>, Error> {
    use der::Decode as _;
    let oid = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17");
    let Some(extension) = request.single_extension(oid)? else {
        return Ok(Vec::new());
    };
    let names = SubjectAltName::from_der(extension.extn_value.as_bytes())
        .map_err(|e| Error::malformed("certificate request", format!("subjectAltName: {e}")))?;
    names
        .0
        .into_iter()
        .map(|name| match name {
            GeneralName::DnsName(dns) => Ok(SubjectName::Dns(dns.to_string())),
            GeneralName::UniformResourceIdentifier(uri) => Ok(SubjectName::Uri(uri.to_string())),
            other => Err(Error::Unsupported {
                what: "requested name",
                detail: format!("{other:?} (Keep certifies DNS names and URIs)"),
            }),
        })
        .collect()
}
