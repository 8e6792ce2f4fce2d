//! Sealed directories served to a preview-1 module by Keep itself: the preopen and every
//! file and directory opened under it are Keep's descriptors, and each preview-1 call on
//! them is answered from the [`Store`] on the guest's own thread, with no round trip
//! through the kernel (a component's sealed directories go through FUSE, see
//! `keep_sealed::mount`, because wasmtime-wasi's `wasi:filesystem` serves only host
//! directories).
//!
//! What the guest sees follows wasmtime-wasi's preview-1 implementation over a host
//! directory, call by call and errno by errno, so that a program behaves as under
//! `wasmtime run`: for example, reads and writes use the first non-empty buffer of an
//! iovec array, `fd_sync` on a directory is `EBADF`, a path that leaves the directory it
//! is resolved from is `EPERM`. A sealed store has no links, symbolic links or
//! permissions: `path_link` and `path_symlink` are `EPERM`, as on a file system without
//! them.

mod path;

use std::sync::{Arc, Mutex, MutexGuard};

use keep_sealed::format::CHUNK;
use keep_sealed::mount::ErrorReport;
use keep_sealed::{Attributes, FileKind, FsError, Ino, ROOT, Store};
use wasmtime::{Caller, Val};

use super::abi::{ALL_RIGHTS, Memory, errno, fdflags, filetype, fstflags, oflags, rights, whence};
use super::{Descriptor, Descriptors, ModuleHost, arg};
use path::{Target, resolve};

/// What wasmtime-wasi reports for a preopened directory (a fixed set "expected by many
/// userlands").
const PREOPEN_RIGHTS: u64 = rights::PATH_CREATE_DIRECTORY
    | rights::PATH_CREATE_FILE
    | rights::PATH_LINK_SOURCE
    | rights::PATH_LINK_TARGET
    | rights::PATH_OPEN
    | rights::FD_READDIR
    | rights::PATH_READLINK
    | rights::PATH_RENAME_SOURCE
    | rights::PATH_RENAME_TARGET
    | rights::PATH_SYMLINK
    | rights::PATH_REMOVE_DIRECTORY
    | rights::PATH_UNLINK_FILE
    | rights::PATH_FILESTAT_GET
    | rights::PATH_FILESTAT_SET_TIMES
    | rights::FD_FILESTAT_GET
    | rights::FD_FILESTAT_SET_TIMES;
/// What it reports a preopen's descendants inherit.
const PREOPEN_INHERITING: u64 = PREOPEN_RIGHTS
    | rights::FD_DATASYNC
    | rights::FD_READ
    | rights::FD_SEEK
    | rights::FD_FDSTAT_SET_FLAGS
    | rights::FD_SYNC
    | rights::FD_TELL
    | rights::FD_WRITE
    | rights::FD_ADVISE
    | rights::FD_ALLOCATE
    | rights::FD_FILESTAT_GET
    | rights::FD_FILESTAT_SET_SIZE
    | rights::FD_FILESTAT_SET_TIMES
    | rights::POLL_FD_READWRITE;
/// The `fdflags` asking for synchronous writes, which wasmtime-wasi does not support.
const FDFLAGS_SYNCS: u16 = fdflags::DSYNC | fdflags::RSYNC | fdflags::SYNC;
/// `advice` values run from `normal` (0) to `noreuse` (5).
const ADVICE_LAST: u32 = 5;
/// The size of a `dirent` before its name, of a `filestat` and of a `fdstat`.
const DIRENT_SIZE: usize = 24;
const FILESTAT_SIZE: usize = 64;
const FDSTAT_SIZE: usize = 24;
/// A read is decrypted into the guest's memory this much at a time, so that a huge read
/// does not take as much host memory.
const READ_PIECE: u32 = 1024 * 1024;
/// A piece at least this large is decrypted in two halves side by side, on the guest's
/// thread and one more: decryption bounds a sealed read, and the guest waits for it anyway.
const PARALLEL_READ: u32 = 256 * 1024;

/// A sealed store served to a preview-1 guest: shared by the preopen and every descriptor
/// opened under it.
pub struct SealedStore {
    store: Mutex<Store>,
    /// Told of failures the guest sees only as `EIO`, for Keep's stderr.
    report: ErrorReport,
    /// `[[dirs]] read_only`: nothing may change.
    read_only: bool,
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
    fn errno(&self, error: FsError) -> i32 {
        match error {
            FsError::Errno(errno) => errno_of_linux(errno),
            FsError::Sealed(error) => {
                (self.report)(&error);
                errno::IO
            }
        }
    }

    /// `Err(EPERM)` when the directory is read-only, as wasmtime-wasi answers.
    fn writable(&self) -> Result<(), i32> {
        if self.read_only {
            Err(errno::PERM)
        } else {
            Ok(())
        }
    }
}

/// A guest descriptor of a sealed store.
pub struct SealedFd {
    store: Arc<SealedStore>,
    ino: Ino,
    open: Opened,
}

impl SealedFd {
    /// The preopen of `store`, under the guest path `guest`.
    pub fn preopen(store: Arc<SealedStore>, guest: String) -> Self {
        Self {
            store,
            ino: ROOT,
            open: Opened::Dir {
                preopen: Some(guest),
            },
        }
    }
}

/// What a sealed descriptor is open as.
enum Opened {
    /// A directory; `preopen` is its guest path when it is the preopen itself.
    Dir {
        preopen: Option<String>,
    },
    File(OpenFile),
}

struct OpenFile {
    position: u64,
    read: bool,
    write: bool,
    append: bool,
    nonblocking: bool,
}

/// Serves the preview-1 function `name` for a call that names a sealed descriptor;
/// returns the errno.
pub fn serve(
    caller: &mut Caller<'_, ModuleHost>,
    name: &str,
    params: &[Val],
) -> wasmtime::Result<i32> {
    let Some(memory) = caller.data().fds.memory else {
        return Ok(errno::FAULT);
    };
    let (data, host) = memory.data_and_store_mut(&mut *caller);
    let mut call = Call {
        memory: Memory(data),
        fds: &mut host.fds,
        params,
    };
    Ok(match call.serve(name) {
        Ok(()) => errno::SUCCESS,
        Err(errno) => errno,
    })
}

/// One call: the guest's memory, its descriptors and the call's parameters.
struct Call<'a> {
    memory: Memory<'a>,
    fds: &'a mut Descriptors,
    params: &'a [Val],
}

impl Call<'_> {
    fn serve(&mut self, name: &str) -> Result<(), i32> {
        match name {
            "fd_advise" => {
                self.file(0)?;
                if self.u32(3) > ADVICE_LAST {
                    return Err(errno::INVAL);
                }
                Ok(())
            }
            "fd_allocate" => {
                self.file(0)?;
                Err(errno::NOTSUP)
            }
            "fd_close" => {
                self.fds.table.remove(&self.u32(0));
                Ok(())
            }
            "fd_datasync" | "fd_sync" => {
                let (store, _, _) = self.file(0)?;
                let result = store.lock().commit();
                result.map_err(|e| store.errno(e))
            }
            "fd_fdstat_get" => self.fdstat_get(),
            "fd_fdstat_set_flags" => {
                let flags = self.u32(1) as u16;
                let (_, _, file) = self.file(0)?;
                if flags & FDFLAGS_SYNCS != 0 {
                    return Err(errno::INVAL);
                }
                file.append = flags & fdflags::APPEND != 0;
                file.nonblocking = flags & fdflags::NONBLOCK != 0;
                Ok(())
            }
            "fd_fdstat_set_rights" => {
                self.sealed(0)?;
                Err(errno::NOTSUP)
            }
            "fd_filestat_get" => {
                let fd = self.sealed(0)?;
                let (store, ino) = (fd.store.clone(), fd.ino);
                let attributes = store.lock().getattr(ino).map_err(|e| store.errno(e))?;
                self.put(self.u32(1), &filestat(&attributes))
            }
            "fd_filestat_set_size" => {
                let size = self.u64(1);
                let (store, ino, file) = self.file(0)?;
                store.writable()?;
                if !file.write {
                    return Err(errno::INVAL);
                }
                let result = store.lock().set_size(ino, size);
                result.map_err(|e| store.errno(e))
            }
            "fd_filestat_set_times" => {
                let fd = self.sealed(0)?;
                let (store, ino) = (fd.store.clone(), fd.ino);
                self.set_times(&store, ino, 1)
            }
            "fd_pread" => {
                let offset = self.u64(3);
                let (buf, len) = self.first_buffer(1, 2)?;
                let n = self.read(buf, len, Some(offset))?;
                self.put(self.u32(4), &n.to_le_bytes())
            }
            "fd_prestat_get" => {
                let guest = self.preopen(0).map_err(|_| errno::BADF)?;
                let len = u32::try_from(guest.len()).map_err(|_| errno::OVERFLOW)?;
                let mut prestat = [0u8; 8];
                prestat[4..].copy_from_slice(&len.to_le_bytes());
                self.put(self.u32(1), &prestat)
            }
            "fd_prestat_dir_name" => {
                let guest = self.preopen(0)?.to_owned();
                if guest.len() > self.u32(2) as usize {
                    return Err(errno::NAMETOOLONG);
                }
                self.put(self.u32(1), guest.as_bytes())
            }
            "fd_pwrite" => {
                let offset = self.u64(3);
                let (buf, len) = self.first_buffer(1, 2)?;
                let n = self.write(buf, len, Some(offset))?;
                self.put(self.u32(4), &n.to_le_bytes())
            }
            "fd_read" => {
                let (buf, len) = self.first_buffer(1, 2)?;
                let n = self.read(buf, len, None)?;
                self.put(self.u32(3), &n.to_le_bytes())
            }
            "fd_readdir" => self.readdir(),
            "fd_seek" => self.seek(),
            "fd_tell" => {
                let (_, _, file) = self.file(0)?;
                let position = file.position;
                self.put(self.u32(1), &position.to_le_bytes())
            }
            "fd_write" => {
                let (buf, len) = self.first_buffer(1, 2)?;
                let n = self.write(buf, len, None)?;
                self.put(self.u32(3), &n.to_le_bytes())
            }
            "path_create_directory" => {
                let (store, target) = self.target(0, 1, 2)?;
                store.writable()?;
                let Some(name) = target.name else {
                    return Err(errno::EXIST);
                };
                let result = store.lock().create(target.dir, &name, FileKind::Dir);
                result.map(drop).map_err(|e| store.errno(e))
            }
            "path_filestat_get" => {
                let (store, target) = self.target(0, 2, 3)?;
                let attributes = target.find(&store)?.ok_or(errno::NOENT)?;
                self.put(self.u32(4), &filestat(&attributes))
            }
            "path_filestat_set_times" => {
                let (store, target) = self.target(0, 2, 3)?;
                let attributes = target.find(&store)?.ok_or(errno::NOENT)?;
                self.set_times(&store, attributes.ino, 4)
            }
            "path_link" => {
                self.same_store(0, 4)?;
                Err(errno::PERM)
            }
            "path_open" => self.open(),
            "path_readlink" => {
                let (store, target) = self.target(0, 1, 2)?;
                // Nothing in a sealed store is a symbolic link.
                target.find(&store)?.ok_or(errno::NOENT)?;
                Err(errno::INVAL)
            }
            "path_remove_directory" => {
                let (store, target) = self.target(0, 1, 2)?;
                store.writable()?;
                let name = target.name.ok_or(errno::INVAL)?;
                let result = store.lock().remove(target.dir, &name, FileKind::Dir);
                result.map_err(|e| store.errno(e))
            }
            "path_rename" => self.rename(),
            "path_symlink" => {
                self.dir(2)?;
                Err(errno::PERM)
            }
            "path_unlink_file" => {
                let (store, target) = self.target(0, 1, 2)?;
                store.writable()?;
                let name = target.name.ok_or(errno::ISDIR)?;
                if target.must_be_dir {
                    return Err(match store.lock().lookup(target.dir, &name) {
                        Ok(found) if found.kind == FileKind::Dir => errno::ISDIR,
                        Ok(_) => errno::NOTDIR,
                        Err(e) => store.errno(e),
                    });
                }
                let result = store.lock().remove(target.dir, &name, FileKind::File);
                result.map_err(|e| store.errno(e))
            }
            // `sock_*`: a sealed descriptor is no socket.
            _ => Err(errno::NOTSOCK),
        }
    }

    fn u32(&self, index: usize) -> u32 {
        arg(self.params, index)
    }

    fn u64(&self, index: usize) -> u64 {
        // Checked by wasmtime against the function's signature, as for `arg`.
        self.params
            .get(index)
            .and_then(Val::i64)
            .map_or(u64::MAX, |v| v as u64)
    }

    fn put(&mut self, at: u32, bytes: &[u8]) -> Result<(), i32> {
        self.memory.put(at, bytes).ok_or(errno::FAULT)
    }

    /// The sealed descriptor `fd` (parameter `index`).
    fn sealed(&mut self, index: usize) -> Result<&mut SealedFd, i32> {
        match self.fds.table.get_mut(&arg(self.params, index)) {
            Some(Descriptor::Sealed(fd)) => Ok(fd),
            Some(_) => Err(errno::XDEV),
            None => Err(errno::BADF),
        }
    }

    /// The sealed file descriptor of parameter `index` (a directory is `EBADF`).
    fn file(&mut self, index: usize) -> Result<(Arc<SealedStore>, Ino, &mut OpenFile), i32> {
        let fd = self.sealed(index)?;
        match &mut fd.open {
            Opened::File(file) => Ok((fd.store.clone(), fd.ino, file)),
            Opened::Dir { .. } => Err(errno::BADF),
        }
    }

    /// The sealed directory descriptor of parameter `index` (a file is `EBADF`).
    fn dir(&mut self, index: usize) -> Result<(Arc<SealedStore>, Ino), i32> {
        let fd = self.sealed(index)?;
        match fd.open {
            Opened::Dir { .. } => Ok((fd.store.clone(), fd.ino)),
            Opened::File(_) => Err(errno::BADF),
        }
    }

    /// The guest path of the preopen of parameter `index` (`ENOTDIR` for any other).
    fn preopen(&mut self, index: usize) -> Result<&str, i32> {
        match &self.sealed(index)?.open {
            Opened::Dir {
                preopen: Some(guest),
            } => Ok(guest),
            _ => Err(errno::NOTDIR),
        }
    }

    /// The store of the directories of parameters `from` and `to`, which must be one
    /// (`EXDEV` otherwise, as between two file systems).
    fn same_store(&mut self, from: usize, to: usize) -> Result<Arc<SealedStore>, i32> {
        let (store, _) = self.dir(from)?;
        let (other, _) = self.dir(to)?;
        if Arc::ptr_eq(&store, &other) {
            Ok(store)
        } else {
            Err(errno::XDEV)
        }
    }

    /// The path at parameters `at` and `len`, resolved from the directory of parameter
    /// `dir`.
    fn target(
        &mut self,
        dir: usize,
        at: usize,
        len: usize,
    ) -> Result<(Arc<SealedStore>, Target), i32> {
        let (store, start) = self.dir(dir)?;
        let path = self.path(at, len)?;
        let target = resolve(&store, start, &path)?;
        Ok((store, target))
    }

    /// The string at parameters `at` and `len`: UTF-8, as wasmtime-wasi requires.
    fn path(&self, at: usize, len: usize) -> Result<Vec<u8>, i32> {
        let bytes = self
            .memory
            .bytes(self.u32(at), self.u32(len))
            .ok_or(errno::FAULT)?;
        std::str::from_utf8(bytes).map_err(|_| errno::ILSEQ)?;
        Ok(bytes.to_vec())
    }

    /// The first non-empty buffer of the iovec array at parameters `at` and `count`
    /// (wasmtime-wasi reads and writes only that one).
    fn first_buffer(&self, at: usize, count: usize) -> Result<(u32, u32), i32> {
        let iovecs = self
            .memory
            .iovecs(self.u32(at), self.u32(count))
            .ok_or(errno::FAULT)?;
        let first = iovecs.into_iter().find(|(_, len)| *len > 0);
        let (buf, len) = first.unwrap_or((0, 0));
        self.memory.bytes(buf, len).ok_or(errno::FAULT)?;
        Ok((buf, len))
    }

    /// Reads into `len` bytes at `buf` of guest memory from the file of parameter 0, at
    /// `offset` or its position.
    fn read(&mut self, buf: u32, len: u32, offset: Option<u64>) -> Result<u32, i32> {
        let (store, ino, file) = self.file(0)?;
        if !file.read {
            return Err(errno::BADF);
        }
        let start = offset.unwrap_or(file.position);
        let out = self.memory.bytes_mut(buf, len).ok_or(errno::FAULT)?;
        let mut done = 0usize;
        while done < out.len() {
            let want = (out.len() - done).min(READ_PIECE as usize);
            let got = read_into(
                &store,
                ino,
                start + done as u64,
                &mut out[done..done + want],
            )?;
            done += got;
            if got < want {
                break;
            }
        }
        let done = done as u32;
        if offset.is_none()
            && let Ok((_, _, file)) = self.file(0)
        {
            file.position = start + u64::from(done);
        }
        Ok(done)
    }

    /// Writes the `len` bytes at `buf` of guest memory to the file of parameter 0, at
    /// `offset` or its position (at its end when it appends, as Linux does for both).
    fn write(&mut self, buf: u32, len: u32, offset: Option<u64>) -> Result<u32, i32> {
        let (store, ino, file) = self.file(0)?;
        if !file.write {
            return Err(errno::BADF);
        }
        let (append, position) = (file.append, file.position);
        let data = self.memory.bytes(buf, len).ok_or(errno::FAULT)?;
        let mut sealed = store.lock();
        let at = if append {
            sealed.getattr(ino).map_err(|e| store.errno(e))?.size
        } else {
            offset.unwrap_or(position)
        };
        if len > 0 {
            // An empty write changes nothing, not even the modification time (as on Linux).
            sealed.write(ino, at, data).map_err(|e| store.errno(e))?;
        }
        let end = at + u64::from(len);
        drop(sealed);
        if offset.is_none()
            && let Ok((_, _, file)) = self.file(0)
        {
            file.position = end;
        }
        Ok(len)
    }

    fn seek(&mut self) -> Result<(), i32> {
        let delta = self.u64(1) as i64;
        let whence = self.u32(2);
        let (store, ino, file) = self.file(0)?;
        let position = match whence {
            whence::SET => u64::try_from(delta).map_err(|_| errno::INVAL)?,
            whence::CUR => file
                .position
                .checked_add_signed(delta)
                .ok_or(errno::INVAL)?,
            whence::END => {
                let size = store.lock().getattr(ino).map_err(|e| store.errno(e))?.size;
                size.checked_add_signed(delta).ok_or(errno::INVAL)?
            }
            _ => return Err(errno::INVAL),
        };
        file.position = position;
        self.put(self.u32(3), &position.to_le_bytes())
    }

    fn fdstat_get(&mut self) -> Result<(), i32> {
        let fd = self.sealed(0)?;
        let (filetype, flags, base, inheriting) = match &fd.open {
            Opened::Dir { preopen: Some(_) } => {
                (filetype::DIRECTORY, 0, PREOPEN_RIGHTS, PREOPEN_INHERITING)
            }
            Opened::Dir { preopen: None } => {
                // Opened for reading, never for writing.
                let rights = ALL_RIGHTS
                    & !(rights::FD_SEEK
                        | rights::FD_FILESTAT_SET_SIZE
                        | rights::PATH_FILESTAT_SET_SIZE
                        | rights::FD_WRITE);
                (filetype::DIRECTORY, 0, rights, rights)
            }
            Opened::File(file) => {
                let mut rights = ALL_RIGHTS;
                if !file.read {
                    rights &= !(rights::FD_READ | rights::FD_READDIR);
                }
                if !file.write {
                    rights &= !rights::FD_WRITE;
                }
                let mut flags = 0;
                if file.append {
                    flags |= fdflags::APPEND;
                }
                if file.nonblocking {
                    flags |= fdflags::NONBLOCK;
                }
                (filetype::REGULAR_FILE, flags, rights, rights)
            }
        };
        let mut fdstat = [0u8; FDSTAT_SIZE];
        fdstat[0] = filetype;
        fdstat[2..4].copy_from_slice(&flags.to_le_bytes());
        fdstat[8..16].copy_from_slice(&base.to_le_bytes());
        fdstat[16..24].copy_from_slice(&inheriting.to_le_bytes());
        self.put(self.u32(1), &fdstat)
    }

    /// `fd_filestat_set_times` and `path_filestat_set_times` of `ino`, whose times are
    /// the parameters from `first` on. A sealed store keeps one time, the modification
    /// time: the access time is accepted and not kept.
    fn set_times(&mut self, store: &SealedStore, ino: Ino, first: usize) -> Result<(), i32> {
        let (mtim, flags) = (self.u64(first + 1), self.u32(first + 2) as u16);
        let both = |set, now| flags & set != 0 && flags & now != 0;
        if both(fstflags::ATIM, fstflags::ATIM_NOW) || both(fstflags::MTIM, fstflags::MTIM_NOW) {
            return Err(errno::INVAL);
        }
        store.writable()?;
        let mtime_ns = if flags & fstflags::MTIM_NOW != 0 {
            now_ns()
        } else if flags & fstflags::MTIM != 0 {
            i64::try_from(mtim).map_err(|_| errno::OVERFLOW)?
        } else {
            return Ok(());
        };
        let result = store.lock().set_mtime(ino, mtime_ns);
        result.map_err(|e| store.errno(e))
    }

    fn readdir(&mut self) -> Result<(), i32> {
        let (buf, buf_len, cookie) = (self.u32(1), self.u32(2), self.u64(3));
        let (store, ino) = self.dir(0)?;
        let sealed = store.lock();
        let listed = sealed
            .readdir(ino)
            .and_then(|entries| Ok((sealed.parent(ino)?, entries)));
        drop(sealed);
        let (parent, entries) = listed.map_err(|e| store.errno(e))?;
        let dots = [
            (ino, FileKind::Dir, b".".to_vec()),
            (parent, FileKind::Dir, b"..".to_vec()),
        ];
        let all = dots
            .into_iter()
            .chain(entries.into_iter().map(|e| (e.ino, e.kind, e.name)));
        // Entries are written whole, then the last one is cut at the buffer's end, as
        // wasmtime-wasi does (the guest asks again from that entry's cookie).
        let mut out = Vec::new();
        let skip = usize::try_from(cookie).map_err(|_| errno::OVERFLOW)?;
        for (index, (child, kind, name)) in all.enumerate().skip(skip) {
            if out.len() >= buf_len as usize {
                break;
            }
            let mut dirent = [0u8; DIRENT_SIZE];
            dirent[0..8].copy_from_slice(&(index as u64 + 1).to_le_bytes());
            dirent[8..16].copy_from_slice(&child.to_le_bytes());
            dirent[16..20].copy_from_slice(&(name.len() as u32).to_le_bytes());
            dirent[20] = filetype(kind);
            out.extend_from_slice(&dirent);
            out.extend_from_slice(&name);
        }
        out.truncate(buf_len as usize);
        self.put(buf, &out)?;
        self.put(self.u32(4), &(out.len() as u32).to_le_bytes())
    }

    fn open(&mut self) -> Result<(), i32> {
        let (open_flags, rights_base, fd_flags) =
            (self.u32(4) as u16, self.u64(5), self.u32(7) as u16);
        let (store, target) = match self.target(0, 2, 3) {
            // `path_open` on a file names the file, not a directory.
            Err(errno::BADF) if self.file(0).is_ok() => return Err(errno::NOTDIR),
            result => result?,
        };
        if fd_flags & FDFLAGS_SYNCS != 0 {
            return Err(errno::NOTSUP);
        }
        if open_flags & oflags::DIRECTORY != 0
            && open_flags & (oflags::CREAT | oflags::EXCL | oflags::TRUNC) != 0
        {
            return Err(errno::INVAL);
        }
        let write = open_flags & (oflags::CREAT | oflags::TRUNC) != 0
            || rights_base & rights::FD_WRITE != 0;
        let read = rights_base & rights::FD_READ != 0 || rights_base & rights::FD_WRITE == 0;
        if write {
            store.writable()?;
        }
        let found = target.find(&store)?;
        let attributes = match found {
            Some(_) if open_flags & oflags::CREAT != 0 && open_flags & oflags::EXCL != 0 => {
                return Err(errno::EXIST);
            }
            Some(found) if found.kind == FileKind::Dir => {
                if write {
                    return Err(errno::ISDIR);
                }
                found
            }
            Some(_) if open_flags & oflags::DIRECTORY != 0 || target.must_be_dir => {
                return Err(errno::NOTDIR);
            }
            Some(found) => {
                if open_flags & oflags::TRUNC != 0 && found.size > 0 {
                    let result = store.lock().set_size(found.ino, 0);
                    result.map_err(|e| store.errno(e))?;
                }
                found
            }
            None if open_flags & oflags::CREAT == 0 => return Err(errno::NOENT),
            None => {
                let name = match target.name {
                    Some(name) if !target.must_be_dir => name,
                    _ => return Err(errno::ISDIR),
                };
                let result = store.lock().create(target.dir, &name, FileKind::File);
                result.map_err(|e| store.errno(e))?
            }
        };
        let open = match attributes.kind {
            FileKind::Dir => Opened::Dir { preopen: None },
            FileKind::File => Opened::File(OpenFile {
                position: 0,
                read,
                write,
                append: fd_flags & fdflags::APPEND != 0,
                nonblocking: fd_flags & fdflags::NONBLOCK != 0,
            }),
        };
        let new = self.fds.allocate();
        self.put(self.u32(8), &new.to_le_bytes())?;
        self.fds.table.insert(
            new,
            Descriptor::Sealed(SealedFd {
                store,
                ino: attributes.ino,
                open,
            }),
        );
        Ok(())
    }

    fn rename(&mut self) -> Result<(), i32> {
        let store = self.same_store(0, 3)?;
        let (from, to) = (self.target(0, 1, 2)?.1, self.target(3, 4, 5)?.1);
        store.writable()?;
        let (Some(from_name), Some(to_name)) = (&from.name, &to.name) else {
            return Err(errno::BUSY);
        };
        if from.must_be_dir || to.must_be_dir {
            // A trailing slash: both must be directories.
            match store.lock().lookup(from.dir, from_name) {
                Ok(found) if found.kind == FileKind::File => return Err(errno::NOTDIR),
                Ok(_) => {}
                Err(e) => return Err(store.errno(e)),
            }
        }
        let result = store.lock().rename(from.dir, from_name, to.dir, to_name);
        result.map_err(|e| store.errno(e))
    }
}

/// Reads `ino` from `at` into `out`; returns how many bytes it holds (fewer at the end of
/// the file). A read of [`PARALLEL_READ`] or more is planned in two halves (a whole number
/// of chunks first), decrypted on two threads straight into the two halves of `out`.
fn read_into(store: &SealedStore, ino: Ino, at: u64, out: &mut [u8]) -> Result<usize, i32> {
    let mut sealed = store.lock();
    let half = if out.len() < PARALLEL_READ as usize {
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
    let (first, second) = planned.map_err(|e| store.errno(e))?;
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
    let failed = |failed| store.errno(store.lock().failed_read(failed));
    first.map_err(failed)?;
    if first_len < half {
        return Ok(first_len);
    }
    let second = match second {
        Some(finished) => finished,
        None => {
            // The helper could not start (or panicked): the second half here.
            let rest = &mut out[half..];
            let planned = store.lock().plan_read(ino, at + half as u64, rest.len());
            reader.finish_into(planned.map_err(|e| store.errno(e))?, rest)
        }
    };
    second.map_err(failed)?;
    Ok(half + second_len)
}

fn filetype(kind: FileKind) -> u8 {
    match kind {
        FileKind::File => filetype::REGULAR_FILE,
        FileKind::Dir => filetype::DIRECTORY,
    }
}

/// A `filestat`: the store keeps one time, given as all three.
fn filestat(attributes: &Attributes) -> [u8; FILESTAT_SIZE] {
    let (nlink, time) = (
        if attributes.kind == FileKind::Dir {
            2u64
        } else {
            1
        },
        u64::try_from(attributes.mtime_ns).unwrap_or(0),
    );
    let mut stat = [0u8; FILESTAT_SIZE];
    stat[0..8].copy_from_slice(&1u64.to_le_bytes());
    stat[8..16].copy_from_slice(&attributes.ino.to_le_bytes());
    stat[16] = filetype(attributes.kind);
    stat[24..32].copy_from_slice(&nlink.to_le_bytes());
    stat[32..40].copy_from_slice(&attributes.size.to_le_bytes());
    for at in [40, 48, 56] {
        stat[at..at + 8].copy_from_slice(&time.to_le_bytes());
    }
    stat
}

fn now_ns() -> i64 {
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
mod tests {
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
    pub(super) fn store(dir: &std::path::Path) -> (SealedStore, Ino) {
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
        ] {
            let mut read = vec![0xaa; want as usize];
            let got = read_into(&store, ino, at, &mut read).unwrap();
            let from = (at as usize).min(content.len());
            let to = (from + want as usize).min(content.len());
            assert!(read[..got] == content[from..to], "{want} bytes at {at}");
        }
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
