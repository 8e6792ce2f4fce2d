//! Attested certificates: what a certificate the Steward issues states about a Keep, and how
//! a relying party checks one ([`verify_certificate`], the library side of `keep verify`).
//!
//! The statement is an attestation result in an `id-pe-cmw` extension ([`crate::cmw`]): a
//! collection with one record labelled `result`, of media type [`MEDIA_RESULT`], `ind` 8
//! (attestation results), whose value is the JSON of [`AttestedClaims`].

use std::collections::BTreeMap;
use std::time::SystemTime;

use der::Decode as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

use crate::cmw::{self, Collection, ID_PE_CMW, Record};
use crate::{Claims, Error, TcbStatus, TeeKind};

/// Media type of Keep's attestation result.
pub const MEDIA_RESULT: &str = "application/x.keep.attestation-result+json";

/// What an attested certificate states about the Keep holding its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttestedClaims {
    /// The TEE the Keep runs in (`none`: no TEE, the host can read and change it).
    pub tee: TeeKind,
    /// The workload digest, `sha256:<hex>` (what `keep digest` prints).
    pub workload_digest: String,
    /// Launch measurements by name (hex).
    #[serde(default)]
    pub measurements: BTreeMap<String, String>,
    /// Digests of the keys that signed the launched image (hex).
    #[serde(default)]
    pub signers: BTreeMap<String, String>,
    /// The TCB's standing with the vendor.
    pub tcb_status: TcbStatus,
    /// The TCB components (security version numbers).
    #[serde(default)]
    pub tcb: BTreeMap<String, u64>,
    /// Whether the TEE allows debugging.
    pub debug: bool,
    /// Security advisories that apply to the platform.
    #[serde(default)]
    pub advisories: Vec<String>,
    /// The evidence chained to a test root the Steward was told to trust
    /// (`--insecure-test-roots`), not to AMD's or Intel's: it proves nothing about real
    /// hardware. Absent (false) otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_test_root: bool,
    /// The package the Keep states its workload came from, and who signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<PackageClaims>,
    /// The package (`HOST[:PORT]/REPOSITORY[:TAG|@DIGEST]`) a Keep that has not fetched its
    /// workload yet was certified to fetch. Such a certificate names no running workload
    /// (its digest is [`crate::request::fetch_digest`] of the reference), is for TLS client
    /// authentication only, and no [`Expectations`] accept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch: Option<String>,
}

/// What a certificate states about the package a Keep's workload came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageClaims {
    /// The repository it was pulled from, `HOST[:PORT]/REPOSITORY`.
    pub repository: String,
    /// Its manifest's digest, `sha256:<hex>`.
    pub manifest_digest: String,
    /// Fingerprints (`sha256:<hex>` of the DER public key, [`crate::signer::fingerprint`])
    /// of the keys in the Steward's policy that signed it for that repository (cosign
    /// signatures, checked by the Steward); empty when none did.
    pub signers: Vec<String>,
}

impl AttestedClaims {
    /// The statement for verified `claims` about the workload `workload_digest`.
    pub fn new(claims: &Claims, workload_digest: &[u8; 32]) -> Self {
        Self {
            tee: claims.tee,
            workload_digest: format!("sha256:{}", hex::encode(workload_digest)),
            measurements: claims.measurements.clone(),
            signers: claims.signers.clone(),
            tcb_status: claims.tcb_status,
            tcb: claims.tcb.clone(),
            debug: claims.debug,
            advisories: claims.advisories.clone(),
            insecure_test_root: claims.insecure_test_root,
            package: None,
            fetch: None,
        }
    }

    /// The launch measurement's name and value: SEV-SNP `measurement`, TDX `mrtd`, SGX
    /// `mrenclave`; none without a TEE.
    pub fn launch_measurement(&self) -> Option<(&'static str, &str)> {
        let name = match self.tee {
            TeeKind::SevSnp => "measurement",
            TeeKind::Tdx => "mrtd",
            TeeKind::Sgx => "mrenclave",
            TeeKind::None => return None,
        };
        self.measurements
            .get(name)
            .map(|value| (name, value.as_str()))
    }

    /// The DER value of the certificate's `id-pe-cmw` extension.
    pub fn to_extension_value(&self) -> Vec<u8> {
        let mut collection = Collection::default();
        // Serializing strings, numbers and string-keyed maps cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        collection.push(
            "result",
            Record::new(MEDIA_RESULT, json, cmw::IND_ATTESTATION_RESULTS),
        );
        collection.to_extension_value()
    }

    /// The statement in a DER certificate (its signature is not checked here).
    pub fn from_certificate(der: &[u8]) -> Result<Self, Error> {
        let certificate =
            Certificate::from_der(der).map_err(|e| Error::malformed("certificate", e))?;
        let mut extensions = certificate
            .tbs_certificate
            .extensions
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.extn_id == ID_PE_CMW);
        let (Some(extension), None) = (extensions.next(), extensions.next()) else {
            return Err(Error::MissingCollateral(format!(
                "the certificate has not exactly one attestation extension ({ID_PE_CMW}): it \
                 was not issued by a Keep Steward"
            )));
        };
        let collection = Collection::from_extension_value(extension.extn_value.as_bytes())?;
        let record = collection
            .get("result")
            .filter(|r| r.media_type == MEDIA_RESULT)
            .ok_or_else(|| {
                Error::malformed(
                    "attestation extension",
                    format!("no `result` record of type {MEDIA_RESULT}"),
                )
            })?;
        serde_json::from_slice(&record.value).map_err(|e| Error::malformed("attestation result", e))
    }
}

/// What a relying party expects of a Keep; unset fields accept anything.
#[derive(Debug, Clone, Default)]
pub struct Expectations {
    /// The workload digest (`sha256:<hex>` or bare hex).
    pub workload_digest: Option<String>,
    /// The TEE.
    pub tee: Option<TeeKind>,
    /// The launch measurement (hex): SEV-SNP `measurement`, TDX `mrtd`, SGX `mrenclave`.
    pub measurement: Option<String>,
    /// Fingerprints ([`crate::signer::fingerprint`]) of package signers: the certificate
    /// must state that one of them signed the Keep's package.
    pub signers: Vec<String>,
}

impl Expectations {
    /// Every expectation `claims` fail, described; empty when all hold.
    pub fn unmet(&self, claims: &AttestedClaims) -> Vec<String> {
        let mut unmet = Vec::new();
        if let Some(reference) = &claims.fetch {
            unmet.push(format!(
                "the certificate is for a Keep about to fetch {reference}, not one running a \
                 workload"
            ));
        }
        if let Some(expected) = &self.workload_digest {
            let expected = expected.to_ascii_lowercase();
            let expected = expected.strip_prefix("sha256:").unwrap_or(&expected);
            let actual = claims.workload_digest.strip_prefix("sha256:");
            if actual != Some(expected) {
                unmet.push(format!(
                    "workload digest is {}, expected sha256:{expected}",
                    claims.workload_digest
                ));
            }
        }
        if let Some(tee) = self.tee
            && tee != claims.tee
        {
            unmet.push(format!("TEE is {}, expected {tee}", claims.tee));
        }
        if let Some(expected) = &self.measurement {
            let expected = expected.trim().to_ascii_lowercase();
            match claims.launch_measurement() {
                Some((_, actual)) if actual.eq_ignore_ascii_case(&expected) => {}
                Some((name, actual)) => {
                    unmet.push(format!("{name} is {actual}, expected {expected}"));
                }
                None => unmet.push(format!(
                    "the certificate states no launch measurement (TEE {}), expected {expected}",
                    claims.tee
                )),
            }
        }
        if !self.signers.is_empty() {
            let stated = claims
                .package
                .as_ref()
                .map_or(&[][..], |p| p.signers.as_slice());
            if !self.signers.iter().any(|s| stated.contains(s)) {
                unmet.push(match &claims.package {
                    None => "the certificate states no package, expected one signed by the \
                             given key"
                        .to_owned(),
                    Some(p) if p.signers.is_empty() => format!(
                        "the package {}@{} was signed by none of the Steward's keys, expected \
                         the given key",
                        p.repository, p.manifest_digest
                    ),
                    Some(p) => format!(
                        "the package was signed by {}, expected {}",
                        p.signers.join(", "),
                        self.signers.join(" or ")
                    ),
                });
            }
        }
        unmet
    }
}

/// Verifies that `chain` (leaf first, then intermediates) leads to one of the `anchors`
/// (the Steward's CA certificates) at `at`, for TLS server authentication, and returns what
/// the leaf states.
pub fn verify_certificate(
    chain: &[CertificateDer<'_>],
    anchors: &[CertificateDer<'_>],
    at: SystemTime,
) -> Result<AttestedClaims, Error> {
    let leaf = chain
        .first()
        .ok_or_else(|| Error::Chain("no certificate was presented".into()))?;
    let anchors = anchors
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map_err(|e| Error::Chain(format!("the CA certificate is not usable: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| Error::malformed("certificate", format!("{e:?}")))?;
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| Error::Chain("the verification time is before 1970".into()))?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            UnixTime::since_unix_epoch(since_epoch),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| Error::Chain(format!("the certificate does not chain to the CA: {e:?}")))?;
    AttestedClaims::from_certificate(leaf)
}
