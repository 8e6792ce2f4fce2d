//! Attestation policies: any text gives a policy or a positioned error; a parsed policy
//! judges claims, workloads and fetches without panicking.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = keep_attest::Policy::parse(text, std::path::Path::new("fuzz.toml")) else {
        return;
    };
    let claims = keep_attest::Claims {
        tee: keep_attest::TeeKind::SevSnp,
        measurements: BTreeMap::from([("measurement".to_owned(), "00".repeat(48))]),
        report_data: "00".repeat(64),
        host_data: Some("00".repeat(32)),
        signers: BTreeMap::new(),
        tcb: BTreeMap::from([("snp".to_owned(), 8)]),
        tcb_status: keep_attest::TcbStatus::NotEvaluated,
        debug: true,
        insecure_test_root: false,
        advisories: vec!["INTEL-SA-00000".to_owned()],
        details: BTreeMap::new(),
    };
    if let Err(rejection) = policy.evaluate(&claims, Some(&[0; 64])) {
        assert!(!rejection.0.is_empty());
        let _ = rejection.to_string();
    }
    let signed_by = vec!["sha256:00".to_owned()];
    let package = keep_attest::policy::PackageFacts {
        repository: "registry.example/app",
        manifest_digest: "sha256:00",
        signed_by: &signed_by,
    };
    for package in [None, Some(&package)] {
        if let Err(rejection) = policy.evaluate_workload(&[7; 32], &["a.example".to_owned()], package) {
            assert!(!rejection.0.is_empty());
        }
    }
    for pinned in [None, Some("sha256:00")] {
        if let Err(rejection) = policy.evaluate_fetch("registry.example/app", pinned, &[]) {
            assert!(!rejection.0.is_empty());
        }
    }
});
