//! `keep serve`: a `wasi:http/proxy` 0.2 component served over HTTP/1.1 and HTTP/2 (ALPN
//! over TLS, prior knowledge over plain HTTP), plain or TLS, with
//! a fresh instance of the component for every request (so that one request cannot see or
//! disturb another's state).
//!
//! Outgoing requests (`wasi:http/outgoing-handler`) are refused (`HTTP-request-denied`):
//! which hosts a service may reach is `[network]`'s to say, and that is not wired here yet.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// How long a client may take to send a request's headers (slow clients hold a connection
/// and a task; they are dropped after this).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A compiled `wasi:http` component, ready to answer requests.
pub struct Service {
    engine: Engine,
    pre: ProxyPre<RequestHost>,
    env: Vec<(String, String)>,
    next_request: AtomicU64,
}

impl Service {
    /// Compiles `component` (the bytes of `name`) and links it to WASI 0.2 and `wasi:http`;
    /// its guests see `env`.
    pub fn new(name: &str, component: &[u8], env: Vec<(String, String)>) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(anyhow::Error::from)?;
        let component = Component::new(&engine, component)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("`{name}` is not a valid component"))?;
        let mut linker = Linker::<RequestHost>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        let instance = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{name}` imports what `keep serve` does not provide (WASI 0.2 and \
                     wasi:http 0.2)"
                )
            })?;
        let pre = ProxyPre::new(instance)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{name}` is not a wasi:http service: it does not export \
                     `wasi:http/incoming-handler@0.2.x`"
                )
            })?;
        Ok(Self {
            engine,
            pre,
            env,
            next_request: AtomicU64::new(1),
        })
    }

    /// The answer to `request`: the service's, or a 500 when it fails before answering
    /// (the error is logged with the request's number).
    async fn respond(
        &self,
        request: Request<Incoming>,
        scheme: Scheme,
    ) -> Response<HyperOutgoingBody> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (method, uri) = (request.method().clone(), request.uri().clone());
        match self.handle(id, request, scheme).await {
            Ok(response) => {
                tracing::info!("request {id}: {method} {uri} -> {}", response.status());
                response
            }
            Err(error) => {
                tracing::warn!("request {id}: {method} {uri} -> 500: {error:#}");
                text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the service failed on request {id}\n"),
                )
            }
        }
    }

    /// Runs a fresh instance on `request`; its answer arrives as soon as the guest sets
    /// the response, and its body streams while the guest writes it.
    async fn handle(
        &self,
        id: u64,
        request: Request<Incoming>,
        scheme: Scheme,
    ) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let mut store = Store::new(&self.engine, RequestHost::new(&self.env));
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let request = store
            .data_mut()
            .http()
            .new_incoming_request(scheme, request)
            .map_err(anyhow::Error::from)?;
        let response_out = store
            .data_mut()
            .http()
            .new_response_outparam(sender)
            .map_err(anyhow::Error::from)?;
        let pre = self.pre.clone();
        let guest = tokio::spawn(async move {
            let proxy = pre.instantiate_async(&mut store).await?;
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, request, response_out)
                .await
        });
        match receiver.await {
            Ok(Ok(response)) => {
                // The guest may still be writing the body: a failure from here on ends
                // the body early, and is logged.
                tokio::spawn(async move {
                    if let Ok(Err(error)) = guest.await {
                        tracing::warn!(
                            "request {id}: the service failed after answering: {error:#}"
                        );
                    }
                });
                Ok(response)
            }
            Ok(Err(code)) => bail!("the service answered with error {code:?}"),
            Err(_) => match guest.await {
                Ok(Ok(())) => bail!("the service returned without setting a response"),
                Ok(Err(error)) => Err(anyhow!("{error:#}")),
                Err(error) => Err(anyhow!("the service's task failed: {error}")),
            },
        }
    }
}

/// Serves `service` on `listener` until the listener fails: TLS with `tls`, plain HTTP
/// without. Each connection runs on a task of its own.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<()> {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, say: the next accept may succeed.
            Err(error) => {
                tracing::warn!("cannot accept a connection: {error}");
                continue;
            }
        };
        let (service, tls) = (service.clone(), tls.clone());
        tokio::spawn(async move {
            let scheme = if tls.is_some() {
                Scheme::Https
            } else {
                Scheme::Http
            };
            let handler = hyper::service::service_fn(move |request| {
                let (service, scheme) = (service.clone(), scheme.clone());
                async move { Ok::<_, Infallible>(service.respond(request, scheme).await) }
            });
            // HTTP/1.1 or HTTP/2, told apart by the connection preface.
            let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            http.http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            http.http2().timer(TokioTimer::new());
            let served = match tls {
                Some(tls) => match tls.accept(tcp).await {
                    Ok(stream) => http.serve_connection(TokioIo::new(stream), handler).await,
                    Err(error) => {
                        tracing::debug!("TLS handshake with {peer} failed: {error}");
                        return;
                    }
                },
                None => http.serve_connection(TokioIo::new(tcp), handler).await,
            };
            if let Err(error) = served {
                tracing::debug!("connection from {peer}: {error}");
            }
        });
    }
}

/// A response with a text body.
fn text_response(status: StatusCode, text: String) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

/// The store data of one request's instance.
struct RequestHost {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutgoingRefused,
}

impl RequestHost {
    fn new(env: &[(String, String)]) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(env).inherit_stdout().inherit_stderr();
        Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutgoingRefused,
        }
    }
}

impl WasiView for RequestHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Refuses every outgoing request (see the module documentation).
struct OutgoingRefused;

impl WasiHttpHooks for OutgoingRefused {
    fn send_request(
        &mut self,
        _request: hyper::Request<wasmtime_wasi_http::WasiBody>,
        _options: Option<wasmtime_wasi_http::RequestOptions>,
        _done: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        hyper::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) })
    }
}
