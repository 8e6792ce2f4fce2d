//! `poll_oneoff`. Without Keep descriptors among the subscriptions it is forwarded to
//! wasmtime-wasi (descriptors translated in place, then restored). With any, Keep serves the
//! whole call: its sockets through `poll(2)`, clocks as deadlines, and files (wasmtime-wasi's
//! and sealed ones, which are always ready) as ready at once.

use std::time::{Duration, Instant, SystemTime};

use rustix::event::{PollFd, PollFlags};
use wasmtime::{Caller, Val};

use super::abi::{Memory, errno};
use super::{Descriptor, Descriptors, ModuleHost, arg, call_shim};
use crate::net::{KeepFile, wait};

const SUBSCRIPTION_SIZE: u32 = 48;
const EVENT_SIZE: u32 = 32;
const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const EVENTRWFLAGS_HANGUP: u16 = 1;
const CLOCK_REALTIME: u32 = 0;
const CLOCK_MONOTONIC: u32 = 1;

#[derive(Clone, Copy)]
enum Kind {
    Clock(Instant),
    Fd { fd: u32, write: bool },
}

struct Subscription {
    userdata: u64,
    kind: Kind,
}

#[derive(Clone, Copy)]
struct Event {
    error: i32,
    hangup: bool,
    nbytes: u64,
}

pub fn poll_oneoff(
    caller: &mut Caller<'_, ModuleHost>,
    index: usize,
    params: &[Val],
) -> wasmtime::Result<i32> {
    let (subs_at, events_at, count, nevents_at) = (
        arg(params, 0),
        arg(params, 1),
        arg(params, 2),
        arg(params, 3),
    );
    if count == 0 {
        return Ok(errno::INVAL);
    }
    let Some(memory) = caller.data().fds.memory else {
        return Ok(errno::FAULT);
    };
    let (data, host) = memory.data_and_store_mut(&mut *caller);
    let mut memory = Memory(data);
    let subs = match parse(&memory, subs_at, count, &host.fds) {
        Ok(subs) => subs,
        Err(errno) => return Ok(errno),
    };
    let is_keep = |fd: u32| {
        matches!(
            host.fds.table.get(&fd),
            Some(Descriptor::Keep(_) | Descriptor::Sealed(_))
        )
    };
    if !subs
        .iter()
        .any(|s| matches!(s.kind, Kind::Fd { fd, .. } if is_keep(fd)))
    {
        return forward(caller, index, params, &subs, subs_at);
    }
    let events = serve(&mut host.fds, &subs)?;
    let mut written = 0u32;
    for (sub, event) in subs.iter().zip(&events) {
        let Some(event) = event else { continue };
        let mut bytes = [0u8; EVENT_SIZE as usize];
        bytes[0..8].copy_from_slice(&sub.userdata.to_le_bytes());
        bytes[8..10].copy_from_slice(&(event.error as u16).to_le_bytes());
        bytes[10] = match sub.kind {
            Kind::Clock(_) => EVENTTYPE_CLOCK,
            Kind::Fd { write: false, .. } => EVENTTYPE_FD_READ,
            Kind::Fd { write: true, .. } => EVENTTYPE_FD_WRITE,
        };
        bytes[16..24].copy_from_slice(&event.nbytes.to_le_bytes());
        let flags = if event.hangup { EVENTRWFLAGS_HANGUP } else { 0 };
        bytes[24..26].copy_from_slice(&flags.to_le_bytes());
        let at = events_at
            .checked_add(written * EVENT_SIZE)
            .ok_or(errno::FAULT);
        if at
            .and_then(|at| memory.put(at, &bytes).ok_or(errno::FAULT))
            .is_err()
        {
            return Ok(errno::FAULT);
        }
        written += 1;
    }
    Ok(match memory.put_u32(nevents_at, written) {
        Some(()) => errno::SUCCESS,
        None => errno::FAULT,
    })
}

fn parse(
    memory: &Memory<'_>,
    at: u32,
    count: u32,
    fds: &Descriptors,
) -> Result<Vec<Subscription>, i32> {
    let now = Instant::now();
    // The whole array must be in memory before anything is allocated for it.
    count
        .checked_mul(SUBSCRIPTION_SIZE)
        .and_then(|len| memory.bytes(at, len))
        .ok_or(errno::FAULT)?;
    (0..count)
        .map(|i| {
            let base = i
                .checked_mul(SUBSCRIPTION_SIZE)
                .and_then(|o| at.checked_add(o))
                .ok_or(errno::FAULT)?;
            let field = |offset: u32| base.checked_add(offset).ok_or(errno::FAULT);
            let userdata = memory.u64(base).ok_or(errno::FAULT)?;
            let tag = memory.bytes(field(8)?, 1).ok_or(errno::FAULT)?[0];
            let kind = match tag {
                EVENTTYPE_CLOCK => {
                    let id = memory.u32(field(16)?).ok_or(errno::FAULT)?;
                    let timeout = memory.u64(field(24)?).ok_or(errno::FAULT)?;
                    let flags = memory.u16(field(40)?).ok_or(errno::FAULT)?;
                    Kind::Clock(deadline(
                        id,
                        timeout,
                        flags & SUBCLOCKFLAGS_ABSTIME != 0,
                        now,
                        fds,
                    ))
                }
                EVENTTYPE_FD_READ | EVENTTYPE_FD_WRITE => Kind::Fd {
                    fd: memory.u32(field(16)?).ok_or(errno::FAULT)?,
                    write: tag == EVENTTYPE_FD_WRITE,
                },
                _ => return Err(errno::INVAL),
            };
            Ok(Subscription { userdata, kind })
        })
        .collect()
}

fn deadline(clock: u32, timeout: u64, absolute: bool, now: Instant, fds: &Descriptors) -> Instant {
    let after = |nanos: u64| {
        now.checked_add(Duration::from_nanos(nanos))
            .unwrap_or(now + Duration::from_secs(86400 * 365))
    };
    if !absolute {
        return after(timeout);
    }
    match clock {
        CLOCK_REALTIME => {
            let since_epoch = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default();
            after(timeout.saturating_sub(since_epoch.as_nanos().try_into().unwrap_or(u64::MAX)))
        }
        CLOCK_MONOTONIC => match fds.monotonic_origin {
            Some(origin) => origin
                .checked_add(Duration::from_nanos(timeout))
                .unwrap_or_else(|| after(u64::MAX)),
            None => now,
        },
        // CPU-time clocks: treat the value as a duration from now.
        _ => after(timeout),
    }
}

/// Forwards to wasmtime-wasi with its descriptor numbers written into the subscriptions,
/// then puts the guest's numbers back.
fn forward(
    caller: &mut Caller<'_, ModuleHost>,
    index: usize,
    params: &[Val],
    subs: &[Subscription],
    subs_at: u32,
) -> wasmtime::Result<i32> {
    let Some(memory) = caller.data().fds.memory else {
        return Ok(errno::FAULT);
    };
    let swap = |caller: &mut Caller<'_, ModuleHost>, to_wasi: bool| {
        let (data, host) = memory.data_and_store_mut(&mut *caller);
        let mut memory = Memory(data);
        for (i, sub) in subs.iter().enumerate() {
            if let Kind::Fd { fd, .. } = sub.kind {
                let wasi = match host.fds.table.get(&fd) {
                    Some(Descriptor::Wasi(wasi)) => *wasi,
                    // Unknown to Keep: a number wasmtime-wasi cannot have, so it reports EBADF.
                    _ => u32::MAX,
                };
                let at = subs_at + i as u32 * SUBSCRIPTION_SIZE + 16;
                memory.put_u32(at, if to_wasi { wasi } else { fd });
            }
        }
    };
    swap(caller, true);
    let result = call_shim(caller, index, params);
    swap(caller, false);
    result
}

/// Waits until at least one subscription is ready; returns its event per subscription.
fn serve(fds: &mut Descriptors, subs: &[Subscription]) -> wasmtime::Result<Vec<Option<Event>>> {
    let ready = |nbytes: u64, hangup: bool| {
        Some(Event {
            error: 0,
            hangup,
            nbytes,
        })
    };
    loop {
        let now = Instant::now();
        let mut events: Vec<Option<Event>> = Vec::with_capacity(subs.len());
        // What is ready without asking the kernel.
        for sub in subs {
            events.push(match sub.kind {
                Kind::Clock(deadline) if deadline <= now => ready(0, false),
                Kind::Clock(_) => None,
                Kind::Fd { fd, write } => match fds.table.get_mut(&fd) {
                    None => Some(Event {
                        error: errno::BADF,
                        hangup: false,
                        nbytes: 0,
                    }),
                    Some(Descriptor::Wasi(_) | Descriptor::Sealed(_)) => ready(0, false),
                    Some(Descriptor::Keep(keep)) => match &mut keep.file {
                        KeepFile::Stream(stream) if !write => {
                            stream.buffered_read_ready().and_then(|n| ready(n, n == 0))
                        }
                        KeepFile::Stream(_) => None,
                        KeepFile::Listener(listener) => listener_ready(listener, write),
                        _ => ready(0, false),
                    },
                },
            });
        }
        let any_ready = events.iter().any(Option::is_some);
        let deadline = if any_ready {
            Some(now)
        } else {
            let clocks = subs.iter().filter_map(|s| match s.kind {
                Kind::Clock(d) => Some(d),
                Kind::Fd { .. } => None,
            });
            let handshakes = subs.iter().filter_map(|s| match s.kind {
                Kind::Fd { fd, .. } => match fds.table.get(&fd) {
                    Some(Descriptor::Keep(keep)) => match &keep.file {
                        KeepFile::Listener(listener) => listener.next_deadline(),
                        _ => None,
                    },
                    _ => None,
                },
                Kind::Clock(_) => None,
            });
            clocks.chain(handshakes).min()
        };
        let revents = kernel_poll(fds, subs, deadline)?;
        for ((sub, event), flags) in subs.iter().zip(&mut events).zip(revents) {
            let (Kind::Fd { fd, write }, false) = (sub.kind, flags.is_empty()) else {
                continue;
            };
            if event.is_some() {
                continue;
            }
            let Some(keep) = fds.keep_mut(fd) else {
                continue;
            };
            let hangup = flags.intersects(PollFlags::HUP | PollFlags::ERR);
            *event = match &mut keep.file {
                KeepFile::Stream(stream) => {
                    if stream.progress().is_err() {
                        ready(0, true)
                    } else if write {
                        flags
                            .intersects(PollFlags::OUT | PollFlags::ERR | PollFlags::HUP)
                            .then_some(Event {
                                error: 0,
                                hangup,
                                nbytes: 0,
                            })
                    } else if stream.is_tls() {
                        stream.buffered_read_ready().and_then(|n| ready(n, n == 0))
                    } else {
                        ready(0, hangup)
                    }
                }
                KeepFile::Listener(listener) => listener_ready(listener, write),
                _ => None,
            };
        }
        if events.iter().any(Option::is_some) {
            return Ok(events);
        }
        if !any_ready && deadline.is_some_and(|d| Instant::now() >= d) {
            // A handshake timed out (or a clock fired between checks): re-evaluate.
            continue;
        }
    }
}

/// A listener is readable when an established connection waits to be accepted (after
/// accepting what the kernel holds and advancing handshakes); it is never writable.
fn listener_ready(listener: &mut crate::net::Listener, write: bool) -> Option<Event> {
    listener.progress();
    (listener.has_ready() && !write).then_some(Event {
        error: 0,
        hangup: false,
        nbytes: 1,
    })
}

/// `poll(2)` over the sockets of the subscriptions; the readiness seen per subscription.
fn kernel_poll(
    fds: &Descriptors,
    subs: &[Subscription],
    deadline: Option<Instant>,
) -> wasmtime::Result<Vec<PollFlags>> {
    let mut pollfds: Vec<PollFd<'_>> = Vec::new();
    let mut owners: Vec<usize> = Vec::new();
    for (index, sub) in subs.iter().enumerate() {
        let Kind::Fd { fd, write } = sub.kind else {
            continue;
        };
        let Some(Descriptor::Keep(keep)) = fds.table.get(&fd) else {
            continue;
        };
        let before = pollfds.len();
        match &keep.file {
            KeepFile::Stream(stream) => {
                let direction = if write { PollFlags::OUT } else { PollFlags::IN };
                pollfds.push(PollFd::from_borrowed_fd(
                    std::os::fd::AsFd::as_fd(stream),
                    stream.interest(direction),
                ));
            }
            KeepFile::Listener(listener) => listener.poll_fds(&mut pollfds),
            _ => {}
        }
        owners.extend(std::iter::repeat_n(index, pollfds.len() - before));
    }
    wait::many(&mut pollfds, deadline)?;
    let mut revents = vec![PollFlags::empty(); subs.len()];
    for (pollfd, owner) in pollfds.iter().zip(owners) {
        revents[owner] |= pollfd.revents();
    }
    Ok(revents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(userdata: u64, tag: u8, fd_or_clock: u32, timeout: u64) -> [u8; 48] {
        let mut bytes = [0u8; 48];
        bytes[0..8].copy_from_slice(&userdata.to_le_bytes());
        bytes[8] = tag;
        bytes[16..20].copy_from_slice(&fd_or_clock.to_le_bytes());
        bytes[24..32].copy_from_slice(&timeout.to_le_bytes());
        bytes
    }

    fn parsed(backing: &mut [u8], at: u32, count: u32) -> Result<Vec<Subscription>, i32> {
        let fds = Descriptors::new(Vec::new(), 3, Instant::now());
        parse(&Memory(backing), at, count, &fds)
    }

    #[test]
    fn subscriptions_are_parsed_in_order() {
        let mut backing = vec![0u8; 256];
        backing[16..64].copy_from_slice(&subscription(7, EVENTTYPE_FD_READ, 4, 0));
        backing[64..112].copy_from_slice(&subscription(8, EVENTTYPE_FD_WRITE, 5, 0));
        backing[112..160].copy_from_slice(&subscription(9, EVENTTYPE_CLOCK, CLOCK_MONOTONIC, 1));
        let subs = parsed(&mut backing, 16, 3).unwrap();
        let summary: Vec<_> = subs
            .iter()
            .map(|s| match s.kind {
                Kind::Fd { fd, write } => (s.userdata, Some((fd, write))),
                Kind::Clock(_) => (s.userdata, None),
            })
            .collect();
        assert_eq!(
            summary,
            [(7, Some((4, false))), (8, Some((5, true))), (9, None)]
        );
    }

    #[test]
    fn malformed_subscriptions_are_refused_without_touching_the_host() {
        let mut backing = vec![0u8; 256];
        backing[0..48].copy_from_slice(&subscription(1, 9, 0, 0));
        assert_eq!(
            parsed(&mut backing, 0, 1).err(),
            Some(errno::INVAL),
            "unknown tag"
        );
        assert_eq!(
            parsed(&mut backing, 240, 1).err(),
            Some(errno::FAULT),
            "past the end"
        );
        assert_eq!(
            parsed(&mut backing, 0, 6).err(),
            Some(errno::FAULT),
            "array too long"
        );
        assert_eq!(
            parsed(&mut backing, 0, u32::MAX).err(),
            Some(errno::FAULT),
            "count near u32::MAX is refused before anything is allocated"
        );
        assert_eq!(
            parsed(&mut backing, u32::MAX - 40, 1).err(),
            Some(errno::FAULT),
            "pointer near u32::MAX"
        );
    }

    #[test]
    fn clock_deadlines_saturate_instead_of_overflowing() {
        let mut backing = vec![0u8; 48];
        backing.copy_from_slice(&subscription(1, EVENTTYPE_CLOCK, CLOCK_MONOTONIC, u64::MAX));
        let subs = parsed(&mut backing, 0, 1).unwrap();
        let Kind::Clock(deadline) = subs[0].kind else {
            panic!("a clock subscription");
        };
        assert!(deadline > Instant::now() + Duration::from_secs(86400));
    }
}
