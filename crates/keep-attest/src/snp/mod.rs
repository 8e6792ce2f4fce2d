//! AMD SEV-SNP: attestation reports (versions 2, 3 and 5) signed by a VCEK or a VLEK,
//! verified to AMD's built-in roots.
//!
//! The order of checks is deliberate: the certificate chain first (which key is trusted),
//! then the TCB the key was issued for against the TCB the report states (a report whose
//! TCB was changed is reported as such, not merely as a bad signature), then the signature
//! over the report's exact bytes.

pub mod certtable;
mod chain;
mod crl;
mod json;
mod report;
mod vek;

use std::collections::BTreeMap;
use std::time::SystemTime;

use x509_cert::Certificate;
use x509_cert::crl::CertificateList;

pub use chain::{Anchor as TestAnchor, issued_by_amd_root, verify as verify_chain};
pub use json::from_json;
pub use report::{REPORT_LEN, Report, SigningKey};
pub use vek::{Vek, VekTcb};

use crate::{Claims, Error, TcbStatus, TeeKind};

/// Verifies `report` at `at`. `certs` must hold the VCEK or VLEK that signed it and may hold
/// intermediates (ASK, ASVK) and roots; only AMD's built-in roots are trusted.
pub fn verify(report: &[u8], certs: &[Certificate], at: SystemTime) -> Result<Claims, Error> {
    verify_with_crls(report, certs, &[], None, at)
}

/// [`verify`], also checking the chain's intermediate against AMD's CRLs among `crls`
/// (signed by the ARK, current at `at`), and trusting the SEV-SNP root of `test_roots`
/// besides AMD's (the claims then say so).
pub fn verify_with_crls(
    report: &[u8],
    certs: &[Certificate],
    crls: &[CertificateList],
    test_roots: Option<&crate::TestRoots>,
    at: SystemTime,
) -> Result<Claims, Error> {
    let report = Report::from_bytes(report)?;
    let key = report.signing_key()?;
    let vek = find_vek(certs, key).map_err(|e| match e {
        Error::MissingCollateral(what) => Error::MissingCollateral(what + &where_to_get(&report)),
        e => e,
    })?;
    let test_anchor = test_roots.and_then(|roots| roots.snp.as_ref());
    let endorser = chain::verify_with_crls(&vek.cert, certs, crls, test_anchor, at)?;
    check_tcb(&report, &vek)?;
    if key == SigningKey::Vcek {
        check_chip(&report, &vek)?;
    }
    if !vek.verifies(report.signed_bytes(), &report.signature()) {
        return Err(Error::Signature(format!(
            "the report is not signed by the {} `{}`",
            key_name(key),
            crate::x509::subject(&vek.cert)
        )));
    }
    let mut claims = claims(&report, key, endorser.product);
    claims.insecure_test_root = endorser.test;
    Ok(claims)
}

/// The claims a report states, without verifying anything (for inspection).
pub fn unverified_claims(report: &[u8]) -> Result<Claims, Error> {
    let report = Report::from_bytes(report)?;
    let key = report.signing_key().unwrap_or(SigningKey::Vcek);
    Ok(claims(&report, key, "unknown (not verified)"))
}

fn key_name(key: SigningKey) -> &'static str {
    match key {
        SigningKey::Vcek => "VCEK",
        SigningKey::Vlek => "VLEK",
    }
}

/// The supplied certificate of the kind of key that signed the report.
fn find_vek(certs: &[Certificate], key: SigningKey) -> Result<Vek, Error> {
    let common_name = match key {
        SigningKey::Vcek => "CN=SEV-VCEK",
        SigningKey::Vlek => "CN=SEV-VLEK",
    };
    let cert = certs
        .iter()
        .find(|cert| {
            cert.tbs_certificate
                .subject
                .to_string()
                .split(',')
                .any(|rdn| rdn == common_name)
        })
        .ok_or_else(|| {
            Error::MissingCollateral(format!(
                "the report is signed by a {} but no {} certificate was supplied",
                key_name(key),
                key_name(key)
            ))
        })?;
    Vek::from_certificate(cert.clone())
}

/// Where the missing key certificate comes from, named exactly: the KDS URLs of the chip's
/// VCEK at its reported TCB, or why the KDS cannot serve it.
fn where_to_get(report: &Report) -> String {
    match kds_vcek_of(report) {
        Ok(candidates) => {
            let tcb = &report.fields.reported_tcb;
            let urls: Vec<String> = candidates
                .iter()
                .map(|c| format!("{KDS_URL}{}", c.path))
                .collect();
            format!(
                ": it is the VCEK of chip {} at TCB bootloader {} tee {} snp {} microcode {}, \
                 served by AMD's KDS at {}",
                hex::encode(report.fields.chip_id),
                tcb.bootloader,
                tcb.tee,
                tcb.snp,
                tcb.microcode,
                urls.join(" or "),
            )
        }
        Err(Error::MissingCollateral(why)) => format!(": {why}"),
        Err(_) => String::new(),
    }
}

/// Where AMD's Key Distribution Service serves the VCEK of a report's chip at its reported
/// TCB, for each product line it may be (a version-2 report does not say which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdsVcek {
    /// `Milan`, `Genoa` or `Turin`.
    pub product: &'static str,
    /// The path and query under the KDS base URL: `/vcek/v1/PRODUCT/HWID?blSPL=…`.
    pub path: String,
    /// A file name naming this certificate (product, chip, TCB), for a collateral cache.
    pub file_name: String,
}

/// AMD's Key Distribution Service.
pub const KDS_URL: &str = "https://kdsintf.amd.com";

/// The KDS locations of the VCEK that signs `report`. Refused for a report signed by a VLEK
/// (not served by the KDS) or with a masked chip ID (it cannot be looked up).
pub fn kds_vcek(report: &[u8]) -> Result<Vec<KdsVcek>, Error> {
    kds_vcek_of(&Report::from_bytes(report)?)
}

fn kds_vcek_of(report: &Report) -> Result<Vec<KdsVcek>, Error> {
    if report.signing_key()? != SigningKey::Vcek {
        return Err(Error::MissingCollateral(
            "AMD's KDS does not serve VLEKs: the host (cloud provider) supplies them with the \
             report"
                .into(),
        ));
    }
    let fields = &report.fields;
    if fields.chip_id.iter().all(|b| *b == 0) {
        return Err(Error::MissingCollateral(
            "the report masks its chip ID, so its VCEK cannot be looked up".into(),
        ));
    }
    let tcb = &fields.reported_tcb;
    let query = format!(
        "blSPL={:02}&teeSPL={:02}&snpSPL={:02}&ucodeSPL={:02}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    );
    let tcb_name = format!(
        "{}-{}-{}-{}",
        tcb.bootloader, tcb.tee, tcb.snp, tcb.microcode
    );
    let full = hex::encode(fields.chip_id);
    // Turin's VCEKs are indexed by the first 8 bytes of the chip ID, and its TCB has an FMC
    // version.
    let turin = tcb.fmc.map(|fmc| {
        let short = hex::encode(&fields.chip_id[..8]);
        KdsVcek {
            product: "Turin",
            path: format!("/vcek/v1/Turin/{short}?fmcSPL={fmc:02}&{query}"),
            file_name: format!("vcek-Turin-{short}-{fmc}-{tcb_name}.der"),
        }
    });
    Ok(["Milan", "Genoa"]
        .into_iter()
        .map(|product| KdsVcek {
            product,
            path: format!("/vcek/v1/{product}/{full}?{query}"),
            file_name: format!("vcek-{product}-{full}-{tcb_name}.der"),
        })
        .chain(turin)
        .collect())
}

/// The report's REPORTED_TCB must be the TCB the key was issued for.
fn check_tcb(report: &Report, vek: &Vek) -> Result<(), Error> {
    let reported = &report.fields.reported_tcb;
    let pairs = [
        ("bootloader", reported.bootloader, vek.tcb.bootloader),
        ("tee", reported.tee, vek.tcb.tee),
        ("snp", reported.snp, vek.tcb.snp),
        ("microcode", reported.microcode, vek.tcb.microcode),
    ];
    let mut differences: Vec<String> = pairs
        .iter()
        .filter(|(_, report, cert)| report != cert)
        .map(|(name, report, cert)| {
            format!("{name} {report} in the report, {cert} in the certificate")
        })
        .collect();
    if let (Some(report_fmc), Some(cert_fmc)) = (reported.fmc, vek.tcb.fmc)
        && report_fmc != cert_fmc
    {
        differences.push(format!(
            "fmc {report_fmc} in the report, {cert_fmc} in the certificate"
        ));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(Error::TcbMismatch(format!(
            "the report's reported TCB is not the TCB its key was issued for: {}",
            differences.join(", ")
        )))
    }
}

/// A VCEK belongs to one chip: its HWID must be the report's CHIP_ID (unless the guest
/// masked the chip ID, which zeroes it).
fn check_chip(report: &Report, vek: &Vek) -> Result<(), Error> {
    let chip_id = &report.fields.chip_id[..];
    match &vek.hw_id {
        Some(hw_id) if chip_id.iter().any(|&b| b != 0) && hw_id[..] != *chip_id => {
            Err(Error::Chain(format!(
                "the VCEK was issued for chip {} but the report comes from chip {}",
                hex::encode(hw_id),
                hex::encode(chip_id)
            )))
        }
        _ => Ok(()),
    }
}

fn claims(report: &Report, key: SigningKey, product: &str) -> Claims {
    let fields = &report.fields;
    let mut tcb = BTreeMap::from([
        (
            "bootloader".to_owned(),
            u64::from(fields.reported_tcb.bootloader),
        ),
        ("tee".to_owned(), u64::from(fields.reported_tcb.tee)),
        ("snp".to_owned(), u64::from(fields.reported_tcb.snp)),
        (
            "microcode".to_owned(),
            u64::from(fields.reported_tcb.microcode),
        ),
    ]);
    if let Some(fmc) = fields.reported_tcb.fmc {
        tcb.insert("fmc".to_owned(), u64::from(fmc));
    }
    Claims {
        tee: TeeKind::SevSnp,
        measurements: BTreeMap::from([("measurement".to_owned(), hex::encode(fields.measurement))]),
        report_data: hex::encode(fields.report_data),
        host_data: Some(hex::encode(fields.host_data)),
        signers: BTreeMap::from([
            (
                "id_key_digest".to_owned(),
                hex::encode(fields.id_key_digest),
            ),
            (
                "author_key_digest".to_owned(),
                hex::encode(fields.author_key_digest),
            ),
        ]),
        tcb,
        tcb_status: TcbStatus::NotEvaluated,
        insecure_test_root: false,
        debug: report.debug(),
        advisories: Vec::new(),
        details: BTreeMap::from([
            ("version".to_owned(), fields.version.to_string()),
            ("product".to_owned(), product.to_owned()),
            ("signing_key".to_owned(), key_name(key).to_owned()),
            (
                "policy".to_owned(),
                format!("{:#x}", u64::from(fields.policy)),
            ),
            ("guest_svn".to_owned(), fields.guest_svn.to_string()),
            ("vmpl".to_owned(), fields.vmpl.to_string()),
            ("family_id".to_owned(), hex::encode(fields.family_id)),
            ("image_id".to_owned(), hex::encode(fields.image_id)),
            ("chip_id".to_owned(), hex::encode(fields.chip_id)),
        ]),
    }
}
