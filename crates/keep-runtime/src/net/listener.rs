//! A listening socket. For TLS, Keep completes each handshake before the guest sees the
//! connection, so a peer that sends garbage or stalls mid-handshake never reaches (or
//! blocks) the guest: it is dropped here after [`HANDSHAKE_TIMEOUT`].

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};

use super::stream::Stream;
use super::wait;

/// How long a client gets to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at most; beyond it the oldest is dropped.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// A listening socket and, for TLS, the connections still shaking hands.
pub struct Listener {
    socket: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    pending: Vec<(Stream, Instant)>,
    ready: VecDeque<Stream>,
    name: String,
}

impl Listener {
    /// Wraps a bound listener; `tls` makes every accepted connection a TLS stream.
    pub fn new(
        socket: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        name: &str,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            tls,
            pending: Vec::new(),
            ready: VecDeque::new(),
            name: name.to_owned(),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Accepts what is waiting and advances handshakes, without blocking.
    pub fn progress(&mut self) {
        loop {
            match self.socket.accept() {
                Ok((socket, peer)) => self.admit(socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: leave the connection queued and tell the operator.
                    tracing::warn!("listener `{}`: accept failed: {e}", self.name);
                    break;
                }
            }
        }
        let now = Instant::now();
        let mut index = 0;
        while index < self.pending.len() {
            let (stream, started) = &mut self.pending[index];
            let outcome = stream.progress();
            let peer = stream.peer();
            match outcome {
                Err(e) => {
                    tracing::info!(
                        "listener `{}`: TLS handshake with {peer} failed: {e}",
                        self.name
                    );
                    self.pending.swap_remove(index);
                }
                Ok(_) if !stream.is_handshaking() => {
                    let (stream, _) = self.pending.swap_remove(index);
                    self.ready.push_back(stream);
                }
                Ok(_) if now.duration_since(*started) > HANDSHAKE_TIMEOUT => {
                    tracing::info!(
                        "listener `{}`: {peer} did not complete its TLS handshake in {:?}",
                        self.name,
                        HANDSHAKE_TIMEOUT
                    );
                    self.pending.swap_remove(index);
                }
                Ok(_) => index += 1,
            }
        }
    }

    fn admit(&mut self, socket: std::net::TcpStream, peer: SocketAddr) {
        let stream = match &self.tls {
            None => Stream::tcp(socket, peer),
            Some(config) => match rustls::ServerConnection::new(config.clone()) {
                Ok(tls) => Stream::tls(socket, peer, tls.into()),
                Err(e) => Err(io::Error::other(e)),
            },
        };
        match stream {
            Ok(stream) if self.tls.is_some() => {
                if self.pending.len() >= MAX_PENDING_HANDSHAKES {
                    let (oldest, _) = self.pending.remove(0);
                    tracing::info!(
                        "listener `{}`: too many TLS handshakes in progress, dropped {}",
                        self.name,
                        oldest.peer()
                    );
                }
                self.pending.push((stream, Instant::now()));
            }
            Ok(stream) => self.ready.push_back(stream),
            Err(e) => tracing::warn!(
                "listener `{}`: cannot set up connection from {peer}: {e}",
                self.name
            ),
        }
    }

    /// Whether a connection is ready to be accepted (after [`Listener::progress`]).
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Takes the next ready connection, waiting for one unless `nonblocking`.
    pub fn accept(&mut self, nonblocking: bool) -> io::Result<Stream> {
        loop {
            self.progress();
            if let Some(stream) = self.ready.pop_front() {
                return Ok(stream);
            }
            if nonblocking {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let deadline = self.next_deadline();
            let mut fds = Vec::new();
            self.poll_fds(&mut fds);
            wait::many(&mut fds, deadline)?;
        }
    }

    /// The descriptors to watch for this listener to make progress.
    pub fn poll_fds<'a>(&'a self, fds: &mut Vec<PollFd<'a>>) {
        fds.push(PollFd::from_borrowed_fd(self.socket.as_fd(), PollFlags::IN));
        for (stream, _) in &self.pending {
            fds.push(PollFd::from_borrowed_fd(
                stream.as_fd(),
                stream.interest(PollFlags::IN),
            ));
        }
    }

    /// When the oldest handshake in progress times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|(_, started)| *started + HANDSHAKE_TIMEOUT)
            .min()
    }
}

impl AsFd for Listener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
