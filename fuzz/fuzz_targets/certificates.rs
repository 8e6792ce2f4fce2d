//! Certificates (PEM or DER) and AMD's VCEK/VLEK extensions: parsed or refused, never a
//! panic; parsed ones go through the AMD chain check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(certs) = keep_attest::load_certificates(data) else {
        return;
    };
    for cert in &certs {
        if let Ok(vek) = keep_attest::snp::Vek::from_certificate(cert.clone()) {
            let _ = vek.verifies(data, &[0; 96]);
        }
        let _ = keep_attest::snp::issued_by_amd_root(cert);
        let _ = keep_attest::snp::verify_chain(cert, &certs, std::time::SystemTime::now());
    }
});
