//! A sealed store as a guest's file system: what a preview-1 module's descriptors
//! (`p1::sealed`) and a WASI 0.2 component's (`p2::filesystem`) share.
//!
//! Each operation answers as wasmtime-wasi 48 does over a host directory, checks in its
//! order, so that a program behaves as under `wasmtime run`. Errors are preview-1 errno
//! numbers, the one vocabulary both forms report (`wasi:filesystem`'s error codes map one
//! to one). A sealed store has no links, symbolic links or permissions.

use std::sync::{Mutex, MutexGuard};

use keep_sealed::format::CHUNK;
use keep_sealed::mount::ErrorReport;
use keep_sealed::{Attributes, DirEntry, FileKind, FsError, Ino, Store};

use super::path::{Target, resolve};
use crate::p1::abi::errno;

/// A read is decrypted this much at a time, so that a huge read does not take as much
/// host memory.
pub const READ_PIECE: usize = 1024 * 1024;
/// A piece at least this large is decrypted in two halves side by side, on the guest's
/// thread and one more: decryption bounds a sealed read, and the guest waits for it anyway.
const PARALLEL_READ: usize = 256 * 1024;

/// A sealed store served to a guest: shared by its preopen and every descriptor opened
/// under it.
pub struct SealedStore {
    store: Mutex<Store>,
    /// Told of failures the guest sees only as `EIO`, for Keep's stderr.
    report: ErrorReport,
    /// `[[dirs]] read_only`: nothing may change.
    read_only: bool,
}

/// What `open` is asked for.
#[derive(Clone, Copy, Default)]
pub struct OpenRequest {
    /// Create the file when it is missing.
    pub create: bool,
    /// With `create`: fail when it exists.
    pub exclusive: bool,
    /// Cut a file to nothing.
    pub truncate: bool,
    /// It must be a directory.
    pub directory: bool,
    /// The descriptor will write (also implied by `create` and `truncate`).
    pub write: bool,
}

impl OpenRequest {
    /// Whether the descriptor opened may write.
    pub fn writes(&self) -> bool {
        self.write || self.create || self.truncate
    }
}

/// Where a write goes.
#[derive(Clone, Copy)]
pub enum WriteAt {
    Offset(u64),
    /// At the file's end, whatever the offset (as Linux does for `O_APPEND`).
    End,
}

impl SealedStore {
    /// Serves `store`; failures the guest sees as `EIO` go to `report`.
    pub fn new(store: Store, report: ErrorReport, read_only: bool) -> Self {
        Self {
            store: Mutex::new(store),
            report,
            read_only,
        }
    }

    /// The store (a poisoned lock means a panic in a file operation; the store is still
    /// whole, as each change is applied at once or not at all).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The errno for `error`, reporting sealed-store failures.
    pub fn errno(&self, error: FsError) -> i32 {
        match error {
            FsError::Errno(errno) => errno_of_linux(errno),
            FsError::Sealed(error) => {
                (self.report)(&error);
                errno::IO
            }
        }
    }

    /// `Err(EPERM)` when the directory is read-only, as wasmtime-wasi answers.
    pub fn writable(&self) -> Result<(), i32> {
        if self.read_only {
            Err(errno::PERM)
        } else {
            Ok(())
        }
    }

    /// Resolves `path` from the directory `start` (see [`resolve`]).
    fn resolve(&self, start: Ino, path: &[u8]) -> Result<Target, i32> {
        resolve(self, start, path)
    }

    pub fn attributes(&self, ino: Ino) -> Result<Attributes, i32> {
        let result = self.lock().getattr(ino);
        result.map_err(|e| self.errno(e))
    }

    /// Makes every change so far durable (`fsync`).
    pub fn commit(&self) -> Result<(), i32> {
        let result = self.lock().commit();
        result.map_err(|e| self.errno(e))
    }

    /// Sets the size of `ino`, open for writing or not (`EINVAL`, as `ftruncate`).
    pub fn set_size(&self, ino: Ino, size: u64, open_to_write: bool) -> Result<(), i32> {
        self.writable()?;
        if !open_to_write {
            return Err(errno::INVAL);
        }
        let result = self.lock().set_size(ino, size);
        result.map_err(|e| self.errno(e))
    }

    /// What `path` from the directory `start` names; `None` when nothing is there.
    pub fn find(&self, start: Ino, path: &[u8]) -> Result<Option<Attributes>, i32> {
        self.resolve(start, path)?.find(self)
    }

    /// Sets the modification time of `ino` (`None`: leaves it). The store keeps one time:
    /// an access time is accepted and not kept.
    pub fn set_modified(&self, ino: Ino, mtime_ns: Option<i64>) -> Result<(), i32> {
        self.writable()?;
        let Some(mtime_ns) = mtime_ns else {
            return Ok(());
        };
        let result = self.lock().set_mtime(ino, mtime_ns);
        result.map_err(|e| self.errno(e))
    }

    /// [`Self::set_modified`] of what `path` from the directory `start` names.
    pub fn set_modified_at(
        &self,
        start: Ino,
        path: &[u8],
        mtime_ns: Option<i64>,
    ) -> Result<(), i32> {
        self.writable()?;
        let found = self.find(start, path)?.ok_or(errno::NOENT)?;
        self.set_modified(found.ino, mtime_ns)
    }

    /// How many bytes a read of at most `len` from `offset` of `ino` gives in one piece:
    /// what the file holds there, at most [`READ_PIECE`] (a guest asking for more gets a
    /// short read, which it must expect anyway).
    pub fn readable(&self, ino: Ino, offset: u64, len: u64) -> Result<usize, i32> {
        let size = self.attributes(ino)?.size;
        Ok(len.min(size.saturating_sub(offset)).min(READ_PIECE as u64) as usize)
    }

    /// Reads `ino` from `at` into `out`; returns how many bytes it holds (fewer at the end
    /// of the file).
    pub fn read(&self, ino: Ino, at: u64, out: &mut [u8]) -> Result<usize, i32> {
        let mut done = 0;
        while done < out.len() {
            let want = (out.len() - done).min(READ_PIECE);
            let got = self.read_piece(ino, at + done as u64, &mut out[done..done + want])?;
            done += got;
            if got < want {
                break;
            }
        }
        Ok(done)
    }

    /// Writes `data` to `ino` at `at`; returns where the write ended.
    pub fn write(&self, ino: Ino, at: WriteAt, data: &[u8]) -> Result<u64, i32> {
        let mut sealed = self.lock();
        let at = match at {
            WriteAt::Offset(offset) => offset,
            WriteAt::End => sealed.getattr(ino).map_err(|e| self.errno(e))?.size,
        };
        if !data.is_empty() {
            // An empty write changes nothing, not even the modification time (as on Linux).
            sealed.write(ino, at, data).map_err(|e| self.errno(e))?;
        }
        Ok(at + data.len() as u64)
    }

    /// The parent of the directory `ino` and its entries.
    pub fn list(&self, ino: Ino) -> Result<(Ino, Vec<DirEntry>), i32> {
        let sealed = self.lock();
        let listed = sealed
            .readdir(ino)
            .and_then(|entries| Ok((sealed.parent(ino)?, entries)));
        drop(sealed);
        listed.map_err(|e| self.errno(e))
    }

    pub fn create_directory(&self, start: Ino, path: &[u8]) -> Result<(), i32> {
        self.writable()?;
        let target = self.resolve(start, path)?;
        let Some(name) = target.name else {
            return Err(errno::EXIST);
        };
        let result = self.lock().create(target.dir, &name, FileKind::Dir);
        result.map(drop).map_err(|e| self.errno(e))
    }

    pub fn remove_directory(&self, start: Ino, path: &[u8]) -> Result<(), i32> {
        self.writable()?;
        let target = self.resolve(start, path)?;
        let name = target.name.ok_or(errno::INVAL)?;
        let result = self.lock().remove(target.dir, &name, FileKind::Dir);
        result.map_err(|e| self.errno(e))
    }

    pub fn unlink_file(&self, start: Ino, path: &[u8]) -> Result<(), i32> {
        self.writable()?;
        let target = self.resolve(start, path)?;
        let name = target.name.ok_or(errno::ISDIR)?;
        if target.must_be_dir {
            return Err(match self.lock().lookup(target.dir, &name) {
                Ok(found) if found.kind == FileKind::Dir => errno::ISDIR,
                Ok(_) => errno::NOTDIR,
                Err(e) => self.errno(e),
            });
        }
        let result = self.lock().remove(target.dir, &name, FileKind::File);
        result.map_err(|e| self.errno(e))
    }

    /// Renames `from` (a directory and a path from it) to `to`.
    pub fn rename(&self, from: (Ino, &[u8]), to: (Ino, &[u8])) -> Result<(), i32> {
        self.writable()?;
        let (from, to) = (self.resolve(from.0, from.1)?, self.resolve(to.0, to.1)?);
        let (Some(from_name), Some(to_name)) = (&from.name, &to.name) else {
            return Err(errno::BUSY);
        };
        if from.must_be_dir || to.must_be_dir {
            // A trailing slash: both must be directories.
            match self.lock().lookup(from.dir, from_name) {
                Ok(found) if found.kind == FileKind::File => return Err(errno::NOTDIR),
                Ok(_) => {}
                Err(e) => return Err(self.errno(e)),
            }
        }
        let result = self.lock().rename(from.dir, from_name, to.dir, to_name);
        result.map_err(|e| self.errno(e))
    }

    /// Opens `path` from the directory `start` as `request` asks; returns what it opened.
    pub fn open(&self, start: Ino, path: &[u8], request: OpenRequest) -> Result<Attributes, i32> {
        if request.directory && (request.create || request.exclusive || request.truncate) {
            return Err(errno::INVAL);
        }
        if request.writes() {
            self.writable()?;
        }
        let target = self.resolve(start, path)?;
        match target.find(self)? {
            Some(_) if request.create && request.exclusive => Err(errno::EXIST),
            Some(found) if found.kind == FileKind::Dir => {
                if request.writes() {
                    return Err(errno::ISDIR);
                }
                Ok(found)
            }
            Some(_) if request.directory || target.must_be_dir => Err(errno::NOTDIR),
            Some(found) => {
                if request.truncate && found.size > 0 {
                    let result = self.lock().set_size(found.ino, 0);
                    result.map_err(|e| self.errno(e))?;
                }
                Ok(found)
            }
            None if !request.create => Err(errno::NOENT),
            None => {
                let name = match target.name {
                    Some(name) if !target.must_be_dir => name,
                    _ => return Err(errno::ISDIR),
                };
                let result = self.lock().create(target.dir, &name, FileKind::File);
                result.map_err(|e| self.errno(e))
            }
        }
    }

    /// Reads at most [`READ_PIECE`] bytes. A read of [`PARALLEL_READ`] or more is
    /// planned in two halves (a whole number of chunks first), decrypted on two threads
    /// straight into the two halves of `out`.
    fn read_piece(&self, ino: Ino, at: u64, out: &mut [u8]) -> Result<usize, i32> {
        let mut sealed = self.lock();
        let half = if out.len() < PARALLEL_READ {
            out.len()
        } else {
            (out.len() / 2) & !(CHUNK - 1)
        };
        let planned = sealed.plan_read(ino, at, half).and_then(|first| {
            let rest = out.len() - half;
            let second = match rest {
                0 => None,
                rest => Some(sealed.plan_read(ino, at + half as u64, rest)?),
            };
            Ok((first, second))
        });
        let reader = sealed.chunk_reader();
        drop(sealed);
        let (first, second) = planned.map_err(|e| self.errno(e))?;
        let (first_len, second_len) = (first.len(), second.as_ref().map_or(0, |s| s.len()));
        let (head, tail) = out.split_at_mut(half);
        let (first, second) = std::thread::scope(|scope| {
            let Some(second) = second else {
                return (reader.finish_into(first, head), Some(Ok(())));
            };
            let helper = std::thread::Builder::new()
                .name("keep-sealed-read".into())
                .spawn_scoped(scope, || reader.finish_into(second, tail));
            let first = reader.finish_into(first, head);
            (first, helper.ok().and_then(|helper| helper.join().ok()))
        });
        let failed = |failed| self.errno(self.lock().failed_read(failed));
        first.map_err(failed)?;
        if first_len < half {
            return Ok(first_len);
        }
        let second = match second {
            Some(finished) => finished,
            None => {
                // The helper could not start (or panicked): the second half here.
                let rest = &mut out[half..];
                let planned = self.lock().plan_read(ino, at + half as u64, rest.len());
                reader.finish_into(planned.map_err(|e| self.errno(e))?, rest)
            }
        };
        second.map_err(failed)?;
        Ok(half + second_len)
    }
}

/// Now, in nanoseconds since the epoch, as a modification time.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The preview-1 errno for a Linux errno the store answers with.
fn errno_of_linux(linux: rustix::io::Errno) -> i32 {
    use rustix::io::Errno as E;
    match linux {
        E::NOENT => errno::NOENT,
        E::EXIST => errno::EXIST,
        E::NOTDIR => errno::NOTDIR,
        E::ISDIR => errno::ISDIR,
        E::NOTEMPTY => errno::NOTEMPTY,
        E::INVAL => errno::INVAL,
        E::NAMETOOLONG => errno::NAMETOOLONG,
        E::FBIG => errno::FBIG,
        E::NOSPC => errno::NOSPC,
        E::PERM => errno::PERM,
        E::ACCESS => errno::ACCES,
        E::BADF => errno::BADF,
        E::XDEV => errno::XDEV,
        E::BUSY => errno::BUSY,
        E::ROFS => errno::ROFS,
        E::LOOP => errno::LOOP,
        _ => errno::IO,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use keep_sealed::ROOT;

    use super::*;

    /// A witness that accepts every version (these stores are never reopened).
    struct Accepting;

    impl keep_sealed::Witness for Accepting {
        fn current(&self, _id: &[u8; 16]) -> Result<Option<u64>, String> {
            Ok(None)
        }

        fn advance(&self, _id: &[u8; 16], _version: u64) -> Result<(), String> {
            Ok(())
        }
    }

    /// A store holding `d/` and `d/f.txt`; returns it with `d`'s inode.
    pub fn store(dir: &std::path::Path) -> (SealedStore, Ino) {
        let key = keep_sealed::StoreKey::from_secret(&[5; 32]).unwrap();
        let store = Store::open(dir, "/data", &key, Arc::new(Accepting)).unwrap();
        let served = SealedStore::new(store, Arc::new(|_| {}), false);
        let d = served.lock().create(ROOT, b"d", FileKind::Dir).unwrap().ino;
        served.lock().create(d, b"f.txt", FileKind::File).unwrap();
        (served, d)
    }

    #[test]
    fn large_reads_decrypted_in_two_halves_give_every_byte_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, d) = store(tmp.path());
        let ino = store.lock().lookup(d, b"f.txt").unwrap().ino;
        let content: Vec<u8> = (0..(3 << 20) + 12_345u32)
            .map(|i| (i % 251) as u8)
            .collect();
        store.lock().write(ino, 0, &content).unwrap();
        // Sealed into the log, as a file read after a restart is; the last bytes are then
        // rewritten, so the read mixes sealed chunks and chunks not sealed yet.
        store.lock().commit().unwrap();
        let tail = content.len() - 5000;
        store
            .lock()
            .write(ino, tail as u64, &content[tail..])
            .unwrap();
        for (at, want) in [
            (0, READ_PIECE),
            (100, READ_PIECE),
            (4095, PARALLEL_READ),
            (content.len() as u64 - 300_000, READ_PIECE),
            (content.len() as u64 - 1000, READ_PIECE),
            (content.len() as u64 + 10, READ_PIECE),
            (7, 3 * READ_PIECE + 5),
        ] {
            let mut read = vec![0xaa; want];
            let got = store.read(ino, at, &mut read).unwrap();
            let from = (at as usize).min(content.len());
            let to = (from + want).min(content.len());
            assert!(read[..got] == content[from..to], "{want} bytes at {at}");
        }
        let len = content.len() as u64;
        assert_eq!(store.readable(ino, 0, u64::MAX), Ok(READ_PIECE));
        assert_eq!(store.readable(ino, len - 1000, 4096), Ok(1000));
        assert_eq!(store.readable(ino, len + 10, 4096), Ok(0));
    }

    #[test]
    fn opening_checks_what_wasmtime_wasi_checks_in_its_order() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, d) = store(tmp.path());
        let create = OpenRequest {
            create: true,
            ..OpenRequest::default()
        };
        let directory = OpenRequest {
            directory: true,
            ..OpenRequest::default()
        };
        assert_eq!(
            store
                .open(
                    ROOT,
                    b"d",
                    OpenRequest {
                        truncate: true,
                        ..directory
                    }
                )
                .map(|a| a.ino),
            Err(errno::INVAL)
        );
        assert_eq!(store.open(ROOT, b"d", directory).map(|a| a.ino), Ok(d));
        assert_eq!(
            store.open(ROOT, b"d", create).map(|a| a.ino),
            Err(errno::ISDIR)
        );
        assert_eq!(
            store
                .open(d, b"f.txt/", OpenRequest::default())
                .map(|a| a.ino),
            Err(errno::NOTDIR)
        );
        assert_eq!(
            store.open(ROOT, b"new/", create).map(|a| a.ino),
            Err(errno::ISDIR)
        );
        let exclusive = OpenRequest {
            exclusive: true,
            ..create
        };
        let made = store.open(ROOT, b"new", exclusive).unwrap();
        assert_eq!(made.kind, FileKind::File);
        assert_eq!(
            store.open(ROOT, b"new", exclusive).map(|a| a.ino),
            Err(errno::EXIST)
        );
        assert_eq!(
            store
                .open(ROOT, b"gone", OpenRequest::default())
                .map(|a| a.ino),
            Err(errno::NOENT)
        );
        let read_only = SealedStore {
            read_only: true,
            ..store
        };
        assert_eq!(
            read_only.open(ROOT, b"missing/x", create).map(|a| a.ino),
            Err(errno::PERM),
            "a read-only directory refuses before the path is looked at"
        );
    }

    #[test]
    fn the_store_s_linux_errors_become_preview_1_errnos() {
        use rustix::io::Errno as E;
        for (linux, wasi) in [
            (E::NOENT, errno::NOENT),
            (E::EXIST, errno::EXIST),
            (E::NOTEMPTY, errno::NOTEMPTY),
            (E::ISDIR, errno::ISDIR),
            (E::NAMETOOLONG, errno::NAMETOOLONG),
            (E::FBIG, errno::FBIG),
            (E::CHILD, errno::IO),
        ] {
            assert_eq!(errno_of_linux(linux), wasi, "{linux:?}");
        }
    }
}
