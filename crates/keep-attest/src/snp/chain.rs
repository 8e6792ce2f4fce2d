//! The chain from a VCEK/VLEK to AMD's root key (ARK) of its product line.
//!
//! The ARKs are the trust anchors and are built in (from virtee's `sev` crate), with the
//! ASKs that sign VCEKs. The intermediate of a VLEK (the ASVK) and any other intermediate
//! may come with the evidence or the collateral: it is trusted only if a built-in ARK signs
//! it, so supplying it adds no trust.

use std::sync::OnceLock;
use std::time::SystemTime;

use sev::certs::snp::{Certificate as SevCertificate, Verifiable as _, builtin};
use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

use crate::Error;
use crate::x509::{check_validity, subject};

/// A product line's root and the ASK it signs.
struct Anchor {
    product: &'static str,
    ark: Certificate,
    ask: Certificate,
    /// Whether the ARK signs the built-in ASK, checked once per process (an RSA-4096
    /// verification costs about as much as the rest of a report's verification).
    ask_signed: OnceLock<Result<(), String>>,
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
                ask_signed: OnceLock::new(),
            })
        })
        .collect()
    })
}

/// Whether `issuer` signs `cert` (RSA-PSS with SHA-384, as AMD's certificates are).
fn signs(issuer: &Certificate, cert: &Certificate) -> Result<(), String> {
    let issuer = SevCertificate::from(issuer.clone());
    let cert = SevCertificate::from(cert.clone());
    (&issuer, &cert).verify().map_err(|e| e.to_string())
}

/// Verifies that `vek` chains to a built-in ARK through an intermediate from `supplied`
/// or the built-in ASKs, every certificate valid at `at`. Returns the product line.
pub fn verify(
    vek: &Certificate,
    supplied: &[Certificate],
    at: SystemTime,
) -> Result<&'static str, Error> {
    verify_with_crls(vek, supplied, &[], at)
}

/// [`verify`], also checking the intermediate against the supplied CRLs of its ARK.
pub fn verify_with_crls(
    vek: &Certificate,
    supplied: &[Certificate],
    crls: &[CertificateList],
    at: SystemTime,
) -> Result<&'static str, Error> {
    let issuer = &vek.tbs_certificate.issuer;
    let candidates = supplied
        .iter()
        .chain(anchors().iter().map(|a| &a.ask))
        .filter(|cert| &cert.tbs_certificate.subject == issuer);
    let mut failures = Vec::new();
    for intermediate in candidates {
        if let Err(e) = signs(intermediate, vek) {
            failures.push(format!("`{}` does not sign it: {e}", subject(intermediate)));
            continue;
        }
        let Some(anchor) = anchors()
            .iter()
            .find(|a| a.ark.tbs_certificate.subject == intermediate.tbs_certificate.issuer)
        else {
            failures.push(format!(
                "`{}` is not issued by a built-in AMD root",
                subject(intermediate)
            ));
            continue;
        };
        let ark_signs = if *intermediate == anchor.ask {
            anchor
                .ask_signed
                .get_or_init(|| signs(&anchor.ark, &anchor.ask))
                .clone()
        } else {
            signs(&anchor.ark, intermediate)
        };
        if let Err(e) = ark_signs {
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
        return Ok(anchor.product);
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
