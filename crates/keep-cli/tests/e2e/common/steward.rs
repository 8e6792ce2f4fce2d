//! `keep steward serve` and what the tests do around it: Keep.toml files that attest to it,
//! policies, digests, `keep run` to its end and `keep verify`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::child::ChildLog;
use super::net::*;

/// `keep steward serve` in the background; killed when dropped.
pub struct StewardProcess {
    child: Child,
    pub addr: SocketAddr,
    pub ca: PathBuf,
    log: Option<ChildLog>,
}

impl StewardProcess {
    /// Starts a Steward on the CA in `ca_dir` (generated there when missing) with `args`.
    pub fn start<A: AsRef<std::ffi::OsStr>>(ca_dir: &Path, args: &[A]) -> Self {
        let mut child = super::keep_command()
            .args([
                "steward",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--generate-ca",
            ])
            .arg(ca_dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keep steward");
        let (listening, listening_rx) = mpsc::channel();
        let log = ChildLog::start(child.stderr.take().unwrap(), move |line| {
            if let Some(addr) = line.strip_prefix("keep steward: listening on https://") {
                let _ = listening.send(addr.parse::<SocketAddr>().unwrap());
            }
        });
        let addr = listening_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("the Steward did not start:\n{}", log.text()));
        Self {
            child,
            addr,
            ca: ca_dir.join("ca.pem"),
            log: Some(log),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The Steward's log, once it contains `needle` (or after 10 s).
    pub fn log_with(&self, needle: &str) -> String {
        self.log_when(|text| text.contains(needle))
    }

    /// The Steward's log once `holds` is true of it (or after 10 s).
    pub fn log_when(&self, holds: impl Fn(&str) -> bool) -> String {
        self.log
            .as_ref()
            .map(|log| log.wait_for(Duration::from_secs(10), holds))
            .unwrap_or_default()
    }

    /// A Steward that certifies Keeps without a TEE (`--insecure-accept-none`) and releases
    /// the secrets of the file `secrets`, with the flags `extra` besides.
    pub fn with_secrets(ca_dir: &Path, secrets: &Path, extra: &[&str]) -> Self {
        let secrets = secrets.to_str().unwrap();
        let mut args = vec!["--insecure-accept-none", "--secrets", secrets];
        args.extend_from_slice(extra);
        Self::start(ca_dir, &args)
    }

    /// Sends the Steward SIGHUP (it reloads its secrets file).
    pub fn hang_up(&self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("the Steward's pid");
        rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    }

    /// Asserts that the Steward logged a certificate for `workload` in `tee`.
    #[track_caller]
    pub fn expect_issued(&self, tee: &str, workload: &str) {
        let line = format!("issued: tee {tee} workload {workload}");
        let log = self.log_with(&line);
        assert!(log.contains(&line), "{log}");
    }

    /// `curl` against the Steward: (HTTP status, body).
    pub fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let output = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-w",
                "\n%{http_code}",
                "--cacert",
            ])
            .arg(&self.ca)
            .args(args)
            .arg(format!("{}{path}", self.url()))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        (status.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for StewardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.log.take()); // joins its reader, which ends with the child's stderr
    }
}

/// The `steward` of configs written before their Steward runs (it is not part of the
/// workload digest, so digests and policies can be made first).
pub const PLACEHOLDER: &str = "steward = \"https://steward.invalid\"";

/// A CA in `dir` (ca.pem, ca-key.pem), made before any Steward starts on it.
pub fn steward_ca(dir: &Path) -> PathBuf {
    keep_steward::CertificateAuthority::generate_or_load(dir).unwrap();
    dir.join("ca.pem")
}

/// A Keep.toml attesting to a Steward (placeholder URL) whose CA is `ca`: stdio, `files`,
/// `top` keys before them and `tls` keys in `[tls]`.
pub fn keep_config(
    dir: &Path,
    name: &str,
    ca: &Path,
    top: &str,
    files: &str,
    tls: &str,
) -> PathBuf {
    write_config(
        dir,
        name,
        &format!(
            "{PLACEHOLDER}\n{top}{STDIO}{files}[tls]\nca = [\"{}\"]\n{tls}",
            ca.display()
        ),
    )
}

/// A Keep serving `pollecho` on a TLS listener `ingest`, attesting to a Steward whose CA
/// (`ca_dir`) is made first; `tls` keys go in its `[tls]`.
pub struct TlsKeep {
    pub ca_dir: PathBuf,
    pub ca: PathBuf,
    pub program: PathBuf,
    pub config: PathBuf,
    pub digest: String,
}

impl TlsKeep {
    pub fn new(dir: &Path, tls: &str) -> Self {
        let ca_dir = dir.join("ca");
        let ca = steward_ca(&ca_dir);
        let program = crate::common::GUESTS.module("pollecho");
        let config = keep_config(
            dir,
            "Keep.toml",
            &ca,
            "",
            &listener("ingest", "tls", ""),
            tls,
        );
        let digest = digest(&program, &config);
        Self {
            ca_dir,
            ca,
            program,
            config,
            digest,
        }
    }
}

/// A Steward secrets file in `dir`: the secret `db`, whose value `value` is in the file
/// `dir/db`, released to `workload` under the `[[release]]` keys of `rule` (more conditions).
pub fn db_secret(dir: &Path, value: &str, workload: &str, rule: &str) -> PathBuf {
    std::fs::write(dir.join("db"), value).unwrap();
    write_config(
        dir,
        "secrets.toml",
        &format!(
            "[[secret]]\nname = \"db\"\nfile = \"{}\"\n[[release]]\nsecrets = [\"db\"]\n\
             workloads = [\"{workload}\"]\n{rule}",
            dir.join("db").display()
        ),
    )
}

/// Points `config` at `steward`.
pub fn point_to(config: &Path, steward: &StewardProcess) {
    let text = std::fs::read_to_string(config).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("steward = "))
        .unwrap()
        .to_owned();
    let text = text.replacen(&line, &format!("steward = \"{}\"", steward.url()), 1);
    std::fs::write(config, text).unwrap();
}

pub fn policy(dir: &Path, workloads: &[(&str, &[&str])]) -> PathBuf {
    policy_with(dir, "", workloads)
}

/// A policy of `tee_rules` (TOML tables) and `workloads` with their names.
pub fn policy_with(dir: &Path, tee_rules: &str, workloads: &[(&str, &[&str])]) -> PathBuf {
    let text: String = std::iter::once(tee_rules.to_owned())
        .chain(workloads.iter().map(|(digest, names)| {
            format!("[[workload]]\ndigest = \"{digest}\"\nnames = {names:?}\n\n")
        }))
        .collect();
    write_config(dir, "policy.toml", &text)
}

pub fn digest(program: &Path, config: &Path) -> String {
    let output = super::keep_command()
        .arg("digest")
        .arg(program)
        .arg("-c")
        .arg(config)
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `keep run` that is expected to end by itself, on the host under `platform_root` (or one
/// without a TEE): (exit code, stderr).
pub fn run_to_end(platform_root: Option<&Path>, config: &Path, program: &Path) -> (i32, String) {
    let mut command = super::keep_command();
    if let Some(root) = platform_root {
        command.env("KEEP_PLATFORM_ROOT", root);
    }
    let output = command
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("keep-steward-tests-cache"),
        )
        .args(["run", "--listen-print", "-c"])
        .arg(config)
        .arg(program)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `keep verify` with `args`: (exit code, stdout, stderr).
pub fn keep_verify(args: &[&str]) -> (i32, String, String) {
    let output = super::keep_command()
        .arg("verify")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A P-256 key pair for encrypted packages, `DIR/NAME.pem` (PKCS#8) and `DIR/NAME.pub`, made
/// from `byte` (tests only); (private, public).
pub fn package_key_pair(dir: &Path, name: &str, byte: u8) -> (PathBuf, PathBuf) {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    std::fs::create_dir_all(dir).unwrap();
    let key = p256::SecretKey::from_bytes(&[byte; 32].into()).unwrap();
    let private = dir.join(format!("{name}.pem"));
    std::fs::write(
        &private,
        key.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes(),
    )
    .unwrap();
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(
        &public,
        key.public_key().to_public_key_pem(LineEnding::LF).unwrap(),
    )
    .unwrap();
    (private, public)
}

/// A Steward secrets file `dir/NAME` releasing the secret `package-key` (the file `private`)
/// to `workload`.
pub fn package_key_secrets(dir: &Path, name: &str, private: &Path, workload: &str) -> PathBuf {
    write_config(
        dir,
        name,
        &format!(
            "[[secret]]\nname = \"package-key\"\nfile = \"{}\"\n[[release]]\n\
             secrets = [\"package-key\"]\nworkloads = [\"{workload}\"]\n",
            private.display()
        ),
    )
}
