//! Sealed directories served to a preview-1 module by Keep itself: the preopen and every
//! file and directory opened under it are Keep's descriptors, and each preview-1 call on
//! them is answered from the [`SealedStore`] on the guest's own thread, with no round
//! trip through the kernel.
//!
//! What the guest sees follows wasmtime-wasi's preview-1 implementation over a host
//! directory, call by call and errno by errno, so that a program behaves as under
//! `wasmtime run`: for example, reads and writes use the first non-empty buffer of an
//! iovec array, `fd_sync` on a directory is `EBADF`, a path that leaves the directory it
//! is resolved from is `EPERM`. A sealed store has no links, symbolic links or
//! permissions: `path_link` and `path_symlink` are `EPERM`, as on a file system without
//! them.

use std::sync::Arc;

use keep_sealed::{Attributes, FileKind, Ino, ROOT};
use wasmtime::{Caller, Val};

use super::abi::{ALL_RIGHTS, Memory, errno, fdflags, filetype, fstflags, oflags, rights, whence};
use super::{Descriptor, Descriptors, ModuleHost, arg};
use crate::sealed::{OpenRequest, SealedStore, WriteAt, now_ns};

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
            "fd_datasync" | "fd_sync" => self.file(0)?.0.commit(),
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
                let attributes = fd.store.attributes(fd.ino)?;
                self.put(self.u32(1), &filestat(&attributes))
            }
            "fd_filestat_set_size" => {
                let size = self.u64(1);
                let (store, ino, file) = self.file(0)?;
                store.set_size(ino, size, file.write)
            }
            "fd_filestat_set_times" => {
                let mtime = self.mtime(1)?;
                let fd = self.sealed(0)?;
                fd.store.set_modified(fd.ino, mtime)
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
                let (store, start, path) = self.dir_path(0, 1, 2)?;
                store.create_directory(start, &path)
            }
            "path_filestat_get" => {
                let (store, start, path) = self.dir_path(0, 2, 3)?;
                let attributes = store.find(start, &path)?.ok_or(errno::NOENT)?;
                self.put(self.u32(4), &filestat(&attributes))
            }
            "path_filestat_set_times" => {
                let (store, start, path) = self.dir_path(0, 2, 3)?;
                let mtime = self.mtime(4)?;
                store.set_modified_at(start, &path, mtime)
            }
            "path_link" => {
                self.same_store(0, 4)?;
                Err(errno::PERM)
            }
            "path_open" => self.open(),
            "path_readlink" => {
                let (store, start, path) = self.dir_path(0, 1, 2)?;
                // Nothing in a sealed store is a symbolic link.
                store.find(start, &path)?.ok_or(errno::NOENT)?;
                Err(errno::INVAL)
            }
            "path_remove_directory" => {
                let (store, start, path) = self.dir_path(0, 1, 2)?;
                store.remove_directory(start, &path)
            }
            "path_rename" => self.rename(),
            "path_symlink" => {
                self.dir(2)?;
                Err(errno::PERM)
            }
            "path_unlink_file" => {
                let (store, start, path) = self.dir_path(0, 1, 2)?;
                store.unlink_file(start, &path)
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

    /// The directory of parameter `dir` and the path at parameters `at` and `len`.
    fn dir_path(
        &mut self,
        dir: usize,
        at: usize,
        len: usize,
    ) -> Result<(Arc<SealedStore>, Ino, Vec<u8>), i32> {
        let (store, start) = self.dir(dir)?;
        Ok((store, start, self.path(at, len)?))
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
        let done = store.read(ino, start, out)? as u32;
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
        let at = if file.append {
            WriteAt::End
        } else {
            WriteAt::Offset(offset.unwrap_or(file.position))
        };
        let data = self.memory.bytes(buf, len).ok_or(errno::FAULT)?;
        let end = store.write(ino, at, data)?;
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
                let size = store.attributes(ino)?.size;
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

    /// The modification time `fd_filestat_set_times` and `path_filestat_set_times` set
    /// (`None`: none), from their parameters `first` on. A sealed store keeps one time: the
    /// access time is accepted and not kept.
    fn mtime(&self, first: usize) -> Result<Option<i64>, i32> {
        let (mtim, flags) = (self.u64(first + 1), self.u32(first + 2) as u16);
        let both = |set, now| flags & set != 0 && flags & now != 0;
        if both(fstflags::ATIM, fstflags::ATIM_NOW) || both(fstflags::MTIM, fstflags::MTIM_NOW) {
            return Err(errno::INVAL);
        }
        Ok(if flags & fstflags::MTIM_NOW != 0 {
            Some(now_ns())
        } else if flags & fstflags::MTIM != 0 {
            Some(i64::try_from(mtim).map_err(|_| errno::OVERFLOW)?)
        } else {
            None
        })
    }

    fn readdir(&mut self) -> Result<(), i32> {
        let (buf, buf_len, cookie) = (self.u32(1), self.u32(2), self.u64(3));
        let (store, ino) = self.dir(0)?;
        let (parent, entries) = store.list(ino)?;
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
        let (store, start) = match self.dir(0) {
            // `path_open` on a file names the file, not a directory.
            Err(errno::BADF) if self.file(0).is_ok() => return Err(errno::NOTDIR),
            result => result?,
        };
        let path = self.path(2, 3)?;
        if fd_flags & FDFLAGS_SYNCS != 0 {
            return Err(errno::NOTSUP);
        }
        let request = OpenRequest {
            create: open_flags & oflags::CREAT != 0,
            exclusive: open_flags & oflags::EXCL != 0,
            truncate: open_flags & oflags::TRUNC != 0,
            directory: open_flags & oflags::DIRECTORY != 0,
            write: rights_base & rights::FD_WRITE != 0,
        };
        let (write, read) = (
            request.writes(),
            rights_base & rights::FD_READ != 0 || rights_base & rights::FD_WRITE == 0,
        );
        let attributes = store.open(start, &path, request)?;
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
        let (_, from, from_path) = self.dir_path(0, 1, 2)?;
        let (_, to, to_path) = self.dir_path(3, 4, 5)?;
        store.rename((from, &from_path), (to, &to_path))
    }
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
