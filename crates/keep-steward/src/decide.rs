//! The Steward's decision on one certificate request: verify, judge, issue. This is what
//! `POST /v1/attest` runs, without HTTP around it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use keep_attest::certificate::{AttestedClaims, PackageClaims};
use keep_attest::cmw::ID_PE_CMW;
use keep_attest::policy::{PackageFacts, TeeRules};
use keep_attest::request::{PackageStatement, SubjectName, VerifiedRequest, Workload};
use keep_attest::{Endorsements, Policy, Rejection, TeeKind};

use crate::kds::Kds;
use crate::pcs::Pcs;
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest as _, Sha256};

use crate::ca::CertificateAuthority;

/// Default lifetime of an issued certificate.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(8 * 3600);

/// Tolerated clock difference between the Steward and the Keeps' peers.
const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Why a request was refused. `Display` is the reason sent to the Keep.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request or its evidence could not be read, or is of a kind Keep does not verify.
    #[error("{0}")]
    Unreadable(keep_attest::Error),
    /// The evidence or the request's signature did not verify.
    #[error("{0}")]
    Evidence(keep_attest::Error),
    /// Evidence of kind `none` and the Steward was not started to accept it.
    #[error(
        "evidence of kind `none` (the process backend: no TEE, the host can read and change \
         the Keep) is accepted only by a Steward started with --insecure-accept-none"
    )]
    InsecureNone,
    /// A legacy Enarx request: its evidence verified but names no workload.
    #[error(
        "the request carries Enarx evidence, which binds only the key and names no workload: \
         this Steward certifies workloads (send a Keep request)"
    )]
    NoWorkload,
    /// The policy refused the claims, the workload or a name.
    #[error("{0}")]
    Policy(Rejection),
    /// The Steward could not issue the certificate.
    #[error("the Steward cannot issue the certificate: {0:#}")]
    Internal(anyhow::Error),
}

impl Refusal {
    /// A short label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        use keep_attest::Error as E;
        match self {
            Self::Unreadable(E::Unsupported { .. }) => "unsupported",
            Self::Unreadable(E::MissingCollateral(_)) => "missing-evidence",
            Self::Unreadable(_) => "malformed",
            Self::Evidence(E::Signature(_)) => "signature",
            Self::Evidence(E::Chain(_)) => "chain",
            Self::Evidence(E::NotValidAt { .. }) => "expired",
            Self::Evidence(E::Binding(_)) => "binding",
            Self::Evidence(E::TcbMismatch(_)) => "tcb-mismatch",
            Self::Evidence(E::Collateral(_)) => "collateral",
            Self::Evidence(_) => "evidence",
            Self::InsecureNone => "insecure-none",
            Self::NoWorkload => "no-workload",
            Self::Policy(_) => "policy",
            Self::Internal(_) => "internal",
        }
    }

    /// The HTTP status: 400 for what cannot be read, 403 for what is refused.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unreadable(_) => 400,
            Self::Internal(_) => 500,
            _ => 403,
        }
    }
}

/// A certificate issued for a Keep.
#[derive(Debug)]
pub struct Issued {
    /// The certificate then the CA certificate, PEM.
    pub chain_pem: String,
    /// What it states.
    pub claims: AttestedClaims,
    /// The names it carries.
    pub names: Vec<String>,
    /// Its serial number, hex.
    pub serial: String,
}

/// What the Steward decides with.
pub struct Steward {
    ca: CertificateAuthority,
    policy: Policy,
    accept_none: bool,
    validity: Duration,
    endorsements: Endorsements,
    kds: Option<Kds>,
    pcs: Option<Pcs>,
    // Replaced whole when the secrets file is reloaded; a release in progress keeps the
    // set it started with.
    secrets: std::sync::RwLock<Option<Arc<crate::secrets::Secrets>>>,
    versions: Option<crate::versions::SealedVersions>,
    issued: AtomicU64,
}

/// Builds a [`Steward`].
pub struct StewardBuilder {
    policy: Option<Policy>,
    accept_none: bool,
    validity: Duration,
    endorsements: Endorsements,
    kds: Option<Kds>,
    pcs: Option<Pcs>,
    secrets: Option<crate::secrets::Secrets>,
    versions: Option<crate::versions::SealedVersions>,
}

impl Steward {
    /// A builder with the defaults: every hardware TEE accepted with default rules (no
    /// debug, TCB not revoked), `none` refused, any workload under no name, 8-hour
    /// certificates.
    pub fn builder() -> StewardBuilder {
        StewardBuilder {
            policy: None,
            accept_none: false,
            validity: DEFAULT_VALIDITY,
            endorsements: Endorsements::default(),
            kds: None,
            pcs: None,
            secrets: None,
            versions: None,
        }
    }

    /// The versions of sealed stores it witnesses, if it was given a file for them.
    pub fn sealed_versions(&self) -> Option<&crate::versions::SealedVersions> {
        self.versions.as_ref()
    }

    /// The CA certificate (PEM).
    pub fn ca_pem(&self) -> &str {
        &self.ca.certificate_pem
    }

    /// The secrets it releases, if it was given any.
    pub fn secrets(&self) -> Option<Arc<crate::secrets::Secrets>> {
        // A poisoned lock still holds a whole set (replacement is one assignment).
        self.secrets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Releases `secrets` from now on, instead of the previous set (a reloaded secrets file:
    /// changed values, new secrets, revoked rules).
    pub fn replace_secrets(&self, secrets: crate::secrets::Secrets) {
        *self.secrets.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(secrets));
    }

    /// Decides on a DER certificate request at `now`.
    pub fn decide(&self, der: &[u8], now: SystemTime) -> Result<Issued, Refusal> {
        use keep_attest::Error as E;
        let verified = self.verify(der, now).map_err(|e| match e {
            E::Malformed { .. } | E::Unsupported { .. } | E::MissingCollateral(_) => {
                Refusal::Unreadable(e)
            }
            e => Refusal::Evidence(e),
        })?;
        if verified.claims.tee == TeeKind::None && !self.accept_none {
            return Err(Refusal::InsecureNone);
        }
        let digest = match &verified.workload {
            Workload::Digest(digest) => *digest,
            Workload::Fetch { reference } => {
                return self.decide_fetch(&verified, reference, now);
            }
            Workload::EnarxLegacy => return Err(Refusal::NoWorkload),
        };
        self.policy
            .evaluate(&verified.claims, None)
            .map_err(Refusal::Policy)?;
        let names: Vec<String> = verified.names.iter().map(ToString::to_string).collect();
        let package = verified.package.as_ref().map(|statement| {
            let manifest_digest = statement.manifest_digest();
            let signed_by = self.signed_by(statement, &manifest_digest);
            (statement, manifest_digest, signed_by)
        });
        let facts = package
            .as_ref()
            .map(|(statement, manifest_digest, signed_by)| PackageFacts {
                repository: &statement.repository,
                manifest_digest,
                signed_by,
            });
        self.policy
            .evaluate_workload(&digest, &names, facts.as_ref())
            .map_err(Refusal::Policy)?;
        let package = package.map(|(statement, manifest_digest, signed_by)| PackageClaims {
            repository: statement.repository.clone(),
            manifest_digest,
            signers: signed_by,
        });
        let claims = AttestedClaims {
            package,
            ..AttestedClaims::new(&verified.claims, &digest)
        };
        self.issue(&verified, claims, names, now)
            .map_err(Refusal::Internal)
    }

    /// Decides on a request from a Keep about to fetch `reference`: the TEE's rules and a
    /// `[[fetch]]` must accept it; its certificate states the reference and serves only as a
    /// client identity towards the Steward.
    fn decide_fetch(
        &self,
        verified: &VerifiedRequest,
        reference: &str,
        now: SystemTime,
    ) -> Result<Issued, Refusal> {
        let parsed = keep_oci::PackageRef::parse(reference).map_err(|e| {
            Refusal::Unreadable(keep_attest::Error::Malformed {
                what: "attestation request",
                reason: format!("the `fetch` reference: {e:#}"),
            })
        })?;
        self.policy
            .evaluate(&verified.claims, None)
            .map_err(Refusal::Policy)?;
        let names: Vec<String> = verified.names.iter().map(ToString::to_string).collect();
        let pinned = parsed.digest().map(|d| d.to_string());
        self.policy
            .evaluate_fetch(&parsed.repository(), pinned.as_deref(), &names)
            .map_err(Refusal::Policy)?;
        let claims = AttestedClaims {
            fetch: Some(reference.to_owned()),
            ..AttestedClaims::new(
                &verified.claims,
                &keep_attest::request::fetch_digest(reference),
            )
        };
        self.issue(verified, claims, names, now)
            .map_err(Refusal::Internal)
    }

    /// Fingerprints of the policy's signer keys that signed the package `statement` names
    /// (its manifest, `manifest_digest`) for the repository it states, each checked with
    /// cosign's verification.
    fn signed_by(&self, statement: &PackageStatement, manifest_digest: &str) -> Vec<String> {
        let Ok(digest) = keep_oci::Digest::parse(manifest_digest) else {
            return Vec::new();
        };
        let signed: Vec<keep_oci::signature::Signed> = statement
            .signatures
            .iter()
            .map(|s| keep_oci::signature::Signed {
                payload: s.payload.clone(),
                signature: s.signature.clone(),
            })
            .collect();
        self.policy
            .signer_keys()
            .into_iter()
            .filter(|key| {
                use p256::pkcs8::DecodePublicKey as _;
                p256::ecdsa::VerifyingKey::from_public_key_der(&key.spki).is_ok_and(|verifying| {
                    keep_oci::signature::verify(
                        &signed,
                        &[verifying],
                        &statement.repository,
                        &digest,
                    )
                    .is_ok()
                })
            })
            .map(|key| key.fingerprint())
            .collect()
    }

    /// Verifies the request with the Steward's collateral. With a KDS, an SEV-SNP report whose
    /// VCEK is missing gets it from there, and is checked against its product line's CRL from
    /// there; with a PCS, an Intel quote gets its TCB collateral from there (unless
    /// `--collateral` has Intel collateral).
    fn verify(
        &self,
        der: &[u8],
        now: SystemTime,
    ) -> Result<keep_attest::request::VerifiedRequest, keep_attest::Error> {
        use keep_attest::Error::MissingCollateral;
        use keep_attest::request::Evidence;
        let evidence = keep_attest::request::evidence(der)?;
        if let (Some(Evidence::IntelQuote(quote)), Some(pcs), None) =
            (&evidence, &self.pcs, &self.endorsements.intel)
        {
            let collateral = pcs.collateral(quote, now).map_err(|e| {
                MissingCollateral(format!("Intel's TCB collateral for the quote: {e:#}"))
            })?;
            let mut endorsements = self.endorsements.clone();
            endorsements.intel = Some(collateral);
            return keep_attest::request::verify(der, &endorsements, now);
        }
        let (Some(kds), Some(Evidence::SevSnp(report))) = (&self.kds, &evidence) else {
            return keep_attest::request::verify(der, &self.endorsements, now);
        };
        let mut endorsements = self.endorsements.clone();
        endorsements.crls.extend(kds.current_crls(now));
        let verified = match keep_attest::request::verify(der, &endorsements, now) {
            Err(MissingCollateral(missing)) => {
                let vcek = kds
                    .vcek(report)
                    .and_then(|der| {
                        keep_attest::load_certificates(&der).map_err(anyhow::Error::from)
                    })
                    .map_err(|e| MissingCollateral(format!("{missing}; {e:#}")))?;
                endorsements.certificates.extend(vcek);
                keep_attest::request::verify(der, &endorsements, now)
            }
            verified => verified,
        };
        // Revocation: the first report of a product line brings its ARK's CRL, and the
        // report is checked against it.
        let product = verified
            .as_ref()
            .ok()
            .and_then(|v| v.claims.details.get("product").cloned());
        if let Some(product) = product
            && !kds.knows_crl(&product, now)
            && let Some(crl) = kds
                .crl(&product, now)
                .map_err(|e| MissingCollateral(format!("{e:#}")))?
        {
            endorsements.crls.push(crl);
            return keep_attest::request::verify(der, &endorsements, now);
        }
        verified
    }

    /// The certificate stating `claims` for the key of `verified`, under `names`.
    fn issue(
        &self,
        verified: &VerifiedRequest,
        claims: AttestedClaims,
        names: Vec<String>,
        now: SystemTime,
    ) -> anyhow::Result<Issued> {
        let key = rcgen::SubjectPublicKeyInfo::from_der(&verified.public_key)
            .context("the request's key")?;
        let serial = self.serial(&verified.public_key, now);
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        // A common name of at most 64 characters: the full digest is in the extension.
        subject.push(
            DnType::CommonName,
            format!(
                "Keep {} {}",
                claims.tee,
                claims.workload_digest.get(..23).unwrap_or_default()
            ),
        );
        params.distinguished_name = subject;
        params.subject_alt_names = verified
            .names
            .iter()
            .map(|name| {
                Ok(match name {
                    SubjectName::Dns(dns) => SanType::DnsName(dns.as_str().try_into()?),
                    SubjectName::Uri(uri) => SanType::URI(uri.as_str().try_into()?),
                })
            })
            .collect::<Result<_, rcgen::Error>>()
            .context("a requested name")?;
        let now = time::OffsetDateTime::from(now);
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + self.validity;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // A Keep about to fetch presents its certificate only to the Steward, as a client.
        params.extended_key_usages = if claims.fetch.is_some() {
            vec![ExtendedKeyUsagePurpose::ClientAuth]
        } else {
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ]
        };
        params.use_authority_key_identifier_extension = true;
        let cmw_arcs: Vec<u64> = ID_PE_CMW.arcs().map(u64::from).collect();
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &cmw_arcs,
            claims.to_extension_value(),
        )];
        let certificate = params
            .signed_by(&key, &self.ca.issuer)
            .context("signing the certificate")?;
        Ok(Issued {
            chain_pem: certificate.pem() + &self.ca.certificate_pem,
            claims,
            names,
            serial: hex::encode(serial),
        })
    }

    /// A 16-byte serial number unique to this key, moment and issuance (RFC 5280: positive,
    /// at most 20 bytes).
    fn serial(&self, public_key: &[u8], now: SystemTime) -> [u8; 16] {
        let count = self.issued.fetch_add(1, Ordering::Relaxed);
        let nanos = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let digest = Sha256::new()
            .chain_update(public_key)
            .chain_update(nanos.to_be_bytes())
            .chain_update(count.to_be_bytes())
            .finalize();
        let mut serial = [0; 16];
        serial.copy_from_slice(&digest[..16]);
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        serial
    }
}

impl StewardBuilder {
    /// The attestation policy (see [`keep_attest::policy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Whether evidence of kind `none` may be accepted (development only: it proves nothing).
    pub fn insecure_accept_none(mut self, accept: bool) -> Self {
        self.accept_none = accept;
        self
    }

    /// The lifetime of issued certificates.
    pub fn validity(mut self, validity: Duration) -> Self {
        self.validity = validity;
        self
    }

    /// Collateral used for every request (certificates, CRLs, Intel TCB collateral).
    pub fn endorsements(mut self, endorsements: Endorsements) -> Self {
        self.endorsements = endorsements;
        self
    }

    /// Fetch missing VCEKs from this KDS (default: none; the request and the collateral must
    /// carry them).
    pub fn kds(mut self, kds: Kds) -> Self {
        self.kds = Some(kds);
        self
    }

    /// Fetches Intel's TCB collateral for quotes from `pcs` when `endorsements` has none.
    pub fn pcs(mut self, pcs: Pcs) -> Self {
        self.pcs = Some(pcs);
        self
    }

    /// Releases `secrets` to attested Keeps as their rules say (default: none).
    pub fn secrets(mut self, secrets: crate::secrets::Secrets) -> Self {
        self.secrets = Some(secrets);
        self
    }

    /// Witnesses the versions of sealed stores in `versions`.
    pub fn sealed_versions(mut self, versions: crate::versions::SealedVersions) -> Self {
        self.versions = Some(versions);
        self
    }

    /// The Steward, signing with `ca`.
    pub fn build(self, ca: CertificateAuthority) -> Steward {
        let mut policy = self.policy.unwrap_or_else(|| Policy {
            sev_snp: Some(TeeRules::default()),
            tdx: Some(TeeRules::default()),
            sgx: Some(TeeRules::default()),
            ..Policy::default()
        });
        if self.accept_none && policy.none.is_none() {
            policy.none = Some(TeeRules::default());
        }
        Steward {
            ca,
            policy,
            accept_none: self.accept_none,
            validity: self.validity,
            endorsements: self.endorsements,
            kds: self.kds,
            pcs: self.pcs,
            secrets: std::sync::RwLock::new(self.secrets.map(Arc::new)),
            versions: self.versions,
            issued: AtomicU64::new(0),
        }
    }
}
