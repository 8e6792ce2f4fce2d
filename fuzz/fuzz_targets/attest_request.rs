//! Any body sent to the Steward's `POST /v1/attest`: the request, its `id-pe-cmw` evidence and
//! names are parsed and verified or refused with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let endorsements = keep_attest::Endorsements::default();
    match keep_attest::request::verify(data, &endorsements, std::time::SystemTime::now()) {
        Ok(verified) => {
            let _ = verified.claims.to_json();
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
