//! Intel DCAP ECDSA quotes (SGX v3, TDX v4 and v5): layout checks, and the verification
//! that needs no collateral: the PCK chain to the Intel SGX Root CA, the QE report signed by
//! the PCK key, the QE report binding the attestation key, and the quote signed by it.
//!
//! Parsing is `dcap-qvl`'s. The signature checks are written here because `dcap-qvl` only
//! offers them inside its full verification, which requires TCB collateral; Keep verifies
//! quotes without collateral too (and then says the TCB was not evaluated).

use std::time::SystemTime;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use dcap_qvl::quote::{AuthData, Quote};
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate;

use crate::Error;
use crate::x509::{check_validity, subject};

/// Header: version (u16), attestation key type (u16), TEE type (u32), ...
const HEADER_LEN: usize = 48;
/// TEE types in the header.
pub const TEE_SGX: u32 = 0x00;
/// TEE type of a TDX quote.
pub const TEE_TDX: u32 = 0x81;
/// ECDSA-256-with-P-256: the only attestation key type of DCAP quotes.
const KEY_TYPE_ECDSA_P256: u16 = 2;
/// Certification data type 5: the PCK certificate chain, PEM, in the quote.
const CERT_DATA_PCK_CHAIN: u16 = 5;

/// A parsed quote with the bytes its signature covers.
pub struct ParsedQuote {
    /// The quote as `dcap-qvl` decodes it.
    pub quote: Quote,
    signed: Vec<u8>,
}

impl ParsedQuote {
    /// Checks the header and the sizes, then parses.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < HEADER_LEN {
            return Err(Error::malformed(
                "quote",
                format!("{} bytes, shorter than a quote header", bytes.len()),
            ));
        }
        let version = u16::from_le_bytes([bytes[0], bytes[1]]);
        let key_type = u16::from_le_bytes([bytes[2], bytes[3]]);
        let tee = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        match (version, tee) {
            (3, TEE_SGX) | (4 | 5, TEE_SGX | TEE_TDX) => {}
            (_, TEE_SGX | TEE_TDX) => {
                return Err(Error::Unsupported {
                    what: "quote version",
                    detail: format!(
                        "version {version} for {} (Keep verifies SGX quotes v3–v5 and TDX quotes v4–v5)",
                        if tee == TEE_TDX { "TDX" } else { "SGX" }
                    ),
                });
            }
            _ => {
                return Err(Error::Unsupported {
                    what: "quote TEE type",
                    detail: format!("{tee:#x} (SGX is 0x0, TDX is 0x81)"),
                });
            }
        }
        if key_type != KEY_TYPE_ECDSA_P256 {
            return Err(Error::Unsupported {
                what: "attestation key type",
                detail: format!("{key_type} (DCAP quotes use 2, ECDSA P-256)"),
            });
        }
        check_certification_data_size(bytes, signed_length(bytes, version, tee)?, version)?;
        let quote = Quote::parse(bytes).map_err(|e| Error::malformed("quote", e))?;
        let signed_len = quote.signed_length();
        Ok(Self {
            signed: bytes[..signed_len].to_vec(),
            quote,
        })
    }

    /// The PCK certificate chain embedded in the quote (leaf first).
    pub fn pck_chain(&self) -> Result<Vec<Certificate>, Error> {
        let cert_type = self.quote.inner_cert_type();
        if cert_type != CERT_DATA_PCK_CHAIN {
            return Err(Error::Unsupported {
                what: "certification data type",
                detail: format!(
                    "{cert_type} (Keep needs type 5, the PCK chain in the quote; or supply the \
                     chain as collateral)"
                ),
            });
        }
        let pem = self.quote.inner_cert_data();
        // The field may carry a trailing NUL.
        let end = pem.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        crate::x509::pem_chain(&pem[..end]).map_err(|e| {
            Error::Chain(format!(
                "the PCK certificate chain in the quote cannot be read: {e}"
            ))
        })
    }

    /// Verifies the quote's signatures given the PCK chain (leaf, intermediate, root), which
    /// must end in `root` and be valid at `at`.
    pub fn verify_signatures(
        &self,
        pck_chain: &[Certificate],
        root: &Certificate,
        at: SystemTime,
    ) -> Result<(), Error> {
        verify_pck_chain(pck_chain, root, at)?;
        let auth = match &self.quote.auth_data {
            AuthData::V3(data) => data.clone(),
            AuthData::V4(data) => data.clone().into_v3(),
        };
        let pck_key = p256_key(&pck_chain[0])?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pck_key)
            .verify(&auth.qe_report, &auth.qe_report_signature)
            .map_err(|_| Error::Signature("the QE report is not signed by the PCK key".into()))?;
        // QE report data = SHA-256(attestation key || QE authentication data) || 32 zeros.
        let mut hasher = Sha256::new();
        hasher.update(auth.ecdsa_attestation_key);
        hasher.update(&auth.qe_auth_data.data);
        let expected = hasher.finalize();
        let report_data = &auth.qe_report[320..384];
        if report_data[..32] != expected[..] || report_data[32..].iter().any(|&b| b != 0) {
            return Err(Error::Signature(
                "the QE report does not bind the quote's attestation key".into(),
            ));
        }
        let mut sec1 = [0u8; 65];
        sec1[0] = 0x04;
        sec1[1..].copy_from_slice(&auth.ecdsa_attestation_key);
        p256::PublicKey::from_sec1_bytes(&sec1)
            .map_err(|_| Error::malformed("quote", "the attestation key is not a P-256 point"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &sec1[..])
            .verify(&self.signed, &auth.ecdsa_signature)
            .map_err(|_| Error::Signature("the quote is not signed by its attestation key".into()))
    }
}

/// Header and report: what the quote signature covers. A v5 quote describes its report
/// in a 6-byte body header (type, size).
fn signed_length(bytes: &[u8], version: u16, tee: u32) -> Result<usize, Error> {
    const SGX_REPORT: usize = 384;
    const TD_REPORT_1_0: usize = 584;
    let len = match (version, tee) {
        (5, _) => {
            let size = bytes
                .get(HEADER_LEN + 2..HEADER_LEN + 6)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| Error::malformed("quote", "truncated v5 body header"))?;
            HEADER_LEN + 6 + size
        }
        (_, TEE_TDX) => HEADER_LEN + TD_REPORT_1_0,
        _ => HEADER_LEN + SGX_REPORT,
    };
    if len + 4 > bytes.len() {
        return Err(Error::malformed(
            "quote",
            format!("{} bytes, too short for its report", bytes.len()),
        ));
    }
    Ok(len)
}

/// The size fields of the signature data must agree: the declared size of the signature
/// data must hold exactly its parts up to the end of the certification data (trailing
/// padding after it is tolerated, as Intel's libraries do).
fn check_certification_data_size(
    bytes: &[u8],
    signed_len: usize,
    version: u16,
) -> Result<(), Error> {
    let mismatch = |detail: String| {
        Error::malformed(
            "quote",
            format!("certification data size mismatch: {detail}"),
        )
    };
    let u16_at = |data: &[u8], at: usize| {
        data.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
    };
    let u32_at = |data: &[u8], at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let declared = u32_at(bytes, signed_len).ok_or_else(|| mismatch("no signature data".into()))?;
    let available = bytes.len() - (signed_len + 4);
    if declared > available {
        return Err(mismatch(format!(
            "the quote declares {declared} bytes of signature data but {available} follow"
        )));
    }
    let auth = &bytes[signed_len + 4..signed_len + 4 + declared];
    // Signature (64) and attestation key (64); v3 then has the QE report (384), its
    // signature (64) and the QE authentication data (size-prefixed) before the
    // certification data.
    let certification_at = if version == 3 {
        let qe_auth_at = 64 + 64 + 384 + 64;
        let qe_auth_len =
            u16_at(auth, qe_auth_at).ok_or_else(|| mismatch("truncated QE data".into()))?;
        qe_auth_at + 2 + qe_auth_len
    } else {
        64 + 64
    };
    let body_len = u32_at(auth, certification_at + 2)
        .ok_or_else(|| mismatch("truncated certification data header".into()))?;
    let end = certification_at + 6 + body_len;
    if end != declared {
        return Err(mismatch(format!(
            "the signature data is {declared} bytes but its certification data ends at byte {end}"
        )));
    }
    Ok(())
}

/// The chain must be leaf → intermediate → `root`, each signed by the next, all valid at
/// `at`. The root must be `root` itself (byte for byte).
fn verify_pck_chain(
    chain: &[Certificate],
    root: &Certificate,
    at: SystemTime,
) -> Result<(), Error> {
    let chain = leaf_first(chain);
    let [leaf, intermediate, chain_root] = &chain[..] else {
        return Err(Error::Chain(format!(
            "the PCK chain has {} certificates; expected 3 (PCK, its CA, Intel SGX Root CA)",
            chain.len()
        )));
    };
    if *chain_root != root {
        return Err(Error::Chain(format!(
            "the PCK chain ends in `{}`, which is not the trusted root `{}`",
            subject(chain_root),
            subject(root)
        )));
    }
    for (issuer, cert) in [(root, *intermediate), (*intermediate, *leaf)] {
        signs_p256(issuer, cert)?;
    }
    for cert in [*leaf, *intermediate, root] {
        check_validity(cert, at)?;
    }
    Ok(())
}

/// `chain` ordered from its first certificate (the leaf) up through each issuer present;
/// PEM bundles come in either order.
fn leaf_first(chain: &[Certificate]) -> Vec<&Certificate> {
    let Some(leaf) = chain.first() else {
        return Vec::new();
    };
    let mut ordered = vec![leaf];
    while ordered.len() < chain.len() {
        let current = ordered[ordered.len() - 1];
        if current.tbs_certificate.issuer == current.tbs_certificate.subject {
            break;
        }
        match chain
            .iter()
            .find(|c| c.tbs_certificate.subject == current.tbs_certificate.issuer)
        {
            Some(issuer) if !ordered.contains(&issuer) => ordered.push(issuer),
            _ => break,
        }
    }
    // Certificates that are not part of the path still count, so a wrong chain is refused.
    for cert in chain {
        if !ordered.contains(&cert) {
            ordered.push(cert);
        }
    }
    ordered
}

/// The P-256 key of `cert` (an uncompressed SEC1 point), checked to be one. Signatures are
/// verified with aws-lc: a quote needs four P-256 checks, which the pure-Rust curve made the
/// bulk of its verification time.
pub(crate) fn p256_key(cert: &Certificate) -> Result<&[u8], Error> {
    let point = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    p256::PublicKey::from_sec1_bytes(point)
        .map_err(|_| Error::Chain(format!("`{}` does not hold a P-256 key", subject(cert))))?;
    Ok(point)
}

/// Whether `issuer` signs `cert` with ECDSA P-256 / SHA-256 (all of Intel's SGX PKI).
pub(crate) fn signs_p256(issuer: &Certificate, cert: &Certificate) -> Result<(), Error> {
    use der::Encode as _;
    let tbs = cert
        .tbs_certificate
        .to_der()
        .map_err(|e| Error::malformed("certificate", e))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, p256_key(issuer)?)
        .verify(&tbs, cert.signature.raw_bytes())
        .map_err(|_| {
            Error::Chain(format!(
                "certificate signature failure: `{}` does not sign `{}`",
                subject(issuer),
                subject(cert)
            ))
        })
}
