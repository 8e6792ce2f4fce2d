//! The listener's loop: TLS, HTTP/1.1 or HTTP/2 per connection, admission of each request,
//! the access log, and the drain at shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use keep_runtime::StoppingThread;

use crate::Service;
use crate::access_log::LoggedBody;
pub use crate::access_log::{AccessLog, AccessRecord};
use crate::admission::Admission;
use crate::metrics::{Metrics, serve_admin};

/// hyper's smallest read buffer for HTTP/1.1 (it refuses less).
const MIN_HEAD_BUFFER: usize = 8192;
/// After a failed accept (out of descriptors, say), how long before the next: the
/// condition rarely clears at once, and retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How the server treats its clients (`[http]` in Keep.toml).
pub struct ServerOptions {
    /// Requests handled at once.
    pub concurrency: u32,
    /// Requests that may wait for a turn; more are answered 503.
    pub queue: u32,
    /// Largest request head, in bytes (HTTP/1.1's read buffer, HTTP/2's header list).
    pub max_headers: u32,
    /// How long a client may take to send a request head (HTTP/1.1).
    pub header_timeout: Duration,
    /// At shutdown, how long connections get to finish what they are doing.
    pub drain_timeout: Duration,
    /// Where each request's record goes; `None`: no access log.
    pub access_log: Option<AccessLog>,
    /// Where `GET /metrics` is served (plain HTTP), if anywhere.
    pub admin: Option<std::net::TcpListener>,
}

/// How the server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// Connections still open at the drain deadline, and closed then.
    pub cut: usize,
}

/// Serves `service` on `listener` until `shutdown` completes: TLS with `tls`, plain HTTP
/// without. Then it stops accepting, lets open connections finish their requests (HTTP/2
/// clients get a GOAWAY) for up to the drain timeout, and returns.
pub async fn serve(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<Stopped> {
    // Without it, guests would run to their end without yielding or timing out.
    let ticker = advance_epoch(service.engine.clone())
        .map_err(|error| anyhow::anyhow!("cannot start the epoch thread: {error}"))?;
    let admission = Arc::new(Admission::new(options.concurrency, options.queue));
    let metrics = Arc::new(Metrics::new(admission.clone(), options.concurrency));
    let limits = ConnectionLimits::of(&options);
    let admin = match options.admin {
        Some(admin) => {
            admin.set_nonblocking(true)?;
            let admin = tokio::net::TcpListener::from_std(admin)?;
            Some(tokio::spawn(serve_admin(admin, metrics.clone())))
        }
        None => None,
    };
    // Every request ends in the metrics, and in the access log when there is one.
    let access_log = options.access_log;
    let record: AccessLog = Arc::new(move |record: &AccessRecord| {
        metrics.record(record);
        if let Some(log) = &access_log {
            log(record);
        }
    });
    let connections = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // A response goes out in several writes (head, body chunks, the end of the body,
        // which a WASI 0.3 guest's body gives only once the guest has exited); with Nagle's
        // algorithm each waits for the ACK of the one before, which the client's delayed
        // ACK holds back for 40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY for {peer}: {error}");
        }
        let connection = Connection {
            service: service.clone(),
            admission: admission.clone(),
            limits,
            record: record.clone(),
            peer,
        };
        tokio::spawn(connection.run(tcp, tls.clone(), connections.watcher()));
    }
    drop(listener);
    let open = connections.count();
    let cut = match tokio::time::timeout(options.drain_timeout, connections.shutdown()).await {
        Ok(()) => 0,
        Err(_) => open,
    };
    drop(ticker);
    if let Some(admin) = admin {
        admin.abort();
    }
    Ok(Stopped { cut })
}

/// Advances `engine`'s epoch every [`crate::EPOCH_TICK`] on a thread of its own, until the
/// handle is dropped. Not a task of the async runtime: when guests that compute without
/// calling the host occupy every worker thread, only the epoch can make them yield, so it
/// must not wait for a worker.
fn advance_epoch(engine: wasmtime::Engine) -> std::io::Result<StoppingThread> {
    StoppingThread::spawn("keep-epoch", move |stopped| {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(crate::EPOCH_TICK)
        {
            engine.increment_epoch();
        }
    })
}

/// What a connection enforces (from [`ServerOptions`]).
#[derive(Clone, Copy)]
struct ConnectionLimits {
    concurrency: u32,
    queue: u32,
    max_headers: u32,
    header_timeout: Duration,
}

impl ConnectionLimits {
    fn of(options: &ServerOptions) -> Self {
        Self {
            concurrency: options.concurrency,
            queue: options.queue,
            max_headers: options.max_headers,
            header_timeout: options.header_timeout,
        }
    }
}

/// One client connection.
struct Connection {
    service: Arc<Service>,
    admission: Arc<Admission>,
    limits: ConnectionLimits,
    /// Where each request's record goes (metrics, access log).
    record: AccessLog,
    peer: SocketAddr,
}

impl Connection {
    /// Serves the connection's requests until it closes, or until shutdown has let it
    /// finish the request it is on.
    async fn run(
        self,
        tcp: tokio::net::TcpStream,
        tls: Option<tokio_rustls::TlsAcceptor>,
        watcher: Watcher,
    ) {
        let peer = self.peer;
        let scheme = if tls.is_some() {
            Scheme::Https
        } else {
            Scheme::Http
        };
        // HTTP/1.1 or HTTP/2, told apart by the connection preface.
        let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_buf_size((self.limits.max_headers as usize).max(MIN_HEAD_BUFFER));
        http.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(self.limits.max_headers);
        let this = Arc::new(self);
        let handler = hyper::service::service_fn(move |request| {
            let (this, scheme) = (this.clone(), scheme.clone());
            async move { Ok::<_, Infallible>(this.answer(request, scheme).await) }
        });
        let served = match tls {
            Some(tls) => match tls.accept(tcp).await {
                Ok(stream) => {
                    let connection = http.serve_connection(TokioIo::new(stream), handler);
                    watcher.watch(connection.into_owned()).await
                }
                Err(error) => {
                    tracing::debug!("TLS handshake with {peer} failed: {error}");
                    return;
                }
            },
            None => {
                let connection = http.serve_connection(TokioIo::new(tcp), handler);
                watcher.watch(connection.into_owned()).await
            }
        };
        if let Err(error) = served {
            tracing::debug!("connection from {peer}: {error}");
        }
    }

    /// The response to one request: 503 when the queue is full, else the service's.
    async fn answer(
        &self,
        request: Request<Incoming>,
        scheme: Scheme,
    ) -> Response<HyperOutgoingBody> {
        let started = Instant::now();
        let id = self.service.next_id();
        let record = AccessRecord {
            id,
            peer: self.peer,
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            status: StatusCode::OK,
            sent: 0,
            duration: Duration::ZERO,
            complete: false,
        };
        let response = match self.admission.admit().await {
            Some(slot) => self.service.respond(id, request, scheme, slot).await,
            None => {
                tracing::warn!(
                    "request {id}: {} {} -> 503: {} requests are running and {} waiting",
                    record.method,
                    record.uri,
                    self.limits.concurrency,
                    self.limits.queue
                );
                let mut busy = text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("request {id}: the service is busy; try again\n"),
                );
                busy.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from_static("1"));
                busy
            }
        };
        let record = AccessRecord {
            status: response.status(),
            ..record
        };
        let log = self.record.clone();
        response.map(|body| LoggedBody::new(body, record, started, log).boxed_unsync())
    }
}

/// A response with a text body.
pub(crate) fn text_response(status: StatusCode, text: String) -> Response<HyperOutgoingBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never: Infallible| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}
