//! The access log: one [`AccessRecord`] per request, handed to the caller's sink when the
//! response body has been sent (or the client went away), so that it says how many bytes
//! went out and how long the whole exchange took.

use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use hyper::{Method, StatusCode, Uri, Version};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// Where access records go (the CLI prints them).
pub type AccessLog = Arc<dyn Fn(&AccessRecord) + Send + Sync>;

/// What the access log says of one request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AccessRecord {
    /// The request's number (the one error messages name).
    pub id: u64,
    /// The client's address.
    pub peer: SocketAddr,
    /// The request line.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The protocol version.
    pub version: Version,
    /// The response status.
    pub status: StatusCode,
    /// Body bytes sent.
    pub sent: u64,
    /// From the request's arrival to the response's end.
    pub duration: Duration,
    /// Whether the whole body was sent (false: the client left, or the guest failed
    /// while writing it).
    pub complete: bool,
}

/// `PEER #ID "METHOD URI VERSION" STATUS BYTES DURATION`, and `incomplete` when cut short.
impl fmt::Display for AccessRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} #{} \"{} {} {:?}\" {} {} {:.3}ms",
            self.peer,
            self.id,
            self.method,
            self.uri,
            self.version,
            self.status.as_u16(),
            self.sent,
            self.duration.as_secs_f64() * 1000.0,
        )?;
        if !self.complete {
            f.write_str(" incomplete")?;
        }
        Ok(())
    }
}

/// A response body that counts what it sends and logs the request when it ends.
pub(crate) struct LoggedBody {
    inner: HyperOutgoingBody,
    record: AccessRecord,
    started: Instant,
    log: AccessLog,
}

impl LoggedBody {
    /// Logs `record` (status and request filled in) to `log` once `inner` has been sent.
    pub(crate) fn new(
        inner: HyperOutgoingBody,
        record: AccessRecord,
        started: Instant,
        log: AccessLog,
    ) -> Self {
        Self {
            inner,
            record,
            started,
            log,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(context);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                let sent = frame.data_ref().map_or(0, |data| data.len() as u64);
                self.record.sent += sent;
                // Trailers end a body: hyper polls no further.
                self.record.complete |= frame.is_trailers();
            }
            Poll::Ready(None) => self.record.complete = true,
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // hyper does not poll a body past its end when the length is known.
        self.record.complete |= self.inner.is_end_stream();
        self.record.duration = self.started.elapsed();
        (self.log)(&self.record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_line_with_what_an_operator_looks_for() {
        let mut record = AccessRecord {
            id: 7,
            peer: "127.0.0.1:40000".parse().unwrap(),
            method: Method::POST,
            uri: "/echo?x=1".parse().unwrap(),
            version: Version::HTTP_2,
            status: StatusCode::OK,
            sent: 4096,
            duration: Duration::from_micros(1500),
            complete: true,
        };
        assert_eq!(
            record.to_string(),
            "127.0.0.1:40000 #7 \"POST /echo?x=1 HTTP/2.0\" 200 4096 1.500ms"
        );
        record.complete = false;
        assert!(record.to_string().ends_with(" incomplete"));
    }
}
