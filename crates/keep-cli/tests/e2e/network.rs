//! Networking end to end: guests built from `tests/guests/` serve and connect through the
//! sockets of `[[files]]`, with real peers on 127.0.0.1 (openssl s_client, curl, rustls).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::net::*;
use crate::common::{GUESTS, KEEP_ERROR, Keep};

fn tls_identity(cert: &Path, key: &Path) -> String {
    format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        cert.display(),
        key.display()
    )
}

/// A config with stdio and one `tls` listener `name` presenting a certificate from a new CA.
fn tls_listener_config(dir: &Path, name: &str) -> (Ca, PathBuf) {
    let ca = Ca::new(dir, "ca");
    let (cert, key) = ca.issue(dir, "keep");
    let config = write_config(
        dir,
        "Keep.toml",
        &format!(
            "{}{STDIO}{}",
            tls_identity(&cert, &key),
            listener(name, "tls", "")
        ),
    );
    (ca, config)
}

/// Asserts that a TLS echo through `config` comes back intact.
#[track_caller]
fn assert_echoes(addr: SocketAddr, config: Arc<rustls::ClientConfig>, message: &[u8]) {
    assert_eq!(tls_echo(addr, config, message).unwrap(), message);
}

/// Asserts that the server refused the client: the handshake failed or nothing came back.
#[track_caller]
fn assert_refused(result: std::io::Result<Vec<u8>>) {
    assert!(
        result.as_ref().map_or(true, |echoed| echoed.is_empty()),
        "{result:?}"
    );
}

// ---------------------------------------------------------------- tests

/// Enarx's listen/connect test shape: FD_COUNT=5, FD_NAMES=stdin:stdout:stderr:ingest:ping.
#[test]
fn enarx_descriptor_layout_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let config = write_config(
        tmp.path(),
        "Enarx.toml",
        &format!(
            "{STDIO}{}[[files]]\nkind = \"connect\"\nname = \"ping\"\nprot = \"tcp\"\nhost = \"127.0.0.1\"\nport = {}\n",
            listener("ingest", "tcp", ""),
            peer.local_addr().unwrap().port()
        ),
    );
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("fdnames"))
        .finish();
    done.expect_code(0);
    let out = done.stdout_text();
    assert!(out.contains("FD_COUNT=5\n"), "{out}");
    assert!(
        out.contains("FD_NAMES=stdin:stdout:stderr:ingest:ping\n"),
        "{out}"
    );
}

#[test]
fn tcp_echo_server_finds_its_listener_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!("{STDIO}{}", listener("ingest", "tcp", "")),
    );
    let served = Served::start(&config, &GUESTS.module("echo"), &["ingest", "2"], 1);
    let addr = served.addr("ingest");
    assert_eq!(tcp_echo(addr, b"hello\n"), b"hello\n");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(tcp_echo(addr, &big), big, "a megabyte comes back intact");
    let (code, _, stderr) = served.wait();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn tls_echo_with_openssl_and_rustls_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, config) = tls_listener_config(tmp.path(), "ingest");
    let served = Served::start(&config, &GUESTS.module("echo"), &["ingest", "2"], 1);
    let addr = served.addr("ingest");
    assert!(
        !served.stderr().contains("self-signed"),
        "{}",
        served.stderr()
    );

    let openssl = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(["-verify_return_error", "-no_ign_eof", "-CAfile"])
        .arg(&ca.pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    let mut input = openssl.stdin.as_ref().unwrap();
    input.write_all(b"hello over tls\n").unwrap();
    let output = {
        // Leave stdin open until the echo arrived, then close it.
        let mut child = openssl;
        let mut out = child.stdout.take().unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + IO_TIMEOUT;
        while !String::from_utf8_lossy(&seen).contains("hello over tls\nhello over tls")
            && Instant::now() < deadline
        {
            // s_client prints the echo after the session summary.
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if String::from_utf8_lossy(&seen)
                .matches("hello over tls")
                .count()
                >= 1
            {
                break;
            }
        }
        drop(child.stdin.take());
        let _ = out.read_to_end(&mut seen);
        let _ = child.wait();
        String::from_utf8_lossy(&seen).into_owned()
    };
    assert!(output.contains("Verify return code: 0 (ok)"), "{output}");
    assert!(output.contains("hello over tls"), "{output}");

    let config = client_config(&ca.pem, None);
    assert_echoes(addr, config, b"from rustls");
    let (code, _, stderr) = served.wait();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn https_responder_fetched_with_curl() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, config) = tls_listener_config(tmp.path(), "web");
    let served = Served::start(&config, &GUESTS.module("http"), &["1"], 1);
    let url = format!("https://localhost:{}/", served.addr("web").port());
    let curl = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "20", "--cacert"])
        .arg(&ca.pem)
        .args([
            "--resolve",
            &format!("localhost:{}:127.0.0.1", served.addr("web").port()),
        ])
        .arg(&url)
        .output()
        .expect("curl");
    assert!(
        curl.status.success(),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "hello from a keep\n");
    let (code, _, stderr) = served.wait();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn self_signed_certificate_is_announced() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!("{STDIO}{}", listener("ingest", "tls", "")),
    );
    let served = Served::start(&config, &GUESTS.module("echo"), &["ingest", "1"], 1);
    let stderr = served.stderr();
    assert!(
        stderr.contains("warning: no [tls] cert and key configured"),
        "{stderr}"
    );
    assert!(
        stderr.contains("self-signed certificate (SHA-256 "),
        "{stderr}"
    );
}

#[test]
fn client_auth_required_and_optional() {
    let tmp = tempfile::tempdir().unwrap();
    let server_ca = Ca::new(tmp.path(), "server-ca");
    let client_ca = Ca::new(tmp.path(), "client-ca");
    let other_ca = Ca::new(tmp.path(), "other-ca");
    let (cert, key) = server_ca.issue(tmp.path(), "keep");
    let good_client = client_ca.issue(tmp.path(), "client");
    let foreign_client = other_ca.issue(tmp.path(), "foreign");
    let auth = |mode: &str| {
        format!(
            "client_auth = \"{mode}\"\nclient_ca = [\"{}\"]\n",
            client_ca.pem.display()
        )
    };
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!(
            "{}{STDIO}{}{}",
            tls_identity(&cert, &key),
            listener("required", "tls", &auth("required")),
            listener("optional", "tls", &auth("optional"))
        ),
    );
    // One echo server per listener, each serving until told to stop.
    let required = Served::start(&config, &GUESTS.module("echo"), &["required", "1"], 2);
    let addr = required.addr("required");
    assert_refused(tls_echo(
        addr,
        client_config(&server_ca.pem, None),
        b"anonymous",
    ));
    assert_refused(tls_echo(
        addr,
        client_config(&server_ca.pem, Some(&foreign_client)),
        b"foreign",
    ));
    assert_echoes(
        addr,
        client_config(&server_ca.pem, Some(&good_client)),
        b"signed",
    );
    let (code, _, stderr) = required.wait();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("TLS handshake with"),
        "refusals are logged: {stderr}"
    );

    let optional = Served::start(&config, &GUESTS.module("echo"), &["optional", "2"], 2);
    let addr = optional.addr("optional");
    assert_echoes(addr, client_config(&server_ca.pem, None), b"anon");
    assert_echoes(
        addr,
        client_config(&server_ca.pem, Some(&good_client)),
        b"signed",
    );
    let (code, _, stderr) = optional.wait();
    assert_eq!(code, 0, "{stderr}");
}

/// The next connection to `socket` (with `IO_TIMEOUT` read timeouts), or `None` when no
/// one connects within `timeout`, so a test waiting for a peer still ends.
fn accept_within(socket: &TcpListener, timeout: Duration) -> Option<TcpStream> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let timeout = Timespec::try_from(timeout).unwrap();
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    if poll(&mut fds, Some(&timeout)).unwrap() == 0 {
        return None;
    }
    let (tcp, _) = socket.accept().unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    Some(tcp)
}

/// A TLS server run by the test: answers the first line of one connection with
/// "server got: LINE"; the thread returns the line (empty when the handshake failed).
fn test_tls_server(cert: &Path, key: &Path) -> (SocketAddr, std::thread::JoinHandle<Vec<u8>>) {
    let config = server_config(cert, key);
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let Some(tcp) = accept_within(&socket, IO_TIMEOUT) else {
            return Vec::new();
        };
        let connection = rustls::ServerConnection::new(config).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, tcp);
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while stream.read(&mut byte).unwrap_or(0) == 1 {
            line.push(byte[0]);
            if byte[0] == b'\n' {
                break;
            }
        }
        let _ = stream.write_all(b"server got: ");
        let _ = stream.write_all(&line);
        stream.conn.send_close_notify();
        let _ = stream.flush();
        let _ = stream.read_to_end(&mut Vec::new());
        line
    });
    (addr, handle)
}

fn connect_config(dir: &Path, port: u16, tls: &str) -> PathBuf {
    write_config(
        dir,
        "Keep.toml",
        &format!(
            "{tls}{STDIO}[[files]]\nkind = \"connect\"\nname = \"upstream\"\nhost = \"localhost\"\nport = {port}\n"
        ),
    )
}

#[test]
fn tls_connect_verifies_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue(tmp.path(), "upstream");

    let (addr, server) = test_tls_server(&cert, &key);
    let trusted = connect_config(
        tmp.path(),
        addr.port(),
        &format!(
            "[tls]\nca = [\"{}\"]\nmozilla_roots = false\n",
            ca.pem.display()
        ),
    );
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&trusted)
        .arg_path(&GUESTS.module("client"))
        .args(["upstream", "ping"])
        .finish();
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "server got: ping\n");
    server.join().unwrap();

    // Without the CA (only the Mozilla roots) the handshake fails before the guest starts.
    let (addr, _server) = test_tls_server(&cert, &key);
    let untrusted = connect_config(tmp.path(), addr.port(), "");
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&untrusted)
        .arg_path(&GUESTS.module("client"))
        .args(["upstream", "ping"])
        .finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("[[files]] entry 3 (`upstream`): TLS handshake with localhost:")
        .expect_stderr_contains("invalid peer certificate: UnknownIssuer");
    assert_eq!(done.stdout_text(), "", "the guest must not start");
}

#[test]
fn start_up_network_errors_are_clear() {
    let tmp = tempfile::tempdir().unwrap();
    // A port taken by someone else.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!(
            "{STDIO}[[files]]\nkind = \"listen\"\nname = \"ingest\"\nprot = \"tcp\"\naddr = \"127.0.0.1\"\nport = {port}\n"
        ),
    );
    Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("echo"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains(&format!(
            "[[files]] entry 3 (`ingest`): cannot listen on 127.0.0.1:{port}"
        ))
        .expect_stderr_contains("in use");
    // A peer that is not there.
    drop(taken);
    let config = connect_config(tmp.path(), port, "");
    Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("client"))
        .args(["upstream", "x"])
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains(&format!(
            "[[files]] entry 3 (`upstream`): cannot connect to localhost:{port}"
        ))
        .expect_stderr_contains("refused");
    // Sockets are for preview-1 programs; components use wasi:sockets.
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!("{STDIO}{}", listener("ingest", "tcp", "")),
    );
    Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.component("echo"))
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("components open their own sockets through wasi:sockets");
}

#[test]
fn two_keeps_talk_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let ca_a = Ca::new(tmp.path(), "ca-a");
    let ca_b = Ca::new(tmp.path(), "ca-b");
    let (cert_a, key_a) = ca_a.issue(tmp.path(), "keep-a");
    let (cert_b, key_b) = ca_b.issue(tmp.path(), "keep-b");
    // Keep A serves and requires a client certificate from B's CA.
    let config_a = write_config(
        tmp.path(),
        "A.toml",
        &format!(
            "{}{STDIO}{}",
            tls_identity(&cert_a, &key_a),
            listener(
                "ingest",
                "tls",
                &format!(
                    "client_auth = \"required\"\nclient_ca = [\"{}\"]\n",
                    ca_b.pem.display()
                )
            )
        ),
    );
    let keep_a = Served::start(&config_a, &GUESTS.module("echo"), &["ingest", "1"], 1);
    // Keep B connects with its own certificate and trusts only A's CA.
    let config_b = write_config(
        tmp.path(),
        "B.toml",
        &format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\nca = [\"{}\"]\nmozilla_roots = false\n{STDIO}[[files]]\nkind = \"connect\"\nname = \"peer\"\nhost = \"localhost\"\nport = {}\n",
            cert_b.display(),
            key_b.display(),
            ca_a.pem.display(),
            keep_a.addr("ingest").port()
        ),
    );
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config_b)
        .arg_path(&GUESTS.module("client"))
        .args(["peer", "keep to keep"])
        .finish();
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "keep to keep\n");
    let (code, _, stderr) = keep_a.wait();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn hostile_peers_do_not_stop_a_poll_server() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, config) = tls_listener_config(tmp.path(), "ingest");
    let mut served = Served::start(&config, &GUESTS.module("pollecho"), &[], 1);
    let addr = served.addr("ingest");
    let client = client_config(&ca.pem, None);

    // Garbage instead of a ClientHello gets a TLS alert, not a guest connection.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    garbage.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = garbage.read_to_end(&mut reply);
    assert_eq!(reply.first(), Some(&0x15), "a TLS alert record: {reply:?}");
    // A client that stops mid-handshake, and one that connects and says nothing.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let _silent = TcpStream::connect(addr).unwrap();
    // A client that sends a lot and never reads.
    let mut greedy = tls_connect(addr, client.clone()).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    greedy.sock.set_nonblocking(true).unwrap();
    for _ in 0..64 {
        if greedy.write_all(&chunk).is_err() {
            break;
        }
        let _ = greedy.conn.write_tls(&mut greedy.sock);
    }
    // 500 concurrent connections, all open at once, each echoed.
    let mut clients: Vec<TlsClient> = (0..500)
        .map(|i| {
            tls_connect(addr, client.clone()).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    for (i, stream) in clients.iter_mut().enumerate() {
        stream
            .write_all(format!("client {i}\n").as_bytes())
            .unwrap();
    }
    for (i, stream) in clients.iter_mut().enumerate() {
        let expected = format!("client {i}\n");
        let mut got = vec![0u8; expected.len()];
        stream.read_exact(&mut got).unwrap();
        assert_eq!(got, expected.as_bytes());
    }
    assert!(served.is_running(), "{}", served.stderr());
    drop(clients);
    // Still serving others.
    assert_echoes(addr, client.clone(), b"still here");
    // Stop it.
    let mut stop = tls_connect(addr, client).unwrap();
    stop.write_all(b"quit\n").unwrap();
    stop.flush().unwrap();
    let (code, _, stderr) = served.wait();
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("TLS handshake with"),
        "the garbage peer is logged: {stderr}"
    );
}

#[test]
fn component_reaches_allowed_address_and_is_refused_at_denied_one() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = TcpListener::bind("127.0.0.1:0").unwrap();
    let (allowed_port, denied_port) = (
        allowed.local_addr().unwrap().port(),
        denied.local_addr().unwrap().port(),
    );
    let greeting = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(peer) = accept_within(&allowed, IO_TIMEOUT) {
            BufReader::new(peer).read_line(&mut text).unwrap();
        }
        text
    });
    let probe = GUESTS.component("netprobe");
    let ports = [allowed_port.to_string(), denied_port.to_string()];
    let config = write_config(
        tmp.path(),
        "Keep.toml",
        &format!("[network]\nconnect = [\"127.0.0.1:{allowed_port}\"]\n"),
    );
    let run = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&probe)
        .args(&ports)
        .finish();
    run.expect_code(0).expect_stderr_contains(&format!(
        "[network] denied TcpConnect 127.0.0.1:{denied_port}"
    ));
    assert_eq!(
        run.stdout_text(),
        format!("{allowed_port}: ok\n{denied_port}: denied\n")
    );
    assert_eq!(greeting.join().unwrap(), "hello from a component\n");
    // The refusal happened in Keep: the denied peer never saw a connection.
    assert!(accept_within(&denied, Duration::ZERO).is_none());
    // Without a [network] table everything is denied, and each refusal is logged too.
    let run = Keep::new()
        .args(["run", "-q"])
        .arg_path(&probe)
        .args(&ports)
        .finish();
    run.expect_code(0)
        .expect_stderr_contains("[network] denied creating a TCP socket");
    assert_eq!(
        run.stdout_text(),
        format!("{allowed_port}: denied\n{denied_port}: denied\n")
    );
}

#[test]
fn component_tls_trusts_what_the_config_says() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::new(tmp.path(), "ca");
    let (cert, key) = ca.issue(tmp.path(), "upstream");
    let probe = GUESTS.component("netprobe");
    // Runs the probe against a fresh test server with `tls` as the [tls] table: (the run,
    // the probe's argument, the line the server received).
    let probe_tls = |tls: &str| {
        let (addr, server) = test_tls_server(&cert, &key);
        let config = write_config(
            tmp.path(),
            "Keep.toml",
            &format!(
                "{tls}[network]\nconnect = [\"127.0.0.1:{}\"]\n",
                addr.port()
            ),
        );
        let target = format!("tls:{}", addr.port());
        let run = Keep::new()
            .args(["run", "-q", "-c"])
            .arg_path(&config)
            .arg_path(&probe)
            .arg(&target)
            .finish();
        (run, target, server.join().unwrap())
    };

    // wasi:tls verifies the server with [tls]'s trust anchors.
    let (run, target, received) = probe_tls(&format!(
        "[tls]\nca = [\"{}\"]\nmozilla_roots = false\n",
        ca.pem.display()
    ));
    run.expect_code(0);
    assert_eq!(run.stdout_text(), format!("{target}: ok\n"));
    assert_eq!(received, b"hello from a component\n");

    // With only the Mozilla roots the test CA is unknown: the handshake fails, the guest
    // sees an error and the host says why.
    let (run, target, received) = probe_tls("");
    run.expect_code(0)
        .expect_stderr_contains("[tls] a component's handshake with `localhost` failed")
        .expect_stderr_contains("UnknownIssuer");
    assert_eq!(run.stdout_text(), format!("{target}: tls error\n"));
    assert_eq!(received, b"");
}
