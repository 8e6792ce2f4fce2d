//! SGX TCB evaluation from a TCB info document alone (no QE identity): its signature by
//! Intel's TCB signing key, and the platform's TCB level chosen by Intel's rule from the
//! PCK certificate's CPUSVN and PCESVN. Enarx's evidence carried exactly this, so Keep
//! evaluates it without `dcap-qvl`'s full collateral path (which requires a QE identity).

use std::time::SystemTime;

use dcap_qvl::TcbInfo;
use der::Encode as _;
use x509_cert::Certificate;

use super::collateral::{signed, status_from_intel};
use super::quote::{p256_key, signs_p256};
use crate::x509::check_validity;
use crate::{Error, TcbStatus};

/// The TCB status and advisories of the platform whose PCK certificate is `pck`, from the
/// PCS TCB info `response` signed by the first certificate of `chain`, which must be issued
/// by `root`.
pub fn evaluate_sgx(
    response: &str,
    chain: &[Certificate],
    pck: &Certificate,
    root: &Certificate,
    at: SystemTime,
) -> Result<(TcbStatus, Vec<String>), Error> {
    let signed = signed(response, "tcbInfo")?;
    let signer = chain
        .first()
        .ok_or_else(|| Error::MissingCollateral("no TCB signing certificate".into()))?;
    signs_p256(root, signer)?;
    check_validity(signer, at)?;
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        p256_key(signer)?,
    )
    .verify(signed.body.as_bytes(), &signed.signature)
    .map_err(|_| {
        Error::Collateral("the TCB info is not signed by Intel's TCB signing key".into())
    })?;
    let mut info: TcbInfo =
        serde_json::from_str(&signed.body).map_err(|e| Error::malformed("TCB info", e))?;
    let pck_der = pck
        .to_der()
        .map_err(|e| Error::malformed("PCK certificate", e))?;
    let platform = dcap_qvl::intel::parse_pck_extension(&pck_der)
        .map_err(|e| Error::malformed("PCK certificate", format!("SGX extension: {e:#}")))?;
    if !info
        .fmspc
        .eq_ignore_ascii_case(&hex::encode(platform.fmspc))
    {
        return Err(Error::Collateral(format!(
            "the TCB info is for FMSPC {} but the platform's is {}",
            info.fmspc,
            hex::encode(platform.fmspc)
        )));
    }
    // Intel's order: highest SGX components first, then highest PCE SVN; the platform's
    // level is the first one it meets in every component.
    let components = |level: &dcap_qvl::TcbLevel| -> Vec<u8> {
        level.tcb.sgx_components.iter().map(|c| c.svn).collect()
    };
    info.tcb_levels
        .sort_by_key(|level| std::cmp::Reverse((components(level), level.tcb.pce_svn)));
    let level = info
        .tcb_levels
        .iter()
        .find(|level| {
            components(level)
                .iter()
                .zip(platform.cpu_svn.iter())
                .all(|(needed, has)| has >= needed)
                && platform.pce_svn >= level.tcb.pce_svn
        })
        .ok_or_else(|| {
            Error::Collateral("the platform's TCB is below every level of the TCB info".into())
        })?;
    Ok((
        status_from_intel(&level.tcb_status.to_string())?,
        level.advisory_ids.clone(),
    ))
}
