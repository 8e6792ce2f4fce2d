//! configfs-tsm (`/sys/kernel/config/tsm/report`) as the kernel presents it (Linux
//! `drivers/virt/coco/tsm.c`, `Documentation/ABI/testing/configfs-tsm-report`), over FUSE:
//!
//! - `mkdir NAME` creates a report entry, `rmdir NAME` removes it;
//! - an entry holds `inblob` (write, up to 64 bytes, zero-padded), `privlevel` (write, a
//!   number from `privlevel_floor` to 3), `outblob` and `auxblob` (read: the evidence and
//!   the provider's certificates, made on the first read after a change), `generation`
//!   (read: how many writes the entry has seen), `provider` and `privlevel_floor` (read);
//! - `auxblob` exists only where the provider has certificates to give (SEV-SNP).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, LockOwner, OpenFlags,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyWrite, Request,
    WriteFlags,
};

/// The most report data `inblob` takes.
const INBLOB_MAX: usize = 64;
/// The highest privilege level (SEV-SNP VMPL 3).
const PRIVLEVEL_MAX: u32 = 3;

/// What answers report requests: the simulated firmware.
pub trait Evidence: Send + Sync + 'static {
    /// `sev_guest` or `tdx_guest`.
    fn provider(&self) -> &'static str;
    /// The lowest privilege level a report may be requested at.
    fn privlevel_floor(&self) -> u32;
    /// Whether the provider returns certificates in `auxblob`.
    fn has_auxblob(&self) -> bool;
    /// The evidence for `report_data` at `privlevel`, and the certificates.
    fn report(&self, report_data: &[u8; 64], privlevel: u32) -> anyhow::Result<(Vec<u8>, Vec<u8>)>;
}

/// The attributes of an entry, in inode order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    Inblob,
    Outblob,
    Auxblob,
    Generation,
    Provider,
    Privlevel,
    PrivlevelFloor,
}

const ATTRIBUTES: [(Attribute, &str, u16); 7] = [
    (Attribute::Inblob, "inblob", 0o200),
    (Attribute::Outblob, "outblob", 0o444),
    (Attribute::Auxblob, "auxblob", 0o444),
    (Attribute::Generation, "generation", 0o444),
    (Attribute::Provider, "provider", 0o444),
    (Attribute::Privlevel, "privlevel", 0o600),
    (Attribute::PrivlevelFloor, "privlevel_floor", 0o444),
];

/// Inodes: the root is 1; entry `n` is `n << 4`, its attributes `n << 4 | 1 + index`.
fn entry_inode(id: u64) -> u64 {
    id << 4
}

fn split_inode(inode: u64) -> (u64, Option<Attribute>) {
    let index = (inode & 0xf) as usize;
    let attribute = index
        .checked_sub(1)
        .and_then(|i| ATTRIBUTES.get(i))
        .map(|(a, _, _)| *a);
    (inode >> 4, attribute)
}

struct Entry {
    id: u64,
    inblob: [u8; INBLOB_MAX],
    privlevel: u32,
    generation: u64,
    /// The evidence made for `generation`, with its certificates.
    made: Option<(u64, Vec<u8>, Vec<u8>)>,
}

struct State {
    entries: BTreeMap<String, Entry>,
    next_id: u64,
}

/// The file system.
pub struct TsmReport<E> {
    evidence: E,
    state: Mutex<State>,
    uid: u32,
    gid: u32,
}

const TTL: Duration = Duration::ZERO;

impl<E: Evidence> TsmReport<E> {
    /// An empty report directory answered by `evidence`.
    pub fn new(evidence: E) -> Self {
        Self {
            evidence,
            state: Mutex::new(State {
                entries: BTreeMap::new(),
                next_id: 1,
            }),
            // SAFETY: getuid and getgid cannot fail and touch no memory.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
        }
    }

    fn attr(&self, inode: u64, kind: FileType, perm: u16) -> FileAttr {
        FileAttr {
            ino: INodeNo(inode),
            // configfs reports no size; reads go on until the attribute's end.
            size: 0,
            blocks: 0,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    fn visible(&self, attribute: Attribute) -> bool {
        attribute != Attribute::Auxblob || self.evidence.has_auxblob()
    }

    fn attribute_attr(&self, id: u64, attribute: Attribute) -> Option<FileAttr> {
        let index = ATTRIBUTES.iter().position(|(a, _, _)| *a == attribute)?;
        let perm = ATTRIBUTES[index].2;
        Some(self.attr(
            entry_inode(id) | (index as u64 + 1),
            FileType::RegularFile,
            perm,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is one
        // assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The content of a readable attribute.
    fn content(&self, entry: &mut Entry, attribute: Attribute) -> Result<Vec<u8>, Errno> {
        Ok(match attribute {
            Attribute::Generation => format!("{}\n", entry.generation).into_bytes(),
            Attribute::Provider => format!("{}\n", self.evidence.provider()).into_bytes(),
            Attribute::Privlevel => format!("{}\n", entry.privlevel).into_bytes(),
            Attribute::PrivlevelFloor => {
                format!("{}\n", self.evidence.privlevel_floor()).into_bytes()
            }
            Attribute::Outblob | Attribute::Auxblob => {
                if entry.made.as_ref().map(|(g, _, _)| *g) != Some(entry.generation) {
                    let (out, aux) = self
                        .evidence
                        .report(&entry.inblob, entry.privlevel)
                        .map_err(|e| {
                            eprintln!("keep-tee-sim: report: {e:#}");
                            Errno::EIO
                        })?;
                    entry.made = Some((entry.generation, out, aux));
                }
                let (_, out, aux) = entry.made.as_ref().ok_or(Errno::EIO)?;
                if attribute == Attribute::Outblob {
                    out.clone()
                } else {
                    aux.clone()
                }
            }
            Attribute::Inblob => return Err(Errno::EACCES),
        })
    }
}

impl<E: Evidence> Filesystem for TsmReport<E> {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let state = self.lock();
        let parent = u64::from(parent);
        if parent == 1 {
            match name.to_str().and_then(|n| state.entries.get(n)) {
                Some(entry) => reply.entry(
                    &TTL,
                    &self.attr(entry_inode(entry.id), FileType::Directory, 0o755),
                    fuser::Generation(0),
                ),
                None => reply.error(Errno::ENOENT),
            }
            return;
        }
        let (id, None) = split_inode(parent) else {
            return reply.error(Errno::ENOTDIR);
        };
        let exists = state.entries.values().any(|e| e.id == id);
        let found = ATTRIBUTES
            .iter()
            .find(|(a, n, _)| OsStr::new(n) == name && self.visible(*a))
            .and_then(|(a, _, _)| self.attribute_attr(id, *a));
        match found {
            Some(attr) if exists => reply.entry(&TTL, &attr, fuser::Generation(0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let inode = u64::from(ino);
        if inode == 1 {
            return reply.attr(&TTL, &self.attr(1, FileType::Directory, 0o755));
        }
        let state = self.lock();
        let (id, attribute) = split_inode(inode);
        if !state.entries.values().any(|e| e.id == id) {
            return reply.error(Errno::ENOENT);
        }
        match attribute {
            None => reply.attr(&TTL, &self.attr(inode, FileType::Directory, 0o755)),
            Some(a) => match self.attribute_attr(id, a) {
                Some(attr) => reply.attr(&TTL, &attr),
                None => reply.error(Errno::ENOENT),
            },
        }
    }

    // `open(O_TRUNC)` of an attribute: configfs ignores the truncation.
    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        self.getattr(req, ino, fh, reply);
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
        if u64::from(parent) != 1 {
            return reply.error(Errno::EPERM);
        }
        let Some(name) = name.to_str() else {
            return reply.error(Errno::EINVAL);
        };
        let mut state = self.lock();
        if state.entries.contains_key(name) {
            return reply.error(Errno::EEXIST);
        }
        let id = state.next_id;
        state.next_id += 1;
        state.entries.insert(
            name.to_owned(),
            Entry {
                id,
                inblob: [0; INBLOB_MAX],
                privlevel: self.evidence.privlevel_floor(),
                generation: 0,
                made: None,
            },
        );
        reply.entry(
            &TTL,
            &self.attr(entry_inode(id), FileType::Directory, 0o755),
            fuser::Generation(0),
        );
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        if u64::from(parent) != 1 {
            return reply.error(Errno::EPERM);
        }
        let removed = name.to_str().and_then(|n| self.lock().entries.remove(n));
        match removed {
            Some(_) => reply.ok(),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        // Attributes have no size and change under the reader: no page cache.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (id, Some(attribute)) = split_inode(u64::from(ino)) else {
            return reply.error(Errno::EISDIR);
        };
        let mut state = self.lock();
        let Some(entry) = state.entries.values_mut().find(|e| e.id == id) else {
            return reply.error(Errno::ENOENT);
        };
        match self.content(entry, attribute) {
            Ok(bytes) => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let end = start.saturating_add(size as usize).min(bytes.len());
                reply.data(&bytes[start..end]);
            }
            Err(errno) => reply.error(errno),
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
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (id, Some(attribute)) = split_inode(u64::from(ino)) else {
            return reply.error(Errno::EISDIR);
        };
        let mut state = self.lock();
        let Some(entry) = state.entries.values_mut().find(|e| e.id == id) else {
            return reply.error(Errno::ENOENT);
        };
        match attribute {
            Attribute::Inblob => {
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                if offset.saturating_add(data.len()) > INBLOB_MAX {
                    return reply.error(Errno::EFBIG);
                }
                if offset == 0 {
                    entry.inblob = [0; INBLOB_MAX];
                }
                entry.inblob[offset..offset + data.len()].copy_from_slice(data);
            }
            Attribute::Privlevel => {
                let level = std::str::from_utf8(data)
                    .ok()
                    .and_then(|text| text.trim().parse::<u32>().ok());
                match level {
                    Some(level)
                        if (self.evidence.privlevel_floor()..=PRIVLEVEL_MAX).contains(&level) =>
                    {
                        entry.privlevel = level;
                    }
                    _ => return reply.error(Errno::EINVAL),
                }
            }
            _ => return reply.error(Errno::EACCES),
        }
        entry.generation += 1;
        reply.written(data.len() as u32);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let inode = u64::from(ino);
        let state = self.lock();
        let mut listing: Vec<(u64, FileType, String)> = vec![
            (inode, FileType::Directory, ".".into()),
            (1, FileType::Directory, "..".into()),
        ];
        if inode == 1 {
            listing.extend(
                state
                    .entries
                    .iter()
                    .map(|(name, e)| (entry_inode(e.id), FileType::Directory, name.clone())),
            );
        } else {
            let (id, _) = split_inode(inode);
            listing.extend(
                ATTRIBUTES
                    .iter()
                    .enumerate()
                    .filter(|(_, (a, _, _))| self.visible(*a))
                    .map(|(i, (_, name, _))| {
                        (
                            entry_inode(id) | (i as u64 + 1),
                            FileType::RegularFile,
                            (*name).to_owned(),
                        )
                    }),
            );
        }
        for (index, (inode, kind, name)) in listing
            .into_iter()
            .enumerate()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(INodeNo(inode), index as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}
