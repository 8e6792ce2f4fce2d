//! The chain from a VCEK/VLEK to AMD's root key (ARK) of its product line.
//!
//! The ARKs are the trust anchors and are built in (from virtee's `sev` crate), with the
//! ASKs that sign VCEKs. The intermediate of a VLEK (the ASVK) and any other intermediate
//! may come with the evidence or the collateral: it is trusted only if a built-in ARK signs
//! it, so supplying it adds no trust. A verifier may be handed one more anchor, a test PKI
//! ([`crate::test_roots`]); what chains to it is marked as such.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use der::Encode as _;
use sha2::{Digest as _, Sha256};

use sev::certs::snp::{Certificate as SevCertificate, Verifiable as _, builtin};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::Error;
use crate::x509::{check_validity, subject};

/// A product line's root and the ASK it signs.
#[derive(Debug, Clone)]
pub struct Anchor {
    product: &'static str,
    pub(crate) ark: Certificate,
    ask: Certificate,
    test: bool,
}

impl Anchor {
    /// A test PKI's ARK and ASK: the ARK must be self-signed and sign the ASK. Its product
    /// line is the one its ARK names (`CN=ARK-Genoa`), so that a simulated KDS serves it
    /// under that name.
    pub(crate) fn test(ark: Certificate, ask: Certificate) -> Result<Self, String> {
        signs(&ark, &ark).map_err(|e| format!("the test ARK is not self-signed: {e}"))?;
        signs(&ark, &ask).map_err(|e| format!("the test ARK does not sign the test ASK: {e}"))?;
        let named = subject(&ark);
        let product = ["Milan", "Genoa", "Turin"]
            .into_iter()
            .find(|product| named.contains(&format!("CN=ARK-{product}")))
            .ok_or_else(|| {
                format!(
                    "the test ARK `{named}` names no product line (CN=ARK-Milan, -Genoa or -Turin)"
                )
            })?;
        Ok(Self {
            product,
            ark,
            ask,
            test: true,
        })
    }
}

/// Who endorses a verified chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endorser {
    /// The product line (`Milan`, `Genoa`, `Turin`).
    pub product: &'static str,
    /// Whether the root is a test root rather than AMD's.
    pub test: bool,
}

/// The built-in anchors: Milan, Genoa, Turin.
fn anchors() -> &'static [Anchor] {
    static ANCHORS: OnceLock<Vec<Anchor>> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let pem = |bytes: &[u8]| {
            // Built-in constants of the `sev` crate; they parse (the crate's tests say so).
            crate::x509::load_certificates(bytes)
                .ok()
                .and_then(|certs| certs.into_iter().next())
        };
        [
            ("Milan", builtin::milan::ARK, builtin::milan::ASK),
            ("Genoa", builtin::genoa::ARK, builtin::genoa::ASK),
            ("Turin", builtin::turin::ARK, builtin::turin::ASK),
        ]
        .into_iter()
        .filter_map(|(product, ark, ask)| {
            Some(Anchor {
                product,
                ark: pem(ark)?,
                ask: pem(ask)?,
                test: false,
            })
        })
        .collect()
    })
}

/// How many verified (issuer, certificate) pairs are remembered.
const VERIFIED_CAPACITY: usize = 4096;

/// Whether `issuer` signs `cert` (RSA-PSS with SHA-384, as AMD's certificates are).
///
/// Successes are remembered by the SHA-256 of both certificates' DER: an RSA-4096 check costs
/// more than the rest of a report's verification, and a verifier such as the Steward sees the
/// same ASKs and VCEKs again and again. Validity and revocation are still checked every time.
fn signs(issuer: &Certificate, cert: &Certificate) -> Result<(), String> {
    static VERIFIED: OnceLock<Mutex<HashSet<[u8; 32]>>> = OnceLock::new();
    let pair = match (issuer.to_der(), cert.to_der()) {
        (Ok(issuer), Ok(cert)) => Some(
            Sha256::new()
                .chain_update(issuer)
                .chain_update(cert)
                .finalize()
                .into(),
        ),
        _ => None,
    };
    let verified = VERIFIED.get_or_init(Default::default);
    let seen = |pair: &[u8; 32]| {
        verified
            .lock()
            .map(|set| set.contains(pair))
            .unwrap_or(false)
    };
    if pair.as_ref().is_some_and(seen) {
        return Ok(());
    }
    let sev_issuer = SevCertificate::from(issuer.clone());
    let sev_cert = SevCertificate::from(cert.clone());
    (&sev_issuer, &sev_cert)
        .verify()
        .map_err(|e| e.to_string())?;
    if let (Some(pair), Ok(mut set)) = (pair, verified.lock()) {
        if set.len() >= VERIFIED_CAPACITY {
            set.clear();
        }
        set.insert(pair);
    }
    Ok(())
}

/// Verifies that `vek` chains to a built-in ARK through an intermediate from `supplied`
/// or the built-in ASKs, every certificate valid at `at`. Returns the product line.
pub fn verify(
    vek: &Certificate,
    supplied: &[Certificate],
    at: SystemTime,
) -> Result<&'static str, Error> {
    verify_with_crls(vek, supplied, &[], None, at).map(|endorser| endorser.product)
}

/// [`verify`], also checking the intermediate against the supplied CRLs of its ARK, and
/// trusting `test` besides the built-in anchors.
pub fn verify_with_crls(
    vek: &Certificate,
    supplied: &[Certificate],
    crls: &[CertificateList],
    test: Option<&Anchor>,
    at: SystemTime,
) -> Result<Endorser, Error> {
    let issuer = &vek.tbs_certificate.issuer;
    let trusted = || anchors().iter().chain(test);
    let candidates = supplied
        .iter()
        .chain(trusted().map(|a| &a.ask))
        .filter(|cert| &cert.tbs_certificate.subject == issuer);
    let mut failures = Vec::new();
    for intermediate in candidates {
        if let Err(e) = signs(intermediate, vek) {
            failures.push(format!("`{}` does not sign it: {e}", subject(intermediate)));
            continue;
        }
        let Some(anchor) = trusted()
            .find(|a| a.ark.tbs_certificate.subject == intermediate.tbs_certificate.issuer)
        else {
            failures.push(format!(
                "`{}` is not issued by a built-in AMD root",
                subject(intermediate)
            ));
            continue;
        };
        if let Err(e) = signs(&anchor.ark, intermediate) {
            failures.push(format!(
                "the {} ARK does not sign `{}`: {e}",
                anchor.product,
                subject(intermediate)
            ));
            continue;
        }
        for cert in [vek, intermediate, &anchor.ark] {
            check_validity(cert, at)?;
        }
        super::crl::check(&anchor.ark, intermediate, crls, at)?;
        return Ok(Endorser {
            product: anchor.product,
            test: anchor.test,
        });
    }
    Err(Error::Chain(if failures.is_empty() {
        format!(
            "no certificate named `{issuer}` (the issuer of `{}`) among the built-in AMD ASKs \
             or the supplied certificates",
            subject(vek)
        )
    } else {
        format!("`{}`: {}", subject(vek), failures.join("; "))
    }))
}

/// For an ARK, ASK or ASVK: the product line whose built-in ARK is `cert` itself or signs
/// it (validity dates are not checked).
pub fn issued_by_amd_root(cert: &Certificate) -> Result<&'static str, Error> {
    let anchor = anchors()
        .iter()
        .find(|a| a.ark.tbs_certificate.subject == cert.tbs_certificate.issuer)
        .ok_or_else(|| {
            Error::Chain(format!(
                "`{}` is not issued by a built-in AMD root",
                subject(cert)
            ))
        })?;
    signs(&anchor.ark, cert).map_err(|e| {
        Error::Chain(format!(
            "the {} ARK does not sign `{}`: {e}",
            anchor.product,
            subject(cert)
        ))
    })?;
    Ok(anchor.product)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_ark_is_self_signed_and_signs_its_ask() {
        assert_eq!(anchors().len(), 3);
        for anchor in anchors() {
            signs(&anchor.ark, &anchor.ark).unwrap();
            signs(&anchor.ark, &anchor.ask).unwrap();
        }
    }
}
