//! A connected socket as the guest sees it: plain TCP or TLS terminated here. The host
//! socket is always non-blocking; blocking is done by waiting for readiness, so one code
//! path serves blocking and non-blocking guests and `poll_oneoff`.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use rustix::event::PollFlags;

use super::wait;

/// Plaintext a TLS stream accepts from the guest before it must be flushed to the peer.
const TLS_SEND_BUFFER: usize = 256 * 1024;

/// A connected stream.
pub struct Stream {
    socket: TcpStream,
    tls: Option<Box<rustls::Connection>>,
    peer: SocketAddr,
    /// The peer closed (TLS: or failed); later reads see end of stream.
    read_closed: bool,
}

impl Stream {
    /// A plain TCP stream.
    pub fn tcp(socket: TcpStream, peer: SocketAddr) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        socket.set_nodelay(true)?;
        Ok(Self {
            socket,
            tls: None,
            peer,
            read_closed: false,
        })
    }

    /// A TLS stream whose handshake is complete or under way.
    pub fn tls(
        socket: TcpStream,
        peer: SocketAddr,
        mut tls: rustls::Connection,
    ) -> io::Result<Self> {
        tls.set_buffer_limit(Some(TLS_SEND_BUFFER));
        let mut stream = Self::tcp(socket, peer)?;
        stream.tls = Some(Box::new(tls));
        Ok(stream)
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Moves TLS records between the socket and rustls without blocking. Returns whether
    /// anything moved. Errors are fatal to the stream.
    pub fn progress(&mut self) -> io::Result<bool> {
        let Some(tls) = &mut self.tls else {
            return Ok(false);
        };
        let mut moved = false;
        loop {
            let mut step = false;
            while tls.wants_write() {
                match tls.write_tls(&mut self.socket) {
                    Ok(0) => break,
                    Ok(_) => step = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            if tls.wants_read() && !self.read_closed {
                match tls.read_tls(&mut self.socket) {
                    Ok(0) => {
                        self.read_closed = true;
                        step = true;
                    }
                    Ok(_) => step = true,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                if step && let Err(error) = tls.process_new_packets() {
                    // Tell the peer why, then fail.
                    let _ = tls.write_tls(&mut self.socket);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
            }
            if !step {
                return Ok(moved);
            }
            moved = true;
        }
    }

    /// Completes a TLS handshake (a connect's), waiting until `deadline`.
    pub fn complete_handshake(&mut self, deadline: Instant) -> io::Result<()> {
        while self.is_handshaking() {
            if self.progress()? {
                continue;
            }
            if self.read_closed {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection during the TLS handshake",
                ));
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake did not complete in time",
                ));
            }
            self.wait(PollFlags::IN, Some(deadline))?;
        }
        self.flush(Some(deadline))
    }

    /// Whether TLS is terminated on this stream.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether the TLS handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|tls| tls.is_handshaking())
    }

    /// Reads without blocking: `WouldBlock` when nothing is available.
    pub fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tls.is_none() {
            return match (&self.socket).read(buf) {
                Ok(0) if !buf.is_empty() => {
                    self.read_closed = true;
                    Ok(0)
                }
                other => other,
            };
        }
        loop {
            let tls = self.tls.as_mut().expect("checked above");
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                // The peer closed the TCP stream without close_notify: end of stream for the
                // guest (truncation cannot be signalled in POSIX terms).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.read_closed {
                        return Ok(0);
                    }
                    if !self.progress()? {
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes without blocking: `WouldBlock` when nothing could be accepted.
    pub fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = &mut self.tls else {
            return (&self.socket).write(buf);
        };
        let accepted = tls.writer().write(buf)?;
        self.progress()?;
        if accepted == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(accepted)
    }

    /// Reads, waiting for data unless `nonblocking`.
    pub fn read(&mut self, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
        loop {
            match self.try_read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !nonblocking => {
                    self.wait(PollFlags::IN, None)?;
                }
                other => return other,
            }
        }
    }

    /// Writes all of `buf` unless `nonblocking`, in which case as much as fits now.
    pub fn write(&mut self, buf: &[u8], nonblocking: bool) -> io::Result<usize> {
        let mut written = 0;
        while written < buf.len() {
            match self.try_write(&buf[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if nonblocking {
                        break;
                    }
                    self.wait(PollFlags::OUT, None)?;
                }
                Err(e) if written > 0 && e.kind() != io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if written == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !nonblocking {
            self.flush(None)?;
        }
        Ok(written)
    }

    /// Sends every buffered TLS record, waiting up to `deadline`.
    pub fn flush(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        while self.tls.as_ref().is_some_and(|t| t.wants_write()) {
            if !self.progress()? {
                self.wait(PollFlags::OUT, deadline)?;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
        }
        Ok(())
    }

    /// Shuts down reading, writing or both. Shutting down writing of a TLS stream sends
    /// `close_notify` first.
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if matches!(how, Shutdown::Write | Shutdown::Both)
            && let Some(tls) = &mut self.tls
        {
            tls.send_close_notify();
            // Best effort: a peer that does not read must not block the guest.
            let _ = self.flush(Some(Instant::now() + Duration::from_secs(1)));
        }
        match self.socket.shutdown(how) {
            // The peer already reset the connection: nothing is left to shut down.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }

    /// The socket readiness that would let this stream make progress in `direction`.
    pub fn interest(&self, direction: PollFlags) -> PollFlags {
        match &self.tls {
            None => direction,
            Some(tls) => {
                let mut flags = PollFlags::empty();
                if tls.wants_write() {
                    flags |= PollFlags::OUT;
                }
                if direction.contains(PollFlags::IN) || tls.is_handshaking() {
                    flags |= PollFlags::IN;
                }
                if direction.contains(PollFlags::OUT) && !tls.wants_write() {
                    flags |= PollFlags::OUT;
                }
                flags
            }
        }
    }

    /// Whether a read would return at once (data, end of stream or error) without
    /// touching the socket.
    pub fn buffered_read_ready(&mut self) -> Option<u64> {
        if self.read_closed {
            return Some(0);
        }
        let tls = self.tls.as_mut()?;
        match tls.process_new_packets() {
            Ok(state) if state.plaintext_bytes_to_read() > 0 => {
                Some(state.plaintext_bytes_to_read() as u64)
            }
            Ok(state) if state.peer_has_closed() => Some(0),
            Ok(_) => None,
            Err(_) => Some(0),
        }
    }

    /// Waits until the socket can make progress in `direction` or `deadline` passes.
    fn wait(&mut self, direction: PollFlags, deadline: Option<Instant>) -> io::Result<()> {
        let interest = self.interest(direction);
        wait::one(self.socket.as_fd(), interest, deadline)
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
