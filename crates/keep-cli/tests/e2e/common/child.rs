//! Waiting on child processes without sleeping: a deadline that kills a hung child, and the
//! stderr of a long-running child collected by a thread that waiters are woken by.

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Waits for `child` to exit; kills it after `limit` (then `Err` with the status). The
/// killer thread is joined before this returns.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Result<ExitStatus, ExitStatus> {
    // The child is not reaped before `wait` below returns, so its pid stays its own until
    // then: the signal cannot reach another process.
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid");
    let (exited, exit_seen) = mpsc::channel::<()>();
    let killer = std::thread::spawn(move || {
        if exit_seen.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            return true;
        }
        false
    });
    let status = child.wait().expect("wait for the child");
    drop(exited);
    let killed = killer.join().expect("the deadline thread");
    if killed { Err(status) } else { Ok(status) }
}

#[derive(Default)]
struct LogState {
    text: String,
    closed: bool,
}

/// A child's output stream, collected line by line on a thread; joined on drop (the stream
/// ends when the child does).
pub struct ChildLog {
    state: Arc<(Mutex<LogState>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

impl ChildLog {
    /// Collects `stream`, calling `on_line` with each line as it arrives (once it is part
    /// of [`Self::text`]).
    pub fn start(
        stream: impl Read + Send + 'static,
        mut on_line: impl FnMut(&str) + Send + 'static,
    ) -> Self {
        let state = Arc::new((Mutex::new(LogState::default()), Condvar::new()));
        let shared = state.clone();
        let reader = std::thread::spawn(move || {
            let (lock, changed) = &*shared;
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                {
                    let mut state = lock.lock().unwrap();
                    state.text.push_str(&line);
                    state.text.push('\n');
                    changed.notify_all();
                }
                // After the line is in the text: a caller woken by `on_line` finds it there.
                on_line(&line);
            }
            lock.lock().unwrap().closed = true;
            changed.notify_all();
        });
        Self {
            state,
            reader: Some(reader),
        }
    }

    /// Everything collected so far.
    pub fn text(&self) -> String {
        self.state.0.lock().unwrap().text.clone()
    }

    /// The text once `holds(text)` is true, or once the stream ended or `limit` passed
    /// (the caller's assertion then shows what was there).
    pub fn wait_for(&self, limit: Duration, holds: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let (lock, changed) = &*self.state;
        let mut state = lock.lock().unwrap();
        while !holds(&state.text) && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = changed.wait_timeout(state, left).unwrap().0;
        }
        state.text.clone()
    }

    /// Everything, once the stream has ended (the child exited).
    pub fn finish(mut self) -> String {
        if let Some(reader) = self.reader.take() {
            reader.join().expect("log reader");
        }
        self.text()
    }
}

impl Drop for ChildLog {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

#[test]
fn a_child_past_its_deadline_is_killed() {
    let mut child = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .expect("start sleep");
    let status = wait_with_deadline(&mut child, Duration::from_millis(100))
        .expect_err("the deadline passed");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed by SIGKILL"
    );
}
