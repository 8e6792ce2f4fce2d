//! A helper thread that runs beside the guest and is stopped and joined when its handle is
//! dropped (the certificate renewal, the timeout watchdog, `keep serve`'s epoch ticker).

use std::sync::mpsc;
use std::thread::JoinHandle;

/// A named thread running `body(stop)`; `stop` receives nothing and is disconnected when
/// the handle is dropped, which the body notices in `recv_timeout`. Dropping the handle
/// joins the thread, so no helper outlives the run.
pub struct StoppingThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StoppingThread {
    /// Starts `body` on a thread named `name`.
    pub fn spawn(
        name: &str,
        body: impl FnOnce(&mpsc::Receiver<()>) + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || body(&stopped))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for StoppingThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // A body that panicked has already reported it; there is nothing to add.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[test]
    fn dropping_the_handle_stops_and_joins_the_thread() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let thread = StoppingThread::spawn("test", move |stop| {
            // Waits (far longer than the test) until the handle is dropped.
            let woke = stop.recv_timeout(Duration::from_secs(3600));
            assert_eq!(woke, Err(mpsc::RecvTimeoutError::Disconnected));
            flag.store(true, Ordering::SeqCst);
        })
        .unwrap();
        drop(thread);
        assert!(finished.load(Ordering::SeqCst), "joined after the body ran");
    }
}
