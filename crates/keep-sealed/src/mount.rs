//! A sealed store served as a directory: a FUSE file system in the Keep's process, mounted
//! and at once detached from every path, so that only the descriptor the Keep holds (and
//! the preopen made from it) reaches it, and it vanishes with the process, even on
//! `kill -9`.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::io::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

use crate::error::SealedError;
use crate::format::CHUNK;
use crate::store::{Attributes, ChunkReader, FileKind, FsError, Store};

/// How long the kernel may keep names and attributes: everything changes through it.
const TTL: Duration = Duration::from_secs(60);

/// Told of every failure the guest sees only as `EIO` (content that does not authenticate,
/// a log that cannot be written, a witness that does not answer).
pub type ErrorReport = Arc<dyn Fn(&SealedError) + Send + Sync>;

/// The file system the kernel asks.
struct Served {
    store: Arc<Mutex<Store>>,
    /// Sealed chunks are read and decrypted with it outside the store's lock, so that the
    /// two serving threads decrypt side by side.
    reader: ChunkReader,
    report: ErrorReport,
    uid: u32,
    gid: u32,
}

/// A mounted sealed store.
pub struct Mounted {
    serving: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    root: Option<File>,
    store: Arc<Mutex<Store>>,
}

/// How many threads serve a store: the one that starts the others, and two that take the
/// kernel's requests.
pub const SERVING_THREADS: usize = 3;

/// Run on the thread that serves the store, before it serves anything and before it starts
/// the worker threads (which inherit what it does): where the caller confines them.
pub type BeforeServing = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Mounted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mounted")
            .field("root", &self.root_path())
            .finish_non_exhaustive()
    }
}

/// Serves `store` through FUSE; `scratch` is an empty directory of this process's to mount
/// on for a moment (it is left empty). Failures the guest sees as `EIO` go to `report`. The
/// store is served by [`SERVING_THREADS`] threads: one that runs `before_serving`, then
/// starts the others, which take the kernel's requests, and waits for them.
pub fn mount(
    store: Store,
    scratch: &Path,
    report: ErrorReport,
    before_serving: BeforeServing,
) -> Result<Mounted, SealedError> {
    let reader = store.chunk_reader();
    let store = Arc::new(Mutex::new(store));
    let served = Served {
        store: store.clone(),
        reader,
        report,
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
    };
    let mut config = fuser::Config::default();
    // Two threads take the kernel's requests: one reads the next while the other answers
    // (measured: random 4 KiB operations about 1.5 times as fast as with one).
    config.n_threads = Some(SERVING_THREADS - 1);
    config.mount_options = vec![
        fuser::MountOption::FSName("keep-sealed".into()),
        fuser::MountOption::Subtype("keep-sealed".into()),
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        fuser::MountOption::NoExec,
    ];
    let session =
        fuser::Session::new(served, scratch, &config).map_err(SealedError::io(scratch))?;
    let channel = session.as_fd().as_raw_fd();
    let (unshared, wait_unshared) = std::sync::mpsc::channel();
    let serving = std::thread::Builder::new()
        .name("keep-sealed".into())
        .spawn(move || {
            // The serving threads get a descriptor table of their own. A process that serves
            // FUSE to itself deadlocks when killed: its last thread, closing the guest's
            // files, waits for an answer from serving threads already gone, while the FUSE
            // channel, which would abort the wait once closed, stays open in the very
            // table being torn down. With the channel only in this table, their exit
            // closes it and the kernel aborts the connection.
            // SAFETY: from here on, these threads use only the descriptors they hold (the
            // FUSE channel, the store's log and lock, the sockets they open themselves);
            // none crosses to or from another thread.
            let result =
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES) };
            // Without a table of its own (an unlikely kernel refusal) it still serves, and
            // only a killed Keep risks the deadlock.
            let _ = unshared.send(result.is_ok());
            before_serving();
            session.run()
        })
        .map_err(SealedError::io(scratch))?;
    if wait_unshared.recv() == Ok(true) {
        // SAFETY: the channel's number in this thread's table is closed once, here; the
        // serving threads hold it in theirs, and nothing in this table uses it.
        unsafe { rustix::io::close(channel) };
    }
    let root = File::open(scratch).map_err(SealedError::io(scratch));
    // Detached: no path leads to it any more; the descriptor does, until it closes.
    let detached = rustix::mount::unmount(scratch, rustix::mount::UnmountFlags::DETACH)
        .map_err(|e| SealedError::io(scratch)(e.into()));
    let mounted = Mounted {
        serving: Some(serving),
        root: root.ok(),
        store,
    };
    detached?;
    if mounted.root.is_none() {
        return Err(SealedError::Io {
            path: scratch.to_owned(),
            source: std::io::Error::other("the mounted store's root cannot be opened"),
        });
    }
    Ok(mounted)
}

impl Mounted {
    /// A path that opens the store's root (through this process's descriptor of it): what
    /// the guest's preopen is made from.
    pub fn root_path(&self) -> Option<PathBuf> {
        self.root
            .as_ref()
            .map(|root| PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd())))
    }

    /// Commits what the guest changed, then ends the mount once nothing holds it open (the
    /// guest's descriptors must be closed before this is called).
    pub fn close(mut self) -> Result<(), SealedError> {
        let committed = lock(&self.store).commit().map_err(|e| match e {
            FsError::Sealed(error) => error,
            FsError::Errno(errno) => SealedError::Io {
                path: PathBuf::from("sealed store"),
                source: errno.into(),
            },
        });
        self.root = None;
        if let Some(serving) = self.serving.take() {
            // The mount was detached: its threads end when the kernel lets it go.
            let _ = serving.join();
        }
        committed
    }
}

fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    // A poisoned lock means a panic in a file operation; the store is still whole (each
    // change is applied at once or not at all).
    store.lock().unwrap_or_else(|e| e.into_inner())
}

fn time(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH
    }
}

fn ns(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl Served {
    fn attr(&self, attributes: &Attributes) -> FileAttr {
        let (kind, perm, nlink) = match attributes.kind {
            FileKind::File => (FileType::RegularFile, 0o644, 1),
            FileKind::Dir => (FileType::Directory, 0o755, 2),
        };
        let mtime = time(attributes.mtime_ns);
        FileAttr {
            ino: INodeNo(attributes.ino),
            size: attributes.size,
            blocks: attributes.size.div_ceil(CHUNK as u64) * (CHUNK as u64 / 512),
            atime: mtime,
            mtime,
            ctime: mtime,
            crtime: mtime,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: CHUNK as u32,
            flags: 0,
        }
    }

    /// The errno for `error`, reporting sealed-store failures.
    fn errno(&self, error: FsError) -> Errno {
        match error {
            FsError::Errno(errno) => Errno::from_i32(errno.raw_os_error()),
            FsError::Sealed(error) => {
                (self.report)(&error);
                Errno::EIO
            }
        }
    }

    fn attributes(&self, result: Result<Attributes, FsError>, reply: ReplyAttr) {
        match result {
            Ok(attributes) => reply.attr(&TTL, &self.attr(&attributes)),
            Err(error) => reply.error(self.errno(error)),
        }
    }

    fn entry(&self, result: Result<Attributes, FsError>, reply: ReplyEntry) {
        match result {
            Ok(attributes) => reply.entry(&TTL, &self.attr(&attributes), Generation(0)),
            Err(error) => reply.error(self.errno(error)),
        }
    }

    /// `fsync` of a file or a directory: every change so far, committed.
    fn commit(&self, reply: ReplyEmpty) {
        let result = lock(&self.store).commit();
        self.empty(result, reply);
    }

    fn empty(&self, result: Result<(), FsError>, reply: ReplyEmpty) {
        match result {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(self.errno(error)),
        }
    }
}

impl Filesystem for Served {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger writes mean fewer round trips; the kernel lowers what it cannot do.
        let _ = config.set_max_write(1024 * 1024);
        let _ = config.set_max_readahead(1024 * 1024);
        // The kernel gathers writes in its page cache and sends them in large pieces: a
        // component writes through wasmtime's preview-1 adapter, which cuts every write
        // into 4 KiB ones (`blocking-write-and-flush` takes at most 4096 bytes), each
        // otherwise a round trip. An `fsync` (and a close) still sends them first.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_WRITEBACK_CACHE);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let result = lock(&self.store).lookup(parent.0, name.as_bytes());
        self.entry(result, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let result = lock(&self.store).getattr(ino.0);
        self.attributes(result, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut store = lock(&self.store);
        let result = (|| {
            if let Some(size) = size {
                store.set_size(ino.0, size)?;
            }
            if let Some(mtime) = mtime {
                let at = match mtime {
                    TimeOrNow::Now => SystemTime::now(),
                    TimeOrNow::SpecificTime(at) => at,
                };
                store.set_mtime(ino.0, ns(at))?;
            }
            store.getattr(ino.0)
        })();
        drop(store);
        self.attributes(result, reply);
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if rustix::fs::FileType::from_raw_mode(mode) != rustix::fs::FileType::RegularFile {
            reply.error(Errno::EPERM);
            return;
        }
        let result = lock(&self.store).create(parent.0, name.as_bytes(), FileKind::File);
        self.entry(result, reply);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = lock(&self.store).create(parent.0, name.as_bytes(), FileKind::Dir);
        self.entry(result, reply);
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = lock(&self.store).remove(parent.0, name.as_bytes(), FileKind::File);
        self.empty(result, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = lock(&self.store).remove(parent.0, name.as_bytes(), FileKind::Dir);
        self.empty(result, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut store = lock(&self.store);
        if flags.contains(RenameFlags::RENAME_EXCHANGE) {
            reply.error(Errno::EINVAL);
            return;
        }
        if flags.contains(RenameFlags::RENAME_NOREPLACE)
            && store.lookup(newparent.0, newname.as_bytes()).is_ok()
        {
            reply.error(Errno::EEXIST);
            return;
        }
        let result = store.rename(parent.0, name.as_bytes(), newparent.0, newname.as_bytes());
        drop(store);
        self.empty(result, reply);
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Every change goes through the kernel: what it cached stays true.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        let planned = lock(&self.store).plan_read(ino.0, offset, size as usize);
        let read = planned.and_then(|planned| {
            self.reader
                .finish(planned)
                .map_err(|failed| lock(&self.store).failed_read(failed))
        });
        match read {
            Ok(data) => reply.data(&data),
            Err(error) => reply.error(self.errno(error)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        match lock(&self.store).write(ino.0, offset, data) {
            Ok(written) => reply.written(written as u32),
            Err(error) => reply.error(self.errno(error)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() promises no durability; fsync() does.
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit(reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let store = lock(&self.store);
        let listed = store
            .readdir(ino.0)
            .and_then(|entries| Ok((store.parent(ino.0)?, entries)));
        drop(store);
        let (parent, entries) = match listed {
            Ok(listed) => listed,
            Err(error) => {
                reply.error(self.errno(error));
                return;
            }
        };
        let dots = [
            (ino.0, FileType::Directory, b".".to_vec()),
            (parent, FileType::Directory, b"..".to_vec()),
        ];
        let all = dots.into_iter().chain(entries.into_iter().map(|entry| {
            let kind = match entry.kind {
                FileKind::File => FileType::RegularFile,
                FileKind::Dir => FileType::Directory,
            };
            (entry.ino, kind, entry.name)
        }));
        for (index, (child, kind, name)) in all.enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(child),
                index as u64 + 1,
                kind,
                OsStr::from_bytes(&name),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.commit(reply);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        // No extended attributes. ENOSYS, not ENODATA: the kernel then stops asking, where
        // otherwise its capability check costs a round trip on every write.
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.size(0);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // The host's disk decides; say there is room.
        reply.statfs(
            1 << 30,
            1 << 29,
            1 << 29,
            1 << 20,
            1 << 19,
            CHUNK as u32,
            255,
            CHUNK as u32,
        );
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match lock(&self.store).create(parent.0, name.as_bytes(), FileKind::File) {
            Ok(attributes) => reply.created(
                &TTL,
                &self.attr(&attributes),
                Generation(0),
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE,
            ),
            Err(error) => reply.error(self.errno(error)),
        }
    }
}
