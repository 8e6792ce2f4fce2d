//! The response body as the client gets it: complete only if the guest finished.
//!
//! wasmtime-wasi-http ends a response body cleanly when the guest's `outgoing-body` is
//! dropped without `finish` (its finish channel closing reads as the end), which is also
//! what happens when Keep stops a guest at a limit or the guest traps after answering. The
//! client would then take a cut body for a complete one. This wrapper holds the end of the
//! body until the guest has returned, and ends it with an error instead when the guest
//! failed, so that HTTP/1.1 closes the connection without the last chunk and HTTP/2 resets
//! the stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// A response body whose end waits for the guest's outcome.
pub(crate) struct GuestBody {
    inner: HyperOutgoingBody,
    state: State,
    /// Dropped once `inner` has given its last frame (or with the body): tells whoever
    /// keeps the store running for `inner` that it may stop.
    inner_done: Option<oneshot::Sender<()>>,
}

/// Where a [`GuestBody`] is.
enum State {
    /// Streaming; the receiver says whether the guest returned without failing.
    Streaming(oneshot::Receiver<bool>),
    /// Ended, complete.
    Complete,
    /// Ended with an error: the guest failed.
    Failed,
}

impl GuestBody {
    /// `inner`, whose end is confirmed by `outcome` (`true`: the guest returned normally).
    /// `inner_done` is dropped when `inner` has ended: a WASI 0.3 body's last frames (its
    /// trailers) come through the store after the guest has exited, and the store must
    /// run until then.
    pub(crate) fn new(
        inner: HyperOutgoingBody,
        outcome: oneshot::Receiver<bool>,
        inner_done: Option<oneshot::Sender<()>>,
    ) -> Self {
        Self {
            inner,
            state: State::Streaming(outcome),
            inner_done,
        }
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let State::Streaming(outcome) = &mut this.state else {
            return Poll::Ready(None);
        };
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(None) => this.inner_done = None,
            Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => {
                // Trailers are the last frame: hyper polls no further.
                this.inner_done = None;
                return Poll::Ready(Some(Ok(frame)));
            }
            other => return other,
        }
        let finished = match Pin::new(outcome).poll(context) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(returned) => returned.unwrap_or(false),
        };
        if finished {
            this.state = State::Complete;
            return Poll::Ready(None);
        }
        this.state = State::Failed;
        Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
            "the service failed while writing the body".into(),
        )))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Complete)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt as _, Empty};

    use super::*;

    fn empty() -> HyperOutgoingBody {
        Empty::new()
            .map_err(|never: std::convert::Infallible| match never {})
            .boxed_unsync()
    }

    #[tokio::test]
    async fn the_end_is_an_error_unless_the_guest_returned_normally() {
        let (tell, outcome) = oneshot::channel();
        let body = GuestBody::new(empty(), outcome, None);
        tell.send(true).unwrap();
        assert!(body.collect().await.is_ok());

        for failed in [Some(false), None] {
            let (tell, outcome) = oneshot::channel();
            let body = GuestBody::new(empty(), outcome, None);
            match failed {
                Some(returned) => tell.send(returned).unwrap(),
                None => drop(tell),
            }
            assert!(body.collect().await.is_err());
        }
    }

    #[tokio::test]
    async fn whoever_waits_for_the_inner_body_hears_of_its_end() {
        let (tell, outcome) = oneshot::channel();
        let (inner_done, ended) = oneshot::channel();
        let body = GuestBody::new(empty(), outcome, Some(inner_done));
        tell.send(true).unwrap();
        let mut ended = std::pin::pin!(ended);
        assert!(futures_poll_once(&mut ended).is_none());
        assert!(body.collect().await.is_ok());
        assert!(ended.await.is_err(), "dropped, never sent");
    }

    /// Polls `future` once: `Some` when it is ready.
    fn futures_poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match Pin::new(future).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        }
    }
}
