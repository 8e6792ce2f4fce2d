//! `[limits] output` and `output_rate`: how much, and how fast, a guest may write to the
//! host's stdout and stderr (both counted together).
//!
//! Without them a guest can fill the host's disk through a redirected stdout or flood a log
//! collector. The limits are shared by every path to the host's streams: wasmtime-wasi's
//! descriptors 1 and 2 (modules and components alike) and standard streams that `[[files]]`
//! places past descriptor 2; `null` outputs cost nothing.
//!
//! - **Size**: the write that crosses the limit is cut at it exactly, and the guest is
//!   stopped with [`LimitExceeded`] (exit status 137).
//! - **Rate**: a token bucket holding one second's worth of bytes. A guest that writes faster
//!   waits inside its write until the bucket refills; nothing is dropped. A guest held there
//!   still ends at its timeout (the watchdog ends host calls that outlast it).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

use crate::limits::{LimitExceeded, Resource};

/// A rate-limited writer waits until at least this much (or one second's worth, if less) may
/// go out, rather than trickling out a few bytes per wake-up.
const RATE_CHUNK: u64 = 4096;

/// Time as the rate limit sees it: the real clock, or a test's.
pub trait Clock: fmt::Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The system's monotonic clock.
#[derive(Debug)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// What a run's guest may still write to the host's stdout and stderr.
#[derive(Debug)]
pub struct OutputLimits {
    /// Most bytes over the run, if limited.
    size: Option<u64>,
    /// Bytes the guest asked to write so far, including any refused past the size limit.
    requested: AtomicU64,
    rate: Option<Rate>,
    clock: Arc<dyn Clock>,
}

/// A token bucket of `per_second` bytes.
#[derive(Debug)]
struct Rate {
    per_second: u64,
    bucket: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: u64,
    refilled: Instant,
}

impl Rate {
    /// Tokens at `now`, after refilling for the time since the last refill.
    fn refill(&self, now: Instant) -> std::sync::MutexGuard<'_, Bucket> {
        // A panic while holding the lock leaves only a stale count behind: keep going.
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let earned = now.duration_since(bucket.refilled).as_nanos() * u128::from(self.per_second)
            / 1_000_000_000;
        if earned > 0 {
            let earned = u64::try_from(earned).unwrap_or(u64::MAX);
            bucket.tokens = bucket.tokens.saturating_add(earned).min(self.per_second);
            bucket.refilled = now;
        }
        bucket
    }

    fn chunk(&self) -> u64 {
        RATE_CHUNK.min(self.per_second)
    }
}

impl OutputLimits {
    /// The limits of a run: at most `size` bytes, at most `rate` bytes per second. `None` when
    /// neither is set (the host's streams are then used as they are).
    pub fn new(size: Option<u64>, rate: Option<u64>) -> Option<Arc<Self>> {
        Self::with_clock(size, rate, Arc::new(SystemClock))
    }

    /// [`Self::new`], with the rate measured by `clock`.
    pub fn with_clock(
        size: Option<u64>,
        rate: Option<u64>,
        clock: Arc<dyn Clock>,
    ) -> Option<Arc<Self>> {
        if size.is_none() && rate.is_none() {
            return None;
        }
        Some(Arc::new(Self {
            size,
            requested: AtomicU64::new(0),
            rate: rate.map(|per_second| Rate {
                per_second,
                bucket: Mutex::new(Bucket {
                    tokens: per_second,
                    refilled: clock.now(),
                }),
            }),
            clock,
        }))
    }

    /// Charges a write of `len` bytes to the size limit; returns how many of them may go
    /// out. Fewer than `len` means the limit is reached: write those, then stop the guest
    /// with [`Self::exceeded`].
    pub fn take(&self, len: usize) -> usize {
        let len = u64::try_from(len).unwrap_or(u64::MAX);
        let before = self
            .requested
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(len))
            })
            .unwrap_or_else(|n| n);
        let allowed = self
            .size
            .map_or(len, |size| size.saturating_sub(before).min(len));
        // `allowed` is at most `len`, which came from a usize.
        usize::try_from(allowed).unwrap_or(usize::MAX)
    }

    /// The error that stops the guest once it asked for more than the size limit.
    pub fn exceeded(&self) -> Option<LimitExceeded> {
        let size = self.size?;
        let requested = self.requested.load(Ordering::Relaxed);
        (requested > size).then_some(LimitExceeded {
            resource: Resource::Output,
            requested,
            limit: size,
        })
    }

    /// How many bytes the rate allows out now (all of them without a rate limit).
    pub fn permit(&self) -> usize {
        self.rate.as_ref().map_or(usize::MAX, |rate| {
            usize::try_from(rate.refill(self.clock.now()).tokens).unwrap_or(usize::MAX)
        })
    }

    /// Records `written` bytes against the rate.
    pub fn spend(&self, written: usize) {
        if let Some(rate) = &self.rate {
            let mut bucket = rate.refill(self.clock.now());
            let written = u64::try_from(written).unwrap_or(u64::MAX);
            bucket.tokens = bucket.tokens.saturating_sub(written);
        }
    }

    /// How long until `wanted` bytes, or a worthwhile amount if less, may go out (zero when
    /// they may now).
    pub fn wait(&self, wanted: usize) -> Duration {
        let Some(rate) = &self.rate else {
            return Duration::ZERO;
        };
        let wanted = u64::try_from(wanted).unwrap_or(u64::MAX).min(rate.chunk());
        let missing = wanted.saturating_sub(rate.refill(self.clock.now()).tokens);
        let nanos = u128::from(missing) * 1_000_000_000 / u128::from(rate.per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Writes `buf` to `out` within the limits, blocking while the rate requires: for the
    /// standard streams Keep serves itself. Returns the bytes written; fewer than asked means
    /// the size limit was reached.
    pub fn write_blocking(&self, out: &mut impl io::Write, buf: &[u8]) -> io::Result<usize> {
        let allowed = self.take(buf.len());
        let mut rest = &buf[..allowed];
        while !rest.is_empty() {
            let permit = self.permit();
            if permit == 0 {
                self.clock.sleep(self.wait(rest.len()));
                continue;
            }
            let (now, later) = rest.split_at(permit.min(rest.len()));
            out.write_all(now)?;
            self.spend(now.len());
            rest = later;
        }
        out.flush()?;
        Ok(allowed)
    }

    fn trap(&self) -> StreamError {
        match self.exceeded() {
            Some(exceeded) => StreamError::Trap(wasmtime::Error::new(exceeded)),
            None => StreamError::trap("output limit accounting is inconsistent"),
        }
    }
}

/// A host output stream (stdout or stderr) held to [`OutputLimits`].
pub struct Limited<S> {
    inner: S,
    limits: Arc<OutputLimits>,
    /// The async form's pending wait for the rate.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Limited<S> {
    /// `inner`, held to `limits`.
    pub fn new(inner: S, limits: Arc<OutputLimits>) -> Self {
        Self {
            inner,
            limits,
            sleep: None,
        }
    }
}

impl<S: IsTerminal> IsTerminal for Limited<S> {
    fn is_terminal(&self) -> bool {
        self.inner.is_terminal()
    }
}

impl<S: StdoutStream> StdoutStream for Limited<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(Limited::new(self.inner.p2_stream(), self.limits.clone()))
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(Limited::new(
            Box::into_pin(self.inner.async_stream()),
            self.limits.clone(),
        ))
    }
}

#[async_trait::async_trait]
impl Pollable for Limited<Box<dyn OutputStream>> {
    async fn ready(&mut self) {
        let wait = self.limits.wait(usize::MAX);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        self.inner.ready().await;
    }
}

impl OutputStream for Limited<Box<dyn OutputStream>> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let allowed = self.limits.take(bytes.len());
        if allowed > 0 {
            self.inner.write(bytes.slice(..allowed))?;
            self.limits.spend(allowed);
        }
        if allowed < bytes.len() {
            // What fits is out; make sure it reaches the host before the guest stops.
            let _ = self.inner.flush();
            return Err(self.limits.trap());
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    /// What the inner stream takes, within the rate: 0 makes the caller wait in `ready`.
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(self.inner.check_write()?.min(self.limits.permit()))
    }
}

/// The same limits for the `AsyncWrite` form of a stream (WASIp3's); a write is charged only
/// for the bytes the inner writer accepted.
impl AsyncWrite for Limited<Pin<Box<dyn AsyncWrite + Send + Sync>>> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(sleep) = &mut self.sleep {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.sleep = None;
            }
            if self.limits.permit() > 0 {
                break;
            }
            let wait = self.limits.wait(buf.len());
            self.sleep = Some(Box::pin(tokio::time::sleep(wait)));
        }
        let permit = self.limits.permit();
        let remaining = self.limits.size.map_or(u64::MAX, |size| {
            size.saturating_sub(self.limits.requested.load(Ordering::Relaxed))
        });
        let fits = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(permit)
            .min(buf.len());
        if fits == 0 && !buf.is_empty() {
            self.limits.take(buf.len());
            let message = self
                .limits
                .exceeded()
                .map_or_else(|| "output limit exceeded".to_owned(), |e| e.to_string());
            return Poll::Ready(Err(io::Error::other(message)));
        }
        let polled = self.inner.as_mut().poll_write(cx, &buf[..fits]);
        if let Poll::Ready(Ok(written)) = polled {
            self.limits.take(written);
            self.limits.spend(written);
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

    fn size_limit(size: u64) -> Arc<OutputLimits> {
        OutputLimits::new(Some(size), None).expect("limits")
    }

    /// A clock that moves only when slept on.
    #[derive(Debug)]
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn new() -> Arc<Self> {
            Arc::new(Self(Mutex::new(Instant::now())))
        }

        fn advance(&self, duration: Duration) {
            *self.0.lock().unwrap() += duration;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }

        fn sleep(&self, duration: Duration) {
            self.advance(duration);
        }
    }

    #[test]
    fn no_limits_means_no_wrapper() {
        assert!(OutputLimits::new(None, None).is_none());
    }

    #[test]
    fn a_size_limit_cuts_the_write_that_crosses_it_and_then_refuses_everything() {
        let limits = size_limit(10);
        assert_eq!(limits.take(4), 4);
        assert!(limits.exceeded().is_none());
        assert_eq!(limits.take(6), 6, "exactly the limit is allowed");
        assert!(limits.exceeded().is_none());
        assert_eq!(limits.take(5), 0);
        let exceeded = limits.exceeded().expect("over the limit");
        assert_eq!((exceeded.requested, exceeded.limit), (15, 10));
        assert_eq!(limits.take(usize::MAX), 0, "saturates instead of wrapping");
    }

    #[test]
    fn a_limited_stream_writes_up_to_the_limit_then_traps_with_the_limit() {
        let pipe = MemoryOutputPipe::new(1 << 20);
        let mut stream = Limited::new(pipe.p2_stream(), size_limit(8));
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
    fn a_rate_starts_with_one_seconds_worth_then_makes_writers_wait() {
        let clock = ManualClock::new();
        let limits = OutputLimits::with_clock(None, Some(1000), clock.clone()).expect("limits");
        assert_eq!(limits.permit(), 1000);
        assert_eq!(limits.wait(1), Duration::ZERO);
        limits.spend(1000);
        assert_eq!(limits.permit(), 0);
        // A chunk of 1000 bytes (the rate is below RATE_CHUNK) takes a second.
        assert_eq!(limits.wait(usize::MAX), Duration::from_secs(1));
        clock.advance(Duration::from_millis(250));
        assert_eq!(limits.permit(), 250, "refilled for a quarter second");
        assert_eq!(limits.wait(usize::MAX), Duration::from_millis(750));
        clock.advance(Duration::from_secs(5));
        assert_eq!(limits.permit(), 1000, "the bucket holds one second's worth");
        limits.spend(1000);
        let mut stream = Limited::new(MemoryOutputPipe::new(1 << 20).p2_stream(), limits);
        assert!(stream.check_write().unwrap() < 1000);
        // `ready` does not return before the bucket refilled.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let _context = runtime.enter();
        let waker = std::task::Waker::noop();
        let mut ready = stream.ready();
        assert!(
            ready
                .as_mut()
                .poll(&mut Context::from_waker(waker))
                .is_pending()
        );
    }

    #[test]
    fn blocking_writes_keep_to_the_rate_and_the_size() {
        let clock = ManualClock::new();
        let start = clock.now();
        let limits =
            OutputLimits::with_clock(Some(3000), Some(2000), clock.clone()).expect("limits");
        let mut out = Vec::new();
        // 2000 bytes go at once, the next 1000 after half a second; then the size limit cuts
        // the rest.
        assert_eq!(
            limits.write_blocking(&mut out, &[b'#'; 5000]).unwrap(),
            3000
        );
        assert_eq!(clock.now() - start, Duration::from_millis(500));
        assert_eq!(out.len(), 3000);
        assert!(limits.exceeded().is_some());
    }

    #[test]
    fn the_async_form_stops_at_the_limit_too() {
        use tokio::io::AsyncWriteExt as _;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let pipe = MemoryOutputPipe::new(1 << 20);
        let limited = Limited::new(pipe.clone(), size_limit(8));
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
