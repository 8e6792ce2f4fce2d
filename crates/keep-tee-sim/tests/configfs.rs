//! The simulated configfs-tsm tree behaves as the kernel's (Documentation/ABI/testing/
//! configfs-tsm-report), and its reports verify with Keep's verifier under the test roots.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;
use std::time::SystemTime;

use keep_attest::TestRoots;

struct Mounted {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // the simulator unmounts and exits
        let _ = self.child.wait();
    }
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_keep-tee-sim"))
}

/// The test PKIs, made once for this test binary.
static PKI: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    let pki = tempfile::tempdir().unwrap();
    let made = sim()
        .args(["pki", "--out"])
        .arg(pki.path())
        .status()
        .unwrap();
    assert!(made.success());
    pki
});

fn roots() -> TestRoots {
    TestRoots::from_dir(&PKI.path().join("roots")).unwrap()
}

fn mount(tee: &str) -> (Mounted, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    std::fs::create_dir(&report).unwrap();
    let mut command = sim();
    command
        .args(["serve", "--tee", tee, "--pki"])
        .arg(PKI.path())
        .arg("--mount")
        .arg(&report);
    let (mounted, line) = start(command, dir);
    assert_eq!(line, "ready\n");
    (mounted, report)
}

/// Starts `command` (which ends when its standard input closes) and returns its first line.
fn start(mut command: Command, dir: tempfile::TempDir) -> (Mounted, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Mounted { child, _dir: dir }, line)
}

#[test]
fn entries_answer_as_the_kernel_does_and_reports_verify_under_the_test_roots() {
    let (_mounted, report) = mount("snp");

    let entry = report.join("e0");
    std::fs::create_dir(&entry).unwrap();
    let read = |name: &str| std::fs::read(entry.join(name)).unwrap();
    let text = |name: &str| String::from_utf8(read(name)).unwrap().trim().to_owned();
    assert_eq!(text("provider"), "sev_guest");
    assert_eq!(text("generation"), "0");
    assert_eq!(text("privlevel_floor"), "0");
    let mut names: Vec<String> = std::fs::read_dir(&entry)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "auxblob",
            "generation",
            "inblob",
            "outblob",
            "privlevel",
            "privlevel_floor",
            "provider"
        ]
    );

    let report_data = [0x5a; 64];
    std::fs::write(entry.join("inblob"), report_data).unwrap();
    std::fs::write(entry.join("privlevel"), "2\n").unwrap();
    assert_eq!(text("generation"), "2", "each write counts");
    let outblob = read("outblob");
    assert_eq!(read("outblob"), outblob, "made once per generation");

    // The certificate table carries the chain; with the test roots the report verifies.
    let table = keep_attest::snp::certtable::parse(&read("auxblob")).unwrap();
    let kinds: Vec<&str> = table.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(kinds, ["VCEK", "ASK", "ARK"]);
    let certs: Vec<_> = table
        .iter()
        .map(|c| der::Decode::from_der(&c.der).unwrap())
        .collect();
    let claims = keep_attest::snp::verify_with_crls(
        &outblob,
        &certs,
        &[],
        Some(&roots()),
        SystemTime::now(),
    )
    .unwrap();
    assert!(claims.insecure_test_root);
    assert_eq!(claims.report_data, hex::encode(report_data));
    assert_eq!(claims.details["vmpl"], "2");
    assert_eq!(claims.tcb["snp"], 23);
    // Without them, AMD's roots do not vouch for it.
    let refused =
        keep_attest::snp::verify_with_crls(&outblob, &certs, &[], None, SystemTime::now());
    assert!(refused.is_err(), "{refused:?}");

    // What the kernel refuses: a privilege level above 3, more than 64 bytes of report data.
    let refused = std::fs::write(entry.join("privlevel"), "4\n").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EINVAL));
    let refused = std::fs::write(entry.join("inblob"), [0u8; 65]).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EFBIG));
    assert!(std::fs::write(entry.join("outblob"), b"x").is_err());

    std::fs::remove_dir(&entry).unwrap();
    assert!(!entry.exists());
    assert_eq!(std::fs::read_dir(&report).unwrap().count(), 0);
}

/// `keep-tee-sim collateral` on loopback, with a TLS certificate from a CA made here:
/// (its URL, the CA).
fn collateral_service(dir: &std::path::Path) -> (Mounted, String, rustls::RootCertStore) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("tls.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("tls-key.pem"), key.serialize_pem()).unwrap();
    let mut command = sim();
    command
        .args(["collateral", "--pki"])
        .arg(PKI.path())
        .arg("--tls-cert")
        .arg(dir.join("tls.pem"))
        .arg("--tls-key")
        .arg(dir.join("tls-key.pem"));
    let (service, line) = start(command, tempfile::tempdir().unwrap());
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    (service, url, roots)
}

#[test]
fn a_tdx_guest_answers_with_quotes_that_verify_under_the_test_intel_root() {
    let (_mounted, report) = mount("tdx");
    let entry = report.join("td");
    std::fs::create_dir(&entry).unwrap();
    assert_eq!(
        std::fs::read_to_string(entry.join("provider")).unwrap(),
        "tdx_guest\n"
    );
    assert!(
        !entry.join("auxblob").exists(),
        "TDX has no certificate table"
    );
    let report_data = [0xa5; 64];
    std::fs::write(entry.join("inblob"), report_data).unwrap();
    let quote = std::fs::read(entry.join("outblob")).unwrap();

    let claims =
        keep_attest::intel::verify(&quote, None, Some(&roots()), SystemTime::now()).unwrap();
    assert_eq!(claims.tee, keep_attest::TeeKind::Tdx);
    assert!(claims.insecure_test_root);
    assert_eq!(claims.report_data, hex::encode(report_data));
    assert_eq!(claims.measurements["mrtd"].len(), 96);
    assert!(!claims.debug);
    let refused = keep_attest::intel::verify(&quote, None, None, SystemTime::now());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not the trusted root")),
        "{refused:?}"
    );
    // Its collateral, fetched from the simulated PCS as the Steward fetches it, evaluates
    // the platform's TCB.
    let tmp = tempfile::tempdir().unwrap();
    let (_service, url, ca) = collateral_service(tmp.path());
    let pcs = keep_steward::pcs::Pcs::new(&url, ca, None).unwrap();
    let collateral = pcs.collateral(&quote, SystemTime::now()).unwrap();
    let claims =
        keep_attest::intel::verify(&quote, Some(&collateral), Some(&roots()), SystemTime::now())
            .unwrap();
    assert_eq!(claims.tcb_status, keep_attest::TcbStatus::UpToDate);

    // Any byte of the TD report changed: the signature no longer holds.
    let mut forged = quote.clone();
    forged[48 + 136] ^= 1; // MRTD
    let refused = keep_attest::intel::verify(&forged, None, Some(&roots()), SystemTime::now());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not signed by its attestation key")),
        "{refused:?}"
    );
}
