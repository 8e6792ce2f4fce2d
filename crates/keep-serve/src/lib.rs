//! `keep serve`: a `wasi:http/proxy` 0.2 or `wasi:http/service` 0.3 component served over
//! HTTP/1.1 and HTTP/2 (ALPN over TLS, prior knowledge over plain HTTP), with a fresh
//! instance of the component for every request, so that one request cannot see or disturb
//! another's state.
//!
//! - [`Service`]: the compiled component and what each request's instance gets (its
//!   environment, its [`RequestLimits`]);
//! - [`serve`]: the listener's loop: admission (a concurrency limit with a bounded queue,
//!   then 503), request head and body limits, an access log line per request, and a
//!   graceful drain on shutdown.
//!
//! Outgoing requests (`wasi:http/outgoing-handler`, `wasi:http/client`) go only where
//! `[network] connect` allows, over TLS verified with `[tls]` and presenting the Keep's
//! certificate ([`Outgoing`], which `keep run` uses too); anything else is refused with
//! `HTTP-request-denied`.

mod access_log;
mod admission;
mod body;
mod host;
mod metrics;
mod response_body;
mod server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::sync::oneshot;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi_http::WasiHttpView as _;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub use host::GuestContext;
pub use keep_runtime::net::http::Outgoing;
pub use server::{AccessLog, AccessRecord, ServerOptions, Stopped, serve};

use crate::body::{BodyLimit, LimitedBody};
use crate::host::RequestHost;
use crate::response_body::GuestBody;

/// How often the engine's epoch advances: a guest that computes without calling the host
/// yields to the other requests this often (once past [`YIELD_AFTER_TICKS`]), and a
/// request's timeout is checked as often.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Ticks a request's guest runs before it starts yielding at every tick. A yield sends the
/// guest's task to the back of the runtime's queue, and measured under load that costs a
/// request tens of milliseconds; most requests finish within a tick or two and so never
/// pay it, while a guest that computes for long still lets the others run every tick.
const YIELD_AFTER_TICKS: u32 = 5;

/// What each request's instance may use. Every limit is off unless given.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestLimits {
    /// Largest linear memory (and table) an instance may grow to, in bytes.
    pub memory: Option<u64>,
    /// Fuel an instance may consume.
    pub fuel: Option<u64>,
    /// Wall-clock time from the request's start until the guest has finished (its body
    /// included).
    pub timeout: Option<Duration>,
    /// Largest request body, in bytes: a larger one is refused with 413.
    pub max_body: Option<u64>,
}

/// A compiled `wasi:http` component, ready to answer requests.
pub struct Service {
    engine: Engine,
    handler: Handler,
    guest: GuestContext,
    limits: RequestLimits,
    outgoing: Outgoing,
    next_request: AtomicU64,
}

/// The linked component, by the `wasi:http` it serves.
enum Handler {
    /// `wasi:http/proxy` 0.2: exports `wasi:http/incoming-handler`.
    P2(ProxyPre<RequestHost>),
    /// `wasi:http/service` 0.3: exports `wasi:http/handler`, an async function.
    P3(ServicePre<RequestHost>),
}

/// The engine a service needs for `limits` with `concurrency` requests at once: epoch
/// checks always (so that a guest in a loop yields to the others and can time out), fuel
/// counting when asked, a pool of `concurrency` instances (an instance lives no longer
/// than its request's admission slot), and the component model's async features for a
/// WASI 0.3 service (`wasi_p3`) only.
pub fn engine_options(
    limits: &RequestLimits,
    concurrency: u32,
    wasi_p3: bool,
) -> keep_runtime::EngineOptions {
    keep_runtime::EngineOptions {
        fuel: limits.fuel.is_some(),
        epoch_interruption: true,
        pooled_instances: Some(concurrency.max(1)),
        component_model_async: wasi_p3,
    }
}

/// The interface a WASI 0.3 service exports (any 0.3 version).
const HANDLER_P3: &str = "wasi:http/handler@0.3";

impl Service {
    /// Links `component` (compiled for `engine`, built with [`engine_options`]) to WASI
    /// and `wasi:http` 0.2 (and `wasi:config/store`), and 0.3 too when it names a WASI 0.3
    /// interface (then `engine` must have the async features); it is served as a 0.3
    /// service when it exports `wasi:http/handler@0.3.x`. `name` names it in errors. Each request's instance sees `guest`, is held
    /// to `limits`, and sends its outgoing requests through `outgoing`.
    pub fn new(
        name: &str,
        engine: &Engine,
        component: &wasmtime::component::Component,
        guest: GuestContext,
        limits: RequestLimits,
        outgoing: Outgoing,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::<RequestHost>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(anyhow::Error::from)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)?;
        keep_runtime::secrets::add_to_linker(&mut linker, RequestHost::config)?;
        let component_type = component.component_type();
        let is_p3 = |name: &str| name.starts_with("wasi:") && name.contains("@0.3");
        let wasi_p3 = component_type.imports(engine).any(|(name, _)| is_p3(name))
            || component_type.exports(engine).any(|(name, _)| is_p3(name));
        if wasi_p3 {
            wasmtime_wasi::p3::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
            wasmtime_wasi_http::p3::add_to_linker(&mut linker).map_err(anyhow::Error::from)?;
        }
        let instance = linker
            .instantiate_pre(component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{name}` imports what `keep serve` does not provide (WASI 0.2 and 0.3, \
                     wasi:http 0.2 and 0.3, and wasi:config/store)"
                )
            })?;
        let handler = if component_type
            .exports(engine)
            .any(|(name, _)| name.starts_with(HANDLER_P3))
        {
            Handler::P3(
                ServicePre::new(instance)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!("`{name}` does not export a `wasi:http/handler` Keep can call")
                    })?,
            )
        } else {
            Handler::P2(
                ProxyPre::new(instance)
                    .map_err(anyhow::Error::from)
                    .with_context(|| {
                        format!(
                            "`{name}` is not a wasi:http service: it exports neither \
                             `wasi:http/incoming-handler@0.2.x` nor `wasi:http/handler@0.3.x`"
                        )
                    })?,
            )
        };
        Ok(Self {
            engine: engine.clone(),
            handler,
            guest,
            limits,
            outgoing,
            next_request: AtomicU64::new(1),
        })
    }

    /// The answer to `request`: the service's; 413 for a body over the limit; 500 when the
    /// guest fails before answering (the error is logged with the request's number). The
    /// admission slot `slot` is held until the guest has finished.
    async fn respond(
        &self,
        id: u64,
        request: Request<Incoming>,
        scheme: Scheme,
        slot: admission::Slot,
    ) -> Response<HyperOutgoingBody> {
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let limit = BodyLimit::new(self.limits.max_body);
        if limit.refuses_length(request.headers()) {
            tracing::warn!("request {id}: {method} {uri} -> 413: the body is over the limit");
            return server::text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request {id}: the body is larger than the service accepts\n"),
            );
        }
        let request = request.map(|body| LimitedBody::new(body, limit.clone()));
        match self.handle(id, request, scheme, slot).await {
            Ok(response) => response,
            Err(_) if limit.exceeded() => {
                tracing::warn!("request {id}: {method} {uri} -> 413: the body is over the limit");
                server::text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request {id}: the body is larger than the service accepts\n"),
                )
            }
            Err(error) => {
                tracing::warn!("request {id}: {method} {uri} -> 500: {error:#}");
                server::text_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the service failed on request {id}\n"),
                )
            }
        }
    }

    /// The number of the next request.
    fn next_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Runs a fresh instance on `request`; its answer arrives as soon as the guest sets
    /// the response, and its body streams while the guest writes it.
    async fn handle(
        &self,
        id: u64,
        request: Request<LimitedBody>,
        scheme: Scheme,
        slot: admission::Slot,
    ) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let host = RequestHost::new(&self.guest, self.limits.memory, self.outgoing.clone())?;
        let mut store = Store::new(&self.engine, host);
        store.limiter(|host| host.limits());
        // Past its first ticks, the guest yields at every tick: other requests run
        // meanwhile, and the timeout can interrupt a guest that never calls the host.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut context| {
            Ok(if context.data_mut().tick() > YIELD_AFTER_TICKS {
                UpdateDeadline::Yield(1)
            } else {
                UpdateDeadline::Continue(1)
            })
        });
        if let Some(fuel) = self.limits.fuel {
            store.set_fuel(fuel).map_err(anyhow::Error::from)?;
        }
        match &self.handler {
            Handler::P2(pre) => {
                let (sender, answer) = oneshot::channel();
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
                let pre = pre.clone();
                let run = async move {
                    let finished = async {
                        let proxy = pre.instantiate_async(&mut store).await?;
                        proxy
                            .wasi_http_incoming_handler()
                            .call_handle(&mut store, request, response_out)
                            .await
                    }
                    .await;
                    drop(store);
                    finished
                };
                self.supervise(id, run, slot, answer, None).await
            }
            Handler::P3(pre) => {
                let (sender, answer) = oneshot::channel();
                let (body_done, body_ended) = oneshot::channel::<()>();
                let request = with_absolute_uri(request, &scheme)?;
                let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(
                    store.data_mut().http().hooks,
                    request,
                );
                let pre = pre.clone();
                let run = async move {
                    let finished = async {
                        let service = pre.instantiate_async(&mut store).await?;
                        store
                            .run_concurrent(async |accessor| {
                                let answered = service.handle(accessor, request).await?;
                                let response = match answered {
                                    Ok(response) => Ok(accessor.with(|mut access| {
                                        response.into_http(&mut access, request_io)
                                    })?),
                                    Err(code) => Err(code),
                                };
                                let _ = sender.send(response);
                                // The guest's task goes on after answering: it writes the
                                // body, and it is done only when it exits. The body's
                                // trailers may still come through the store after that.
                                std::future::poll_fn(|context| {
                                    accessor.poll_no_interesting_tasks(context)
                                })
                                .await;
                                let _ = body_ended.await;
                                wasmtime::Result::Ok(())
                            })
                            .await?
                    }
                    .await;
                    drop(store);
                    finished
                };
                self.supervise(id, run, slot, answer, Some(body_done)).await
            }
        }
    }

    /// Runs the guest (`run`, which owns the request's store) under the request's time
    /// limit, and returns the response the guest gives on `answer`. The admission slot is
    /// given up once the guest has finished; a failure after answering ends the body
    /// early and is logged. `body_done` is dropped when the guest's body has ended.
    async fn supervise<E: std::fmt::Debug>(
        &self,
        id: u64,
        run: impl Future<Output = wasmtime::Result<()>> + Send + 'static,
        slot: admission::Slot,
        answer: oneshot::Receiver<Result<Response<HyperOutgoingBody>, E>>,
        body_done: Option<oneshot::Sender<()>>,
    ) -> anyhow::Result<Response<HyperOutgoingBody>> {
        let timeout = self.limits.timeout;
        let (tell_outcome, outcome) = oneshot::channel();
        let guest = tokio::spawn(async move {
            let finished = match timeout {
                Some(limit) => match tokio::time::timeout(limit, run).await {
                    Ok(finished) => finished.map_err(|error| anyhow!("{}", describe(&error))),
                    Err(_) => Err(anyhow!(
                        "the request took longer than its time limit ([limits] timeout), {}",
                        humantime::format_duration(limit)
                    )),
                },
                None => run.await.map_err(|error| anyhow!("{}", describe(&error))),
            };
            // `run` has dropped the store (or was dropped with it at the time limit): the
            // instance is back in the pool before the slot is given up, so that the pool
            // (sized to the slots) always has one for the next admitted request.
            drop(slot);
            let _ = tell_outcome.send(finished.is_ok());
            finished
        });
        match answer.await {
            Ok(Ok(response)) => {
                tokio::spawn(async move {
                    if let Ok(Err(error)) = guest.await {
                        tracing::warn!(
                            "request {id}: the service failed after answering: {error:#}"
                        );
                    }
                });
                Ok(response.map(|body| GuestBody::new(body, outcome, body_done).boxed_unsync()))
            }
            Ok(Err(code)) => bail!("the service answered with error {code:?}"),
            Err(_) => match guest.await {
                Ok(Ok(())) => bail!("the service returned without setting a response"),
                Ok(Err(error)) => Err(error),
                Err(error) => Err(anyhow!("the service's task failed: {error}")),
            },
        }
    }
}

/// `request` with the absolute URI a WASI 0.3 guest reads its scheme and authority from:
/// `scheme`, and the authority the client gave (HTTP/2's `:authority`, or HTTP/1.1's
/// `Host`).
fn with_absolute_uri<B>(request: Request<B>, scheme: &Scheme) -> anyhow::Result<Request<B>> {
    let (mut parts, body) = request.into_parts();
    let authority = match parts.uri.authority() {
        Some(authority) => Some(authority.clone()),
        None => parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| host.parse().ok()),
    };
    if let Some(authority) = authority {
        let mut uri = parts.uri.into_parts();
        uri.scheme = Some(match scheme {
            Scheme::Https => hyper::http::uri::Scheme::HTTPS,
            _ => hyper::http::uri::Scheme::HTTP,
        });
        uri.authority = Some(authority);
        if uri.path_and_query.is_none() {
            uri.path_and_query = Some(hyper::http::uri::PathAndQuery::from_static("/"));
        }
        parts.uri = hyper::Uri::from_parts(uri).context("the request's URI")?;
    }
    Ok(Request::from_parts(parts, body))
}

/// A guest's failure in words: the limit it ran into, or wasmtime's error with its trap.
fn describe(error: &wasmtime::Error) -> String {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "the request ran out of fuel ([limits] fuel)".into(),
        _ => format!("{error:#}"),
    }
}
