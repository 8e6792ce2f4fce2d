//! Keeps in simulated confidential VMs, end to end: `keep-tee-sim` answers configfs-tsm like
//! an SEV-SNP or TDX guest's kernel with evidence signed under test PKIs, the Steward trusts
//! them only with `--insecure-test-roots`, and everything else is the real path: the Keep's
//! evidence, the Steward's verification and policy, the certificate, `keep verify`, openssl.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::net::*;
use crate::common::steward::*;
use crate::common::tee::{Collateral, Guest, MEASUREMENT, test_roots_flag};
use crate::common::{GUESTS, KEEP_ERROR};

/// A policy pinning the simulated VM (measurement, TCB) and listing `digests`.
fn snp_policy(dir: &Path, digests: &[&str]) -> std::path::PathBuf {
    let mut text = format!(
        "[sev-snp]\nmeasurement = [\"{MEASUREMENT}\"]\nmin_tcb = {{ bootloader = 9, snp = 23, \
         microcode = 72 }}\n\n"
    );
    for digest in digests {
        text += &format!("[[workload]]\ndigest = \"{digest}\"\n\n");
    }
    write_config(dir, "policy.toml", &text)
}

fn steward_args(policy: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = test_roots_flag().to_vec();
    args.extend(["--policy".to_owned(), policy.display().to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

#[test]
fn an_snp_keep_is_certified_with_its_tee_measurement_and_workload() {
    let guest = Guest::snp(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let TlsKeep {
        ca_dir,
        ca,
        program,
        config,
        digest: expected,
    } = TlsKeep::new(tmp.path(), "");
    let policy = snp_policy(tmp.path(), &[&expected]);
    let steward = StewardProcess::start(&ca_dir, &steward_args(&policy, &["--offline"]));
    assert!(
        steward
            .log_with("--insecure-test-roots")
            .contains("TEST roots SEV-SNP ARK `CN=ARK-Genoa"),
        "the Steward must say loudly that it trusts test roots"
    );
    point_to(&config, &steward);

    let keep = Served::start_on(Some(guest.root()), &config, &program, &[], 1);
    steward.expect_issued("sev-snp", &expected);
    let stderr = keep.stderr();
    assert!(
        stderr.contains(&format!(
            "certificate for workload {expected} in TEE sev-snp"
        )) && stderr
            .contains("warning: the Steward accepted this Keep's evidence under a TEST root"),
        "{stderr}"
    );

    // The relying party sees the TEE, the measurement, the workload and the warning.
    let target = keep.addr("ingest").to_string();
    let ca_arg = ca.to_str().unwrap();
    let (code, stdout, stderr) = keep_verify(&[
        "--ca",
        ca_arg,
        "--tee",
        "snp",
        "--measurement",
        MEASUREMENT,
        "--workload-digest",
        &expected,
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("tee:             sev-snp"), "{stdout}");
    assert!(
        stdout.contains(&format!("measurement: {MEASUREMENT}")),
        "{stdout}"
    );
    assert!(stdout.contains("tcb.snp: 23"), "{stdout}");
    assert!(
        stdout.contains("WARNING: the evidence chained to a TEST root"),
        "{stdout}"
    );
    assert!(stderr.contains("warning: the Keep's evidence chained to a TEST root"));
    let (code, _, stderr) =
        keep_verify(&["--ca", ca_arg, "--measurement", &"00".repeat(48), &target]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "expectation failed: measurement is {MEASUREMENT}, expected {}",
            "00".repeat(48)
        )),
        "{stderr}"
    );

    // openssl, as any TLS client, verifies the Keep's certificate with the Steward's CA
    // (standard input is empty: it quits after the handshake).
    let output = Command::new("openssl")
        .args(["s_client", "-verify_return_error", "-CAfile"])
        .arg(&ca)
        .args(["-connect", &target])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn snp_keeps_talk_mtls_with_tee_certificates() {
    let guest = Guest::snp(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let policy = snp_policy(tmp.path(), &[]);
    let tee_rules = std::fs::read_to_string(policy).unwrap();
    let mut flags = test_roots_flag().to_vec();
    flags.push("--offline".to_owned());
    crate::steward::keeps_talk_mtls(Some(guest.root()), &flags, &tee_rules);
}

#[test]
fn the_steward_refuses_vms_outside_its_policy_and_evidence_that_does_not_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let program = GUESTS.module("hello");
    let config = keep_config(tmp.path(), "Keep.toml", &ca, "", "", "");
    let other = keep_config(tmp.path(), "other.toml", &ca, "args = [\"x\"]\n", "", "");
    let expected = digest(&program, &config);
    let other_digest = digest(&program, &other);
    let policy = snp_policy(tmp.path(), &[&expected]);
    let steward = StewardProcess::start(&ca_dir, &steward_args(&policy, &["--offline"]));
    point_to(&config, &steward);
    point_to(&other, &steward);

    let other_measurement = "ab".repeat(48);
    let cases: [(&[&str], &Path, String); 5] = [
        (
            &["--measurement", &other_measurement],
            &config,
            format!("[sev-snp].measurement: {other_measurement} is not one of {MEASUREMENT}"),
        ),
        (&["--debug"], &config, "[sev-snp].debug".to_owned()),
        (
            &["--tcb", "9,0,22,72"],
            &config,
            "[sev-snp].min_tcb.snp: 22 is below 23".to_owned(),
        ),
        (
            &["--foreign-vcek", "chip-9"],
            &config,
            "the VCEK was issued for chip".to_owned(),
        ),
        (
            &[],
            &other,
            format!("workload {other_digest} is not in the policy"),
        ),
    ];
    for (sim_args, config, reason) in cases {
        let guest = Guest::snp(sim_args);
        let (code, stderr) = run_to_end(Some(guest.root()), config, &program);
        assert_eq!(code, KEEP_ERROR, "{sim_args:?}: {stderr}");
        assert!(
            stderr.contains("the Steward refused the request (403)") && stderr.contains(&reason),
            "{sim_args:?}: expected `{reason}` in:\n{stderr}"
        );
        assert!(
            !stderr.contains("Hello from a Keep"),
            "{sim_args:?}: the workload ran"
        );
    }

    // A host that answers every request with a report it made earlier (for another key):
    // the Keep itself refuses to send it.
    let guest = Guest::snp(&["--replay"]);
    let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
    assert!(
        stderr.contains("does not carry the requested report data"),
        "{stderr}"
    );

    // And the Steward is still fine: a VM in policy gets its certificate.
    let guest = Guest::snp(&[]);
    let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_vcek_the_host_does_not_supply_is_fetched_from_the_kds_through_429_with_its_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let program = GUESTS.module("hello");
    let config = keep_config(tmp.path(), "Keep.toml", &ca, "", "", "");
    let expected = digest(&program, &config);
    let policy = snp_policy(tmp.path(), &[&expected]);
    let guest = Guest::snp(&["--no-certs"]);

    // A KDS that cannot be reached: the refusal names the chip's VCEK and where it is.
    let cache = tmp.path().join("collateral");
    let steward = StewardProcess::start(
        &ca_dir,
        &steward_args(
            &policy,
            &[
                "--kds-url",
                "https://127.0.0.1:1",
                "--collateral-cache",
                cache.to_str().unwrap(),
            ],
        ),
    );
    point_to(&config, &steward);
    let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
    assert!(
        stderr.contains("the Steward refused the request") && stderr.contains("VCEK"),
        "{stderr}"
    );
    drop(steward);

    // A KDS that answers 429 first: the Steward waits as told, gets the VCEK, and checks
    // the chain against the product line's CRL, which it fetches too.
    let kds = Collateral::start(tmp.path(), &["--throttle", "1"]);
    let with_kds = |kds: &Collateral, cache: &Path| {
        steward_args(
            &policy,
            &[
                "--kds-url",
                &kds.url,
                "--kds-ca",
                kds.ca.to_str().unwrap(),
                "--collateral-cache",
                cache.to_str().unwrap(),
            ],
        )
    };
    let steward = StewardProcess::start(&ca_dir, &with_kds(&kds, &cache));
    point_to(&config, &steward);
    let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
    assert_eq!(code, 0, "{stderr}");
    let log = kds.log_when(|log| log.contains("/crl -> 200"));
    let requests: Vec<&str> = log.lines().filter(|l| l.contains("/vcek/v1/")).collect();
    assert!(requests.iter().any(|l| l.ends_with("-> 429")), "{log}");
    assert!(
        requests
            .iter()
            .any(|l| l.contains("/vcek/v1/Genoa/") && l.ends_with("ucodeSPL=72 -> 200")),
        "{log}"
    );
    assert!(
        requests
            .last()
            .unwrap()
            .contains("/vcek/v1/Genoa/crl -> 200"),
        "{log}"
    );
    drop(steward);

    // AMD revokes the ASK: its CRL lists it, and the Steward refuses the chain.
    let revoking = Collateral::start(tmp.path(), &["--revoke-ask"]);
    let fresh_cache = tmp.path().join("collateral-2");
    let steward = StewardProcess::start(&ca_dir, &with_kds(&revoking, &fresh_cache));
    point_to(&config, &steward);
    let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
    assert_eq!(code, KEEP_ERROR, "{stderr}");
    assert!(stderr.contains("is revoked by its ARK's CRL"), "{stderr}");
}

#[test]
fn a_tdx_keep_is_certified_with_its_mrtd_and_tcb_and_a_debug_td_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let TlsKeep {
        ca_dir,
        ca,
        program,
        config,
        digest: expected,
    } = TlsKeep::new(tmp.path(), "");
    let policy = write_config(
        tmp.path(),
        "policy.toml",
        &format!("[tdx]\nmrtd = [\"{MEASUREMENT}\"]\n\n[[workload]]\ndigest = \"{expected}\"\n"),
    );
    // The Steward fetches the platform's TCB info and QE identity from the simulated PCS.
    let pcs = Collateral::start(tmp.path(), &[]);
    let cache = tmp.path().join("collateral");
    let steward = StewardProcess::start(
        &ca_dir,
        &steward_args(
            &policy,
            &[
                "--pcs-url",
                &pcs.url,
                "--pcs-ca",
                pcs.ca.to_str().unwrap(),
                "--collateral-cache",
                cache.to_str().unwrap(),
            ],
        ),
    );
    point_to(&config, &steward);

    let guest = Guest::tdx(&[]);
    let keep = Served::start_on(Some(guest.root()), &config, &program, &[], 1);
    steward.expect_issued("tdx", &expected);
    let log = pcs.log_when(|log| log.contains("rootcacrl -> 200"));
    assert!(
        log.contains("GET /tdx/certification/v4/tcb?fmspc=00806F050000 -> 200"),
        "{log}"
    );
    let target = keep.addr("ingest").to_string();
    let (code, stdout, stderr) = keep_verify(&[
        "--ca",
        ca.to_str().unwrap(),
        "--tee",
        "tdx",
        "--measurement",
        MEASUREMENT,
        "--workload-digest",
        &expected,
        &target,
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains(&format!("mrtd: {MEASUREMENT}")), "{stdout}");
    assert!(stdout.contains("tcb status:      up-to-date"), "{stdout}");
    assert!(
        stdout.contains("WARNING: the evidence chained to a TEST root"),
        "{stdout}"
    );
    drop(keep);

    let other_mrtd = "cd".repeat(48);
    for (args, reason) in [
        (vec!["--debug"], "[tdx].debug".to_owned()),
        (
            vec!["--measurement", &other_mrtd],
            format!("[tdx].mrtd: {other_mrtd} is not one of {MEASUREMENT}"),
        ),
    ] {
        let guest = Guest::tdx(&args);
        let (code, stderr) = run_to_end(Some(guest.root()), &config, &program);
        assert_eq!(code, KEEP_ERROR, "{args:?}: {stderr}");
        assert!(
            stderr.contains(&reason),
            "{args:?}: expected `{reason}` in:\n{stderr}"
        );
    }
}

#[test]
fn secrets_go_only_to_the_vm_whose_measurement_the_rule_names() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_dir = tmp.path().join("ca");
    let ca = steward_ca(&ca_dir);
    let program = GUESTS.module("printenv");
    let config = keep_config(
        tmp.path(),
        "Keep.toml",
        &ca,
        "args = [\"DB\"]\n",
        "[[secrets]]\nname = \"db\"\nenv = \"DB\"\n",
        "",
    );
    let workload = digest(&program, &config);
    let secrets = db_secret(
        tmp.path(),
        "vm-only-secret",
        &workload,
        &format!("tee = [\"sev-snp\"]\nmeasurement = [\"{MEASUREMENT}\"]\n"),
    );
    // The policy certifies any SEV-SNP VM running the workload; the secret's rule is stricter.
    let policy = write_config(
        tmp.path(),
        "policy.toml",
        &format!("[sev-snp]\n\n[[workload]]\ndigest = \"{workload}\"\n"),
    );
    let steward = StewardProcess::start(
        &ca_dir,
        &steward_args(
            &policy,
            &["--offline", "--secrets", secrets.to_str().unwrap()],
        ),
    );
    point_to(&config, &steward);
    let run = |guest: &Guest| {
        crate::common::keep_command()
            .env("KEEP_PLATFORM_ROOT", guest.root())
            .args(["run", "-c"])
            .arg(&config)
            .arg(&program)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    let output = run(&Guest::snp(&[]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "DB=vm-only-secret\n"
    );
    assert!(!stderr.contains("the host can read"), "{stderr}");

    let other = "ef".repeat(48);
    let output = run(&Guest::snp(&["--measurement", &other]));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(KEEP_ERROR), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the rule wants measurement {MEASUREMENT}, the Keep's is {other}"
        )),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
