//! Verification time per SEV-SNP report and per TDX quote, with certificates and collateral
//! already in memory (as a verifier with a collateral cache has them). Run through
//! `scripts/bench --attest`, pinned to one core; target ≤ 5 ms each.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use keep_attest::intel::{self, Collateral};
use keep_attest::{load_certificates, snp};

fn vector(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(vector(name)).expect("text vector")
}

fn verification(c: &mut Criterion) {
    let report = vector("sev-snp/trustee/test-report.bin");
    let certs: Vec<_> = [
        "sev-snp/trustee/test-vcek.der",
        "sev-snp/trustee/milan_ask_ark_asvk.pem",
    ]
    .iter()
    .flat_map(|name| load_certificates(&vector(name)).expect("certificates"))
    .collect();
    // 2025-06-01T00:00:00Z and 2023-07-01T00:00:00Z: when the vectors were valid.
    let snp_time = UNIX_EPOCH + Duration::from_secs(1_748_736_000);
    let tdx_time = UNIX_EPOCH + Duration::from_secs(1_688_169_600);
    snp::verify(&report, &certs, snp_time).expect("the SNP vector verifies");
    c.bench_function("sev-snp report (VCEK chain to the Milan ARK)", |b| {
        b.iter(|| snp::verify(black_box(&report), &certs, snp_time))
    });

    let quote = vector("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    c.bench_function("tdx quote v4 (signatures and PCK chain)", |b| {
        b.iter(|| intel::verify(black_box(&quote), None, None, tdx_time))
    });
    let collateral = Collateral {
        tcb_info: text("tdx/go-tdx-guest/sample_tcbInfo_response"),
        qe_identity: text("tdx/go-tdx-guest/sample_qeIdentity_response"),
        tcb_signing_chain: text("sgx/dcap-rs/tcb_signing_cert.pem")
            + &text("sgx/dcap-rs/Intel_SGX_Provisioning_Certification_RootCA.pem"),
        root_ca_crl: vector("tdx/go-tdx-guest/rootcrl.der"),
        pck_crl: vector("tdx/go-tdx-guest/pckcrl"),
        pck_chain: None,
    };
    intel::verify(&quote, Some(&collateral), None, tdx_time).expect("the TDX vector verifies");
    c.bench_function(
        "tdx quote v4 with collateral (TCB info, QE identity, CRLs)",
        |b| b.iter(|| intel::verify(black_box(&quote), Some(&collateral), None, tdx_time)),
    );
}

criterion_group!(benches, verification);
criterion_main!(benches);
