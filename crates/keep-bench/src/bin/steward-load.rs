//! `steward-load ADDR CA KIND CONCURRENCY REQUESTS [ARGS]`: a concurrent load generator for
//! `keep steward serve`. CONCURRENCY keep-alive HTTPS connections send REQUESTS
//! `POST /v1/attest` in all. KIND `none`: each connection sends requests with `none` evidence
//! bound to its own key (issued by an insecure Steward). KIND `snp`, ARGS `REPORT VCEK`: the
//! real SEV-SNP REPORT with its VCEK (DER) replayed in a Keep request, verified in full and
//! refused for its binding (it binds another key), which is the expected answer. KIND
//! `configfs`, ARGS `TSM_ROOT`: SEV-SNP evidence bound to each connection's key, collected as a Keep collects it
//! from the configfs-tsm directory TSM_ROOT (the simulator's), with the host's certificates:
//! the Steward issues on it. Evidence is made before the timed run, and each connection
//! sends one untimed request first (its TLS handshake, the Steward's first check of each
//! certificate chain): what is measured is the steady state. Prints one JSON line:
//! `{"requests":…,"seconds":…,"per_second":…,"p50_ms":…,"p99_ms":…,"statuses":{…}}`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use keep_attest::request::{AttestationRequest, Evidence};
use keep_bench::{certificates, provider};
use rcgen::{KeyPair, PublicKeyData as _};
use rustls_pki_types::ServerName;

const WORKLOAD: [u8; 32] = [0x4b; 32];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (addr, ca, kind, concurrency, requests, kind_args) = match args.as_slice() {
        [_, addr, ca, kind, c, n, rest @ ..] => (addr, ca, kind, c, n, rest),
        _ => anyhow::bail!(
            "usage: steward-load ADDR CA KIND CONCURRENCY REQUESTS [ARGS], KIND and ARGS \
             `none`, `snp REPORT VCEK` or `configfs TSM_ROOT`"
        ),
    };
    let concurrency: usize = concurrency.parse()?;
    let requests: usize = requests.parse()?;
    let bodies: Vec<Bytes> = (0..concurrency)
        .map(|_| request(kind, kind_args))
        .collect::<anyhow::Result<_>>()?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(std::path::Path::new(ca))? {
        roots.add(cert)?;
    }
    let tls = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let remaining = Arc::new(AtomicUsize::new(requests));
    let warm = Arc::new(tokio::sync::Barrier::new(concurrency));
    let started = Arc::new(std::sync::OnceLock::new());
    let results = runtime.block_on(async {
        let workers: Vec<_> = bodies
            .into_iter()
            .map(|body| {
                let (tls, remaining, addr) = (tls.clone(), remaining.clone(), addr.clone());
                let (warm, started) = (warm.clone(), started.clone());
                tokio::spawn(
                    async move { worker(&addr, tls, body, &remaining, &warm, &started).await },
                )
            })
            .collect();
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await??);
        }
        anyhow::Ok(all)
    })?;
    let seconds = started
        .get()
        .context("no connection got to the timed run")?
        .elapsed()
        .as_secs_f64();
    let mut latencies: Vec<Duration> = results.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let quantile = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for (status, _) in &results {
        *statuses.entry(*status).or_default() += 1;
    }
    println!(
        "{{\"requests\":{},\"seconds\":{seconds:.3},\"per_second\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"statuses\":{{{}}}}}",
        results.len(),
        results.len() as f64 / seconds,
        quantile(0.5),
        quantile(0.99),
        statuses
            .iter()
            .map(|(s, n)| format!("\"{s}\":{n}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(())
}

/// One connection: an untimed request, then (once every connection has made its own) requests
/// until the shared budget is spent: (status, latency) each.
async fn worker(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    body: Bytes,
    remaining: &AtomicUsize,
    warm: &tokio::sync::Barrier,
    started: &std::sync::OnceLock<Instant>,
) -> anyhow::Result<Vec<(u16, Duration)>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(ServerName::try_from("localhost")?, tcp)
        .await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let mut send = async || -> anyhow::Result<(u16, Duration)> {
        let request = hyper::Request::post("/v1/attest")
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONTENT_TYPE, "application/pkcs10")
            .body(Full::new(body.clone()))?;
        let sent = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        response.into_body().collect().await?;
        Ok((status, sent.elapsed()))
    };
    send().await?;
    warm.wait().await;
    started.get_or_init(Instant::now);
    let mut results = Vec::new();
    while remaining
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        results.push(send().await?);
    }
    Ok(results)
}

/// A Keep request of `kind` with a fresh key.
fn request(kind: &str, kind_args: &[String]) -> anyhow::Result<Bytes> {
    let key = KeyPair::generate()?;
    let report_data = keep_attest::collect::report_data(&key.subject_public_key_info(), &WORKLOAD);
    let (evidence, certificates) = match (kind, kind_args) {
        ("none", []) => (Evidence::None { report_data }, Vec::new()),
        ("snp", [report, vcek]) => (
            Evidence::SevSnp(std::fs::read(report).with_context(|| report.clone())?),
            vec![std::fs::read(vcek).with_context(|| vcek.clone())?],
        ),
        ("configfs", [tsm_root]) => keep_identity::PlatformEvidence {
            tsm_root: tsm_root.into(),
            provider: keep_attest::collect::Provider::SevGuest,
            sev_guest: keep_attest::derived_key::DEFAULT_DEVICE.into(),
        }
        .collect(&report_data)?,
        _ => anyhow::bail!("KIND is `none`, `snp REPORT VCEK` or `configfs TSM_ROOT`"),
    };
    let content = AttestationRequest {
        evidence,
        workload_digest: WORKLOAD,
        certificates,
        crls: Vec::new(),
        package: None,
        fetch: None,
    };
    Ok(keep_identity::steward::certificate_request(&key, &[], &content)?.into())
}
