//! `keep attest` and `keep platform` end to end, on the real evidence of
//! `tests/vectors` (read-only; copied only into temporary collateral directories).

use std::path::{Path, PathBuf};

use crate::common::{KEEP_ERROR, Keep, repo_root};

const REJECTED: i32 = 1;

fn vector(name: &str) -> PathBuf {
    let path = repo_root().join("tests/vectors").join(name);
    assert!(
        path.exists(),
        "missing vector {}: tests/vectors is part of the repository",
        path.display()
    );
    path
}

/// A collateral directory with the given vectors under the given names.
fn collateral(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
    let path = dir.join("collateral");
    std::fs::create_dir_all(&path).unwrap();
    for (source, name) in files {
        std::fs::copy(vector(source), path.join(name)).unwrap();
    }
    path
}

fn snp_collateral(dir: &Path) -> PathBuf {
    collateral(
        dir,
        &[
            ("sev-snp/trustee/test-vcek.der", "vcek.der"),
            ("sev-snp/trustee/milan_ask_ark_asvk.pem", "milan.pem"),
        ],
    )
}

fn attest(args: &[&str]) -> Keep {
    Keep::new().arg("attest").args(args)
}

#[test]
fn inspect_shows_kind_and_fields_without_verifying() {
    let done = attest(&["inspect"])
        .arg_path(&vector("sev-snp/trustee/test-report.bin"))
        .finish();
    done.expect_code(0);
    let out = done.stdout_text();
    assert!(
        out.contains("AMD SEV-SNP attestation report (NOT verified)"),
        "{out}"
    );
    assert!(out.contains("policy:            0x3001f"), "{out}");

    let done = attest(&["inspect", "--json"])
        .arg_path(&vector("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat"))
        .finish();
    done.expect_code(0);
    let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(json["tee"], "tdx");
    assert_eq!(json["measurements"]["mrtd"].as_str().unwrap().len(), 96);
}

#[test]
fn verify_snp_with_collateral_policy_and_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = snp_collateral(tmp.path());
    let report = vector("sev-snp/trustee/test-report.bin");
    let verify = |extra: &[&str]| {
        attest(&["verify", "--at", "2025-06-01T00:00:00Z", "--collateral"])
            .arg_path(&dir)
            .args(extra)
            .arg_path(&report)
            .finish()
    };
    let done = verify(&[]);
    done.expect_code(0);
    assert!(done.stdout_text().contains("product:           Milan"));

    let json: serde_json::Value = serde_json::from_slice(&verify(&["--json"]).stdout).unwrap();
    let measurement = json["measurements"]["measurement"]
        .as_str()
        .unwrap()
        .to_owned();
    let accept = tmp.path().join("accept.toml");
    std::fs::write(
        &accept,
        format!("[sev-snp]\nmeasurement = [\"{measurement}\"]\nmin_tcb = {{ snp = 8 }}\n"),
    )
    .unwrap();
    verify(&["--policy", accept.to_str().unwrap()])
        .expect_code(0)
        .expect_stderr_contains("accepted by the policy");
    let reject = tmp.path().join("reject.toml");
    std::fs::write(&reject, "[sev-snp]\nmin_tcb = { snp = 9 }\n").unwrap();
    verify(&["--policy", reject.to_str().unwrap()])
        .expect_code(REJECTED)
        .expect_stderr_contains("[sev-snp].min_tcb.snp: 8 is below 9");

    // The VCEK has expired by 2031; without the VCEK nothing verifies.
    attest(&["verify", "--at", "2031-01-01T00:00:00Z", "--collateral"])
        .arg_path(&dir)
        .arg_path(&report)
        .finish()
        .expect_code(REJECTED)
        .expect_stderr_contains("is not valid at 2031-01-01T00:00:00Z");
    attest(&["verify"])
        .arg_path(&report)
        .finish()
        .expect_code(REJECTED)
        .expect_stderr_contains("no VCEK certificate was supplied: it is the VCEK of chip ")
        .expect_stderr_contains(
            "at TCB bootloader 3 tee 0 snp 8 microcode 115, served by AMD's KDS at \
             https://kdsintf.amd.com/vcek/v1/Milan/c38427a30d4c7af9",
        )
        .expect_stderr_contains(
            "?blSPL=03&teeSPL=00&snpSPL=08&ucodeSPL=115 or \
             https://kdsintf.amd.com/vcek/v1/Genoa/c38427a30d4c7af9",
        )
        .expect_stderr_contains("(put it in a directory given with --collateral DIR)");
    attest(&["verify"])
        .arg_path(&vector("sev-snp/trustee/test-vlek-report.bin"))
        .finish()
        .expect_code(REJECTED)
        .expect_stderr_contains(
            "no VLEK certificate was supplied: AMD's KDS does not serve VLEKs: the host (cloud \
             provider) supplies them with the report",
        );
}

#[test]
fn verify_rejects_tampered_evidence_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = snp_collateral(tmp.path());
    let mut bytes = std::fs::read(vector("sev-snp/trustee/test-report.bin")).unwrap();
    bytes[384] += 1;
    let tampered = tmp.path().join("tampered.bin");
    std::fs::write(&tampered, &bytes).unwrap();
    attest(&["verify", "--at", "2025-06-01T00:00:00Z", "--collateral"])
        .arg_path(&dir)
        .arg_path(&tampered)
        .finish()
        .expect_code(REJECTED)
        .expect_stderr_contains("TCB mismatch");
    let garbage = tmp.path().join("garbage.bin");
    std::fs::write(&garbage, b"\x00\x01not evidence").unwrap();
    attest(&["verify"])
        .arg_path(&garbage)
        .finish()
        .expect_code(REJECTED)
        .expect_stderr_contains("unsupported evidence");
}

#[test]
fn verify_tdx_quote_with_intel_collateral() {
    let tmp = tempfile::tempdir().unwrap();
    let quote = vector("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
    attest(&["verify", "--at", "2023-07-01T00:00:00Z"])
        .arg_path(&quote)
        .finish()
        .expect_code(0);
    let dir = collateral(
        tmp.path(),
        &[
            ("tdx/go-tdx-guest/sample_tcbInfo_response", "tcb_info.json"),
            (
                "tdx/go-tdx-guest/sample_qeIdentity_response",
                "qe_identity.json",
            ),
            ("tdx/go-tdx-guest/rootcrl.der", "root_ca_crl.der"),
            ("tdx/go-tdx-guest/pckcrl", "pck_crl.der"),
        ],
    );
    let chain = [
        std::fs::read_to_string(vector("sgx/dcap-rs/tcb_signing_cert.pem")).unwrap(),
        std::fs::read_to_string(vector(
            "sgx/dcap-rs/Intel_SGX_Provisioning_Certification_RootCA.pem",
        ))
        .unwrap(),
    ]
    .concat();
    std::fs::write(dir.join("tcb_signing_chain.pem"), chain).unwrap();
    let done = attest(&[
        "verify",
        "--json",
        "--at",
        "2023-07-01T00:00:00Z",
        "--collateral",
    ])
    .arg_path(&dir)
    .arg_path(&quote)
    .finish();
    done.expect_code(0);
    let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(json["tcb_status"], "not-supported");
    // An incomplete collateral directory is named as such.
    std::fs::remove_file(dir.join("pck_crl.der")).unwrap();
    attest(&["verify", "--at", "2023-07-01T00:00:00Z", "--collateral"])
        .arg_path(&dir)
        .arg_path(&quote)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("pck_crl.der");
}

#[test]
fn unusable_inputs_are_keep_errors() {
    let tmp = tempfile::tempdir().unwrap();
    attest(&["verify", "/nonexistent/evidence.bin"])
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("cannot read /nonexistent/evidence.bin");
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[sev-snp]\nmin_tcb = { snp = \"high\" }\n").unwrap();
    attest(&["verify", "--policy"])
        .arg_path(&policy)
        .arg_path(&vector("sev-snp/trustee/test-report.bin"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("policy.toml:2");
    attest(&["verify", "--at", "yesterday"])
        .arg_path(&vector("sev-snp/trustee/test-report.bin"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("RFC 3339");
}

#[test]
fn platform_info_says_what_this_host_can_do() {
    let done = Keep::new().args(["platform", "info"]).finish();
    done.expect_code(0);
    assert!(
        done.stdout_text().contains("process  usable"),
        "{}",
        done.stdout_text()
    );

    // A simulated SEV-SNP guest with configfs-tsm.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("sys/kernel/config/tsm/report")).unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    std::fs::write(root.path().join("dev/sev-guest"), "").unwrap();
    let done = Keep::new()
        .env("KEEP_PLATFORM_ROOT", root.path().to_str().unwrap())
        .args(["platform", "info", "--json"])
        .finish();
    done.expect_code(0);
    let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(json["tee"], "sev-snp");
    let cvm = json["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "cvm")
        .unwrap();
    assert_eq!(cvm["usable"], true, "{cvm}");
    assert_eq!(json["auto"], "cvm", "what `keep run --backend auto` picks");
    // What the process backend's confinement can use on this kernel, each mechanism named.
    let names: Vec<&str> = json["confinement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "rlimits",
            "capabilities",
            "no-new-privs",
            "landlock",
            "seccomp"
        ]
    );
}

#[test]
fn enarx_certificate_requests_are_verified_with_their_evidence() {
    let done = attest(&["verify", "--json", "--at", "2023-02-01T00:00:00Z"])
        .arg_path(&vector(
            "sgx/enarx-steward/icelake.signed.tcb.crl.multi.xeon.csr",
        ))
        .finish();
    done.expect_code(0);
    let json: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
    assert_eq!(json["tee"], "sgx");
    assert_eq!(json["tcb_status"], "out-of-date");
    assert!(
        json["advisories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "INTEL-SA-00615")
    );

    let tmp = tempfile::tempdir().unwrap();
    let chain = collateral(
        tmp.path(),
        &[("sev-snp/enarx-steward/milan.pkipath", "milan.der")],
    );
    // A PkiPath is not a certificate file: the directory is refused with the file named.
    attest(&["verify", "--collateral"])
        .arg_path(&chain)
        .arg_path(&vector("sev-snp/enarx-steward/milan.signed.crl.csr"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("milan.der");
    // Its VCEK travels in the request; the built-in Milan ASK completes the chain.
    attest(&["verify", "--at", "2023-01-01T00:00:00Z"])
        .arg_path(&vector("sev-snp/enarx-steward/milan.signed.crl.csr"))
        .finish()
        .expect_code(0);
}
