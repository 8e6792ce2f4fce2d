//! The preview-1 ABI pieces Keep reads and writes itself: errno values, descriptor types
//! and flags, and little-endian access to guest memory with bounds checks.

/// Defines constants of one preview-1 type and, for the test that checks each against
/// wasi-libc's `wasi/api.h` (`__WASI_<PREFIX>_<NAME>`), their names and values.
macro_rules! abi_constants {
    ($prefix:literal: $ty:ty { $($name:ident = $value:expr,)* }) => {
        $(pub const $name: $ty = $value;)*
        #[cfg(test)]
        pub const PREFIX: &str = $prefix;
        #[cfg(test)]
        pub const ALL: &[(&str, u64)] = &[$((stringify!($name), $value as u64)),*];
    };
}

/// `errno` values.
pub mod errno {
    abi_constants!("ERRNO": i32 {
        SUCCESS = 0,
        ACCES = 2,
        AGAIN = 6,
        BADF = 8,
        BUSY = 10,
        CONNABORTED = 13,
        CONNREFUSED = 14,
        CONNRESET = 15,
        EXIST = 20,
        FAULT = 21,
        FBIG = 22,
        ILSEQ = 25,
        INTR = 27,
        INVAL = 28,
        IO = 29,
        ISDIR = 31,
        LOOP = 32,
        NAMETOOLONG = 37,
        NOENT = 44,
        NOSPC = 51,
        NOTCONN = 53,
        NOTDIR = 54,
        NOTEMPTY = 55,
        NOTSOCK = 57,
        NOTSUP = 58,
        OVERFLOW = 61,
        PERM = 63,
        PIPE = 64,
        ROFS = 69,
        SPIPE = 70,
        TIMEDOUT = 73,
        XDEV = 75,
    });
}

/// `filetype` values.
pub mod filetype {
    abi_constants!("FILETYPE": u8 {
        CHARACTER_DEVICE = 2,
        DIRECTORY = 3,
        REGULAR_FILE = 4,
        SOCKET_STREAM = 6,
    });
}

/// `fdflags` bits.
pub mod fdflags {
    abi_constants!("FDFLAGS": u16 {
        APPEND = 1,
        DSYNC = 1 << 1,
        NONBLOCK = 1 << 2,
        RSYNC = 1 << 3,
        SYNC = 1 << 4,
    });
}

/// `oflags` bits.
pub mod oflags {
    abi_constants!("OFLAGS": u16 {
        CREAT = 1,
        DIRECTORY = 1 << 1,
        EXCL = 1 << 2,
        TRUNC = 1 << 3,
    });
}

/// `fstflags` bits.
pub mod fstflags {
    abi_constants!("FSTFLAGS": u16 {
        ATIM = 1,
        ATIM_NOW = 1 << 1,
        MTIM = 1 << 2,
        MTIM_NOW = 1 << 3,
    });
}

/// `whence` values.
pub mod whence {
    abi_constants!("WHENCE": u32 {
        SET = 0,
        CUR = 1,
        END = 2,
    });
}

/// `rights` bits.
pub mod rights {
    abi_constants!("RIGHTS": u64 {
        FD_DATASYNC = 1,
        FD_READ = 1 << 1,
        FD_SEEK = 1 << 2,
        FD_FDSTAT_SET_FLAGS = 1 << 3,
        FD_SYNC = 1 << 4,
        FD_TELL = 1 << 5,
        FD_WRITE = 1 << 6,
        FD_ADVISE = 1 << 7,
        FD_ALLOCATE = 1 << 8,
        PATH_CREATE_DIRECTORY = 1 << 9,
        PATH_CREATE_FILE = 1 << 10,
        PATH_LINK_SOURCE = 1 << 11,
        PATH_LINK_TARGET = 1 << 12,
        PATH_OPEN = 1 << 13,
        FD_READDIR = 1 << 14,
        PATH_READLINK = 1 << 15,
        PATH_RENAME_SOURCE = 1 << 16,
        PATH_RENAME_TARGET = 1 << 17,
        PATH_FILESTAT_GET = 1 << 18,
        PATH_FILESTAT_SET_SIZE = 1 << 19,
        PATH_FILESTAT_SET_TIMES = 1 << 20,
        FD_FILESTAT_GET = 1 << 21,
        FD_FILESTAT_SET_SIZE = 1 << 22,
        FD_FILESTAT_SET_TIMES = 1 << 23,
        PATH_SYMLINK = 1 << 24,
        PATH_REMOVE_DIRECTORY = 1 << 25,
        PATH_UNLINK_FILE = 1 << 26,
        POLL_FD_READWRITE = 1 << 27,
    });
}

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

    /// The `(pointer, length)` pairs of an iovec array. The whole array must lie in memory
    /// (checked before anything is allocated, so a huge `count` costs nothing); the buffers
    /// it points to are checked where they are used.
    pub fn iovecs(&self, at: u32, count: u32) -> Option<Vec<(u32, u32)>> {
        self.bytes(at, count.checked_mul(8)?)?;
        (0..count)
            .map(|i| {
                let entry = at.checked_add(i.checked_mul(8)?)?;
                Some((self.u32(entry)?, self.u32(entry.checked_add(4)?)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_are_wasi_libcs() {
        // wasi-libc's header is the C side of the ABI the guests are built against: each
        // constant is `#define __WASI_<PREFIX>_<NAME> (TYPE(VALUE))` or `(... (1 << N))`.
        let path = "/usr/include/wasm32-wasi/wasi/api.h";
        let header = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let tables = [
            (errno::PREFIX, errno::ALL),
            (filetype::PREFIX, filetype::ALL),
            (fdflags::PREFIX, fdflags::ALL),
            (oflags::PREFIX, oflags::ALL),
            (fstflags::PREFIX, fstflags::ALL),
            (whence::PREFIX, whence::ALL),
            (rights::PREFIX, rights::ALL),
        ];
        for (prefix, constants) in tables {
            for (name, value) in constants {
                let define = format!("#define __WASI_{prefix}_{name} ");
                let line = header
                    .lines()
                    .find(|line| line.starts_with(&define))
                    .unwrap_or_else(|| panic!("{path} lacks `{define}`"));
                let number = |text: &str| -> u64 {
                    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
                    digits.parse().unwrap_or_else(|e| panic!("{line}: {e}"))
                };
                let body = line[define.len()..].trim_end_matches(')');
                let theirs = match body.split_once("<<") {
                    Some((_, shift)) => 1u64 << number(shift),
                    None => number(body.rsplit('(').next().unwrap_or(body)),
                };
                assert_eq!(theirs, *value, "{prefix} {name}: {line}");
            }
        }
    }

    #[test]
    fn accessors_refuse_everything_out_of_bounds() {
        let mut backing = vec![0u8; 64];
        let mut memory = Memory(&mut backing);
        assert!(memory.put_u32(60, 0xdead_beef).is_some());
        assert_eq!(memory.u32(60), Some(0xdead_beef));
        assert_eq!(memory.u16(62), Some(0xdead));
        assert_eq!(memory.u32(61), None, "one byte past the end");
        assert_eq!(memory.u64(57), None);
        assert_eq!(memory.u64(u32::MAX), None, "no wrap-around");
        assert_eq!(
            memory.bytes(64, 0),
            Some(&[][..]),
            "empty at the end is fine"
        );
        assert_eq!(memory.bytes(65, 0), None);
        assert_eq!(memory.bytes(1, u32::MAX), None, "length overflow");
        assert!(memory.put(63, &[1, 2]).is_none());
        assert!(memory.bytes_mut(u32::MAX, 1).is_none());
    }

    #[test]
    fn iovec_arrays_are_read_whole_or_refused() {
        let mut backing = vec![0u8; 64];
        let mut memory = Memory(&mut backing);
        // Two iovecs at 8: (100, 5) and (8, 16); the second overlaps the array itself, which
        // is the guest's business: only the array has to be in memory.
        for (at, value) in [(8, 100), (12, 5), (16, 8), (20, 16)] {
            memory.put_u32(at, value).unwrap();
        }
        assert_eq!(memory.iovecs(8, 2), Some(vec![(100, 5), (8, 16)]));
        assert_eq!(memory.iovecs(8, 0), Some(vec![]));
        assert_eq!(memory.iovecs(56, 1), Some(vec![(0, 0)]));
        assert_eq!(memory.iovecs(57, 1), None, "the array runs past the end");
        assert_eq!(
            memory.iovecs(8, 7).map(|v| v.len()),
            Some(7),
            "exactly to the end"
        );
        assert_eq!(memory.iovecs(8, 8), None);
        assert_eq!(memory.iovecs(0, u32::MAX), None, "count near u32::MAX");
        assert_eq!(
            memory.iovecs(0, u32::MAX / 8 + 1),
            None,
            "count * 8 overflows"
        );
        assert_eq!(
            memory.iovecs(u32::MAX - 3, 1),
            None,
            "pointer near u32::MAX"
        );
    }
}
