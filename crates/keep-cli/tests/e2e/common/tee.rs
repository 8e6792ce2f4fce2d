//! Simulated confidential VMs: `keep-tee-sim` serving configfs-tsm over FUSE under a host
//! root that `keep` is pointed at (`KEEP_PLATFORM_ROOT`), and its KDS over HTTPS.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use super::child::{ChildLog, wait_with_deadline};
use super::net::Ca;

/// The simulator's binary, built beside `keep` (`cargo test --workspace` builds it for the
/// simulator's own tests).
pub fn tee_sim() -> Command {
    let path = Path::new(env!("CARGO_BIN_EXE_keep"))
        .parent()
        .expect("the binary's directory")
        .join("keep-tee-sim");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p keep-tee-sim` (scripts/test does)",
        path.display()
    );
    Command::new(path)
}

/// The test PKIs (SEV-SNP: ARK, ASK; Intel: root, PCK chain), made once per test run: `roots/` for the Steward's
/// `--insecure-test-roots`.
pub static PKI: LazyLock<PathBuf> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tee-sim-pki");
    let _ = std::fs::remove_dir_all(&dir);
    let status = tee_sim()
        .args(["pki", "--out"])
        .arg(&dir)
        .status()
        .expect("run keep-tee-sim pki");
    assert!(status.success(), "keep-tee-sim pki failed");
    dir
});

/// The Steward's flag for the test roots.
pub fn test_roots_flag() -> [String; 2] {
    [
        "--insecure-test-roots".to_owned(),
        PKI.join("roots").display().to_string(),
    ]
}

/// The launch measurement (SEV-SNP MEASUREMENT, TDX MRTD) the simulator reports unless told
/// otherwise.
pub const MEASUREMENT: &str = "5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de\
                               5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de";

/// A background process that ends when its standard input closes (dropped: closed, then
/// waited for, killed if it hangs).
struct StdinBound {
    child: Child,
    stdin: Option<ChildStdin>,
    log: Option<ChildLog>,
}

impl StdinBound {
    /// Starts `command` and waits for its first stdout line, which it returns.
    fn start(mut command: Command, what: &str) -> (Self, String) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {what}: {e}"));
        let log = ChildLog::start(child.stderr.take().unwrap(), |_| {});
        let mut first = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut first);
        let stdin = child.stdin.take();
        let process = Self {
            child,
            stdin,
            log: Some(log),
        };
        assert!(
            !first.is_empty(),
            "{what} did not start:\n{}",
            process.stderr()
        );
        (process, first.trim().to_owned())
    }

    fn stderr(&self) -> String {
        self.log.as_ref().map(ChildLog::text).unwrap_or_default()
    }
}

impl Drop for StdinBound {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = wait_with_deadline(&mut self.child, Duration::from_secs(30));
        drop(self.log.take());
    }
}

/// A confidential VM: a host root with configfs-tsm answered by the simulator.
pub struct Guest {
    // Dropped first: the simulator unmounts when its input closes; only then can the root go.
    _process: StdinBound,
    root: tempfile::TempDir,
}

impl Guest {
    /// An SEV-SNP guest; `args` for the simulator (`--measurement`, `--debug`, `--tcb`,
    /// `--no-certs`, `--foreign-vcek CHIP`, ...).
    pub fn snp(args: &[&str]) -> Self {
        Self::start("snp", "sev sev_es sev_snp hypervisor", args)
    }

    /// A TDX guest; `args` for the simulator (`--measurement` is the MRTD, `--debug`).
    pub fn tdx(args: &[&str]) -> Self {
        Self::start("tdx", "tdx_guest hypervisor", args)
    }

    fn start(tee: &str, cpu_flags: &str, args: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let report = root.path().join("sys/kernel/config/tsm/report");
        std::fs::create_dir_all(&report).unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(
            root.path().join("proc/cpuinfo"),
            format!("processor : 0\nflags : fpu {cpu_flags}\n"),
        )
        .unwrap();
        let mut command = tee_sim();
        command
            .args(["serve", "--tee", tee, "--pki"])
            .arg(&*PKI)
            .arg("--mount")
            .arg(&report)
            .args(args);
        // An SEV-SNP guest also has the guest device, for derived keys.
        if tee == "snp" {
            let dev = root.path().join("dev");
            std::fs::create_dir_all(&dev).unwrap();
            command.arg("--sev-guest").arg(dev);
        }
        let (process, first) = StdinBound::start(command, "keep-tee-sim serve");
        assert_eq!(first, "ready", "{}", process.stderr());
        Self {
            _process: process,
            root,
        }
    }

    /// The host root to give `keep` as `KEEP_PLATFORM_ROOT`.
    pub fn root(&self) -> &Path {
        self.root.path()
    }
}

/// The simulated collateral services over HTTPS (AMD's KDS and Intel's PCS layouts): its
/// URL, and the CA file its certificate chains to.
pub struct Collateral {
    process: StdinBound,
    pub url: String,
    pub ca: PathBuf,
}

impl Collateral {
    /// Starts it with `args` (`--throttle N`: the first N VCEK requests are answered 429;
    /// `--revoke-ask`: its CRL revokes the ASK).
    pub fn start(dir: &Path, args: &[&str]) -> Self {
        let ca = Ca::new(dir, "collateral-ca");
        let (cert, key) = ca.issue(dir, "collateral");
        let mut command = tee_sim();
        command
            .args(["collateral", "--pki"])
            .arg(&*PKI)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .args(args);
        let (process, first) = StdinBound::start(command, "keep-tee-sim collateral");
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_owned();
        Self {
            process,
            url,
            ca: ca.pem,
        }
    }

    /// The requests it logged, once `holds` is true of them (or after 10 s).
    pub fn log_when(&self, holds: impl Fn(&str) -> bool) -> String {
        self.process
            .log
            .as_ref()
            .map(|log| log.wait_for(Duration::from_secs(10), holds))
            .unwrap_or_default()
    }
}
