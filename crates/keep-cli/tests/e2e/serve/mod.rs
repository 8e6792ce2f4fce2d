//! `keep serve`: a wasi:http component (tests/guests/http_hello.c) answering curl over plain
//! HTTP and over TLS, and what it refuses; WASI 0.3 services in [`wasi_p3`].

mod wasi_p3;

use std::net::SocketAddr;
use std::path::PathBuf;
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
    /// The access log.
    stdout: Option<ChildLog>,
}

impl ServeProcess {
    /// Starts `keep serve --addr 127.0.0.1:0 ARGS` and waits until it listens.
    fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[])
    }

    /// [`Self::start`] with the environment variables `env` set for Keep.
    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = crate::common::keep_command()
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
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
        let stdout = ChildLog::start(child.stdout.take().unwrap(), |_| {});
        let addr = listening_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("keep serve did not start:\n{}", log.text()));
        Self {
            child,
            addr,
            log: Some(log),
            stdout: Some(stdout),
        }
    }

    fn log(&self) -> String {
        self.log.as_ref().map(ChildLog::text).unwrap_or_default()
    }

    /// Keep's stderr once `holds` is true of it (or after 30 s).
    fn log_when(&self, holds: impl Fn(&str) -> bool) -> String {
        self.log
            .as_ref()
            .map(|log| log.wait_for(Duration::from_secs(30), holds))
            .unwrap_or_default()
    }

    /// The access log once `holds` is true of it (or after 30 s).
    fn access_log_when(&self, holds: impl Fn(&str) -> bool) -> String {
        self.stdout
            .as_ref()
            .map(|log| log.wait_for(Duration::from_secs(30), holds))
            .unwrap_or_default()
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .expect("keep serve's pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    }

    /// Waits for the process to end by itself: (exit code, stderr).
    fn wait(mut self) -> (i32, String) {
        let status =
            crate::common::child::wait_with_deadline(&mut self.child, Duration::from_secs(60))
                .unwrap_or_else(|status| status);
        let log = self.log.take().map(ChildLog::finish).unwrap_or_default();
        drop(self.stdout.take());
        (status.code().unwrap_or(-1), log)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        drop(self.log.take());
        drop(self.stdout.take());
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

/// Sends `request` on a new connection that the server closes after answering; returns
/// everything it sent back.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    response
}

/// The test services (0.2 and 0.3 alike) set the status asked for, copy `x-` headers, send
/// trailers, and echo a request's trailers; `serve` serves one over plain HTTP.
fn status_headers_and_trailers_pass(serve: &ServeProcess, dir: &std::path::Path) {
    let base = format!("http://{}", serve.addr);
    for status in [201u16, 404, 418, 503] {
        let (got, body) = curl(&format!("{base}/status/{status}"), &[]);
        assert_eq!(
            (got, String::from_utf8_lossy(&body).into_owned()),
            (status, format!("status {status}\n"))
        );
    }
    // Headers the guest copies, and trailers it sends: curl shows both in its header dump
    // (HTTP/2 carries trailers always; HTTP/1.1 only those the response declares).
    let dump = dir.join("headers");
    let (status, body) = curl(
        &format!("{base}/trailers"),
        &["--http2-prior-knowledge", "-D", dump.to_str().unwrap()],
    );
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"the trailers follow\n"[..])
    );
    let headers = std::fs::read_to_string(&dump).unwrap();
    assert!(headers.contains("x-checksum: done"), "{headers}");
    let (status, body) = curl(
        &format!("{base}/echo"),
        &[
            "-H",
            "x-trace: 7f3a",
            "--data-binary",
            "ping",
            "-D",
            dump.to_str().unwrap(),
        ],
    );
    assert_eq!((status, body.as_slice()), (200, &b"ping"[..]));
    let headers = std::fs::read_to_string(&dump).unwrap();
    assert!(headers.contains("x-trace: 7f3a"), "{headers}");
    // The request's trailers come back as the response's (HTTP/1.1, chunked both ways).
    let response = exchange(
        serve.addr,
        b"POST /echo HTTP/1.1\r\nHost: keep\r\nTE: trailers\r\nTrailer: x-sum\r\n\
          Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
          5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(body, "5\r\nhello\r\n0\r\nx-sum: 42\r\n\r\n", "{text}");
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
    status_headers_and_trailers_pass(&serve, tmp.path());
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
    // A body of 100 MiB streams back unchanged (curl -T streams it from the file).
    let upload = tmp.path().join("upload");
    let bytes: Vec<u8> = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&upload, &bytes).unwrap();
    let (status, body) = curl(&url, &["-T", upload.to_str().unwrap()]);
    assert_eq!(status, 200);
    assert!(
        body == bytes,
        "the echo differs ({} bytes back)",
        body.len()
    );
}

/// wrk's load over keep-alive connections: every request answered 200, none failed; the
/// metrics on the admin address count them, and the service's port does not serve them.
#[test]
fn load_from_wrk_is_served_without_an_error_and_counted_in_the_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[http]\ntls = false\nadmin = \"127.0.0.1:0\"\n",
    );
    let serve = ServeProcess::start(&[
        "-q",
        "-c",
        config.to_str().unwrap(),
        service.to_str().unwrap(),
    ]);
    let log = serve.log_when(|log| log.contains("/metrics"));
    let metrics_url = log
        .lines()
        .find_map(|line| line.strip_prefix("keep: metrics on "))
        .unwrap_or_else(|| panic!("no metrics address:\n{log}"))
        .to_owned();
    let output = Command::new("wrk")
        .args(["-t1", "-c32", "-d2s"])
        .arg(format!("http://{}/hello", serve.addr))
        .output()
        .expect("run wrk (scripts/test installs it)");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(
        !report.contains("Non-2xx") && !report.contains("Socket errors"),
        "{report}"
    );
    let requests: u64 = report
        .lines()
        .find_map(|line| line.trim().split_once(" requests in "))
        .and_then(|(count, _)| count.parse().ok())
        .unwrap_or(0);
    assert!(requests > 100, "{report}");

    let (status, metrics) = curl(&metrics_url, &[]);
    let metrics = String::from_utf8_lossy(&metrics);
    assert_eq!(status, 200);
    let sample = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name}:\n{metrics}"))
    };
    // wrk's count leaves out requests still running when it stopped.
    assert!(
        sample("keep_serve_requests_total{status=\"200\"}") >= requests,
        "{metrics}"
    );
    assert!(
        sample("keep_serve_request_duration_seconds_count") >= requests,
        "{metrics}"
    );
    // Present (requests cut off when wrk stopped may still be finishing).
    assert!(sample("keep_serve_requests_in_flight") <= 64, "{metrics}");
    assert_eq!(sample("keep_serve_instance_pool_size"), 64, "{metrics}");
    let (_, body) = curl(&format!("http://{}/metrics", serve.addr), &[]);
    assert!(!String::from_utf8_lossy(&body).contains("keep_serve_"));
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
    // Client certificates, when [http] asks for them.
    let (client_cert, client_key) = ca.issue(tmp.path(), "client");
    let mtls = write_config(
        tmp.path(),
        "Mtls.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[http]\nclient_auth = \"required\"\n\
             client_ca = [\"{}\"]\n",
            cert.display(),
            key.display(),
            ca.pem.display()
        ),
    );
    let guarded = ServeProcess::start(&["-c", mtls.to_str().unwrap(), service.to_str().unwrap()]);
    let guarded_url = format!("https://localhost:{}/", guarded.addr.port());
    let (status, _) = curl(&guarded_url, &cacert);
    assert_ne!(status, 200, "no client certificate, no answer");
    let with_certificate = [
        &cacert[..],
        &[
            "--cert",
            client_cert.to_str().unwrap(),
            "--key",
            client_key.to_str().unwrap(),
        ],
    ]
    .concat();
    let (status, body) = curl(&guarded_url, &with_certificate);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"Hello from a Keep!\n"[..]),
        "{}",
        guarded.log()
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
    for program in [
        GUESTS.component("hello"),
        GUESTS.module("hello"),
        GUESTS.component("hello_p3"),
    ] {
        let done = Keep::new()
            .args(["serve", "--plain-http", "--addr", "127.0.0.1:0"])
            .arg_path(&program)
            .finish();
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains(&format!("`{}`", program.display()));
        assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    }
}

/// Sends `request` on a new connection and reads until the response head has arrived;
/// returns the connection (the body follows on it) and the head.
fn send_and_read_head(addr: SocketAddr, request: &[u8]) -> (std::net::TcpStream, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed");
        head.push(byte[0]);
    }
    (stream, String::from_utf8_lossy(&head).into_owned())
}

/// The data of a complete chunked body (HTTP/1.1 `Transfer-Encoding: chunked`).
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    loop {
        let text = String::from_utf8_lossy(chunked);
        let (size, _) = text.split_once("\r\n").expect("a chunk size line");
        let size = usize::from_str_radix(size, 16).expect("a hexadecimal chunk size");
        let start = size_line_len(chunked);
        if size == 0 {
            return data;
        }
        data.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
}

/// The length of the first line of `bytes`, its CRLF included.
fn size_line_len(bytes: &[u8]) -> usize {
    bytes.windows(2).position(|w| w == b"\r\n").expect("a CRLF") + 2
}

/// `[limits]` hold each request's instance: one that spins, one that allocates without
/// end, and one over the body limit fail alone, with the limit named, while the others are
/// served.
#[test]
fn each_request_is_held_to_its_limits_and_the_others_are_served() {
    use std::io::{Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[limits]\nmemory = \"32MiB\"\ntimeout = \"3s\"\n\
         [http]\ntls = false\nconcurrency = 8\nmax_body = \"1MiB\"\n",
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    let base = format!("http://{}", serve.addr);

    // Three guests that answer, then compute forever, on a runtime of two worker threads:
    // each yields at every epoch tick, so /hello is still answered while they spin.
    let spinning: Vec<_> = (0..3)
        .map(|_| {
            let (stream, head) =
                send_and_read_head(serve.addr, b"GET /spin HTTP/1.1\r\nHost: keep\r\n\r\n");
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            stream
        })
        .collect();
    let (status, body) = curl(&format!("{base}/hello"), &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"Hello from a Keep!\n"[..])
    );
    // At the time limit, each spinning guest is stopped and its body ends unfinished.
    for mut stream in spinning {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(!rest.ends_with(b"0\r\n\r\n"), "a body ended as if complete");
    }
    let log = serve.log_when(|log| log.matches("time limit").count() >= 3);
    assert!(
        log.contains(
            "the service failed after answering: the request took longer than its time \
             limit ([limits] timeout), 3s"
        ),
        "{log}"
    );

    // A guest that allocates until nothing is left stops at 32 MiB.
    let (status, _) = curl(&format!("{base}/bomb"), &[]);
    assert_eq!(status, 500);
    let log = serve.log_when(|log| log.contains("GET /bomb -> 500"));
    assert!(
        log.contains("GET /bomb -> 500: ") && log.contains("wasm trap"),
        "{log}"
    );

    // A body over 1 MiB: refused before the guest runs when its length is declared, cut
    // off (the guest sees a stream error) when it is chunked.
    let upload = tmp.path().join("upload");
    std::fs::write(&upload, vec![b'x'; 2 << 20]).unwrap();
    let data = format!("@{}", upload.display());
    let (status, body) = curl(&format!("{base}/"), &["--data-binary", &data]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let (_, body) = curl(
        &format!("{base}/"),
        &["--data-binary", &data, "-H", "Transfer-Encoding: chunked"],
    );
    assert!(body.len() <= 1 << 20, "{} bytes echoed", body.len());
    let (status, body) = curl(&format!("{base}/"), &["--data-binary", "small"]);
    assert_eq!((status, body.as_slice()), (200, &b"small"[..]));

    // Fuel: a spinning guest runs out, and that is what the log says.
    let fuel = write_config(
        tmp.path(),
        "Fuel.toml",
        "[limits]\nfuel = 1_000_000\n[http]\ntls = false\n",
    );
    let serve = ServeProcess::start(&["-c", fuel.to_str().unwrap(), service.to_str().unwrap()]);
    // It may run out before its answer's head is even sent: either way, the connection
    // closes without a complete response.
    let mut stream = std::net::TcpStream::connect(serve.addr).unwrap();
    stream
        .write_all(b"GET /spin HTTP/1.1\r\nHost: keep\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    assert!(
        !response.ends_with(b"0\r\n\r\n"),
        "a body ended as if complete"
    );
    let log = serve.log_when(|log| log.contains("fuel"));
    assert!(
        log.contains("failed after answering: the request ran out of fuel"),
        "{log}"
    );
    let (status, _) = curl(&format!("http://{}/hello", serve.addr), &[]);
    assert_eq!(status, 200);
}

#[test]
fn a_full_queue_is_answered_503_and_sigterm_lets_the_request_in_flight_finish() {
    use std::io::{Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[http]\ntls = false\nconcurrency = 1\nqueue = 0\n",
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    // One upload in flight (the guest answers before it reads the body) takes the only
    // slot: the next request is turned away at once.
    let (mut upload, head) = send_and_read_head(
        serve.addr,
        b"POST /upload HTTP/1.1\r\nHost: keep\r\nContent-Length: 10\r\n\r\nhello",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let busy = fetch(&format!("http://{}/hello", serve.addr), &["-i"]);
    assert_eq!(busy.status, 503);
    let text = String::from_utf8_lossy(&busy.body).to_lowercase();
    assert!(
        text.contains("retry-after: 1") && text.contains("busy"),
        "{text}"
    );

    // SIGTERM: the upload in flight completes, then Keep exits.
    serve.terminate();
    serve.log_when(|log| log.contains("SIGTERM: no longer accepting"));
    upload.write_all(b"world").unwrap();
    let mut rest = Vec::new();
    upload.read_to_end(&mut rest).unwrap();
    assert_eq!(dechunk(&rest), b"helloworld");
    let access = serve.access_log_when(|log| log.lines().count() >= 2);
    assert!(access.contains("\"GET /hello HTTP/1.1\" 503 "), "{access}");
    assert!(
        access.contains("\"POST /upload HTTP/1.1\" 200 10 "),
        "the upload is logged with the bytes it sent: {access}"
    );
    let (code, log) = serve.wait();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("keep: stopped: every connection finished"),
        "{log}"
    );
}

/// The certificate `addr` presents (PEM), as openssl's client reads it.
fn served_certificate(addr: SocketAddr) -> String {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&output.stdout);
    let begin = text.find("-----BEGIN CERTIFICATE-----");
    let end = text.find("-----END CERTIFICATE-----");
    match (begin, end) {
        (Some(begin), Some(end)) => text[begin..end].to_owned(),
        _ => panic!("no certificate from {addr}:\n{text}"),
    }
}

/// With a Steward: the Keep attests before it listens, serves the certificate the Steward
/// issued (curl checks it against the Steward's CA; `keep verify` reads the workload digest
/// from it), renews it while serving, and its guests get the released secret; a Keep whose
/// workload is not in the policy never listens.
#[test]
fn an_attested_service_presents_the_stewards_certificate_and_gets_its_secrets() {
    use crate::common::steward::*;
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let ca = steward_ca(&tmp.path().join("ca"));
    let keep_toml = |name: &str, http: &str| {
        write_config(
            tmp.path(),
            name,
            &format!(
                "{PLACEHOLDER}\n[tls]\nca = [\"{}\"]\nnames = [\"localhost\"]\n\
                 [[secrets]]\nname = \"db\"\nenv = \"DB_PASSWORD\"\nfile = \"db\"\n\
                 config = \"db-password\"\n[http]\n{http}",
                ca.display()
            ),
        )
    };
    let config = keep_toml("Keep.toml", "");
    let other = keep_toml("Other.toml", "concurrency = 2\n");
    let workload = digest(&service, &config);
    let policy = policy(tmp.path(), &[(&workload, &["localhost"])]);
    let secrets = db_secret(tmp.path(), "serve-db-password-7731", &workload, "");
    let steward = StewardProcess::with_secrets(
        &tmp.path().join("ca"),
        &secrets,
        &["--policy", policy.to_str().unwrap(), "--validity", "3s"],
    );
    point_to(&config, &steward);
    point_to(&other, &steward);

    // Another workload: refused, and nothing listens.
    let refused = Keep::new()
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "-c",
            other.to_str().unwrap(),
        ])
        .arg_path(&service)
        .finish();
    refused
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("is not in the policy");
    assert!(!refused.stderr.contains("serving"), "{}", refused.stderr);

    let serve = ServeProcess::start_with(
        &["-c", config.to_str().unwrap(), service.to_str().unwrap()],
        &[("KEEP_LOG", "keep=info,warn")],
    );
    assert!(
        serve
            .log()
            .contains(&format!("certificate for workload {workload}")),
        "{}",
        serve.log()
    );
    let url = format!("https://localhost:{}/env/DB_PASSWORD", serve.addr.port());
    let cacert = ["--cacert", ca.to_str().unwrap()];
    let (status, body) = curl(&url, &cacert);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "serve-db-password-7731"),
        "{}",
        serve.log()
    );
    // The same secret as a file, served from memory, read-only.
    let file_url = format!(
        "https://localhost:{}/file/run/secrets/db",
        serve.addr.port()
    );
    let (status, body) = curl(&file_url, &cacert);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "serve-db-password-7731"),
        "{}",
        serve.log()
    );
    // And through wasi:config/store.
    let config_url = format!("https://localhost:{}/config/db-password", serve.addr.port());
    let (status, body) = curl(&config_url, &cacert);
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (200, "serve-db-password-7731"),
        "{}",
        serve.log()
    );
    let target = serve.addr.to_string();
    let verify = |expected: &str| {
        let (code, stdout, stderr) = keep_verify(&[
            "--ca",
            ca.to_str().unwrap(),
            "--workload-digest",
            expected,
            "--json",
            &target,
        ]);
        (code, stdout, stderr)
    };
    let (code, stdout, stderr) = verify(&workload);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let first = served_certificate(serve.addr);
    let (code, _, _) = verify(&format!("sha256:{}", "0".repeat(64)));
    assert_ne!(code, 0, "another digest does not verify");

    // Renewed while serving: a new certificate for new connections, same workload.
    serve.log_when(|log| log.contains("renewed the Keep's certificate"));
    let (code, renewed, stderr) = verify(&workload);
    assert_eq!(code, 0, "{renewed}{stderr}");
    assert_ne!(
        first, renewed,
        "the certificate after renewal is another one"
    );
    let (status, _) = curl(&url, &cacert);
    assert_eq!(status, 200);
    // Changed at the Steward: after a renewal, the file and the config key hold the new
    // value for the next requests; the environment keeps the start's.
    std::fs::write(tmp.path().join("db"), "rotated-serve-password-9902").unwrap();
    serve.log_when(|log| log.contains("secrets [db] changed"));
    for changed in [&file_url, &config_url] {
        let (_, body) = curl(changed, &cacert);
        assert_eq!(
            String::from_utf8_lossy(&body),
            "rotated-serve-password-9902"
        );
    }
    let (_, body) = curl(&url, &cacert);
    assert_eq!(String::from_utf8_lossy(&body), "serve-db-password-7731");
    // The secret's values are in no log.
    let log = serve.log();
    assert!(
        !log.contains("serve-db-password-7731") && !log.contains("rotated-serve-password"),
        "{log}"
    );
}

/// A client that never finishes its request head, one that sends headers without end, and
/// a flood of idle connections: each is dealt with, and the service answers the others.
#[test]
fn hostile_clients_do_not_stop_the_service() {
    use std::io::{Read as _, Write as _};
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[http]\ntls = false\nheader_timeout = \"1s\"\nmax_headers = \"16KiB\"\n",
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    let hello = format!("http://{}/hello", serve.addr);

    // Slow: half a request line, then nothing. The header timeout closes the connection
    // (hyper answers 408 first).
    let mut slow = std::net::TcpStream::connect(serve.addr).unwrap();
    slow.write_all(b"GET /hello HTTP/1.1\r\nHost: ke").unwrap();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 200 "),
        "{answer:?}"
    );

    // Headers without end (up to 1 GiB): refused once over 16 KiB, and the connection
    // closed, long before the gigabyte.
    let mut endless = std::net::TcpStream::connect(serve.addr).unwrap();
    endless
        .write_all(b"GET /hello HTTP/1.1\r\nHost: keep\r\n")
        .unwrap();
    let line = format!("x-filler: {}\r\n", "a".repeat(1000));
    let mut sent = 0usize;
    while sent < 1 << 30 && endless.write_all(line.as_bytes()).is_ok() {
        sent += line.len();
    }
    assert!(sent < 1 << 30, "Keep read a gigabyte of headers");
    let mut answer = Vec::new();
    let _ = endless.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // A flood of idle connections does not keep others from being served.
    let flood: Vec<_> = (0..300)
        .map(|_| std::net::TcpStream::connect(serve.addr).unwrap())
        .collect();
    let (status, body) = curl(&hello, &[]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"Hello from a Keep!\n"[..])
    );
    drop(flood);
    let (status, _) = curl(&hello, &[]);
    assert_eq!(status, 200);
}

/// A request still running at the drain deadline (a guest that computes forever) does not
/// keep Keep from exiting after SIGTERM: its connection is closed and counted.
#[test]
fn the_drain_deadline_ends_what_is_still_running() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        "[http]\ntls = false\ndrain_timeout = \"1s\"\n",
    );
    let serve = ServeProcess::start(&["-c", config.to_str().unwrap(), service.to_str().unwrap()]);
    let (_spinning, head) =
        send_and_read_head(serve.addr, b"GET /spin HTTP/1.1\r\nHost: keep\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serve.terminate();
    let (code, log) = serve.wait();
    assert_eq!(code, 0, "{log}");
    assert!(
        log.contains("1 connection(s) were still open at the drain deadline (1s)"),
        "{log}"
    );
}

/// Outgoing requests: a service calls another Keep's service over HTTPS, verified with
/// `[tls] ca` and with its own certificate for the mTLS the other asks for, only where
/// `[network] connect` allows; anything else is denied, and the log says why. `keep run`
/// gives a command the same.
/// A Keep serving `http_hello` over TLS that requires client certificates from its CA, and
/// what another Keep needs to call it (Keep-to-Keep mutual TLS).
struct Mesh {
    ca: Ca,
    backend: ServeProcess,
    front_cert: PathBuf,
    front_key: PathBuf,
}

impl Mesh {
    fn start(dir: &std::path::Path) -> Self {
        let ca = Ca::new(dir, "mesh-ca");
        let (backend_cert, backend_key) = ca.issue(dir, "backend");
        let (front_cert, front_key) = ca.issue(dir, "front");
        let backend_config = write_config(
            dir,
            "Backend.toml",
            &format!(
                "[tls]\ncert = \"{}\"\nkey = \"{}\"\n[http]\nclient_auth = \"required\"\n\
                 client_ca = [\"{}\"]\n",
                backend_cert.display(),
                backend_key.display(),
                ca.pem.display()
            ),
        );
        let backend = ServeProcess::start(&[
            "-c",
            backend_config.to_str().unwrap(),
            GUESTS.component("http_hello").to_str().unwrap(),
        ]);
        Self {
            ca,
            backend,
            front_cert,
            front_key,
        }
    }

    /// The `[tls]` lines of a front that trusts the CA and has a certificate from it.
    fn front_tls(&self) -> String {
        format!(
            "ca = [\"{}\"]\ncert = \"{}\"\nkey = \"{}\"\n",
            self.ca.pem.display(),
            self.front_cert.display(),
            self.front_key.display()
        )
    }

    /// A Keep.toml `name` in `dir` whose `[network]` allows the backend, with `tls` as its
    /// `[tls]` table.
    fn front_config(&self, dir: &std::path::Path, name: &str, tls: &str) -> PathBuf {
        let port = self.backend.addr.port();
        write_config(
            dir,
            name,
            &format!("[network]\nconnect = [\"localhost:{port}\"]\n[tls]\n{tls}"),
        )
    }
}

#[test]
fn outgoing_requests_go_only_where_network_allows_with_keep_to_keep_mtls() {
    let tmp = tempfile::tempdir().unwrap();
    let service = GUESTS.component("http_hello");
    let mesh = Mesh::start(tmp.path());
    let (backend, port) = (&mesh.backend, mesh.backend.addr.port());
    let front_config = mesh.front_config(tmp.path(), "Front.toml", &mesh.front_tls());
    let front = ServeProcess::start(&[
        "--plain-http",
        "-c",
        front_config.to_str().unwrap(),
        service.to_str().unwrap(),
    ]);
    let fetch_through = |front: &ServeProcess, url: &str| {
        let (status, body) = curl(&format!("http://{}/fetch?{url}", front.addr), &[]);
        assert_eq!(status, 200, "{}", front.log());
        String::from_utf8_lossy(&body).into_owned()
    };
    assert_eq!(
        fetch_through(&front, &format!("https://localhost:{port}/hello")),
        "200 Hello from a Keep!\n",
        "{}",
        backend.log()
    );
    // Another port, another host: denied, and logged.
    assert_eq!(
        fetch_through(&front, &format!("https://localhost:{}/", front.addr.port())),
        "denied\n"
    );
    assert_eq!(fetch_through(&front, "http://192.0.2.1/"), "denied\n");
    let log = front.log_when(|log| log.contains("192.0.2.1"));
    assert!(
        log.contains("[network] denied an outgoing request to 192.0.2.1:80"),
        "{log}"
    );
    // `keep run` gives a 0.2 command the same sender (the test service is a command too).
    let run = |url: &str| {
        Keep::new()
            .args(["run", "-q", "-c"])
            .arg_path(&front_config)
            .arg_path(&service)
            .arg(url)
            .finish()
    };
    let done = run(&format!("https://localhost:{port}/hello"));
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "200 Hello from a Keep!\n",
        "{}",
        done.stderr
    );
    let done = run("http://192.0.2.1/");
    assert_eq!(done.stdout_text(), "denied\n");
    done.expect_stderr_contains("[network] denied an outgoing request to 192.0.2.1:80");

    // Without the CA the backend's certificate is not trusted; without a certificate of
    // its own, the backend refuses the front: neither gets a response.
    for (name, tls) in [
        (
            "NoCa.toml",
            format!(
                "cert = \"{}\"\nkey = \"{}\"\n",
                mesh.front_cert.display(),
                mesh.front_key.display()
            ),
        ),
        (
            "NoCert.toml",
            format!("ca = [\"{}\"]\n", mesh.ca.pem.display()),
        ),
    ] {
        let config = mesh.front_config(tmp.path(), name, &tls);
        let front = ServeProcess::start(&[
            "--plain-http",
            "-c",
            config.to_str().unwrap(),
            service.to_str().unwrap(),
        ]);
        let answer = fetch_through(&front, &format!("https://localhost:{port}/hello"));
        assert!(answer.starts_with("error "), "{name}: {answer}");
    }
}
