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
//! | `package` | `application/vnd.oci.image.manifest.v1+json` | the OCI manifest of the package the workload came from (program, Keep.toml, CA files) |
//! | `package.repository` | `application/x.keep.oci-repository` | the repository it was pulled from (`HOST/REPO`, UTF-8) |
//! | `package.signature.N` | `application/x.keep.cosign-signature+json` | a cosign signature found for it: `{"payload": base64, "signature": base64}` |
//! | `fetch` | `application/x.keep.oci-reference` | the package the Keep is about to fetch (`HOST/REPO:TAG` or `HOST/REPO@sha256:…`, UTF-8): a request to fetch after attestation |
//!
//! The `package` records are there only when the whole workload (program and configuration)
//! came from one package: they let the Steward judge the workload by who signed it.
//!
//! A `fetch` request comes from a Keep that has not fetched its workload yet: it asks for a
//! certificate with which to obtain what the fetch needs (registry credentials), and its
//! workload digest must be [`fetch_digest`] of the reference, so that no workload digest
//! can be claimed by it. It carries no `package` records.
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
/// Media type of a package's manifest (an OCI image manifest).
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the repository a package was pulled from.
pub const MEDIA_REPOSITORY: &str = "application/x.keep.oci-repository";
/// Media type of a cosign signature of a package.
pub const MEDIA_COSIGN_SIGNATURE: &str = "application/x.keep.cosign-signature+json";
/// Media type of the package a Keep is about to fetch.
pub const MEDIA_FETCH: &str = "application/x.keep.oci-reference";
/// The most signatures a request may carry for its package.
pub const MAX_PACKAGE_SIGNATURES: usize = 16;
/// The longest package reference a `fetch` request may state.
pub const MAX_FETCH_REFERENCE: usize = 1024;

/// The workload digest of a Keep about to fetch `reference`: SHA-256 of a label and the
/// reference, so that it can never be the digest of a program and configuration
/// (`keep digest` hashes a different structure).
pub fn fetch_digest(reference: &str) -> [u8; 32] {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"keep fetch-after-attestation v1\0");
    hasher.update(reference.as_bytes());
    hasher.finalize().into()
}

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
    /// The package the whole workload came from, if it did.
    pub package: Option<PackageStatement>,
    /// The package the Keep is about to fetch, if it asks to fetch after attestation.
    pub fetch: Option<String>,
}

/// What a Keep states about the package its workload (program and configuration, CA files
/// included) came from. The Keep's runtime makes this statement as it computes the
/// workload digest; the request's signature, by the key the evidence binds, carries both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageStatement {
    /// The package's OCI manifest, its bytes as pulled (their SHA-256 is what signatures
    /// name).
    pub manifest: Vec<u8>,
    /// The repository it came from, `HOST[:PORT]/REPOSITORY`.
    pub repository: String,
    /// The cosign signatures found for it (unverified: the Steward checks them against its
    /// policy's keys).
    pub signatures: Vec<CosignSignature>,
}

/// A cosign signature: a simple-signing payload, and the base64 of its ECDSA signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CosignSignature {
    /// The payload's bytes.
    #[serde(with = "base64_bytes")]
    pub payload: Vec<u8>,
    /// The signature, base64 of DER, as cosign attaches it.
    pub signature: String,
}

mod base64_bytes {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(de)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

impl PackageStatement {
    /// The manifest's digest, `sha256:<hex>`: what the package's signatures name.
    pub fn manifest_digest(&self) -> String {
        use sha2::Digest as _;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&self.manifest))
        )
    }
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
        if let Some(reference) = &self.fetch {
            let record = Record {
                media_type: MEDIA_FETCH.into(),
                value: reference.clone().into_bytes(),
                ind: None,
            };
            collection.push("fetch", record);
        }
        if let Some(package) = &self.package {
            let record = |media_type: &str, value: Vec<u8>| Record {
                media_type: media_type.into(),
                value,
                ind: None,
            };
            collection.push("package", record(MEDIA_MANIFEST, package.manifest.clone()));
            collection.push(
                "package.repository",
                record(MEDIA_REPOSITORY, package.repository.clone().into_bytes()),
            );
            for (i, signature) in package.signatures.iter().enumerate() {
                // Serialising bytes and a string cannot fail.
                let json = serde_json::to_vec(signature).unwrap_or_default();
                collection.push(
                    format!("package.signature.{i}"),
                    record(MEDIA_COSIGN_SIGNATURE, json),
                );
            }
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
        let mut signatures = Vec::new();
        for (label, record) in collection.iter() {
            let (list, media_type) = if label.starts_with("cert.") {
                (&mut certificates, MEDIA_CERT)
            } else if label.starts_with("crl.") {
                (&mut crls, MEDIA_CRL)
            } else if label.starts_with("package.signature.") {
                (&mut signatures, MEDIA_COSIGN_SIGNATURE)
            } else if [
                "evidence",
                "workload",
                "package",
                "package.repository",
                "fetch",
            ]
            .contains(&label)
            {
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
        let package = package_from_collection(collection, signatures)?;
        let fetch = collection
            .get("fetch")
            .map(|record| {
                if record.media_type != MEDIA_FETCH {
                    return Err(malformed(format!(
                        "the `fetch` record is `{}`, not `{MEDIA_FETCH}`",
                        record.media_type
                    )));
                }
                if record.value.is_empty() || record.value.len() > MAX_FETCH_REFERENCE {
                    return Err(malformed(format!(
                        "the `fetch` reference is {} bytes (1 to {MAX_FETCH_REFERENCE})",
                        record.value.len()
                    )));
                }
                String::from_utf8(record.value.clone())
                    .map_err(|_| malformed("the `fetch` reference is not UTF-8".into()))
            })
            .transpose()?;
        if fetch.is_some() && package.is_some() {
            return Err(malformed(
                "a request states either the package it came from or the one it is about to \
                 fetch, not both"
                    .into(),
            ));
        }
        Ok(Self {
            evidence: Evidence::from_record(evidence)?,
            workload_digest,
            certificates,
            crls,
            package,
            fetch,
        })
    }
}

/// The `package` records of a request, if it has them (`signatures`: the values of its
/// `package.signature.N` records).
fn package_from_collection(
    collection: &Collection,
    signatures: Vec<Vec<u8>>,
) -> Result<Option<PackageStatement>, Error> {
    let malformed = |reason: String| Error::malformed("attestation request", reason);
    let (manifest, repository) = match (
        collection.get("package"),
        collection.get("package.repository"),
    ) {
        (None, None) if signatures.is_empty() => return Ok(None),
        (Some(manifest), Some(repository)) => (manifest, repository),
        _ => {
            return Err(malformed(
                "a package needs both its `package` and `package.repository` records, and \
                 signatures need a package"
                    .into(),
            ));
        }
    };
    for (record, media_type) in [(manifest, MEDIA_MANIFEST), (repository, MEDIA_REPOSITORY)] {
        if record.media_type != media_type {
            return Err(malformed(format!(
                "a package record is `{}`, not `{media_type}`",
                record.media_type
            )));
        }
    }
    if signatures.len() > MAX_PACKAGE_SIGNATURES {
        return Err(malformed(format!(
            "{} package signatures (at most {MAX_PACKAGE_SIGNATURES})",
            signatures.len()
        )));
    }
    let repository = String::from_utf8(repository.value.clone())
        .map_err(|_| malformed("the package's repository is not UTF-8".into()))?;
    let signatures = signatures
        .iter()
        .enumerate()
        .map(|(i, json)| {
            serde_json::from_slice(json)
                .map_err(|e| malformed(format!("package signature {i}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Some(PackageStatement {
        manifest: manifest.value.clone(),
        repository,
        signatures,
    }))
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
    /// A Keep about to fetch its workload (the package `reference`): the evidence binds the
    /// key and [`fetch_digest`] of the reference.
    Fetch {
        /// The package, `HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`.
        reference: String,
    },
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
    /// The package the Keep states its workload came from (its signatures not checked).
    pub package: Option<PackageStatement>,
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
            package: None,
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
    let workload = match content.fetch {
        Some(reference) if fetch_digest(&reference) != content.workload_digest => {
            return Err(Error::Binding(format!(
                "a request to fetch {reference} must bind sha256:{} as its workload digest, \
                 not sha256:{}",
                hex::encode(fetch_digest(&reference)),
                hex::encode(content.workload_digest)
            )));
        }
        Some(reference) => Workload::Fetch { reference },
        None => Workload::Digest(content.workload_digest),
    };
    Ok(VerifiedRequest {
        claims,
        workload,
        public_key,
        names,
        package: content.package,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(media_type: &str, value: &[u8]) -> Record {
        Record {
            media_type: media_type.into(),
            value: value.to_vec(),
            ind: None,
        }
    }

    fn request(package: Option<PackageStatement>) -> AttestationRequest {
        AttestationRequest {
            evidence: Evidence::None {
                report_data: [1; 64],
            },
            workload_digest: [2; 32],
            certificates: vec![b"cert".to_vec()],
            crls: Vec::new(),
            package,
            fetch: None,
        }
    }

    #[test]
    fn a_package_statement_reads_back_and_half_of_one_is_refused() {
        let package = PackageStatement {
            manifest: br#"{"schemaVersion":2}"#.to_vec(),
            repository: "registry.example/team/api".into(),
            signatures: vec![CosignSignature {
                payload: b"payload".to_vec(),
                signature: "MEUC".into(),
            }],
        };
        let with = request(Some(package.clone()));
        let collection = with.to_collection();
        assert_eq!(
            AttestationRequest::from_collection(&collection).unwrap(),
            with
        );
        let without = request(None);
        assert_eq!(
            AttestationRequest::from_collection(&without.to_collection()).unwrap(),
            without
        );

        // A signature with no package, and a package with no repository.
        let mut orphan = without.to_collection();
        orphan.push("package.signature.0", record(MEDIA_COSIGN_SIGNATURE, b"{}"));
        let err = AttestationRequest::from_collection(&orphan).unwrap_err();
        assert!(
            err.to_string().contains("signatures need a package"),
            "{err}"
        );
        let mut half = without.to_collection();
        half.push("package", record(MEDIA_MANIFEST, b"{}"));
        assert!(AttestationRequest::from_collection(&half).is_err());

        // Too many signatures, and one that is not the JSON it should be.
        let many = request(Some(PackageStatement {
            signatures: vec![package.signatures[0].clone(); MAX_PACKAGE_SIGNATURES + 1],
            ..package.clone()
        }));
        let err = AttestationRequest::from_collection(&many.to_collection()).unwrap_err();
        assert!(err.to_string().contains("at most 16"), "{err}");
        let mut bad = with.to_collection();
        bad.push("package.signature.1", record(MEDIA_COSIGN_SIGNATURE, b"[]"));
        let err = AttestationRequest::from_collection(&bad).unwrap_err();
        assert!(err.to_string().contains("package signature 1"), "{err}");
    }

    #[test]
    fn a_fetch_statement_reads_back_alone_and_bounded() {
        let fetch = AttestationRequest {
            fetch: Some("registry.example/team/api@sha256:00".into()),
            ..request(None)
        };
        assert_eq!(
            AttestationRequest::from_collection(&fetch.to_collection()).unwrap(),
            fetch
        );

        // With a package too, of another media type, empty, or too long: refused.
        let mut both = fetch.to_collection();
        both.push("package", record(MEDIA_MANIFEST, b"{}"));
        both.push("package.repository", record(MEDIA_REPOSITORY, b"r/r"));
        let err = AttestationRequest::from_collection(&both).unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        for (media_type, value) in [
            (MEDIA_REPOSITORY, b"r/r".to_vec()),
            (MEDIA_FETCH, Vec::new()),
            (MEDIA_FETCH, vec![b'a'; MAX_FETCH_REFERENCE + 1]),
            (MEDIA_FETCH, vec![0xff]),
        ] {
            let mut bad = request(None).to_collection();
            bad.push("fetch", record(media_type, &value));
            let err = AttestationRequest::from_collection(&bad).unwrap_err();
            assert!(err.to_string().contains("fetch"), "{err}");
        }

        // The digest of a fetch is not that of another reference.
        assert_ne!(fetch_digest("r/a:1"), fetch_digest("r/a:2"));
    }
}
