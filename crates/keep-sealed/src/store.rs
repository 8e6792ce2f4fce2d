//! An open sealed store: the tree in memory, chunks written but not yet sealed, and the
//! log they are appended to.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use ring::aead::{Aad, Nonce};
use ring::rand::SecureRandom as _;
use rustix::io::Errno;

use crate::codec::{Reader, Writer};
use crate::error::SealedError;
use crate::format::{
    CHUNK, CHUNK_FRAME, COMMIT_PAD, FRAME_HEAD, HEADER_LEN, Header, KIND_CHUNK, KIND_COMMIT,
    KIND_SNAPSHOT, MAX_COMMIT, NONCE, TAG, chunk_aad, commit_aad,
};
use crate::key::{DerivedKeys, StoreKey};
use crate::tree::{ChunkRef, Op, Tree, check_name};
pub use crate::tree::{FileKind, Ino, ROOT};

mod compact;

/// The log's file name in the store's directory.
const LOG: &str = "keep-sealed.log";
/// The lock's file name in the store's directory.
const LOCK: &str = "keep-sealed.lock";
/// Unsealed chunks kept in memory before they are sealed into the log (without a commit).
const MAX_DIRTY_CHUNKS: usize = 8192;
/// Frames gathered before they are written.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Zeros kept written past the log's end, for the commits to come (see `zero_ahead`).
const ZEROED_AHEAD: u64 = 256 * 1024;

/// Who holds the versions of sealed stores (the Steward): an old copy of a store is one
/// whose version is below the witness's.
pub trait Witness: Send + Sync {
    /// The version held for store `id`; `None` when the witness knows no such store.
    fn current(&self, id: &[u8; 16]) -> Result<Option<u64>, String>;
    /// Records that store `id` reached `version`: a version below one already recorded
    /// changes nothing.
    fn advance(&self, id: &[u8; 16], version: u64) -> Result<(), String>;
}

/// What `stat` says of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attributes {
    /// The inode.
    pub ino: Ino,
    /// File or directory.
    pub kind: FileKind,
    /// Bytes (files) or entries (directories).
    pub size: u64,
    /// Last modification, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Its name.
    pub name: Vec<u8>,
    /// Its inode.
    pub ino: Ino,
    /// What it is.
    pub kind: FileKind,
}

/// Why a file operation failed: an errno for the guest, or a sealed-store error (the guest
/// gets `EIO`; the error says what failed, for Keep's stderr).
#[derive(Debug)]
pub enum FsError {
    /// The operation does not apply (`ENOENT`, `EEXIST`, `ENOTEMPTY`, ...).
    Errno(Errno),
    /// Content failed to authenticate, or the log could not be read or written.
    Sealed(SealedError),
}

impl From<Errno> for FsError {
    fn from(errno: Errno) -> Self {
        Self::Errno(errno)
    }
}

impl From<SealedError> for FsError {
    fn from(error: SealedError) -> Self {
        Self::Sealed(error)
    }
}

/// An open sealed store.
pub struct Store {
    log_path: PathBuf,
    /// Shared with [`ChunkReader`]s: frames never move while a store is open.
    log: Arc<File>,
    _lock: File,
    keys: DerivedKeys,
    store_id: [u8; 16],
    tree: Tree,
    version: u64,
    last_commit: [u8; 32],
    /// Bytes written to the log file.
    written: u64,
    /// Where the zeros written past the log's end stop (at most `written + ZEROED_AHEAD`).
    zeroed_to: u64,
    /// Frames not written yet; they go at `written`.
    buffer: Vec<u8>,
    /// Operations since the last commit.
    pending: Vec<Op>,
    /// Chunks written by the guest and not sealed yet.
    dirty: HashMap<(Ino, u64), Box<[u8; CHUNK]>>,
    /// Files and directories whose size or time changed since the last commit.
    touched: BTreeSet<Ino>,
    /// A compaction of this opening failed (a chunk that does not authenticate, a full
    /// disk): it is not tried again until the store is opened again, rather than at every
    /// commit, each time reading all the live data.
    compaction_failed: bool,
    /// How long the log was when its garbage was last counted after a commit.
    garbage_counted_at: u64,
    witness: Arc<dyn Witness>,
    random: ring::rand::SystemRandom,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("log", &self.log_path)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The identifier of the store `name` sealed with `key`: the same key and name always
/// give the same store, so that a witness knows it even if the host deletes it.
fn store_id(key: &StoreKey, name: &str) -> [u8; 16] {
    let derived = key.derive(&[0; 16]);
    let tag = ring::hmac::sign(
        &derived.check,
        &[b"keep-sealed store id\0".as_slice(), name.as_bytes()].concat(),
    );
    let mut id = [0; 16];
    id.copy_from_slice(&tag.as_ref()[..16]);
    id
}

/// Creates the log of a new store: its header written to a temporary file, synced, then
/// renamed into place, so that a crash leaves either no log or a whole header.
fn create_log(dir: &Path, log_path: &Path, header: &Header) -> Result<File, SealedError> {
    let temporary = dir.join(format!("{LOG}.new"));
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(SealedError::io(&temporary))?;
    file.write_all_at(&header.to_bytes(), 0)
        .and_then(|()| file.sync_all())
        .map_err(SealedError::io(&temporary))?;
    std::fs::rename(&temporary, log_path).map_err(SealedError::io(log_path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SealedError::io(dir))?;
    Ok(file)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl PlannedRead {
    /// How many bytes the read gives (fewer than asked at the end of the file).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it gives none (at or past the end of the file).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Unsealed chunks are sealed this many at a time (8 MiB): the write buffer holds a
/// batch's frames until they are written.
const SEAL_BATCH: usize = 2048;
/// A batch of at least this many chunks is encrypted on two threads.
const PARALLEL_SEAL: usize = 64;

/// Encrypts in place each frame of `frames` (laid out by [`Store::seal_chunks`]) as chunk
/// `jobs[k]` (its inode, index, and where it is with its nonce), under `keys` (the data
/// key and the store's id), writing each tag into its frame.
fn encrypt_frames(
    (key, store_id): (&ring::aead::LessSafeKey, &[u8; 16]),
    frames: &mut [u8],
    jobs: &[(Ino, u64, ChunkRef)],
) -> Result<(), ()> {
    for (frame, &(ino, index, chunk)) in frames.chunks_exact_mut(CHUNK_FRAME).zip(jobs) {
        let (body, tag_slot) = frame[FRAME_HEAD..].split_at_mut(CHUNK);
        let tag = key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(chunk.nonce),
                Aad::from(chunk_aad(store_id, ino, index, chunk.offset)),
                body,
            )
            .map_err(drop)?;
        tag_slot.copy_from_slice(tag.as_ref());
    }
    Ok(())
}

/// How many consecutive frames a read takes from the log with one system call (128 KiB
/// of chunks): each batch is read, opened and copied out while it is in the core's cache.
const FRAMES_AT_ONCE: usize = 32;

/// A read planned by [`Store::plan_read`].
#[derive(Debug)]
pub struct PlannedRead {
    ino: Ino,
    len: usize,
    parts: Vec<Part>,
    /// The log the sealed parts' offsets are in: a compaction may put another in its place
    /// before the read finishes, and this one stays readable until then.
    log: Arc<File>,
}

/// A stretch of a planned read.
#[derive(Debug)]
enum Part {
    /// Bytes taken from the store (unsealed, or zeros).
    Plain(Vec<u8>),
    /// `len` bytes from `skip` into chunk `index`, in the consecutive frames `run`.
    Sealed {
        index: u64,
        run: Vec<ChunkRef>,
        skip: usize,
        len: usize,
    },
}

/// Why a [`ChunkReader`] could not finish a read: [`Store::failed_read`] names the file.
#[derive(Debug)]
pub struct FailedRead {
    ino: Ino,
    index: u64,
    what: String,
}

/// Reads and opens sealed chunks without the store, for the threads that serve it.
#[derive(Clone)]
pub struct ChunkReader {
    data: ring::aead::LessSafeKey,
    store_id: [u8; 16],
}

impl std::fmt::Debug for ChunkReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader").finish_non_exhaustive()
    }
}

impl ChunkReader {
    /// The bytes of a planned read, each sealed chunk read from the log and authenticated.
    pub fn finish(&self, planned: PlannedRead) -> Result<Vec<u8>, FailedRead> {
        let mut out = vec![0; planned.len];
        self.finish_into(planned, &mut out)?;
        Ok(out)
    }

    /// [`Self::finish`] into `out`, which must hold [`PlannedRead::len`] bytes (a shorter
    /// `out` gets what fits): no copy but the one from each decrypted chunk to `out`.
    pub fn finish_into(&self, planned: PlannedRead, out: &mut [u8]) -> Result<(), FailedRead> {
        let ino = planned.ino;
        // One buffer for every batch of frames, small enough to stay in the core's cache.
        let mut frames = Vec::new();
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            let take = bytes.len().min(out.len().saturating_sub(at));
            out[at..at + take].copy_from_slice(&bytes[..take]);
            at += take;
        };
        for part in planned.parts {
            let (index, run, mut skip, mut len) = match part {
                Part::Plain(bytes) => {
                    put(&bytes);
                    continue;
                }
                Part::Sealed {
                    index,
                    run,
                    skip,
                    len,
                } => (index, run, skip, len),
            };
            for (batch, chunks) in run.chunks(FRAMES_AT_ONCE).enumerate() {
                let first = index + (batch * FRAMES_AT_ONCE) as u64;
                frames.resize(chunks.len() * CHUNK_FRAME, 0);
                planned
                    .log
                    .read_exact_at(&mut frames, chunks[0].offset)
                    .map_err(|e| FailedRead {
                        ino,
                        index: first,
                        what: format!("cannot be read ({e})"),
                    })?;
                for (k, (chunk, frame)) in chunks
                    .iter()
                    .zip(frames.chunks_exact_mut(CHUNK_FRAME))
                    .enumerate()
                {
                    let index = first + k as u64;
                    let plain = open_frame(&self.data, &self.store_id, (ino, index, *chunk), frame)
                        .map_err(|what| FailedRead {
                            ino,
                            index,
                            what: what.into(),
                        })?;
                    let take = len.min(CHUNK - skip);
                    put(&plain[skip..skip + take]);
                    len -= take;
                    skip = 0;
                }
            }
        }
        Ok(())
    }
}

/// The plaintext of chunk `index` of `ino`, whose sealed `frame` (decrypted in place) is
/// at `chunk`; or what is wrong with it.
fn open_frame<'f>(
    key: &ring::aead::LessSafeKey,
    store_id: &[u8; 16],
    (ino, index, chunk): (Ino, u64, ChunkRef),
    frame: &'f mut [u8],
) -> Result<&'f [u8], &'static str> {
    if frame[0] != KIND_CHUNK {
        return Err("its frame was replaced");
    }
    let aad = chunk_aad(store_id, ino, index, chunk.offset);
    match key.open_in_place(
        Nonce::assume_unique_for_key(chunk.nonce),
        Aad::from(aad),
        &mut frame[FRAME_HEAD..],
    ) {
        Ok(plain) if plain.len() == CHUNK => Ok(plain),
        _ => Err("it does not authenticate"),
    }
}

impl Store {
    /// Opens (creating it when `dir` holds none) the store `name` sealed with `key` in the
    /// host directory `dir`, whose versions `witness` holds. Nothing on disk changes unless
    /// the store opens.
    pub fn open(
        dir: &Path,
        name: &str,
        key: &StoreKey,
        witness: Arc<dyn Witness>,
    ) -> Result<Self, SealedError> {
        std::fs::create_dir_all(dir).map_err(SealedError::io(dir))?;
        let lock_path = dir.join(LOCK);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(SealedError::io(&lock_path))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .map_err(|_| SealedError::Locked(dir.to_owned()))?;
        let log_path = dir.join(LOG);
        let store_id = store_id(key, name);
        let keys = key.derive(&store_id);
        let expected = witness.current(&store_id).map_err(SealedError::Witness)?;
        let existing = match File::options().read(true).write(true).open(&log_path) {
            Ok(log) => Some(log),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(SealedError::io(&log_path)(e)),
        };
        let len = match &existing {
            Some(log) => log.metadata().map_err(SealedError::io(&log_path))?.len(),
            None => 0,
        };
        if len == 0
            && let Some(expected) = expected.filter(|v| *v > 0)
        {
            return Err(SealedError::Rollback {
                path: log_path,
                expected,
                found: 0,
            });
        }
        let log = match existing {
            Some(log) => log,
            None => create_log(dir, &log_path, &Header::new(store_id, &keys.check))?,
        };
        let mut store = Self {
            log_path: log_path.clone(),
            log: Arc::new(log),
            _lock: lock,
            keys,
            store_id,
            tree: Tree::new(),
            version: 0,
            last_commit: [0; 32],
            written: len,
            zeroed_to: len,
            buffer: Vec::new(),
            pending: Vec::new(),
            dirty: HashMap::new(),
            touched: BTreeSet::new(),
            compaction_failed: false,
            garbage_counted_at: 0,
            witness,
            random: ring::rand::SystemRandom::new(),
        };
        if len == 0 {
            // A new store, or one whose creation a crash cut short (a log without header).
            if store
                .log
                .metadata()
                .map_err(SealedError::io(&log_path))?
                .len()
                == 0
            {
                store
                    .log
                    .write_all_at(&Header::new(store_id, &store.keys.check).to_bytes(), 0)
                    .and_then(|()| store.log.sync_all())
                    .map_err(SealedError::io(&log_path))?;
            }
            store.written = HEADER_LEN as u64;
            store.zeroed_to = HEADER_LEN as u64;
            if expected.is_none() {
                store
                    .witness
                    .advance(&store.store_id, 0)
                    .map_err(SealedError::Witness)?;
            }
            return Ok(store);
        }
        let good_end = store.replay(len)?;
        if let Some(expected) = expected.filter(|v| *v > store.version) {
            return Err(SealedError::Rollback {
                path: log_path,
                expected,
                found: store.version,
            });
        }
        if good_end < len {
            // What a crash left after the last commit (never synced, never acknowledged),
            // and the zeros written ahead.
            store
                .log
                .set_len(good_end)
                .and_then(|()| store.log.sync_all())
                .map_err(SealedError::io(&log_path))?;
            store.written = good_end;
            store.zeroed_to = good_end;
        }
        if expected != Some(store.version) {
            store
                .witness
                .advance(&store.store_id, store.version)
                .map_err(SealedError::Witness)?;
        }
        store.compact_at_open()?;
        Ok(store)
    }

    /// Reads the header and replays every commit of a log of `len` bytes; returns where the
    /// last good commit ends.
    fn replay(&mut self, len: u64) -> Result<u64, SealedError> {
        let path = self.log_path.clone();
        let mut header = [0; HEADER_LEN];
        self.log
            .read_exact_at(&mut header, 0)
            .map_err(|_| SealedError::NotAStore {
                path: path.clone(),
                reason: format!("{len} bytes, shorter than a header"),
            })?;
        let header = Header::parse(&header).map_err(|reason| SealedError::NotAStore {
            path: path.clone(),
            reason,
        })?;
        if header.store_id != self.store_id || !header.verifies(&self.keys.check) {
            return Err(SealedError::WrongKey(path));
        }
        let mut offset = HEADER_LEN as u64;
        let mut good_end = offset;
        while offset + FRAME_HEAD as u64 <= len {
            let mut head = [0; FRAME_HEAD];
            self.log
                .read_exact_at(&mut head, offset)
                .map_err(SealedError::io(&path))?;
            let frame_len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as u64;
            let end = offset + FRAME_HEAD as u64 + frame_len;
            if end > len {
                break;
            }
            match head[0] {
                KIND_CHUNK if frame_len == (CHUNK + TAG) as u64 => {}
                kind @ (KIND_COMMIT | KIND_SNAPSHOT)
                    if frame_len >= (NONCE + TAG) as u64 && frame_len <= MAX_COMMIT as u64 =>
                {
                    let snapshot = kind == KIND_SNAPSHOT;
                    // A snapshot only begins a log; anywhere else, the log ends before it.
                    if snapshot && good_end != HEADER_LEN as u64 {
                        break;
                    }
                    let mut frame = vec![0; (end - offset) as usize];
                    self.log
                        .read_exact_at(&mut frame, offset)
                        .map_err(SealedError::io(&path))?;
                    let Some(commit) = self.open_commit(&frame, offset, snapshot) else {
                        break;
                    };
                    self.apply_commit(&commit, snapshot).map_err(|reason| {
                        SealedError::Integrity {
                            path: path.clone(),
                            reason: format!("the commit at offset {offset}: {reason}"),
                        }
                    })?;
                    self.last_commit = ring::digest::digest(&ring::digest::SHA256, &frame)
                        .as_ref()
                        .try_into()
                        .unwrap_or([0; 32]);
                    good_end = end;
                }
                _ => break,
            }
            offset = end;
        }
        Ok(good_end)
    }

    /// The plaintext of the commit (or snapshot) `frame` at `offset`, if it authenticates.
    fn open_commit(&self, frame: &[u8], offset: u64, snapshot: bool) -> Option<Vec<u8>> {
        let nonce: [u8; NONCE] = frame.get(FRAME_HEAD..FRAME_HEAD + NONCE)?.try_into().ok()?;
        let mut sealed = frame.get(FRAME_HEAD + NONCE..)?.to_vec();
        let plain = self
            .keys
            .data
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(commit_aad(&self.store_id, offset, snapshot)),
                &mut sealed,
            )
            .ok()?;
        Some(plain.to_vec())
    }

    /// Applies a commit's plaintext: the next version, chained to the last commit. A
    /// snapshot (the first commit of a compacted log) may start at any version.
    fn apply_commit(&mut self, plain: &[u8], snapshot: bool) -> Result<(), String> {
        let truncated = |_| "it is cut short".to_owned();
        let mut input = Reader::new(plain);
        let version = input.u64().map_err(truncated)?;
        let previous: [u8; 32] = input.array().map_err(truncated)?;
        let next_ino = input.u64().map_err(truncated)?;
        let count = input.u64().map_err(truncated)?;
        if snapshot {
            self.version = version.checked_sub(1).ok_or("a snapshot of version 0")?;
        }
        if version != self.version + 1 {
            return Err(format!(
                "version {version} follows version {}",
                self.version
            ));
        }
        if previous != self.last_commit {
            return Err("it does not follow the commit before it".into());
        }
        for _ in 0..count {
            let op = Op::decode(&mut input)?;
            self.tree.apply(&op)?;
        }
        self.tree.next_ino = self.tree.next_ino.max(next_ino);
        self.version = version;
        Ok(())
    }

    /// The version of the last commit.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The store's identifier (what its witness knows it by).
    pub fn id(&self) -> [u8; 16] {
        self.store_id
    }

    /// The attributes of `ino`.
    pub fn getattr(&self, ino: Ino) -> Result<Attributes, FsError> {
        let inode = self.tree.get(ino).ok_or(Errno::NOENT)?;
        Ok(Attributes {
            ino,
            kind: inode.kind,
            size: inode.size,
            mtime_ns: inode.mtime_ns,
        })
    }

    /// The entry `name` of the directory `parent`.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attributes, FsError> {
        let dir = self.tree.get(parent).ok_or(Errno::NOENT)?;
        if dir.kind != FileKind::Dir {
            return Err(Errno::NOTDIR.into());
        }
        let ino = *dir.entries.get(name).ok_or(Errno::NOENT)?;
        self.getattr(ino)
    }

    /// The entries of the directory `ino` (without `.` and `..`), in name order.
    pub fn readdir(&self, ino: Ino) -> Result<Vec<DirEntry>, FsError> {
        let dir = self.tree.get(ino).ok_or(Errno::NOENT)?;
        if dir.kind != FileKind::Dir {
            return Err(Errno::NOTDIR.into());
        }
        Ok(dir
            .entries
            .iter()
            .filter_map(|(name, child)| {
                Some(DirEntry {
                    name: name.clone(),
                    ino: *child,
                    kind: self.tree.get(*child)?.kind,
                })
            })
            .collect())
    }

    /// The parent directory of `ino` (the root's is the root).
    pub fn parent(&self, ino: Ino) -> Result<Ino, FsError> {
        Ok(self.tree.get(ino).ok_or(Errno::NOENT)?.parent)
    }

    /// Applies a live operation, which was checked to fit.
    fn change(&mut self, op: Op) -> Result<(), FsError> {
        self.tree.apply(&op).map_err(|reason| {
            FsError::Sealed(SealedError::Integrity {
                path: self.log_path.clone(),
                reason: format!("internal: {reason}"),
            })
        })?;
        self.pending.push(op);
        Ok(())
    }

    /// Creates an empty file or directory `name` in `parent`.
    pub fn create(
        &mut self,
        parent: Ino,
        name: &[u8],
        kind: FileKind,
    ) -> Result<Attributes, FsError> {
        let dir = self.tree.get(parent).ok_or(Errno::NOENT)?;
        if dir.kind != FileKind::Dir {
            return Err(Errno::NOTDIR.into());
        }
        if name.len() > crate::tree::MAX_NAME {
            return Err(Errno::NAMETOOLONG.into());
        }
        check_name(name).map_err(|_| Errno::INVAL)?;
        if dir.entries.contains_key(name) {
            return Err(Errno::EXIST.into());
        }
        let ino = self.tree.next_ino;
        self.change(Op::Create {
            parent,
            name: name.to_vec(),
            ino,
            kind,
            mtime_ns: now_ns(),
        })?;
        self.getattr(ino)
    }

    /// Removes the file (`kind` File) or empty directory (`kind` Dir) `name` of `parent`.
    pub fn remove(&mut self, parent: Ino, name: &[u8], kind: FileKind) -> Result<(), FsError> {
        let found = self.lookup(parent, name)?;
        match (kind, found.kind) {
            (FileKind::File, FileKind::Dir) => return Err(Errno::ISDIR.into()),
            (FileKind::Dir, FileKind::File) => return Err(Errno::NOTDIR.into()),
            (FileKind::Dir, FileKind::Dir) if found.size > 0 => {
                return Err(Errno::NOTEMPTY.into());
            }
            _ => {}
        }
        self.forget_data(found.ino);
        self.change(Op::Remove {
            parent,
            name: name.to_vec(),
        })
    }

    /// Moves `from_name` of `from_parent` to `to_name` of `to_parent`, replacing a file by
    /// a file or an empty directory by a directory.
    pub fn rename(
        &mut self,
        from_parent: Ino,
        from_name: &[u8],
        to_parent: Ino,
        to_name: &[u8],
    ) -> Result<(), FsError> {
        let moving = self.lookup(from_parent, from_name)?;
        let target_dir = self.tree.get(to_parent).ok_or(Errno::NOENT)?;
        if target_dir.kind != FileKind::Dir {
            return Err(Errno::NOTDIR.into());
        }
        check_name(to_name).map_err(|_| Errno::INVAL)?;
        if self.tree.is_within(to_parent, moving.ino) {
            return Err(Errno::INVAL.into());
        }
        if let Ok(replaced) = self.lookup(to_parent, to_name) {
            if replaced.ino == moving.ino {
                return Ok(());
            }
            match (moving.kind, replaced.kind) {
                (FileKind::File, FileKind::Dir) => return Err(Errno::ISDIR.into()),
                (FileKind::Dir, FileKind::File) => return Err(Errno::NOTDIR.into()),
                (FileKind::Dir, FileKind::Dir) if replaced.size > 0 => {
                    return Err(Errno::NOTEMPTY.into());
                }
                _ => {}
            }
            self.forget_data(replaced.ino);
        }
        self.change(Op::Rename {
            from_parent,
            from_name: from_name.to_vec(),
            to_parent,
            to_name: to_name.to_vec(),
        })
    }

    /// Drops what is kept in memory for a file about to go.
    fn forget_data(&mut self, ino: Ino) {
        self.dirty.retain(|(i, _), _| *i != ino);
        self.touched.remove(&ino);
    }

    /// The file `ino`, if it is one.
    fn file(&self, ino: Ino) -> Result<&crate::tree::Inode, FsError> {
        match self.tree.get(ino) {
            Some(inode) if inode.kind == FileKind::File => Ok(inode),
            Some(_) => Err(Errno::ISDIR.into()),
            None => Err(Errno::NOENT.into()),
        }
    }

    /// The content of chunk `index` of `ino`: unsealed, sealed in the log, or zeros.
    fn chunk(&mut self, ino: Ino, index: u64) -> Result<Box<[u8; CHUNK]>, FsError> {
        if let Some(dirty) = self.dirty.get(&(ino, index)) {
            return Ok(dirty.clone());
        }
        let Some(chunk) = self.file(ino)?.chunks.get(&index).copied() else {
            return Ok(Box::new([0; CHUNK]));
        };
        let mut frame = self.read_frames(chunk.offset, 1, ino, index)?;
        let mut out = Box::new([0; CHUNK]);
        out.copy_from_slice(self.open_chunk(ino, index, chunk, &mut frame)?);
        Ok(out)
    }

    /// `count` consecutive chunk frames from `offset` of the log (those of `ino` from chunk
    /// `index`, for messages).
    fn read_frames(
        &mut self,
        offset: u64,
        count: usize,
        ino: Ino,
        index: u64,
    ) -> Result<Vec<u8>, FsError> {
        if offset + (count * CHUNK_FRAME) as u64 > self.written {
            self.write_buffer()?;
        }
        let mut frames = vec![0; count * CHUNK_FRAME];
        if let Err(e) = self.log.read_exact_at(&mut frames, offset) {
            return Err(self.integrity(ino, index, format!("cannot be read ({e})")));
        }
        Ok(frames)
    }

    /// The plaintext of chunk `index` of `ino` from its `frame` (decrypted in place).
    fn open_chunk<'f>(
        &self,
        ino: Ino,
        index: u64,
        chunk: ChunkRef,
        frame: &'f mut [u8],
    ) -> Result<&'f [u8], FsError> {
        open_frame(&self.keys.data, &self.store_id, (ino, index, chunk), frame)
            .map_err(|what| self.integrity(ino, index, what.into()))
    }

    /// The integrity error of chunk `index` of `ino`.
    fn integrity(&self, ino: Ino, index: u64, what: String) -> FsError {
        FsError::Sealed(SealedError::Integrity {
            path: self.log_path.clone(),
            reason: format!(
                "file {}: chunk {index} (bytes from {}): {what}",
                self.tree.path_of(ino),
                index * CHUNK as u64
            ),
        })
    }

    /// How many chunks of `ino` from `index` (up to `last`, at most 256) are sealed, not
    /// rewritten since, and in consecutive frames: read with a system call per
    /// [`FRAMES_AT_ONCE`].
    fn sealed_run(&self, ino: Ino, index: u64, last: u64) -> Vec<ChunkRef> {
        let Some(inode) = self.tree.get(ino) else {
            return Vec::new();
        };
        let mut run: Vec<ChunkRef> = Vec::new();
        for i in index..=last.min(index + 255) {
            let Some(chunk) = inode.chunks.get(&i) else {
                break;
            };
            let follows = run
                .last()
                .is_none_or(|prev| prev.offset + CHUNK_FRAME as u64 == chunk.offset);
            if self.dirty.contains_key(&(ino, i)) || !follows {
                break;
            }
            run.push(*chunk);
        }
        run
    }

    /// Reads up to `size` bytes of `ino` from `offset`.
    pub fn read(&mut self, ino: Ino, offset: u64, size: usize) -> Result<Vec<u8>, FsError> {
        let planned = self.plan_read(ino, offset, size)?;
        self.chunk_reader()
            .finish(planned)
            .map_err(|failed| self.failed_read(failed))
    }

    /// What a read of up to `size` bytes of `ino` from `offset` needs, taken from the
    /// store (the bytes not sealed yet, where the sealed ones are), so that a
    /// [`ChunkReader`] can finish it without the store: the decryption, the longest part,
    /// then runs on the thread that asked, beside others.
    pub fn plan_read(
        &mut self,
        ino: Ino,
        offset: u64,
        size: usize,
    ) -> Result<PlannedRead, FsError> {
        let file_size = self.file(ino)?.size;
        let end = file_size.min(offset.saturating_add(size as u64));
        let mut parts = Vec::new();
        let mut at = offset;
        while at < end {
            let index = at / CHUNK as u64;
            let within = (at % CHUNK as u64) as usize;
            let run = self.sealed_run(ino, index, (end - 1) / CHUNK as u64);
            let Some(last) = run.last() else {
                // Not sealed yet, or never written (zeros): one copy, of what is asked.
                let take = ((end - at) as usize).min(CHUNK - within);
                parts.push(Part::Plain(match self.dirty.get(&(ino, index)) {
                    Some(dirty) => dirty[within..within + take].to_vec(),
                    None => vec![0; take],
                }));
                at += take as u64;
                continue;
            };
            if last.offset + CHUNK_FRAME as u64 > self.written {
                self.write_buffer()?;
            }
            let run_end = end.min((index + run.len() as u64) * CHUNK as u64);
            parts.push(Part::Sealed {
                index,
                run,
                skip: within,
                len: (run_end - at) as usize,
            });
            at = run_end;
        }
        Ok(PlannedRead {
            ino,
            len: end.saturating_sub(offset) as usize,
            parts,
            log: self.log.clone(),
        })
    }

    /// A reader of this store's sealed chunks, for [`Store::plan_read`]'s plans.
    pub fn chunk_reader(&self) -> ChunkReader {
        ChunkReader {
            data: self.keys.data.clone(),
            store_id: self.store_id,
        }
    }

    /// The error of a read a [`ChunkReader`] could not finish, naming the file.
    pub fn failed_read(&self, failed: FailedRead) -> FsError {
        self.integrity(failed.ino, failed.index, failed.what)
    }

    /// Writes `data` to `ino` at `offset`; returns how many bytes were written (all).
    pub fn write(&mut self, ino: Ino, offset: u64, data: &[u8]) -> Result<usize, FsError> {
        self.file(ino)?;
        let end = offset.checked_add(data.len() as u64).ok_or(Errno::FBIG)?;
        let mut at = offset;
        while at < end {
            let index = at / CHUNK as u64;
            let within = (at % CHUNK as u64) as usize;
            let take = ((end - at) as usize).min(CHUNK - within);
            let source = &data[(at - offset) as usize..(at - offset) as usize + take];
            let mut chunk = if take == CHUNK {
                Box::new([0; CHUNK])
            } else {
                self.chunk(ino, index)?
            };
            chunk[within..within + take].copy_from_slice(source);
            self.dirty.insert((ino, index), chunk);
            at += take as u64;
        }
        let inode = self.tree.inodes.get_mut(&ino).ok_or(Errno::NOENT)?;
        inode.size = inode.size.max(end);
        inode.mtime_ns = now_ns();
        self.touched.insert(ino);
        if self.dirty.len() > MAX_DIRTY_CHUNKS {
            self.seal_dirty()?;
        }
        Ok(data.len())
    }

    /// Sets the size of `ino`: past the end reads as zeros, what is cut is gone.
    pub fn set_size(&mut self, ino: Ino, size: u64) -> Result<(), FsError> {
        let old = self.file(ino)?.size;
        if size < old {
            // The bytes of the last chunk past the new end must read as zeros if the file
            // grows again.
            let within = (size % CHUNK as u64) as usize;
            let index = size / CHUNK as u64;
            if within != 0 {
                let mut chunk = self.chunk(ino, index)?;
                chunk[within..].fill(0);
                self.dirty.insert((ino, index), chunk);
            }
            let first_gone = size.div_ceil(CHUNK as u64);
            self.dirty
                .retain(|(i, chunk), _| *i != ino || *chunk < first_gone);
            self.change(Op::SetAttr {
                ino,
                size,
                mtime_ns: now_ns(),
            })?;
        } else if let Some(inode) = self.tree.inodes.get_mut(&ino) {
            inode.size = size;
            inode.mtime_ns = now_ns();
        }
        self.touched.insert(ino);
        Ok(())
    }

    /// Sets the modification time of `ino`.
    pub fn set_mtime(&mut self, ino: Ino, mtime_ns: i64) -> Result<(), FsError> {
        let inode = self.tree.inodes.get_mut(&ino).ok_or(Errno::NOENT)?;
        inode.mtime_ns = mtime_ns;
        self.touched.insert(ino);
        Ok(())
    }

    /// Seals every unsealed chunk into the log (without a commit).
    fn seal_dirty(&mut self) -> Result<(), FsError> {
        let mut dirty: Vec<_> = self.dirty.drain().collect();
        dirty.sort_by_key(|(key, _): &((Ino, u64), _)| *key);
        for batch in dirty.chunks(SEAL_BATCH) {
            let chunks: Vec<_> = batch
                .iter()
                .map(|((ino, index), plain)| (*ino, *index, &plain[..]))
                .collect();
            let mut frames = std::mem::take(&mut self.buffer);
            let sealed = self.seal_chunks(&mut frames, self.written, &chunks);
            self.buffer = frames;
            for (&((ino, index), _), chunk) in batch.iter().zip(sealed?) {
                self.change(Op::SetChunk { ino, index, chunk })?;
            }
            if self.buffer.len() >= WRITE_BUFFER {
                self.write_buffer()?;
            }
        }
        Ok(())
    }

    /// Appends to `frames` (which go at `base` in the log) the frames of `chunks` (each
    /// chunk's inode, index and plaintext); returns where each is and its nonce. The nonces
    /// come from one call for randomness; each chunk is encrypted where it lands in
    /// `frames`, and [`PARALLEL_SEAL`] chunks or more are encrypted in two halves side by
    /// side, on this thread and one more (sealing bounds a large write, and the guest waits
    /// for it anyway).
    fn seal_chunks(
        &self,
        frames: &mut Vec<u8>,
        base: u64,
        chunks: &[(Ino, u64, &[u8])],
    ) -> Result<Vec<ChunkRef>, FsError> {
        let mut nonces = vec![0; NONCE * chunks.len()];
        self.random
            .fill(&mut nonces)
            .map_err(|_| self.io_error("no randomness for a nonce"))?;
        let start = frames.len();
        let mut jobs = Vec::with_capacity(chunks.len());
        for (&(ino, index, plain), nonce) in chunks.iter().zip(nonces.chunks_exact(NONCE)) {
            let mut chunk = ChunkRef {
                offset: base + frames.len() as u64,
                nonce: [0; NONCE],
            };
            chunk.nonce.copy_from_slice(nonce);
            jobs.push((ino, index, chunk));
            frames.push(KIND_CHUNK);
            frames.extend_from_slice(&((CHUNK + TAG) as u32).to_le_bytes());
            frames.extend_from_slice(plain);
            frames.extend_from_slice(&[0; TAG]);
        }
        let frames = &mut frames[start..];
        let keys = (&self.keys.data, &self.store_id);
        let side_by_side = (jobs.len() >= PARALLEL_SEAL)
            .then(|| {
                std::thread::scope(|scope| {
                    let half = jobs.len() / 2;
                    let (head, tail) = frames.split_at_mut(half * CHUNK_FRAME);
                    let (first, second) = jobs.split_at(half);
                    let helper = std::thread::Builder::new()
                        .name("keep-sealed-seal".into())
                        .spawn_scoped(scope, move || encrypt_frames(keys, tail, second))
                        .ok()?;
                    let done = encrypt_frames(keys, head, first);
                    Some(done.and(helper.join().unwrap_or(Err(()))))
                })
            })
            .flatten();
        // Fewer chunks, or no thread to help: all of them here.
        side_by_side
            .unwrap_or_else(|| encrypt_frames(keys, frames, &jobs))
            .map_err(|()| self.io_error("sealing a chunk failed"))?;
        Ok(jobs.into_iter().map(|(_, _, chunk)| chunk).collect())
    }

    /// Appends to `frames` (which go at `base` in the log) a commit (or snapshot) frame of
    /// `version` listing `ops`, chained to `previous`; returns the frame's SHA-256.
    fn seal_commit(
        &self,
        frames: &mut Vec<u8>,
        base: u64,
        (version, previous): (u64, &[u8; 32]),
        ops: &[Op],
        snapshot: bool,
    ) -> Result<[u8; 32], FsError> {
        let mut plain = Writer::default();
        plain.u64(version);
        plain.array(previous);
        plain.u64(self.tree.next_ino);
        plain.u64(ops.len() as u64);
        for op in ops {
            op.encode(&mut plain);
        }
        let mut plain = plain.0;
        plain.resize(plain.len().next_multiple_of(COMMIT_PAD), 0);
        if NONCE + plain.len() + TAG > MAX_COMMIT {
            return Err(self.io_error("a commit would exceed the longest a log may hold"));
        }
        let offset = base + frames.len() as u64;
        let mut nonce = [0; NONCE];
        self.random
            .fill(&mut nonce)
            .map_err(|_| self.io_error("no randomness for a nonce"))?;
        let tag = self
            .keys
            .data
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(commit_aad(&self.store_id, offset, snapshot)),
                &mut plain,
            )
            .map_err(|_| self.io_error("sealing a commit failed"))?;
        let start = frames.len();
        frames.push(if snapshot { KIND_SNAPSHOT } else { KIND_COMMIT });
        frames.extend_from_slice(&((NONCE + plain.len() + TAG) as u32).to_le_bytes());
        frames.extend_from_slice(&nonce);
        frames.extend_from_slice(&plain);
        frames.extend_from_slice(tag.as_ref());
        let digest = ring::digest::digest(&ring::digest::SHA256, &frames[start..]);
        let mut out = [0; 32];
        out.copy_from_slice(digest.as_ref());
        Ok(out)
    }

    fn io_error(&self, what: &str) -> FsError {
        FsError::Sealed(SealedError::Io {
            path: self.log_path.clone(),
            source: std::io::Error::other(what.to_owned()),
        })
    }

    /// Writes the gathered frames to the log.
    fn write_buffer(&mut self) -> Result<(), FsError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.log
            .write_all_at(&self.buffer, self.written)
            .map_err(SealedError::io(&self.log_path))?;
        self.written += self.buffer.len() as u64;
        self.zeroed_to = self.zeroed_to.max(self.written);
        self.buffer.clear();
        Ok(())
    }

    /// Keeps zeros written past the log's end, so that the commits to come overwrite
    /// blocks the file already has: their `fdatasync` then writes data alone, not the
    /// file's new size and extents too (measured on the benchmark machine's disk: 90 µs
    /// against 155 µs for an append). The zeros cost nothing to replay, which ends at a
    /// frame of kind 0, and opening cuts them off. Called before a commit's sync, which
    /// makes them durable with it.
    fn zero_ahead(&mut self) -> Result<(), FsError> {
        if self.zeroed_to >= self.written + ZEROED_AHEAD / 2 {
            return Ok(());
        }
        let end = self.written + ZEROED_AHEAD;
        self.log
            .write_all_at(&vec![0; (end - self.zeroed_to) as usize], self.zeroed_to)
            .map_err(SealedError::io(&self.log_path))?;
        self.zeroed_to = end;
        Ok(())
    }

    /// Makes every change so far durable: seals what is unsealed, appends a commit, syncs
    /// the log, and has the witness record the new version; then compacts the log if it
    /// has become mostly garbage (more than twice the live data, and at least 8 MiB).
    /// Nothing to commit: nothing happens.
    pub fn commit(&mut self) -> Result<(), FsError> {
        self.seal_dirty()?;
        for ino in std::mem::take(&mut self.touched) {
            if let Some(inode) = self.tree.get(ino) {
                let size = match inode.kind {
                    FileKind::File => inode.size,
                    FileKind::Dir => inode.entries.len() as u64,
                };
                let op = Op::SetAttr {
                    ino,
                    size,
                    mtime_ns: inode.mtime_ns,
                };
                self.change(op)?;
            }
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let version = self.version + 1;
        let mut frames = std::mem::take(&mut self.buffer);
        let sealed = self.seal_commit(
            &mut frames,
            self.written,
            (version, &self.last_commit),
            &self.pending,
            false,
        );
        self.buffer = frames;
        let digest = sealed?;
        self.write_buffer()?;
        self.zero_ahead()?;
        self.log
            .sync_data()
            .map_err(SealedError::io(&self.log_path))?;
        self.pending.clear();
        self.version = version;
        self.last_commit = digest;
        self.witness
            .advance(&self.store_id, version)
            .map_err(|e| FsError::Sealed(SealedError::Witness(e)))?;
        self.compact_after_commit().map_err(FsError::Sealed)
    }
}
