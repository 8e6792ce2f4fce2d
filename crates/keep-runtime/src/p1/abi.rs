//! The preview-1 ABI pieces Keep reads and writes itself: errno values, descriptor types
//! and flags, and little-endian access to guest memory with bounds checks.

/// `errno` values (`wasi_snapshot_preview1`).
pub mod errno {
    pub const SUCCESS: i32 = 0;
    pub const AGAIN: i32 = 6;
    pub const BADF: i32 = 8;
    pub const CONNABORTED: i32 = 13;
    pub const CONNREFUSED: i32 = 14;
    pub const CONNRESET: i32 = 15;
    pub const FAULT: i32 = 21;
    pub const INTR: i32 = 27;
    pub const INVAL: i32 = 28;
    pub const IO: i32 = 29;
    pub const NOTCONN: i32 = 53;
    pub const NOTDIR: i32 = 54;
    pub const NOTSOCK: i32 = 57;
    pub const NOTSUP: i32 = 58;
    pub const PIPE: i32 = 64;
    pub const SPIPE: i32 = 68;
    pub const TIMEDOUT: i32 = 71;
}

/// `filetype` values.
pub mod filetype {
    pub const CHARACTER_DEVICE: u8 = 2;
    pub const SOCKET_STREAM: u8 = 6;
}

/// `fdflags.nonblock`.
pub const FDFLAGS_NONBLOCK: u16 = 1 << 2;
/// Every right defined by preview 1 (`fd_datasync` .. `sock_accept`).
pub const ALL_RIGHTS: u64 = (1 << 30) - 1;

/// Maps a host I/O error to the errno a POSIX program expects.
pub fn errno_of(error: &std::io::Error) -> i32 {
    use std::io::ErrorKind as K;
    match error.kind() {
        K::WouldBlock => errno::AGAIN,
        K::ConnectionReset => errno::CONNRESET,
        K::ConnectionAborted => errno::CONNABORTED,
        K::ConnectionRefused => errno::CONNREFUSED,
        K::BrokenPipe => errno::PIPE,
        K::NotConnected => errno::NOTCONN,
        K::TimedOut => errno::TIMEDOUT,
        K::Interrupted => errno::INTR,
        K::InvalidInput => errno::INVAL,
        _ => errno::IO,
    }
}

/// Guest memory, bounds-checked: every accessor returns `None` (→ `EFAULT`) out of range.
pub struct Memory<'a>(pub &'a mut [u8]);

impl Memory<'_> {
    pub fn bytes(&self, at: u32, len: u32) -> Option<&[u8]> {
        let start = usize::try_from(at).ok()?;
        self.0
            .get(start..start.checked_add(usize::try_from(len).ok()?)?)
    }

    pub fn bytes_mut(&mut self, at: u32, len: u32) -> Option<&mut [u8]> {
        let start = usize::try_from(at).ok()?;
        self.0
            .get_mut(start..start.checked_add(usize::try_from(len).ok()?)?)
    }

    pub fn u16(&self, at: u32) -> Option<u16> {
        Some(u16::from_le_bytes(self.bytes(at, 2)?.try_into().ok()?))
    }

    pub fn u32(&self, at: u32) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(at, 4)?.try_into().ok()?))
    }

    pub fn u64(&self, at: u32) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(at, 8)?.try_into().ok()?))
    }

    pub fn put(&mut self, at: u32, value: &[u8]) -> Option<()> {
        let len = u32::try_from(value.len()).ok()?;
        self.bytes_mut(at, len)?.copy_from_slice(value);
        Some(())
    }

    pub fn put_u32(&mut self, at: u32, value: u32) -> Option<()> {
        self.put(at, &value.to_le_bytes())
    }

    /// The `(pointer, length)` pairs of an iovec array.
    pub fn iovecs(&self, at: u32, count: u32) -> Option<Vec<(u32, u32)>> {
        (0..count)
            .map(|i| {
                let entry = at.checked_add(i.checked_mul(8)?)?;
                Some((self.u32(entry)?, self.u32(entry.checked_add(4)?)?))
            })
            .collect()
    }
}
