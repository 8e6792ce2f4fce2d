//! `tls-load ADDR CA BYTES HANDSHAKES`: against a TLS echo server, measures bulk throughput
//! (BYTES sent and echoed back over one connection, full duplex) and handshakes per second
//! (HANDSHAKES sequential connections, each echoing one byte). Prints
//! `throughput_mb_s=... handshakes_s=... cipher=...`.

use std::io::{self, Read as _, Write as _};
use std::net::TcpStream;
use std::os::fd::AsFd as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use keep_bench::{certificates, provider};
use rustix::event::{PollFd, PollFlags};
use rustls_pki_types::ServerName;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, ca, bytes, handshakes] = args.as_slice() else {
        anyhow::bail!("usage: tls-load ADDR CA BYTES HANDSHAKES");
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(Path::new(ca))? {
        roots.add(cert)?;
    }
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let (rate, cipher) = bulk(addr, config.clone(), bytes.parse()?)?;
    let started = Instant::now();
    let count: u32 = handshakes.parse()?;
    for _ in 0..count {
        let mut stream = connect(addr, config.clone())?;
        stream.set_nonblocking(false)?;
        let mut tls = rustls::Stream::new(&mut stream.0, &mut stream.1);
        tls.write_all(b"x")?;
        let mut one = [0u8; 1];
        tls.read_exact(&mut one)?;
    }
    let per_second = f64::from(count) / started.elapsed().as_secs_f64();
    println!("throughput_mb_s={rate:.1} handshakes_s={per_second:.1} cipher={cipher}");
    Ok(())
}

struct Client(rustls::ClientConnection, TcpStream);

impl Client {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        self.1.set_nonblocking(on)
    }
}

fn connect(addr: &str, config: Arc<rustls::ClientConfig>) -> anyhow::Result<Client> {
    let socket = TcpStream::connect(addr)?;
    socket.set_nodelay(true)?;
    let mut tls = rustls::ClientConnection::new(config, ServerName::try_from("localhost")?)?;
    let mut socket_ref = &socket;
    while tls.is_handshaking() {
        tls.complete_io(&mut socket_ref)?;
    }
    Ok(Client(tls, socket))
}

/// Sends `total` bytes and reads them back concurrently on one connection; MB/s and suite.
fn bulk(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    total: u64,
) -> anyhow::Result<(f64, String)> {
    let mut client = connect(addr, config)?;
    let cipher = client
        .0
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or("?")
        .to_owned();
    client.set_nonblocking(true)?;
    let Client(tls, socket) = &mut client;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut plain = vec![0u8; 256 * 1024];
    let (mut sent, mut received) = (0u64, 0u64);
    let started = Instant::now();
    while received < total {
        let mut progressed = false;
        if sent < total && !tls.wants_write() {
            let n = chunk.len().min((total - sent) as usize);
            sent += tls.writer().write(&chunk[..n])? as u64;
            progressed = true;
        }
        while tls.wants_write() {
            match tls.write_tls(socket) {
                Ok(_) => progressed = true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        match tls.read_tls(socket) {
            Ok(0) => anyhow::bail!("the server closed after {received} of {total} bytes"),
            Ok(_) => {
                tls.process_new_packets()?;
                progressed = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
        loop {
            match tls.reader().read(&mut plain) {
                Ok(n) if n > 0 => received += n as u64,
                _ => break,
            }
        }
        if !progressed {
            let mut flags = PollFlags::IN;
            if tls.wants_write() {
                flags |= PollFlags::OUT;
            }
            let mut fds = [PollFd::from_borrowed_fd(socket.as_fd(), flags)];
            rustix::event::poll(&mut fds, None)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok((total as f64 / seconds / 1e6, cipher))
}
