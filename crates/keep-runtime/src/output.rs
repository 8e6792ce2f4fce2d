//! `[limits] output`: the most bytes a guest may write to the host's stdout and stderr, both
//! counted together, over the whole run.
//!
//! Without it a guest can fill the host's disk through a redirected stdout or flood a log
//! collector. The budget is shared by every path to the host's streams: wasmtime-wasi's
//! descriptors 1 and 2 (modules and components alike) and standard streams that `[[files]]`
//! places past descriptor 2. The write that crosses the limit is cut at it exactly, and the
//! guest is stopped with [`LimitExceeded`] (exit status 137); `null` outputs cost nothing.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::limits::{LimitExceeded, Resource};

/// The bytes a run's guest may still write to the host's stdout and stderr.
#[derive(Debug)]
pub struct OutputBudget {
    limit: u64,
    /// Bytes the guest asked to write so far, including any refused past the limit.
    requested: AtomicU64,
}

impl OutputBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(Self {
            limit,
            requested: AtomicU64::new(0),
        })
    }

    /// Charges a write of `len` bytes; returns how many of them may go out. Fewer than `len`
    /// means the limit is reached: write those, then stop the guest with [`Self::exceeded`].
    pub fn take(&self, len: usize) -> usize {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let before = self
            .requested
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(len))
            })
            .unwrap_or_else(|n| n);
        let allowed = self.limit.saturating_sub(before).min(len);
        // `allowed` is at most `len`, which came from a usize.
        usize::try_from(allowed).unwrap_or(usize::MAX)
    }

    /// The error that stops the guest once it asked for more than the limit.
    pub fn exceeded(&self) -> Option<LimitExceeded> {
        let requested = self.requested.load(Ordering::Relaxed);
        (requested > self.limit).then_some(LimitExceeded {
            resource: Resource::Output,
            requested,
            limit: self.limit,
        })
    }

    fn trap(&self) -> StreamError {
        match self.exceeded() {
            Some(exceeded) => StreamError::Trap(wasmtime::Error::new(exceeded)),
            None => StreamError::trap("output limit accounting is inconsistent"),
        }
    }
}

/// A host output stream (stdout or stderr) that charges every write to an [`OutputBudget`].
pub struct Limited<S> {
    inner: S,
    budget: Arc<OutputBudget>,
}

impl<S> Limited<S> {
    /// `inner`, with its writes charged to `budget`.
    pub fn new(inner: S, budget: Arc<OutputBudget>) -> Self {
        Self { inner, budget }
    }
}

impl<S: IsTerminal> IsTerminal for Limited<S> {
    fn is_terminal(&self) -> bool {
        self.inner.is_terminal()
    }
}

impl<S: StdoutStream> StdoutStream for Limited<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Limited::new(self.inner.p2_stream(), self.budget.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Limited::new(
            Box::into_pin(self.inner.async_stream()),
            self.budget.clone(),
        ))
    }
}

#[async_trait::async_trait]
impl Pollable for Limited<Box<dyn OutputStream>> {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

impl OutputStream for Limited<Box<dyn OutputStream>> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let allowed = self.budget.take(bytes.len());
        if allowed > 0 {
            self.inner.write(bytes.slice(..allowed))?;
        }
        if allowed < bytes.len() {
            // What fits is out; make sure it reaches the host before the guest stops.
            let _ = self.inner.flush();
            return Err(self.budget.trap());
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }
}

/// The same accounting for the `AsyncWrite` form of a stream (WASIp3's); a write is charged
/// only for the bytes the inner writer accepted.
impl AsyncWrite for Limited<Pin<Box<dyn AsyncWrite + Send + Sync>>> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let remaining = self
            .budget
            .limit
            .saturating_sub(self.budget.requested.load(Ordering::Relaxed));
        let fits = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if fits == 0 && !buf.is_empty() {
            self.budget.take(buf.len());
            let exceeded = self.budget.exceeded();
            return Poll::Ready(Err(io::Error::other(
                exceeded.map_or_else(|| "output limit exceeded".to_owned(), |e| e.to_string()),
            )));
        }
        let polled = self.inner.as_mut().poll_write(cx, &buf[..fits]);
        if let Poll::Ready(Ok(written)) = polled {
            self.budget.take(written);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.as_mut().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

    #[test]
    fn a_budget_cuts_the_write_that_crosses_it_and_then_refuses_everything() {
        let budget = OutputBudget::new(10);
        assert_eq!(budget.take(4), 4);
        assert!(budget.exceeded().is_none());
        assert_eq!(budget.take(6), 6, "exactly the limit is allowed");
        assert!(budget.exceeded().is_none());
        assert_eq!(budget.take(5), 0);
        let exceeded = budget.exceeded().expect("over the limit");
        assert_eq!((exceeded.requested, exceeded.limit), (15, 10));
        assert_eq!(budget.take(usize::MAX), 0, "saturates instead of wrapping");
    }

    #[test]
    fn a_limited_stream_writes_up_to_the_limit_then_traps_with_the_limit() {
        let pipe = MemoryOutputPipe::new(1 << 20);
        let budget = OutputBudget::new(8);
        let mut stream = Limited::new(pipe.p2_stream(), budget.clone());
        stream.write(Bytes::from_static(b"hello")).unwrap();
        let error = stream.write(Bytes::from_static(b", world")).unwrap_err();
        let StreamError::Trap(trap) = error else {
            panic!("expected a trap, got {error:?}");
        };
        let exceeded = trap.downcast_ref::<LimitExceeded>().expect("LimitExceeded");
        assert_eq!((exceeded.requested, exceeded.limit), (12, 8));
        assert_eq!(&pipe.contents()[..], b"hello, w");
    }

    #[test]
    fn the_async_form_stops_at_the_limit_too() {
        use tokio::io::AsyncWriteExt as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let pipe = MemoryOutputPipe::new(1 << 20);
        let budget = OutputBudget::new(8);
        let limited = Limited::new(pipe.clone(), budget);
        let mut writer = Box::into_pin(limited.async_stream());
        runtime.block_on(async {
            writer.write_all(b"hello").await.unwrap();
            let error = writer.write_all(b", world").await.unwrap_err();
            assert!(
                error.to_string().contains("output limit exceeded"),
                "{error}"
            );
        });
        assert_eq!(&pipe.contents()[..], b"hello, w");
    }
}
