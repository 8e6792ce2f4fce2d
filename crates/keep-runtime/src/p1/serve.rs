//! Preview-1 calls on descriptors Keep owns: sockets of `[[files]]`, the connections they
//! accept, and standard streams placed past descriptor 2.

use std::io::Read as _;
use std::net::Shutdown;

use wasmtime::{Caller, Val};

use super::abi::{ALL_RIGHTS, Memory, errno, errno_of, fdflags, filetype};
use super::functions::Op;
use super::{Descriptor, KeepDescriptor, ModuleHost, arg};
use crate::net::KeepFile;
use crate::output::OutputLimits;

/// `riflags.recv_peek` and `riflags.recv_waitall`.
const RECV_PEEK: u16 = 1;
const RECV_WAITALL: u16 = 2;
/// `sdflags`.
const SHUT_RD: u32 = 1;
const SHUT_WR: u32 = 2;

/// Serves `op` on Keep's descriptor `fd`; returns the errno.
pub fn serve(
    caller: &mut Caller<'_, ModuleHost>,
    op: Op,
    fd: u32,
    params: &[Val],
) -> wasmtime::Result<i32> {
    if op == Op::Close {
        if let Some(Descriptor::Keep(mut closed)) = caller.data_mut().fds.table.remove(&fd)
            && let KeepFile::Stream(stream) = &mut closed.file
        {
            // Tell a TLS peer the stream ended cleanly (close_notify), best effort.
            let _ = stream.shutdown(Shutdown::Both);
        }
        return Ok(errno::SUCCESS);
    }
    let Some(memory) = caller.data().fds.memory else {
        return Ok(errno::FAULT);
    };
    let (data, host) = memory.data_and_store_mut(&mut *caller);
    let mut memory = Memory(data);
    let output = host.output.as_deref();
    let Some(descriptor) = host.fds.keep_mut(fd) else {
        return Ok(errno::BADF);
    };
    let p = |i| arg(params, i);
    let result = match op {
        Op::Read => {
            read(&mut memory, descriptor, p(1), p(2), 0).and_then(|n| put(&mut memory, p(3), n))
        }
        Op::Recv => {
            let flags = p(3) as u16;
            read(&mut memory, descriptor, p(1), p(2), flags).and_then(|n| {
                put(&mut memory, p(4), n)?;
                memory.put(p(5), &0u16.to_le_bytes()).ok_or(errno::FAULT)
            })
        }
        Op::Write => write(&mut memory, descriptor, p(1), p(2), output)
            .and_then(|n| put(&mut memory, p(3), n)),
        Op::Send => write(&mut memory, descriptor, p(1), p(2), output)
            .and_then(|n| put(&mut memory, p(4), n)),
        Op::FdstatGet => fdstat(&mut memory, descriptor, p(1)),
        Op::FdstatSetFlags => {
            descriptor.nonblocking = (p(1) as u16) & fdflags::NONBLOCK != 0;
            Ok(())
        }
        Op::FilestatGet => {
            let mut stat = [0u8; 64];
            stat[16] = file_type(&descriptor.file);
            memory.put(p(1), &stat).ok_or(errno::FAULT)
        }
        Op::Shutdown => shutdown(descriptor, p(1)),
        Op::Accept => match &mut descriptor.file {
            KeepFile::Listener(listener) => match listener.accept(descriptor.nonblocking) {
                Ok(stream) => {
                    tracing::debug!("accepted a connection from {}", stream.peer());
                    let new = host.fds.allocate();
                    host.fds.table.insert(
                        new,
                        Descriptor::Keep(KeepDescriptor {
                            file: KeepFile::Stream(stream),
                            nonblocking: (p(1) as u16) & fdflags::NONBLOCK != 0,
                        }),
                    );
                    put(&mut memory, p(2), new)
                }
                Err(e) => Err(errno_of(&e)),
            },
            KeepFile::Stream(_) => Err(errno::INVAL),
            _ => Err(errno::NOTSOCK),
        },
        Op::Close | Op::Renumber | Op::Poll => Err(errno::INVAL),
    };
    if let Some(exceeded) = output.and_then(OutputLimits::exceeded) {
        return Err(wasmtime::Error::new(exceeded));
    }
    Ok(result.err().unwrap_or(errno::SUCCESS))
}

fn put(memory: &mut Memory<'_>, at: u32, value: u32) -> Result<(), i32> {
    memory.put_u32(at, value).ok_or(errno::FAULT)
}

fn file_type(file: &KeepFile) -> u8 {
    match file {
        KeepFile::Listener(_) | KeepFile::Stream(_) => filetype::SOCKET_STREAM,
        KeepFile::Null | KeepFile::Stdin | KeepFile::Stdout | KeepFile::Stderr => {
            filetype::CHARACTER_DEVICE
        }
    }
}

fn fdstat(memory: &mut Memory<'_>, descriptor: &KeepDescriptor, at: u32) -> Result<(), i32> {
    let mut stat = [0u8; 24];
    stat[0] = file_type(&descriptor.file);
    let flags = if descriptor.nonblocking {
        fdflags::NONBLOCK
    } else {
        0
    };
    stat[2..4].copy_from_slice(&flags.to_le_bytes());
    stat[8..16].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
    stat[16..24].copy_from_slice(&ALL_RIGHTS.to_le_bytes());
    memory.put(at, &stat).ok_or(errno::FAULT)
}

/// Reads into the first non-empty iovec (a short read, as POSIX allows).
fn read(
    memory: &mut Memory<'_>,
    descriptor: &mut KeepDescriptor,
    iovs: u32,
    count: u32,
    flags: u16,
) -> Result<u32, i32> {
    let iovecs = memory.iovecs(iovs, count).ok_or(errno::FAULT)?;
    let Some(&(at, len)) = iovecs.iter().find(|(_, len)| *len > 0) else {
        return Ok(0);
    };
    let buf = memory.bytes_mut(at, len).ok_or(errno::FAULT)?;
    let nonblocking = descriptor.nonblocking;
    let n = match &mut descriptor.file {
        KeepFile::Stream(_) if flags & RECV_PEEK != 0 => return Err(errno::NOTSUP),
        KeepFile::Stream(stream) if flags & RECV_WAITALL != 0 => {
            let mut filled = 0;
            while filled < buf.len() {
                match stream.read(&mut buf[filled..], nonblocking) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if filled == 0 => return Err(errno_of(&e)),
                    Err(_) => break,
                }
            }
            filled
        }
        KeepFile::Stream(stream) => stream.read(buf, nonblocking).map_err(|e| errno_of(&e))?,
        KeepFile::Null => 0,
        KeepFile::Stdin => std::io::stdin().read(buf).map_err(|e| errno_of(&e))?,
        KeepFile::Listener(_) => return Err(errno::NOTCONN),
        KeepFile::Stdout | KeepFile::Stderr => return Err(errno::BADF),
    };
    Ok(n as u32)
}

/// Writes the iovecs in order; a non-blocking stream stops at the first short write, and
/// the host's stdout and stderr at the output limit (the caller then stops the guest).
fn write(
    memory: &mut Memory<'_>,
    descriptor: &mut KeepDescriptor,
    iovs: u32,
    count: u32,
    output: Option<&OutputLimits>,
) -> Result<u32, i32> {
    let iovecs = memory.iovecs(iovs, count).ok_or(errno::FAULT)?;
    let nonblocking = descriptor.nonblocking;
    let mut total = 0usize;
    for (at, len) in iovecs {
        let buf = memory.bytes(at, len).ok_or(errno::FAULT)?;
        let written = match &mut descriptor.file {
            KeepFile::Stream(stream) => stream.write(buf, nonblocking).map_err(|e| errno_of(&e)),
            KeepFile::Null => Ok(buf.len()),
            KeepFile::Stdout => write_all(&mut std::io::stdout().lock(), buf, output),
            KeepFile::Stderr => write_all(&mut std::io::stderr().lock(), buf, output),
            KeepFile::Listener(_) => Err(errno::NOTCONN),
            KeepFile::Stdin => Err(errno::BADF),
        };
        match written {
            Ok(n) => {
                total += n;
                if n < buf.len() {
                    break;
                }
            }
            Err(errno) if total == 0 => return Err(errno),
            Err(_) => break,
        }
    }
    Ok(total as u32)
}

fn write_all(
    out: &mut impl std::io::Write,
    buf: &[u8],
    output: Option<&OutputLimits>,
) -> Result<usize, i32> {
    match output {
        Some(limits) => limits.write_blocking(out, buf),
        None => out
            .write_all(buf)
            .and_then(|()| out.flush())
            .map(|()| buf.len()),
    }
    .map_err(|e| errno_of(&e))
}

fn shutdown(descriptor: &mut KeepDescriptor, how: u32) -> Result<(), i32> {
    let how = match how {
        SHUT_RD => Shutdown::Read,
        SHUT_WR => Shutdown::Write,
        h if h == SHUT_RD | SHUT_WR => Shutdown::Both,
        _ => return Err(errno::INVAL),
    };
    match &mut descriptor.file {
        KeepFile::Stream(stream) => stream.shutdown(how).map_err(|e| errno_of(&e)),
        KeepFile::Listener(_) => Err(errno::NOTCONN),
        _ => Err(errno::NOTSOCK),
    }
}
