//! Admission of requests: at most `concurrency` run at once, at most `queue` wait for a
//! turn, and the rest are turned away at once (the server answers them 503) rather than
//! piling up without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The concurrency limit and its queue.
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicU32>,
    concurrency: u32,
    queue: u32,
}

/// A request's turn: it runs while this lives.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// One place in the queue, given back when the wait ends (the request got its turn, or
/// its client went away).
struct Waiting(Arc<AtomicU32>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    /// `concurrency` requests at once (at least one), `queue` waiting.
    pub(crate) fn new(concurrency: u32, queue: u32) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency as usize)),
            waiting: Arc::new(AtomicU32::new(0)),
            concurrency,
            queue,
        }
    }

    /// Requests running now.
    pub(crate) fn running(&self) -> u32 {
        let free = u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX);
        self.concurrency.saturating_sub(free)
    }

    /// Requests waiting for a turn now.
    pub(crate) fn waiting(&self) -> u32 {
        // A request turned away counts itself in for a moment: never more than the queue.
        self.waiting.load(Ordering::Acquire).min(self.queue)
    }

    /// A turn: at once when a slot is free, after a wait in the queue otherwise; `None`
    /// when the queue is full too.
    pub(crate) async fn admit(&self) -> Option<Slot> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Some(Slot { _permit: permit });
        }
        let place = Waiting(self.waiting.clone());
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            return None;
        }
        let permit = self.slots.clone().acquire_owned().await.ok()?;
        drop(place);
        Some(Slot { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn poll<F: Future>(future: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        future.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn the_queue_waits_and_what_overflows_it_is_turned_away() {
        let admission = Admission::new(1, 1);
        let Poll::Ready(Some(first)) = poll(pin!(admission.admit())) else {
            panic!("a free slot admits at once");
        };
        let mut second = pin!(admission.admit());
        assert!(poll(second.as_mut()).is_pending(), "the second waits");
        assert!(
            matches!(poll(pin!(admission.admit())), Poll::Ready(None)),
            "the queue is full: the third is turned away"
        );
        drop(first);
        assert_eq!((admission.running(), admission.waiting()), (1, 1));
        let Poll::Ready(Some(_second)) = poll(second.as_mut()) else {
            panic!("the freed slot goes to the one waiting");
        };
        assert_eq!((admission.running(), admission.waiting()), (1, 0));
    }

    #[test]
    fn a_client_that_leaves_the_queue_gives_its_place_back() {
        let admission = Admission::new(1, 1);
        let Poll::Ready(Some(_running)) = poll(pin!(admission.admit())) else {
            panic!("a free slot admits at once");
        };
        {
            let mut leaving = pin!(admission.admit());
            assert!(poll(leaving.as_mut()).is_pending());
        }
        let mut next = pin!(admission.admit());
        assert!(poll(next.as_mut()).is_pending(), "queued, not turned away");
    }

    #[test]
    fn no_queue_means_busy_is_busy() {
        let admission = Admission::new(2, 0);
        let a = poll(pin!(admission.admit()));
        let b = poll(pin!(admission.admit()));
        assert!(matches!(
            (&a, &b),
            (Poll::Ready(Some(_)), Poll::Ready(Some(_)))
        ));
        assert!(matches!(poll(pin!(admission.admit())), Poll::Ready(None)));
    }
}
