//! TDX event logs (CCEL): any bytes parse or are refused; parsed logs replay.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = keep_attest::intel::eventlog::parse(data) {
        for event in &events {
            let _ = (event.type_name(), event.digest_matches_data());
        }
        let _ = keep_attest::intel::eventlog::replay(&events);
    }
});
