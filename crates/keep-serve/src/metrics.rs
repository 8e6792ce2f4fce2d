//! `keep serve`'s metrics, served in the Prometheus text format on the admin address
//! (`[http] admin`), never on the service's own port.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use keep_metrics::{Counters, Histogram};

use crate::access_log::AccessRecord;
use crate::admission::Admission;

/// What the service has done, and what it is doing.
pub(crate) struct Metrics {
    responses: Counters<u16>,
    duration: Histogram,
    admission: Arc<Admission>,
    pool_size: u32,
}

impl Metrics {
    /// Metrics of a server admitting through `admission`, with `pool_size` pooled instances.
    pub(crate) fn new(admission: Arc<Admission>, pool_size: u32) -> Self {
        Self {
            responses: Counters::default(),
            duration: Histogram::default(),
            admission,
            pool_size,
        }
    }

    /// Counts a request whose response has been sent (or cut short).
    pub(crate) fn record(&self, record: &AccessRecord) {
        self.responses.bump(record.status.as_u16());
        self.duration.observe(record.duration);
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.responses.render(
            &mut out,
            "keep_serve_requests_total",
            "Requests answered, by status.",
            "status",
        );
        self.duration.render(
            &mut out,
            "keep_serve_request_duration_seconds",
            "From a request's arrival to the end of its response.",
        );
        keep_metrics::render_value(
            &mut out,
            "keep_serve_requests_in_flight",
            "Requests running in an instance of the service.",
            "gauge",
            self.admission.running().into(),
        );
        keep_metrics::render_value(
            &mut out,
            "keep_serve_requests_queued",
            "Requests waiting for a free slot.",
            "gauge",
            self.admission.waiting().into(),
        );
        keep_metrics::render_value(
            &mut out,
            "keep_serve_instance_pool_size",
            "Instances the pool holds ([http] concurrency).",
            "gauge",
            self.pool_size.into(),
        );
        out
    }
}

/// Serves `GET /metrics` on `listener` (plain HTTP/1.1) until the task is dropped.
pub(crate) async fn serve_admin(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let handler = hyper::service::service_fn(move |request: Request<_>| {
                let metrics = metrics.clone();
                async move {
                    let mut response = if request.uri().path() == "/metrics" {
                        Response::new(Full::new(Bytes::from(metrics.render())))
                    } else {
                        let mut missing = Response::new(Full::new(Bytes::from_static(
                            b"only /metrics is served here\n",
                        )));
                        *missing.status_mut() = StatusCode::NOT_FOUND;
                        missing
                    };
                    response.headers_mut().insert(
                        hyper::header::CONTENT_TYPE,
                        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), handler)
                .await;
        });
    }
}
