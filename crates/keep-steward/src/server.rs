//! The Steward's HTTPS service: `POST /v1/attest`, `GET /healthz`, `GET /metrics`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use keep_identity::steward::{MAX_BODY, PKCS10};

use crate::decide::{Refusal, Steward};
use crate::metrics::Metrics;
use crate::pool::DecisionPool;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The media type of the returned chain (RFC 8555).
pub const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// Serves HTTPS on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    steward: Arc<Steward>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let pool = Arc::new(DecisionPool::for_this_machine()?);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: log, back off, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, steward, metrics, pool) = (
            acceptor.clone(),
            steward.clone(),
            metrics.clone(),
            pool.clone(),
        );
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!("{peer}: TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!("{peer}: TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |request| {
                let (steward, metrics, pool) = (steward.clone(), metrics.clone(), pool.clone());
                async move { Ok::<_, Infallible>(route(request, steward, &metrics, &pool).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("{peer}: {e}");
            }
        });
    }
}

async fn route(
    request: Request<Incoming>,
    steward: Arc<Steward>,
    metrics: &Metrics,
    pool: &DecisionPool,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let (endpoint, response) = match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz") => ("/healthz", text(StatusCode::OK, "ok\n")),
        (&Method::GET, "/metrics") => (
            "/metrics",
            with_type(
                text(StatusCode::OK, metrics.render()),
                "text/plain; version=0.0.4",
            ),
        ),
        (&Method::POST, "/v1/attest") => {
            ("/v1/attest", attest(request, steward, metrics, pool).await)
        }
        (_, "/healthz" | "/metrics" | "/v1/attest") => (
            "other",
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST for /v1/attest and GET for /healthz and /metrics\n",
            ),
        ),
        _ => (
            "other",
            text(
                StatusCode::NOT_FOUND,
                "no such endpoint: the Steward serves POST /v1/attest, GET /healthz and GET \
                 /metrics\n",
            ),
        ),
    };
    metrics.request(endpoint, response.status().as_u16());
    response
}

async fn attest(
    request: Request<Incoming>,
    steward: Arc<Steward>,
    metrics: &Metrics,
    pool: &DecisionPool,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let decided = match read_request(request).await {
        Ok(der) => pool
            .run(move || steward.decide(&der, SystemTime::now()))
            .await
            .ok_or_else(|| {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the Steward could not decide (shutting down, or an internal fault)\n",
                )
            }),
        Err(response) => Err(response),
    };
    let response = match decided {
        Ok(Ok(issued)) => {
            tracing::info!(
                "issued: tee {} workload {} names [{}] tcb {} serial {}",
                issued.claims.tee,
                issued.claims.workload_digest,
                issued.names.join(", "),
                issued.claims.tcb_status,
                issued.serial
            );
            metrics.issued(issued.claims.tee.as_str());
            with_type(text(StatusCode::OK, issued.chain_pem), PEM_CHAIN)
        }
        Ok(Err(refusal)) => refuse(&refusal, metrics),
        Err(response) => response,
    };
    metrics.latency(started.elapsed());
    response
}

fn refuse(refusal: &Refusal, metrics: &Metrics) -> Response<Full<Bytes>> {
    tracing::warn!("refused ({}): {refusal}", refusal.reason());
    metrics.rejected(refusal.reason());
    let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::FORBIDDEN);
    text(status, format!("{refusal}\n"))
}

/// The DER request from the body (DER or PEM), or the response refusing it.
async fn read_request(request: Request<Incoming>) -> Result<Vec<u8>, Response<Full<Bytes>>> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_owned();
    if content_type.split(';').next().map(str::trim) != Some(PKCS10) {
        return Err(text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "content type {content_type}: send the certificate request as {PKCS10} (DER \
                 or PEM)\n"
            ),
        ));
    }
    // A declared length over the limit is refused before any of the body is read (a client
    // waiting on `Expect: 100-continue` then gets the answer instead of a reset).
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY as u64) {
        return Err(too_large());
    }
    let body = Limited::new(request.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                text(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n"))
            }
        })?
        .to_bytes();
    if body.trim_ascii_start().starts_with(b"-----BEGIN") {
        return CertificateSigningRequestDer::from_pem_slice(&body)
            .map(|csr| csr.as_ref().to_vec())
            .map_err(|e| {
                text(
                    StatusCode::BAD_REQUEST,
                    format!("the body is PEM but not a CERTIFICATE REQUEST: {e}\n"),
                )
            });
    }
    Ok(body.to_vec())
}

fn too_large() -> Response<Full<Bytes>> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body exceeds {MAX_BODY} bytes\n"),
    )
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    with_type(response, "text/plain; charset=utf-8")
}

fn with_type(
    mut response: Response<Full<Bytes>>,
    media_type: &'static str,
) -> Response<Full<Bytes>> {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media_type));
    response
}
