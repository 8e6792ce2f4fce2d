//! The Keep's own descriptors: listeners and connections of `[[files]]` (plain TCP or TLS
//! terminated by rustls) and standard streams placed past descriptor 2; and the guests'
//! outgoing HTTP requests ([`http`]).

pub mod http;
mod listener;
pub mod policy;
mod stream;
pub mod wait;
pub mod wasi_tls;

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use keep_config::{File, FileKind, Protocol};
use keep_identity::TlsSetup;
use rustls_pki_types::ServerName;

pub use listener::Listener;
pub use stream::Stream;

/// How long a `connect` of `[[files]]` may take at start-up, TLS handshake included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A descriptor Keep serves itself rather than wasmtime-wasi.
pub enum KeepFile {
    /// A listening socket.
    Listener(Listener),
    /// A connected socket.
    Stream(Stream),
    /// Reads see end of file; writes are discarded.
    Null,
    /// The host's standard input.
    Stdin,
    /// The host's standard output.
    Stdout,
    /// The host's standard error.
    Stderr,
}

/// A listener as bound, for `--listen-print` and the log.
#[derive(Debug, Clone)]
pub struct BoundListener {
    /// Its name in `FD_NAMES`.
    pub name: String,
    /// `tcp` or `tls`.
    pub prot: Protocol,
    /// The address it got (with the kernel's port when 0 was asked for).
    pub addr: SocketAddr,
}

/// Opens the Keep's side of `file` (entry `index` of `[[files]]`): binds listeners and
/// connects (with the TLS handshake) before the guest starts, so failures are start-up
/// errors that name the entry.
pub fn open(index: usize, file: &File, tls: Option<&TlsSetup>) -> anyhow::Result<KeepFile> {
    let what = || format!("[[files]] entry {index} (`{}`)", file.name);
    Ok(match &file.kind {
        FileKind::Null => KeepFile::Null,
        FileKind::Stdin => KeepFile::Stdin,
        FileKind::Stdout => KeepFile::Stdout,
        FileKind::Stderr => KeepFile::Stderr,
        FileKind::Listen {
            addr,
            port,
            prot,
            client_auth,
        } => {
            let socket = TcpListener::bind((addr.as_str(), *port)).with_context(|| {
                format!("{}: cannot listen on {}", what(), host_port(addr, *port))
            })?;
            let config = match prot {
                Protocol::Tcp => None,
                Protocol::Tls => Some(
                    tls.ok_or_else(|| anyhow!("TLS is not set up"))?
                        .server(client_auth)
                        .with_context(what)?,
                ),
            };
            KeepFile::Listener(Listener::new(socket, config, &file.name).with_context(what)?)
        }
        FileKind::Connect { host, port, prot } => {
            let deadline = Instant::now() + CONNECT_TIMEOUT;
            let target = host_port(host, *port);
            let (socket, peer) = connect(host, *port, deadline)
                .with_context(|| format!("{}: cannot connect to {target}", what()))?;
            match prot {
                Protocol::Tcp => KeepFile::Stream(Stream::tcp(socket, peer).with_context(what)?),
                Protocol::Tls => {
                    let tls = tls.ok_or_else(|| anyhow!("TLS is not set up"))?;
                    let name = ServerName::try_from(host.clone()).with_context(|| {
                        format!("{}: `{host}` is not a valid TLS server name", what())
                    })?;
                    let connection =
                        rustls::ClientConnection::new(tls.client(), name).with_context(what)?;
                    let mut stream =
                        Stream::tls(socket, peer, connection.into()).with_context(what)?;
                    stream.complete_handshake(deadline).with_context(|| {
                        format!("{}: TLS handshake with {target} ({peer}) failed", what())
                    })?;
                    KeepFile::Stream(stream)
                }
            }
        }
    })
}

/// Resolves and connects, trying each address until `deadline`.
fn connect(host: &str, port: u16, deadline: Instant) -> anyhow::Result<(TcpStream, SocketAddr)> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .context("cannot resolve the host name")?
        .collect();
    let mut last = anyhow!("the host name resolved to no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(socket) => return Ok((socket, addr)),
            Err(e) => last = anyhow::Error::from(e).context(format!("{addr}")),
        }
    }
    Err(last)
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
