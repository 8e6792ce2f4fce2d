//! `tls-terminator LISTEN BACKEND CERT KEY`: accepts TLS on LISTEN and relays the plaintext
//! to the TCP server at BACKEND, one thread per direction per connection. This is the native
//! counterpart of Keep's TLS termination in the benchmark.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use keep_bench::{certificates, private_key, provider};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, listen, backend, cert, key] = args.as_slice() else {
        anyhow::bail!("usage: tls-terminator LISTEN BACKEND CERT KEY");
    };
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certificates(Path::new(cert))?, private_key(Path::new(key))?)?,
    );
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let config = config.clone();
        let backend = backend.clone();
        std::thread::spawn(move || {
            if let Err(e) = relay(client, &backend, config) {
                eprintln!("tls-terminator: {e:#}");
            }
        });
    }
    Ok(())
}

fn relay(
    client: TcpStream,
    backend: &str,
    config: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    let upstream = TcpStream::connect(backend)?;
    upstream.set_nodelay(true)?;
    let tls = Arc::new(Mutex::new(rustls::ServerConnection::new(config)?));
    // Upstream → client: encrypt under the lock, write outside it.
    let (mut upstream_reader, tls_writer, mut client_writer) =
        (upstream.try_clone()?, tls.clone(), client.try_clone()?);
    let down = std::thread::spawn(move || -> anyhow::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = upstream_reader.read(&mut buf)?;
            let mut records = Vec::new();
            {
                let mut tls = tls_writer.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                if n == 0 {
                    tls.send_close_notify();
                } else {
                    tls.writer().write_all(&buf[..n])?;
                }
                while tls.wants_write() {
                    tls.write_tls(&mut records)?;
                }
            }
            client_writer.write_all(&records)?;
            if n == 0 {
                return Ok(());
            }
        }
    });
    // Client → upstream: read records, decrypt under the lock, write outside it.
    let (mut client_reader, mut upstream_writer) = (client, upstream);
    let mut buf = vec![0u8; 64 * 1024];
    let mut plain = vec![0u8; 64 * 1024];
    loop {
        let n = client_reader.read(&mut buf)?;
        let mut out = Vec::new();
        let mut replies = Vec::new();
        let mut closed = n == 0;
        {
            let mut tls = tls.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
            let mut input = &buf[..n];
            while !input.is_empty() {
                tls.read_tls(&mut input)?;
                let state = tls.process_new_packets()?;
                closed |= state.peer_has_closed();
                loop {
                    match tls.reader().read(&mut plain) {
                        Ok(0) => break,
                        Ok(m) => out.extend_from_slice(&plain[..m]),
                        Err(_) => break,
                    }
                }
            }
            while tls.wants_write() {
                tls.write_tls(&mut replies)?;
            }
        }
        if !replies.is_empty() {
            client_reader.write_all(&replies)?;
        }
        upstream_writer.write_all(&out)?;
        if closed {
            upstream_writer.shutdown(Shutdown::Write)?;
            break;
        }
    }
    down.join()
        .map_err(|_| anyhow::anyhow!("relay thread panicked"))??;
    Ok(())
}
