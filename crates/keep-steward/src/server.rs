//! The Steward's HTTPS service: `POST /v1/attest`, `POST /v1/secrets`, `GET /healthz`,
//! `GET /metrics`.

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
use crate::versions::VersionScope;

/// How long a client may take to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The media type of the returned chain (RFC 8555).
pub const PEM_CHAIN: &str = "application/pem-certificate-chain";
/// The media type of secret requests and answers.
pub const JSON: &str = "application/json";
/// The largest secret request (a list of names).
const MAX_SECRETS_REQUEST: usize = 64 * 1024;

/// The client certificate chain a connection presented (its TLS handshake verified it to
/// the Steward's CA), if any.
type PeerChain = Option<Vec<rustls_pki_types::CertificateDer<'static>>>;

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
            let client_chain: Arc<PeerChain> = Arc::new(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect()),
            );
            let service = hyper::service::service_fn(move |request| {
                let (steward, metrics, pool, chain) = (
                    steward.clone(),
                    metrics.clone(),
                    pool.clone(),
                    client_chain.clone(),
                );
                async move {
                    Ok::<_, Infallible>(route(request, steward, &metrics, &pool, &chain).await)
                }
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
    peer: &PeerChain,
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
        (&Method::POST, "/v1/secrets") => (
            "/v1/secrets",
            release_secrets(request, &steward, metrics, peer).await,
        ),
        (&Method::POST, "/v1/sealed") => (
            "/v1/sealed",
            sealed_version(request, &steward, metrics, peer).await,
        ),
        (_, "/healthz" | "/metrics" | "/v1/attest" | "/v1/secrets" | "/v1/sealed") => (
            "other",
            text(
                StatusCode::METHOD_NOT_ALLOWED,
                "use POST for /v1/attest, /v1/secrets and /v1/sealed, GET for /healthz and \
                 /metrics\n",
            ),
        ),
        _ => (
            "other",
            text(
                StatusCode::NOT_FOUND,
                "no such endpoint: the Steward serves POST /v1/attest, POST /v1/secrets, POST \
                 /v1/sealed, GET /healthz and GET /metrics\n",
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
            let subject = match &issued.claims.fetch {
                Some(reference) => format!("fetch {reference}"),
                None => format!("workload {}", issued.claims.workload_digest),
            };
            tracing::info!(
                "issued: tee {} {subject}{} names [{}] tcb {} serial {}",
                issued.claims.tee,
                issued
                    .claims
                    .package
                    .as_ref()
                    .map_or(String::new(), |p| format!(
                        " package {}@{} signed by [{}]",
                        p.repository,
                        p.manifest_digest,
                        p.signers.join(", ")
                    )),
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

/// `POST /v1/secrets`: `{"secrets": ["name", ...]}` from a Keep presenting, as its TLS client
/// certificate, a certificate this Steward issued (proving it holds the key the certificate
/// names); answered `{"secrets": {"name": "<base64>", ...}}` when every one is released to it.
/// Logs and metrics name secrets, never values.
async fn release_secrets(
    request: Request<Incoming>,
    steward: &Steward,
    metrics: &Metrics,
    peer: &PeerChain,
) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wanted {
        secrets: Vec<String>,
    }
    let Some(secrets) = steward.secrets() else {
        return no_secrets(metrics, "secrets");
    };
    let (requester, wanted) = match keep_request::<Wanted>(
        request,
        metrics,
        peer,
        "secrets",
        "{\"secrets\": [\"name\", ...]}",
    )
    .await
    {
        Ok(parts) => parts,
        Err(response) => return response,
    };
    let refuse = |status, reason, message| refused(metrics, "secrets", status, reason, message);
    match secrets.release(&requester, &wanted.secrets) {
        Ok(released) => {
            use base64::Engine as _;
            tracing::info!(
                "secrets released: [{}] to workload {} in TEE {}",
                wanted.secrets.join(", "),
                requester.claims.workload_digest,
                requester.claims.tee
            );
            metrics.released(released.len());
            let values: serde_json::Map<String, serde_json::Value> = released
                .iter()
                .map(|(name, value)| {
                    (
                        name.clone(),
                        base64::engine::general_purpose::STANDARD
                            .encode(value.as_slice())
                            .into(),
                    )
                })
                .collect();
            let answer = serde_json::json!({ "secrets": values }).to_string();
            with_type(text(StatusCode::OK, answer), JSON)
        }
        Err(refused) => refuse(
            StatusCode::FORBIDDEN,
            match refused {
                crate::secrets::Refused::Unknown(_) => "unknown-secret",
                _ => "secret-not-released",
            },
            refused.to_string(),
        ),
    }
}

/// The refusal of a request for `what` that needs secrets, by a Steward that holds none.
fn no_secrets(metrics: &Metrics, what: &'static str) -> Response<Full<Bytes>> {
    refused(
        metrics,
        what,
        StatusCode::NOT_FOUND,
        "no-secrets",
        "this Steward releases no secrets (start it with --secrets FILE)".to_owned(),
    )
}

/// What the mTLS endpoints share: the Keep presenting the certificate this Steward issued
/// it, and its JSON request `T` (`shape` in errors); or the response refusing it.
async fn keep_request<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
    metrics: &Metrics,
    peer: &PeerChain,
    what: &'static str,
    shape: &'static str,
) -> Result<(crate::secrets::Requester, T), Response<Full<Bytes>>> {
    let refuse = |status, reason, message| refused(metrics, what, status, reason, message);
    let Some(leaf) = peer.as_ref().and_then(|chain| chain.first()) else {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "no-client-certificate",
            format!(
                "{what} are released only over mTLS: present the certificate this Steward \
                 issued to the Keep"
            ),
        ));
    };
    let requester = crate::secrets::Requester::from_certificate(leaf).map_err(|e| {
        refuse(
            StatusCode::FORBIDDEN,
            "malformed",
            format!("the client certificate: {e}"),
        )
    })?;
    let body = Limited::new(request.into_body(), MAX_SECRETS_REQUEST)
        .collect()
        .await
        .map_err(|e| {
            refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("reading the request (at most {MAX_SECRETS_REQUEST} bytes): {e}"),
            )
        })?
        .to_bytes();
    let wanted = serde_json::from_slice(&body).map_err(|e| {
        refuse(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("the request is not {shape}: {e}"),
        )
    })?;
    Ok((requester, wanted))
}

/// `POST /v1/sealed`: `{"secret": NAME, "store": HEX, "advance": VERSION}` (`advance`
/// optional) from a Keep presenting, as its TLS client certificate, one this Steward
/// issued, to which `secret` is released: the version of the store sealed with that
/// secret, after recording `advance` if given. Without `secret` (a store sealed with a key
/// the TEE derived alone), the store is the Keep's workload's: its versions are kept under
/// the workload digest its certificate states. Answers `{"version": N}` (`null`: none
/// recorded yet).
async fn sealed_version(
    request: Request<Incoming>,
    steward: &Steward,
    metrics: &Metrics,
    peer: &PeerChain,
) -> Response<Full<Bytes>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Asked {
        #[serde(default)]
        secret: Option<String>,
        store: String,
        #[serde(default)]
        advance: Option<u64>,
    }
    let shape = "{\"secret\": \"name\", \"store\": \"32 hex digits\", \"advance\": N}";
    let refuse =
        |status, reason, message| refused(metrics, "sealed-store version", status, reason, message);
    let Some(versions) = steward.sealed_versions() else {
        return refuse(
            StatusCode::NOT_FOUND,
            "no-sealed-versions",
            "this Steward witnesses no sealed stores (start it with --sealed-versions FILE)"
                .to_owned(),
        );
    };
    let (requester, asked) =
        match keep_request::<Asked>(request, metrics, peer, "sealed-store versions", shape).await {
            Ok(parts) => parts,
            Err(response) => return response,
        };
    let store: [u8; 16] = match hex::decode(&asked.store)
        .ok()
        .and_then(|b| b.try_into().ok())
    {
        Some(store) => store,
        None => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "malformed",
                format!("the store `{}` is not 32 hex digits", asked.store),
            );
        }
    };
    // Only a Keep that may have the store's key may read or advance its version.
    let scope = match &asked.secret {
        Some(secret) => {
            let Some(secrets) = steward.secrets() else {
                return no_secrets(metrics, "sealed-store versions");
            };
            if let Err(refused) = secrets.release(&requester, std::slice::from_ref(secret)) {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "secret-not-released",
                    refused.to_string(),
                );
            }
            VersionScope::Secret(secret)
        }
        None => VersionScope::Workload(&requester.claims.workload_digest),
    };
    let version = match asked.advance {
        Some(version) => match versions.advance(scope, &store, version) {
            Ok(held) => {
                // A secret's store is advanced by whichever workload holds the secret.
                let by = match scope {
                    VersionScope::Secret(_) => {
                        format!(" (workload {})", requester.claims.workload_digest)
                    }
                    VersionScope::Workload(_) => String::new(),
                };
                tracing::info!(
                    "sealed store {} of {scope}: version {held}{by}",
                    asked.store
                );
                Some(held)
            }
            Err(e) => {
                tracing::error!("sealed-store versions: {e}");
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("the Steward cannot record the version: {e}"),
                );
            }
        },
        None => versions.current(scope, &store),
    };
    with_type(
        text(
            StatusCode::OK,
            serde_json::json!({ "version": version }).to_string(),
        ),
        JSON,
    )
}

/// A refusal of an mTLS endpoint (`what`): logged, counted under `reason`, and answered
/// with `status` and `message`.
fn refused(
    metrics: &Metrics,
    what: &str,
    status: StatusCode,
    reason: &'static str,
    message: String,
) -> Response<Full<Bytes>> {
    tracing::warn!("{what} refused ({reason}): {message}");
    metrics.rejected(reason);
    text(status, message + "\n")
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
