//! SEV-SNP reports: any bytes parse or are refused with a reason; parsed reports give
//! claims, and verification without certificates fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = keep_attest::snp::Report::from_bytes(data) {
        let _ = report.signing_key();
        let _ = report.signature();
        let claims = keep_attest::snp::unverified_claims(data).expect("a parsed report has claims");
        let _ = claims.to_json();
    }
    let error = keep_attest::snp::verify(data, &[], std::time::SystemTime::UNIX_EPOCH).unwrap_err();
    let _ = error.to_string();
});
