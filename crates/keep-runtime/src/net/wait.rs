//! Waiting for socket readiness with `poll(2)`.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::Instant;

use rustix::event::{PollFd, PollFlags, Timespec};

/// Waits until `fd` is ready for `flags` (or has an error or hang-up) or `deadline` passes.
pub fn one(fd: BorrowedFd<'_>, flags: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
    let mut fds = [PollFd::from_borrowed_fd(fd, flags)];
    many(&mut fds, deadline).map(|_| ())
}

/// `poll(2)` until `deadline` (none: forever); returns the number of ready descriptors.
/// Interrupted calls are retried.
pub fn many(fds: &mut [PollFd<'_>], deadline: Option<Instant>) -> io::Result<usize> {
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        match rustix::event::poll(fds, timeout.as_ref()) {
            Ok(n) => return Ok(n),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
