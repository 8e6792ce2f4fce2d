//! Network helpers of the end-to-end tests: a test PKI, rustls clients, and a Keep serving
//! in the background.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use super::child::{ChildLog, wait_with_deadline};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------- test PKI

/// A certificate authority made for one test, with its PEM file.
pub struct Ca {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    pub pem: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pem = dir.join(format!("{name}.pem"));
        std::fs::write(&pem, issuer.pem()).unwrap();
        Self { issuer, pem }
    }

    /// A leaf for `localhost` and 127.0.0.1: (cert PEM file, key PEM file).
    pub fn issue(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{name}.crt")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}

/// The certificates of a PEM file.
pub fn pem_certificates(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A rustls server presenting the certificate and key in PEM files `cert` and `key`.
pub fn server_config(cert: &Path, key: &Path) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                pem_certificates(cert),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
    )
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls client trusting `ca`, presenting `identity` if given.
pub fn client_config(
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                pem_certificates(cert),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let connection =
        rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Sends `message`, half-closes, and returns everything echoed back.
pub fn tls_echo(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    message: &[u8],
) -> std::io::Result<Vec<u8>> {
    let mut stream = tls_connect(addr, config)?;
    stream.write_all(message)?;
    stream.flush()?;
    stream.conn.send_close_notify();
    stream.flush()?;
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed)?;
    Ok(echoed)
}

pub fn tcp_echo(addr: SocketAddr, message: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.write_all(message).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).unwrap();
    echoed
}

// ---------------------------------------------------------------- a Keep serving in the background

/// `keep run --listen-print` in the background; killed when dropped.
pub struct Served {
    pub child: Child,
    pub listeners: Vec<(String, SocketAddr)>,
    stderr: Option<ChildLog>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Served {
    /// Starts `program` with `config` and waits until `listeners` listeners are bound.
    pub fn start(config: &Path, program: &Path, args: &[&str], listeners: usize) -> Self {
        Self::start_on(None, config, program, args, listeners)
    }

    /// [`Served::start`] on the host under `platform_root` (a simulated confidential VM).
    pub fn start_on(
        platform_root: Option<&Path>,
        config: &Path,
        program: &Path,
        args: &[&str],
        listeners: usize,
    ) -> Self {
        let cache = std::env::temp_dir().join("keep-network-tests-cache");
        let mut command = super::keep_command();
        if let Some(root) = platform_root {
            command.env("KEEP_PLATFORM_ROOT", root);
        }
        command
            .env("XDG_CACHE_HOME", &cache)
            .args(["run", "-q", "--listen-print", "-c"])
            .arg(config)
            .arg(program)
            .args(args);
        Self::spawn(command, listeners)
    }

    /// `keep run -q --listen-print ARGS` with its caches (and package store) in `cache`.
    pub fn run(cache: &Path, args: &[&std::ffi::OsStr], listeners: usize) -> Self {
        let mut command = super::keep_command();
        command
            .env("XDG_CACHE_HOME", cache)
            .args(["run", "-q", "--listen-print"])
            .args(args);
        Self::spawn(command, listeners)
    }

    /// Starts `command` (a `keep run --listen-print`) and waits until `listeners` listeners
    /// are bound.
    fn spawn(mut command: Command, listeners: usize) -> Self {
        let mut child = command
            .env_remove("KEEP_CONFIG")
            .env("KEEP_LOG", "keep=info,keep_runtime=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keep");
        let (bound, bound_rx) = mpsc::channel();
        let stderr = ChildLog::start(child.stderr.take().unwrap(), move |line| {
            if let Some(rest) = line.strip_prefix("keep: listening ") {
                let parts: Vec<&str> = rest.split(' ').collect();
                let _ = bound.send((parts[0].to_owned(), parts[2].parse::<SocketAddr>().unwrap()));
            }
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = out.read_to_end(&mut bytes);
            bytes
        });
        let mut served = Self {
            child,
            listeners: Vec::new(),
            stderr: Some(stderr),
            stdout: Some(stdout),
        };
        for _ in 0..listeners {
            match bound_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(listener) => served.listeners.push(listener),
                Err(_) => panic!("keep did not bind its listeners:\n{}", served.stderr()),
            }
        }
        served
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no listener `{name}`"))
    }

    pub fn stderr(&self) -> String {
        self.stderr.as_ref().map(ChildLog::text).unwrap_or_default()
    }

    /// Keep's stderr once `holds` is true of it (or after `limit`).
    pub fn stderr_when(&self, limit: Duration, holds: impl Fn(&str) -> bool) -> String {
        self.stderr
            .as_ref()
            .map(|log| log.wait_for(limit, holds))
            .unwrap_or_default()
    }

    /// Waits for the Keep to exit by itself; (exit code, stdout, stderr).
    pub fn wait(mut self) -> (i32, String, String) {
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("keep did not exit:\n{}", self.stderr()));
        let stdout = self.stdout.take().unwrap().join().unwrap();
        let stderr = self.stderr.take().map(ChildLog::finish).unwrap_or_default();
        (
            status.code().unwrap_or(-1),
            String::from_utf8_lossy(&stdout).into_owned(),
            stderr,
        )
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The readers end with the child's pipes; join them.
        drop(self.stderr.take());
        if let Some(stdout) = self.stdout.take() {
            let _ = stdout.join();
        }
    }
}

pub const STDIO: &str =
    "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \"stderr\"\n";

pub fn listener(name: &str, prot: &str, extra: &str) -> String {
    format!(
        "[[files]]\nkind = \"listen\"\nname = \"{name}\"\nprot = \"{prot}\"\naddr = \"127.0.0.1\"\nport = 0\n{extra}"
    )
}

pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// ---------------------------------------------------------------- a TLS-intercepting proxy

/// A TLS-intercepting HTTP proxy, as a hostile network or a corporate middlebox runs one: it
/// terminates TLS with a certificate of its own CA, forwards each HTTP/1.1 request over its
/// own TLS connection to `upstream`, and records every byte it sees. One connection at a
/// time; stopped and joined when dropped.
pub struct InterceptingProxy {
    pub addr: SocketAddr,
    seen: Arc<std::sync::Mutex<Vec<u8>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InterceptingProxy {
    /// Starts it with a certificate from `ca`, forwarding to `upstream`, which it trusts by
    /// `upstream_ca`.
    pub fn start(dir: &Path, ca: &Ca, upstream: SocketAddr, upstream_ca: &Path) -> Self {
        let (cert, key) = ca.issue(dir, "proxy");
        let server = server_config(&cert, &key);
        let upstream_tls = client_config(upstream_ca, None);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (seen.clone(), stop.clone());
            std::thread::spawn(move || {
                for tcp in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return;
                    }
                    let Ok(tcp) = tcp else { continue };
                    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
                    let connection = rustls::ServerConnection::new(server.clone()).unwrap();
                    let mut client = rustls::StreamOwned::new(connection, tcp);
                    // Requests until the client closes or the upstream fails.
                    while let Some(request) = read_http(&mut client) {
                        seen.lock().unwrap().extend_from_slice(&request);
                        let Ok(mut upstream) = tls_connect(upstream, upstream_tls.clone()) else {
                            break;
                        };
                        if upstream.write_all(&request).is_err() {
                            break;
                        }
                        let Some(response) = read_http(&mut upstream) else {
                            break;
                        };
                        seen.lock().unwrap().extend_from_slice(&response);
                        if client
                            .write_all(&response)
                            .and_then(|()| client.flush())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            })
        };
        Self {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Everything the proxy saw in clear text.
    pub fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for InterceptingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One HTTP/1.1 message (head and a `content-length` body) from `stream`, as bytes.
fn read_http(stream: &mut impl std::io::Read) -> Option<Vec<u8>> {
    let mut message = Vec::new();
    let mut byte = [0u8; 1];
    while !message.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        message.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&message).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    message.extend(body);
    Some(message)
}
