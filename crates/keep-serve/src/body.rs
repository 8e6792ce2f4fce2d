//! The request body limit: a declared length over it is refused before the guest runs; a
//! body that grows over it while streaming ends with an error the guest sees, and the
//! server answers 413 if the guest has not answered yet.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{CONTENT_LENGTH, HeaderMap};

/// The limit of one request's body, and whether it was crossed.
#[derive(Clone)]
pub(crate) struct BodyLimit {
    max: Option<u64>,
    exceeded: Arc<AtomicBool>,
}

impl BodyLimit {
    /// At most `max` bytes; `None`: no limit.
    pub(crate) fn new(max: Option<u64>) -> Self {
        Self {
            max,
            exceeded: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the request declares a length over the limit.
    pub(crate) fn refuses_length(&self, headers: &HeaderMap) -> bool {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| text.parse::<u64>().ok());
        matches!((self.max, declared), (Some(max), Some(length)) if length > max)
    }

    /// Whether the body grew over the limit while it streamed.
    pub(crate) fn exceeded(&self) -> bool {
        self.exceeded.load(Ordering::Acquire)
    }
}

/// A request body held to a [`BodyLimit`].
pub(crate) struct LimitedBody {
    inner: Incoming,
    limit: BodyLimit,
    received: u64,
}

impl LimitedBody {
    pub(crate) fn new(inner: Incoming, limit: BodyLimit) -> Self {
        Self {
            inner,
            limit,
            received: 0,
        }
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(error))) => {
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::Hyper(error))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            self.received = self.received.saturating_add(data.len() as u64);
            if self.limit.max.is_some_and(|max| self.received > max) {
                self.limit.exceeded.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(wasmtime_wasi_http::Error::HttpRequestBodySize(
                    Some(self.received),
                ))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    #[test]
    fn a_declared_length_over_the_limit_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("1025"));
        assert!(BodyLimit::new(Some(1024)).refuses_length(&headers));
        assert!(!BodyLimit::new(Some(1025)).refuses_length(&headers));
        assert!(!BodyLimit::new(None).refuses_length(&headers));
        assert!(!BodyLimit::new(Some(1)).refuses_length(&HeaderMap::new()));
    }
}
