//! The collateral services of the test PKIs over HTTPS: AMD's Key Distribution Service (AMD
//! "VCEK Certificate and KDS Interface Specification") and Intel's PCS in a PCCS's layout.
//!
//! - `GET /vcek/v1/{product}/{hwid}?blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..`: the chip's
//!   VCEK at that TCB (DER);
//! - `GET /vcek/v1/{product}/cert_chain`: the ASK then the ARK (PEM);
//! - `GET /vcek/v1/{product}/crl`: the ARK's CRL (DER), listing the ASK with `--revoke-ask`;
//! - `GET /tdx/certification/v4/tcb?fmspc=FMSPC`: the simulated platform's TCB info, its
//!   issuer chain in `TCB-Info-Issuer-Chain`;
//! - `GET /tdx/certification/v4/qe/identity`: the simulated QE's identity;
//! - `GET /sgx/certification/v4/pckcrl?ca=platform&encoding=der`: the PCK platform CA's CRL;
//! - `GET /sgx/certification/v4/rootcacrl`: the root CA's CRL, hex (as a PCCS answers).
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

/// `keep-tee-sim collateral`
#[derive(Debug, clap::Args)]
pub struct CollateralArgs {
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

struct Services {
    pki: SnpPki,
    pcs: crate::tdx::Pcs,
    throttle: usize,
    retry_after: u64,
    revoke_ask: bool,
    vcek_requests: AtomicUsize,
}

/// Runs the service until standard input closes.
pub fn run(args: CollateralArgs) -> anyhow::Result<()> {
    let pki = SnpPki::load(&args.pki)?;
    let tls = tls_config(&args)?;
    let kds = Arc::new(Services {
        pki,
        pcs: crate::tdx::Pcs::load(&args.pki)?,
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

fn tls_config(args: &CollateralArgs) -> anyhow::Result<rustls::ServerConfig> {
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

/// An answer: status, headers, body.
type Answer = (StatusCode, Vec<(&'static str, String)>, Vec<u8>);

impl Services {
    fn answer<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        let uri = request.uri();
        let query = uri.query().unwrap_or_default();
        let (status, headers, body) = match self.route(uri.path(), query) {
            Ok(answer) => answer,
            Err(e) => (
                StatusCode::BAD_REQUEST,
                Vec::new(),
                e.to_string().into_bytes(),
            ),
        };
        eprintln!("keep-tee-sim collateral: GET {uri} -> {}", status.as_u16());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        for (name, value) in headers {
            if let Ok(value) = value.parse() {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }

    fn route(&self, path: &str, query: &str) -> anyhow::Result<Answer> {
        let parameters: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        let not_found = || Ok((StatusCode::NOT_FOUND, Vec::new(), Vec::new()));
        let ok = |body: Vec<u8>| Ok((StatusCode::OK, Vec::new(), body));
        let pcs = &self.pcs;
        match path {
            "/tdx/certification/v4/tcb" => {
                let fmspc = parameters.get("fmspc").copied().unwrap_or_default();
                if !fmspc.eq_ignore_ascii_case(&hex::encode(crate::tdx::FMSPC)) {
                    return not_found();
                }
                let chain = pcs.issuer_chain.clone();
                return Ok((
                    StatusCode::OK,
                    vec![("TCB-Info-Issuer-Chain", chain)],
                    pcs.tcb_info().into_bytes(),
                ));
            }
            "/tdx/certification/v4/qe/identity" => {
                let chain = pcs.issuer_chain.clone();
                return Ok((
                    StatusCode::OK,
                    vec![("SGX-Enclave-Identity-Issuer-Chain", chain)],
                    pcs.qe_identity().into_bytes(),
                ));
            }
            "/sgx/certification/v4/pckcrl" if parameters.get("ca") == Some(&"platform") => {
                return ok(pcs.pck_crl()?);
            }
            "/sgx/certification/v4/rootcacrl" => {
                return ok(hex::encode(pcs.root_crl()?).into_bytes());
            }
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/vcek/v1/") else {
            return not_found();
        };
        let Some((product, what)) = rest.split_once('/') else {
            return not_found();
        };
        if product != self.pki.product() {
            return not_found();
        }
        if what == "cert_chain" {
            let (ark, ask) = self.pki.chain_der()?;
            let mut pem = String::new();
            for der in [ask, ark] {
                let cert: x509_cert::Certificate = der::Decode::from_der(&der)?;
                pem += &cert.to_pem(der::pem::LineEnding::LF)?;
            }
            return ok(pem.into_bytes());
        }
        if what == "crl" {
            return ok(self.pki.crl(self.revoke_ask)?);
        }
        if self.vcek_requests.fetch_add(1, Ordering::SeqCst) < self.throttle {
            let wait = self.retry_after.to_string();
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                vec![("retry-after", wait)],
                Vec::new(),
            ));
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
        ok(vcek.certificate.to_der()?)
    }
}
