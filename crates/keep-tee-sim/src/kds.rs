//! A Key Distribution Service for the test PKI, with AMD's URL layout (AMD "VCEK
//! Certificate and KDS Interface Specification"):
//!
//! - `GET /vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`: the chip's
//!   VCEK at that TCB (DER);
//! - `GET /vcek/v1/{product}/cert_chain`: the ASK then the ARK (PEM);
//! - `GET /vcek/v1/{product}/crl`: the ARK's CRL (DER), listing the ASK with `--revoke-ask`.
//!
//! Like AMD's it limits clients: with `--throttle N` the first N VCEK requests get
//! `429 Too Many Requests` with a `Retry-After`. Every request is logged to stderr.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use der::{Encode as _, EncodePem as _};
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::pki::{SnpPki, Tcb};

/// `keep-tee-sim kds`
#[derive(Debug, clap::Args)]
pub struct KdsArgs {
    /// The PKI directory (from `keep-tee-sim pki`).
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// Address to listen on (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
    /// The server's TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf,
    /// The server's TLS key (PEM).
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf,
    /// Answer the first N VCEK requests with 429 Too Many Requests.
    #[arg(long, value_name = "N", default_value_t = 0)]
    throttle: usize,
    /// The Retry-After (seconds) of a 429.
    #[arg(long, value_name = "SECONDS", default_value_t = 1)]
    retry_after: u64,
    /// The CRL lists the ASK as revoked (AMD revoking a compromised intermediate).
    #[arg(long)]
    revoke_ask: bool,
}

struct Kds {
    pki: SnpPki,
    throttle: usize,
    retry_after: u64,
    revoke_ask: bool,
    vcek_requests: AtomicUsize,
}

/// Runs the service until standard input closes.
pub fn run(args: KdsArgs) -> anyhow::Result<()> {
    let pki = SnpPki::load(&args.pki)?;
    let tls = tls_config(&args)?;
    let kds = Arc::new(Kds {
        pki,
        throttle: args.throttle,
        retry_after: args.retry_after,
        revoke_ask: args.revoke_ask,
        vcek_requests: AtomicUsize::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the async runtime")?;
    // Standard input is read on a thread of its own (tokio's stdin needs a feature the
    // workspace does not enable, and would use such a thread anyway).
    let (stdin_closed, closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = stdin_closed.send(());
    });
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        println!("listening on https://{}", listener.local_addr()?);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let accept = async {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let kds = kds.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let kds = kds.clone();
                        async move { Ok::<_, std::convert::Infallible>(kds.answer(&request)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        };
        tokio::select! {
            () = accept => {},
            _ = closed => {},
        }
        Ok(())
    })
}

fn tls_config(args: &KdsArgs) -> anyhow::Result<rustls::ServerConfig> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(&args.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("--tls-cert {}: {e}", args.tls_cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&args.tls_key)
        .map_err(|e| anyhow!("--tls-key {}: {e}", args.tls_key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the KDS's TLS certificate")
}

impl Kds {
    fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let uri = request.uri();
        let (status, body) = match self.route(uri.path(), uri.query().unwrap_or_default()) {
            Ok(answer) => answer,
            Err(e) => (StatusCode::BAD_REQUEST, e.to_string().into_bytes()),
        };
        eprintln!("keep-tee-sim kds: GET {uri} -> {}", status.as_u16());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Ok(value) = self.retry_after.to_string().parse()
        {
            response
                .headers_mut()
                .insert(hyper::header::RETRY_AFTER, value);
        }
        response
    }

    fn route(&self, path: &str, query: &str) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let Some(rest) = path.strip_prefix("/vcek/v1/") else {
            return Ok((StatusCode::NOT_FOUND, Vec::new()));
        };
        let Some((product, what)) = rest.split_once('/') else {
            return Ok((StatusCode::NOT_FOUND, Vec::new()));
        };
        if product != self.pki.product() {
            return Ok((StatusCode::NOT_FOUND, Vec::new()));
        }
        if what == "cert_chain" {
            let (ark, ask) = self.pki.chain_der()?;
            let mut pem = String::new();
            for der in [ask, ark] {
                let cert: x509_cert::Certificate = der::Decode::from_der(&der)?;
                pem += &cert.to_pem(der::pem::LineEnding::LF)?;
            }
            return Ok((StatusCode::OK, pem.into_bytes()));
        }
        if what == "crl" {
            return Ok((StatusCode::OK, self.pki.crl(self.revoke_ask)?));
        }
        if self.vcek_requests.fetch_add(1, Ordering::SeqCst) < self.throttle {
            return Ok((StatusCode::TOO_MANY_REQUESTS, Vec::new()));
        }
        let chip_id: [u8; 64] = hex::decode(what)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| anyhow!("`{what}` is not a 64-byte hardware ID in hex"))?;
        let parameters: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let spl = |name: &str| -> anyhow::Result<u8> {
            parameters
                .get(name)
                .ok_or_else(|| anyhow!("missing {name}"))?
                .parse()
                .map_err(|e| anyhow!("{name}: {e}"))
        };
        let tcb = Tcb {
            bootloader: spl("blSPL")?,
            tee: spl("teeSPL")?,
            snp: spl("snpSPL")?,
            microcode: spl("ucodeSPL")?,
        };
        let vcek = self.pki.vcek(&chip_id, tcb)?;
        Ok((StatusCode::OK, vcek.certificate.to_der()?))
    }
}
