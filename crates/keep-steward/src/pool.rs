//! The threads the Steward decides on: a fixed pool fed first come, first served.
//!
//! A decision is CPU-bound (evidence signatures) and may wait on the network (KDS, PCS).
//! Run on tokio's workers (handing their other tasks over with `block_in_place`), requests
//! were served unfairly under load: at 64 connections the 99th percentile was 6 to 16 times
//! the median. A FIFO queue to a few threads keeps each request's wait near the mean; twice
//! as many threads as cores let a decision waiting on the network leave the cores to others.

use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// Decision threads; joined when dropped.
#[derive(Debug)]
pub struct DecisionPool {
    jobs: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl DecisionPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let threads = (0..threads.max(1))
            .map(|index| {
                let queue = queue.clone();
                std::thread::Builder::new()
                    .name(format!("decide-{index}"))
                    .spawn(move || {
                        loop {
                            // The lock is held only to take the next job; a poisoned lock
                            // still guards a usable receiver.
                            let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                            match job {
                                Ok(job) => job(),
                                Err(mpsc::RecvError) => return,
                            }
                        }
                    })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Self {
            jobs: Some(jobs),
            threads,
        })
    }

    /// Twice as many threads as the machine has cores.
    pub fn for_this_machine() -> std::io::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(2 * cores)
    }

    /// Runs `job` on the pool, in turn; `None` if the pool is shutting down or the job
    /// panicked (the thread survives it).
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                let _ = answer.send(value);
            }
        });
        self.jobs.as_ref()?.send(job).ok()?;
        answered.await.ok()
    }
}

impl Drop for DecisionPool {
    fn drop(&mut self) {
        drop(self.jobs.take()); // the threads end when the queue is closed and empty
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_a_panic_is_survived_and_the_threads_are_joined() {
        let pool = DecisionPool::new(2).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let panicked = runtime.block_on(pool.run(|| -> u8 { panic!("a decision panicked") }));
        assert_eq!(panicked, None);
        for i in 0..8 {
            assert_eq!(runtime.block_on(pool.run(move || i * 2)), Some(i * 2));
        }
        drop(pool);
    }
}
