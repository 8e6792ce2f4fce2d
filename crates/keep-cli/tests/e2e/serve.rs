//! `keep serve`: a wasi:http component (tests/guests/http_hello.c) answering curl over plain
//! HTTP and over TLS, and what it refuses.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::child::ChildLog;
use crate::common::net::*;
use crate::common::{GUESTS, KEEP_ERROR, Keep};

/// `keep serve` in the background; killed when dropped.
struct ServeProcess {
    child: Child,
    addr: SocketAddr,
    log: Option<ChildLog>,
}

impl ServeProcess {
    /// Starts `keep serve --addr 127.0.0.1:0 ARGS` and waits until it listens.
    fn start(args: &[&str]) -> Self {
        let mut child = crate::common::keep_command()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keep serve");
        let (listening, listening_rx) = mpsc::channel();
        let log = ChildLog::start(child.stderr.take().unwrap(), move |line| {
            if let Some((_, url)) = line.split_once("://")
                && line.starts_with("keep: ")
                && line.contains(" on ")
                && let Some(addr) = url.split('/').next()
            {
                let _ = listening.send(addr.parse::<SocketAddr>().unwrap());
            }
        });
        let addr = listening_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("keep serve did not start:\n{}", log.text()));
        Self {
            child,
            addr,
            log: Some(log),
        }
    }

    fn log(&self) -> String {
        self.log.as_ref().map(ChildLog::text).unwrap_or_default()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.log.take());
    }
}

/// What curl got for `url` with `args`.
struct Fetched {
    status: u16,
    /// The HTTP version it spoke (`1.1`, `2`).
    version: String,
    body: Vec<u8>,
}

/// `curl -sS ARGS URL`.
fn fetch(url: &str, args: &[&str]) -> Fetched {
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", "-"])
        .args(["-w", "%{stderr}\n%{http_code} %{http_version}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    let written = String::from_utf8_lossy(&output.stderr);
    let last = written.trim().rsplit('\n').next().unwrap_or("");
    let (status, version) = last.split_once(' ').unwrap_or((last, ""));
    Fetched {
        status: status.parse().unwrap_or(0),
        version: version.to_owned(),
        body: output.stdout,
    }
}

/// `curl -sS ARGS URL`: (HTTP status, body bytes).
fn curl(url: &str, args: &[&str]) -> (u16, Vec<u8>) {
    let fetched = fetch(url, args);
    (fetched.status, fetched.body)
}

/// The HTTP version curl used for `url` with `args`, and the status.
fn http_version(url: &str, args: &[&str]) -> (String, u16) {
    let fetched = fetch(url, args);
    (fetched.version, fetched.status)
}

#[test]
fn a_wasi_http_component_answers_curl_over_plain_http_with_a_fresh_instance_each_time() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let serve = ServeProcess::start(&["--plain-http", service.to_str().unwrap()]);
    assert!(
        serve.log().contains("warning: serving") && serve.log().contains("plain http://"),
        "{}",
        serve.log()
    );
    let url = format!("http://{}/hello", serve.addr);
    let (status, body) = curl(&url, &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"Hello from a Keep!\n"[..])
    );
    // The guest counts the requests its instance answered: always the first.
    for _ in 0..3 {
        let (status, body) = curl(&format!("http://{}/count", serve.addr), &[]);
        assert_eq!((status, body.as_slice()), (200, &b"1\n"[..]));
    }
    // HTTP/1.1, and HTTP/2 with prior knowledge.
    assert_eq!(http_version(&url, &[]), ("1.1".to_owned(), 200));
    assert_eq!(
        http_version(&url, &["--http2-prior-knowledge"]),
        ("2".to_owned(), 200)
    );
    // A request whose instance traps gets a 500 naming it; the next ones are served.
    let (status, body) = curl(&format!("http://{}/trap", serve.addr), &[]);
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).starts_with("the service failed on request"));
    let (status, _) = curl(&url, &[]);
    assert_eq!(status, 200);
    let log = serve.log();
    assert!(
        log.contains(": GET /trap -> 500:") && log.contains("wasm trap"),
        "{log}"
    );
    // A body of 8 MiB streams back unchanged.
    let upload = tmp.path().join("upload");
    let bytes: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&upload, &bytes).unwrap();
    let (status, body) = curl(&url, &["--data-binary", &format!("@{}", upload.display())]);
    assert_eq!(status, 200);
    assert!(
        body == bytes,
        "the echo differs ({} bytes back)",
        body.len()
    );
}

#[test]
fn tls_comes_from_keep_toml_and_plain_http_only_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let ca = Ca::new(tmp.path(), "serve-ca");
    let (cert, key) = ca.issue(tmp.path(), "service");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    let url = format!("https://localhost:{}/", serve.addr.port());
    let (status, body) = curl(&url, &["--cacert", ca.pem.to_str().unwrap()]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"Hello from a Keep!\n"[..]),
        "{}",
        serve.log()
    );
    // HTTP/2 is negotiated by ALPN; HTTP/1.1 when the client asks for it only.
    let cacert = ["--cacert", ca.pem.to_str().unwrap()];
    assert_eq!(
        http_version(&url, &[&cacert[..], &["--http2"]].concat()),
        ("2".to_owned(), 200)
    );
    assert_eq!(
        http_version(&url, &[&cacert[..], &["--http1.1"]].concat()),
        ("1.1".to_owned(), 200)
    );
    // Plain HTTP on the TLS port gets no answer from the service.
    let (status, _) = curl(&format!("http://{}/", serve.addr), &[]);
    assert_ne!(status, 200);

    // Without a certificate, and without --plain-http: refused before listening.
    Keep::new()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .arg_path(&service)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("serve plain HTTP with --plain-http");
}

#[test]
fn a_component_that_is_not_a_wasi_http_service_is_refused_by_name() {
    for program in [GUESTS.component("hello"), GUESTS.module("hello")] {
        let done = Keep::new()
            .args(["serve", "--plain-http", "--addr", "127.0.0.1:0"])
            .arg_path(&program)
            .finish();
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains(&format!("`{}`", program.display()));
        assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    }
}
