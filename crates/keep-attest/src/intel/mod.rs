//! Intel SGX and TDX: DCAP ECDSA quotes verified to the Intel SGX Root CA, and evaluated
//! against Intel's TCB collateral when it is supplied.

mod collateral;
pub mod eventlog;
mod quote;
mod tcb;
mod tdreport;

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::SystemTime;

use dcap_qvl::quote::Report;
use der::Decode as _;
use x509_cert::Certificate;

pub use collateral::{Collateral, FILES as COLLATERAL_FILES};
pub use quote::ParsedQuote;
pub use tcb::evaluate_sgx;
pub use tdreport::{TDREPORT_LEN, TdReport};

use crate::{Claims, Error, TcbStatus, TeeKind};

/// Intel's production root of the SGX/TDX PKI (copied from `dcap-qvl`, which does not
/// export it). SHA-256 fingerprint 44:A0:19:6B:...:B6:74:D3.
const INTEL_SGX_ROOT_CA_DER: &[u8] = include_bytes!("intel_sgx_root_ca.der");

/// The Intel SGX Root CA.
pub fn production_root() -> &'static Certificate {
    static ROOT: OnceLock<Certificate> = OnceLock::new();
    ROOT.get_or_init(|| {
        // A constant of this crate; `root_ca_parses` tests it.
        Certificate::from_der(INTEL_SGX_ROOT_CA_DER).unwrap_or_else(|_| unreachable!())
    })
}

/// Verifies a quote at `at` against Intel's root, or the Intel root of `test_roots` when
/// the quote's PCK chain ends there (the claims then say so); with `collateral`, also
/// evaluates the TCB.
pub fn verify(
    quote: &[u8],
    collateral: Option<&Collateral>,
    test_roots: Option<&crate::TestRoots>,
    at: SystemTime,
) -> Result<Claims, Error> {
    let parsed = ParsedQuote::parse(quote)?;
    let pck_chain = match collateral.and_then(|c| c.pck_chain.as_deref()) {
        Some(pem) => crate::load_certificates(pem.as_bytes())?,
        None => parsed.pck_chain()?,
    };
    let test_root = test_roots
        .and_then(|roots| roots.intel.as_ref())
        .filter(|root| pck_chain.last() == Some(*root));
    let root = test_root.unwrap_or_else(|| production_root());
    parsed.verify_signatures(&pck_chain, root, at)?;
    let (tcb_status, advisories) = match collateral {
        Some(collateral) => collateral::evaluate(quote, collateral, &pck_chain, root, at)?,
        None => (TcbStatus::NotEvaluated, Vec::new()),
    };
    let mut claims = claims(&parsed, tcb_status, advisories);
    claims.insecure_test_root = test_root.is_some();
    Ok(claims)
}

/// What Intel's PCS indexes a quote's TCB collateral by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PcsKey {
    /// `sgx` or `tdx`: which API the TCB info and QE identity come from.
    pub tee: &'static str,
    /// The platform's FMSPC (upper-case hex), from its PCK certificate.
    pub fmspc: String,
    /// `platform` or `processor`: the PCK CA whose CRL applies.
    pub ca: &'static str,
}

/// The PCS key of `quote` (unverified: to find the collateral its verification needs).
pub fn pcs_key(quote: &[u8]) -> Result<PcsKey, Error> {
    let parsed = ParsedQuote::parse(quote)?;
    fn unreadable(e: impl std::fmt::Display) -> Error {
        Error::malformed("PCK certificate", format!("{e:#}"))
    }
    let fmspc = dcap_qvl::intel::quote_fmspc(&parsed.quote).map_err(unreadable)?;
    let ca = match dcap_qvl::intel::quote_ca(&parsed.quote).map_err(unreadable)? {
        dcap_qvl::config::PckCa::Platform => "platform",
        dcap_qvl::config::PckCa::Processor => "processor",
    };
    Ok(PcsKey {
        tee: if parsed.quote.header.is_sgx() {
            "sgx"
        } else {
            "tdx"
        },
        fmspc: hex::encode_upper(fmspc),
        ca,
    })
}

/// The claims a quote states, without verifying anything (for inspection).
pub fn unverified_claims(quote: &[u8]) -> Result<Claims, Error> {
    Ok(claims(
        &ParsedQuote::parse(quote)?,
        TcbStatus::NotEvaluated,
        Vec::new(),
    ))
}

fn claims(parsed: &ParsedQuote, tcb_status: TcbStatus, advisories: Vec<String>) -> Claims {
    let header = &parsed.quote.header;
    let mut tcb = BTreeMap::from([
        ("qe_svn".to_owned(), u64::from(header.qe_svn)),
        ("pce_svn".to_owned(), u64::from(header.pce_svn)),
    ]);
    let mut details = BTreeMap::from([("version".to_owned(), header.version.to_string())]);
    let entry = |name: &str, bytes: &[u8]| (name.to_owned(), hex::encode(bytes));
    // What differs between SGX and TDX; the rest is common.
    let (tee, measurements, report_data, host_data, signers, debug) = match &parsed.quote.report {
        Report::SgxEnclave(report) => {
            tcb.insert("isv_svn".to_owned(), u64::from(report.isv_svn));
            details.extend([
                entry("cpu_svn", &report.cpu_svn),
                entry("attributes", &report.attributes),
                ("isv_prod_id".to_owned(), report.isv_prod_id.to_string()),
            ]);
            (
                TeeKind::Sgx,
                BTreeMap::from([entry("mrenclave", &report.mr_enclave)]),
                &report.report_data,
                None,
                BTreeMap::from([entry("mrsigner", &report.mr_signer)]),
                // ATTRIBUTES.DEBUG
                report.attributes[0] & 0x02 != 0,
            )
        }
        Report::TD10(_) | Report::TD15(_) | Report::TD15Ex(_) => {
            let Some(td) = parsed.quote.report.as_td10() else {
                unreachable!("every TD report has a TD 1.0 base")
            };
            for (index, svn) in td.tee_tcb_svn.iter().enumerate() {
                tcb.insert(format!("tee_tcb_svn{index:02}"), u64::from(*svn));
            }
            details.extend([
                entry("mrseam", &td.mr_seam),
                entry("td_attributes", &td.td_attributes),
                entry("xfam", &td.xfam),
                entry("mrowner", &td.mr_owner),
                entry("mrownerconfig", &td.mr_owner_config),
            ]);
            (
                TeeKind::Tdx,
                BTreeMap::from([
                    entry("mrtd", &td.mr_td),
                    entry("rtmr0", &td.rt_mr0),
                    entry("rtmr1", &td.rt_mr1),
                    entry("rtmr2", &td.rt_mr2),
                    entry("rtmr3", &td.rt_mr3),
                ]),
                &td.report_data,
                Some(&td.mr_config_id[..]),
                BTreeMap::from([entry("mrsignerseam", &td.mr_signer_seam)]),
                // TD_ATTRIBUTES.DEBUG (bit 0)
                td.td_attributes[0] & 0x01 != 0,
            )
        }
    };
    Claims {
        tee,
        measurements,
        report_data: hex::encode(report_data),
        host_data: host_data.map(hex::encode),
        signers,
        tcb,
        tcb_status,
        insecure_test_root: false,
        debug,
        advisories,
        details,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_ca_parses() {
        assert!(
            super::production_root()
                .tbs_certificate
                .subject
                .to_string()
                .contains("CN=Intel SGX Root CA")
        );
    }
}
