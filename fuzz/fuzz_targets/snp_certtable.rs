//! The SEV-SNP certificate table a host returns with a report (configfs-tsm `auxblob`): any
//! bytes give certificates that lie inside the table, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certificates) = keep_attest::snp::certtable::parse(data) {
        assert!(certificates.iter().all(|c| c.der.len() <= data.len()));
    }
});
