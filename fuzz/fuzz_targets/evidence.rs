//! Any evidence file (SEV-SNP report or JSON, DCAP quote, Enarx certificate request):
//! recognised or refused, inspected or refused, and verification fails cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((kind, claims)) = keep_attest::inspect(data) {
        let _ = (kind.describe(), claims.to_json());
    }
    let endorsements = keep_attest::Endorsements::default();
    if let Err(error) = keep_attest::verify(data, &endorsements, std::time::SystemTime::now()) {
        let _ = error.to_string();
    }
});
