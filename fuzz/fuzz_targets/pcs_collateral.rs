//! Intel collateral as a PCS or PCCS serves it (TCB info and QE identity JSON, CRLs): any
//! answers give the time the collateral is due for renewal, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Four parts, separated by NUL bytes: TCB info, QE identity, root CA CRL, PCK CRL.
    let mut parts = data.splitn(4, |b| *b == 0);
    let mut next = || parts.next().unwrap_or_default().to_vec();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let collateral = keep_attest::intel::Collateral {
        tcb_info: text(next()),
        qe_identity: text(next()),
        tcb_signing_chain: String::new(),
        root_ca_crl: next(),
        pck_crl: next(),
        pck_chain: None,
    };
    let _ = collateral.next_update();
});
