//! `wasi:filesystem/{types,preopens}` for components. A sealed directory, and every file
//! and directory opened under it, is Keep's descriptor, served from its [`SealedStore`] on
//! the guest's thread; every other descriptor is wasmtime-wasi's, and each call on it is
//! handed to wasmtime-wasi's own implementation.
//!
//! Both kinds live in the store's one resource table under wasmtime-wasi's `descriptor`
//! resource type: a handle names a table entry, and the entry's Rust type says whose it is.
//! This keeps wasmtime-wasi's file system whole without forking it (wasmtime-wasi has no
//! interface for a file system of one's own, wasmtime issue #8963).
//!
//! What a sealed descriptor answers follows wasmtime-wasi 48 over a host directory, check
//! by check (see `crate::sealed::SealedStore`); the preview-1 adapter turns it into what a
//! preview-1 program sees, which `fsconform` compares line by line with a plain directory.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use keep_sealed::{Attributes, FileKind, Ino, ROOT};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::bindings::clocks::wall_clock::Datetime;
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;
use wasmtime_wasi::p2::bindings::sync::filesystem::types::{
    self, Advice, Descriptor, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry,
    DirectoryEntryStream, Filesize, HostDescriptor, HostDirectoryEntryStream, MetadataHashValue,
    NewTimestamp, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::bindings::sync::io::streams;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

use super::streams::{SealedInput, SealedOutput, StreamFailure};
use crate::p1::abi::errno;
use crate::sealed::{OpenRequest, SealedStore, WriteAt, now_ns};

/// A component's sealed directory.
pub struct SealedPreopen {
    /// Its place among the guest's preopened directories.
    pub position: usize,
    /// Its guest path.
    pub guest: String,
    pub store: Arc<SealedStore>,
}

/// What serves `wasi:filesystem`: wasmtime-wasi's context, and the sealed directories.
pub struct Filesystem<'a> {
    pub wasi: WasiFilesystemCtxView<'a>,
    pub sealed: &'a [SealedPreopen],
}

struct HasFilesystem;

impl HasData for HasFilesystem {
    type Data<'a> = Filesystem<'a>;
}

/// Links `wasi:filesystem/types` and `wasi:filesystem/preopens` served by [`Filesystem`]
/// (which `get` gives), in place of wasmtime-wasi's, which `linker` already holds
/// (`add_to_linker_sync` links all of WASI).
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> Filesystem<'_>,
) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let linked = types::add_to_linker::<T, HasFilesystem>(linker, get)
        .and_then(|()| preopens::add_to_linker::<T, HasFilesystem>(linker, get));
    linker.allow_shadowing(false);
    linked.map_err(anyhow::Error::from)
}

/// A sealed descriptor, as its table entry.
#[derive(Clone)]
struct SealedDescriptor {
    store: Arc<SealedStore>,
    ino: Ino,
    kind: FileKind,
    read: bool,
    write: bool,
    /// A preopen the guest may change (what wasmtime-wasi reports as `mutate-directory`).
    mutate: bool,
}

impl SealedDescriptor {
    /// The directory's inode (`not-directory` for a file, as wasmtime-wasi answers).
    fn dir(&self) -> FsResult<Ino> {
        match self.kind {
            FileKind::Dir => Ok(self.ino),
            FileKind::File => Err(ErrorCode::NotDirectory.into()),
        }
    }

    /// The file's inode (`bad-descriptor` for a directory, as wasmtime-wasi answers).
    fn file(&self) -> FsResult<Ino> {
        match self.kind {
            FileKind::File => Ok(self.ino),
            FileKind::Dir => Err(ErrorCode::BadDescriptor.into()),
        }
    }

    /// `not-permitted` when the directory is read-only (wasmtime-wasi's check before the
    /// file is touched).
    fn writable(&self) -> FsResult<()> {
        self.store.writable().map_err(fs_error)
    }

    fn same_store(&self, other: &Self) -> FsResult<()> {
        if Arc::ptr_eq(&self.store, &other.store) {
            Ok(())
        } else {
            Err(ErrorCode::CrossDevice.into())
        }
    }

    fn metadata_hash(&self, ino: Ino) -> MetadataHashValue {
        // The store's random identifier tells stores apart, as a device number would.
        let id = self.store.lock().id();
        let mut upper = [0u8; 8];
        upper.copy_from_slice(&id[..8]);
        MetadataHashValue {
            lower: ino,
            upper: u64::from_le_bytes(upper),
        }
    }
}

/// The entries of a sealed directory, listed when `read-directory` is called (as
/// wasmtime-wasi lists a host directory's).
struct SealedEntries(VecDeque<Result<DirectoryEntry, ErrorCode>>);

impl Filesystem<'_> {
    /// The sealed descriptor `fd` names; `None` for one of wasmtime-wasi's.
    fn sealed(&mut self, fd: &Resource<Descriptor>) -> Option<SealedDescriptor> {
        let entry = self.wasi.table.get_any_mut(fd.rep()).ok()?;
        entry.downcast_ref::<SealedDescriptor>().cloned()
    }

    fn push(&mut self, descriptor: SealedDescriptor) -> wasmtime::Result<Resource<Descriptor>> {
        let pushed = self.wasi.table.push(descriptor)?;
        Ok(Resource::new_own(pushed.rep()))
    }

    fn open_sealed(
        &mut self,
        dir: &SealedDescriptor,
        path: &str,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let start = dir.dir()?;
        if flags.intersects(
            DescriptorFlags::FILE_INTEGRITY_SYNC
                | DescriptorFlags::DATA_INTEGRITY_SYNC
                | DescriptorFlags::REQUESTED_WRITE_SYNC,
        ) {
            return Err(ErrorCode::Unsupported.into());
        }
        let request = OpenRequest {
            create: oflags.contains(OpenFlags::CREATE),
            exclusive: oflags.contains(OpenFlags::EXCLUSIVE),
            truncate: oflags.contains(OpenFlags::TRUNCATE),
            directory: oflags.contains(OpenFlags::DIRECTORY),
            write: flags.contains(DescriptorFlags::WRITE),
        };
        let opened = dir
            .store
            .open(start, path.as_bytes(), request)
            .map_err(fs_error)?;
        let descriptor = SealedDescriptor {
            store: dir.store.clone(),
            ino: opened.ino,
            kind: opened.kind,
            read: flags.contains(DescriptorFlags::READ) || !flags.contains(DescriptorFlags::WRITE),
            write: request.writes(),
            mutate: false,
        };
        self.push(descriptor).map_err(FsError::trap)
    }
}

impl preopens::Host for Filesystem<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        let mut all = preopens::Host::get_directories(&mut self.wasi)?;
        let sealed = self.sealed;
        for preopen in sealed {
            let fd = self.push(SealedDescriptor {
                store: preopen.store.clone(),
                ino: ROOT,
                kind: FileKind::Dir,
                read: true,
                write: false,
                mutate: preopen.store.writable().is_ok(),
            })?;
            all.insert(preopen.position.min(all.len()), (fd, preopen.guest.clone()));
        }
        Ok(all)
    }
}

impl types::Host for Filesystem<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<types::ErrorCode> {
        types::Host::convert_error_code(&mut self.wasi, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<streams::Error>,
    ) -> wasmtime::Result<Option<types::ErrorCode>> {
        if let Some(failure) = self.wasi.table.get(&err)?.downcast_ref::<StreamFailure>() {
            return Ok(Some(failure.0.into()));
        }
        types::Host::filesystem_error_code(&mut self.wasi, err)
    }
}

impl HostDescriptor for Filesystem<'_> {
    fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::advise(&mut self.wasi, fd, offset, len, advice);
        };
        // Advice changes nothing a sealed store does.
        sealed.file().map(drop)
    }

    fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::sync_data(&mut self.wasi, fd);
        };
        sealed.store.commit().map_err(fs_error)
    }

    fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::get_flags(&mut self.wasi, fd);
        };
        let mut flags = DescriptorFlags::empty();
        if sealed.read {
            flags |= DescriptorFlags::READ;
        }
        if sealed.write {
            flags |= DescriptorFlags::WRITE;
        }
        if sealed.mutate {
            flags |= DescriptorFlags::MUTATE_DIRECTORY;
        }
        Ok(flags)
    }

    fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::get_type(&mut self.wasi, fd);
        };
        Ok(descriptor_type(sealed.kind))
    }

    fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::set_size(&mut self.wasi, fd, size);
        };
        let ino = sealed.file()?;
        sealed
            .store
            .set_size(ino, size, sealed.write)
            .map_err(fs_error)
    }

    fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::set_times(&mut self.wasi, fd, atim, mtim);
        };
        let mtime = mtime_ns(mtim)?;
        sealed
            .store
            .set_modified(sealed.ino, mtime)
            .map_err(fs_error)
    }

    fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::read(&mut self.wasi, fd, len, offset);
        };
        let ino = sealed.file()?;
        if !sealed.read {
            return Err(ErrorCode::BadDescriptor.into());
        }
        let want = sealed.store.readable(ino, offset, len).map_err(fs_error)?;
        let mut read = vec![0; want];
        let got = sealed
            .store
            .read(ino, offset, &mut read)
            .map_err(fs_error)?;
        read.truncate(got);
        Ok((read, got == 0))
    }

    fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::write(&mut self.wasi, fd, buf, offset);
        };
        let ino = sealed.file()?;
        sealed.writable()?;
        if !sealed.write {
            return Err(ErrorCode::BadDescriptor.into());
        }
        sealed
            .store
            .write(ino, WriteAt::Offset(offset), &buf)
            .map_err(fs_error)?;
        Ok(buf.len() as Filesize)
    }

    fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DirectoryEntryStream>> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::read_directory(&mut self.wasi, fd);
        };
        let (_, entries) = sealed.store.list(sealed.dir()?).map_err(fs_error)?;
        let entries = entries
            .into_iter()
            .map(|entry| {
                let name =
                    String::from_utf8(entry.name).map_err(|_| ErrorCode::IllegalByteSequence)?;
                Ok(DirectoryEntry {
                    type_: descriptor_type(entry.kind),
                    name,
                })
            })
            .collect();
        let pushed = self.wasi.table.push(SealedEntries(entries))?;
        Ok(Resource::new_own(pushed.rep()))
    }

    fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::sync(&mut self.wasi, fd);
        };
        sealed.store.commit().map_err(fs_error)
    }

    fn create_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::create_directory_at(&mut self.wasi, fd, path);
        };
        let start = sealed.dir()?;
        sealed
            .store
            .create_directory(start, path.as_bytes())
            .map_err(fs_error)
    }

    fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::stat(&mut self.wasi, fd);
        };
        let attributes = sealed.store.attributes(sealed.ino).map_err(fs_error)?;
        Ok(descriptor_stat(&attributes))
    }

    fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::stat_at(&mut self.wasi, fd, path_flags, path);
        };
        let attributes = find(&sealed, &path)?;
        Ok(descriptor_stat(&attributes))
    }

    fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::set_times_at(&mut self.wasi, fd, path_flags, path, atim, mtim);
        };
        let start = sealed.dir()?;
        let mtime = mtime_ns(mtim)?;
        sealed
            .store
            .set_modified_at(start, path.as_bytes(), mtime)
            .map_err(fs_error)
    }

    fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (old, new) = match (self.sealed(&fd), self.sealed(&new_descriptor)) {
            (None, None) => {
                return HostDescriptor::link_at(
                    &mut self.wasi,
                    fd,
                    old_path_flags,
                    old_path,
                    new_descriptor,
                    new_path,
                );
            }
            (Some(old), Some(new)) => (old, new),
            _ => return Err(ErrorCode::CrossDevice.into()),
        };
        old.dir()?;
        new.dir()?;
        old.same_store(&new)?;
        old.writable()?;
        if old_path_flags.contains(PathFlags::SYMLINK_FOLLOW) {
            return Err(ErrorCode::Invalid.into());
        }
        // A sealed store has no hard links, as a file system without them answers.
        Err(ErrorCode::NotPermitted.into())
    }

    fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::open_at(&mut self.wasi, fd, path_flags, path, oflags, flags);
        };
        self.open_sealed(&sealed, &path, oflags, flags)
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        if self.sealed(&fd).is_none() {
            return HostDescriptor::drop(&mut self.wasi, fd);
        }
        let sealed = Resource::<SealedDescriptor>::new_own(fd.rep());
        self.wasi.table.delete(sealed)?;
        Ok(())
    }

    fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::readlink_at(&mut self.wasi, fd, path);
        };
        // Nothing in a sealed store is a symbolic link.
        find(&sealed, &path)?;
        Err(ErrorCode::Invalid.into())
    }

    fn remove_directory_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::remove_directory_at(&mut self.wasi, fd, path);
        };
        let start = sealed.dir()?;
        sealed
            .store
            .remove_directory(start, path.as_bytes())
            .map_err(fs_error)
    }

    fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (old, new) = match (self.sealed(&fd), self.sealed(&new_fd)) {
            (None, None) => {
                return HostDescriptor::rename_at(&mut self.wasi, fd, old_path, new_fd, new_path);
            }
            (Some(old), Some(new)) => (old, new),
            _ => return Err(ErrorCode::CrossDevice.into()),
        };
        let (from, to) = (old.dir()?, new.dir()?);
        old.same_store(&new)?;
        old.store
            .rename((from, old_path.as_bytes()), (to, new_path.as_bytes()))
            .map_err(fs_error)
    }

    fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::symlink_at(&mut self.wasi, fd, src_path, dest_path);
        };
        sealed.dir()?;
        // A sealed store has no symbolic links, as a file system without them answers.
        Err(ErrorCode::NotPermitted.into())
    }

    fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::unlink_file_at(&mut self.wasi, fd, path);
        };
        let start = sealed.dir()?;
        sealed
            .store
            .unlink_file(start, path.as_bytes())
            .map_err(fs_error)
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<streams::InputStream>> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::read_via_stream(&mut self.wasi, fd, offset);
        };
        if sealed.kind == FileKind::Dir {
            return Err(ErrorCode::IsDirectory.into());
        }
        let reader: DynInputStream = Box::new(SealedInput {
            store: sealed.store,
            ino: sealed.ino,
            position: offset,
            readable: sealed.read,
            buffer: BytesMut::new(),
        });
        Ok(self.wasi.table.push(reader)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<streams::OutputStream>> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::write_via_stream(&mut self.wasi, fd, offset);
        };
        writer(self, sealed, WriteAt::Offset(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<streams::OutputStream>> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::append_via_stream(&mut self.wasi, fd);
        };
        writer(self, sealed, WriteAt::End)
    }

    fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        match (self.sealed(&a), self.sealed(&b)) {
            (None, None) => HostDescriptor::is_same_object(&mut self.wasi, a, b),
            (Some(a), Some(b)) => Ok(Arc::ptr_eq(&a.store, &b.store) && a.ino == b.ino),
            _ => Ok(false),
        }
    }

    fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::metadata_hash(&mut self.wasi, fd);
        };
        Ok(sealed.metadata_hash(sealed.ino))
    }

    fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        let Some(sealed) = self.sealed(&fd) else {
            return HostDescriptor::metadata_hash_at(&mut self.wasi, fd, path_flags, path);
        };
        let attributes = find(&sealed, &path)?;
        Ok(sealed.metadata_hash(attributes.ino))
    }
}

impl HostDirectoryEntryStream for Filesystem<'_> {
    fn read_directory_entry(
        &mut self,
        stream: Resource<DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        let entry = self.wasi.table.get_any_mut(stream.rep())?;
        let Some(SealedEntries(entries)) = entry.downcast_mut::<SealedEntries>() else {
            return HostDirectoryEntryStream::read_directory_entry(&mut self.wasi, stream);
        };
        Ok(entries.pop_front().transpose()?)
    }

    fn drop(&mut self, stream: Resource<DirectoryEntryStream>) -> wasmtime::Result<()> {
        let entry = self.wasi.table.get_any_mut(stream.rep())?;
        if !entry.is::<SealedEntries>() {
            return HostDirectoryEntryStream::drop(&mut self.wasi, stream);
        }
        self.wasi
            .table
            .delete(Resource::<SealedEntries>::new_own(stream.rep()))?;
        Ok(())
    }
}

/// A stream writing the file of `sealed` at `at`.
fn writer(
    filesystem: &mut Filesystem<'_>,
    sealed: SealedDescriptor,
    at: WriteAt,
) -> FsResult<Resource<streams::OutputStream>> {
    let ino = sealed.file()?;
    sealed.writable()?;
    let writer: DynOutputStream = Box::new(SealedOutput {
        store: sealed.store,
        ino,
        at,
        writable: sealed.write,
    });
    Ok(filesystem.wasi.table.push(writer)?)
}

/// What `path` from the directory of `sealed` names (`no-entry` when nothing is).
fn find(sealed: &SealedDescriptor, path: &str) -> FsResult<Attributes> {
    let start = sealed.dir()?;
    sealed
        .store
        .find(start, path.as_bytes())
        .map_err(fs_error)?
        .ok_or_else(|| ErrorCode::NoEntry.into())
}

fn descriptor_type(kind: FileKind) -> DescriptorType {
    match kind {
        FileKind::File => DescriptorType::RegularFile,
        FileKind::Dir => DescriptorType::Directory,
    }
}

/// A `descriptor-stat`: the store keeps one time, given as all three.
fn descriptor_stat(attributes: &Attributes) -> DescriptorStat {
    let nanos = attributes.mtime_ns.max(0);
    let time = Some(Datetime {
        seconds: (nanos / 1_000_000_000) as u64,
        nanoseconds: (nanos % 1_000_000_000) as u32,
    });
    DescriptorStat {
        type_: descriptor_type(attributes.kind),
        link_count: if attributes.kind == FileKind::Dir {
            2
        } else {
            1
        },
        size: attributes.size,
        data_access_timestamp: time,
        data_modification_timestamp: time,
        status_change_timestamp: time,
    }
}

/// The modification time `mtim` sets, if any.
fn mtime_ns(mtim: NewTimestamp) -> FsResult<Option<i64>> {
    match mtim {
        NewTimestamp::NoChange => Ok(None),
        NewTimestamp::Now => Ok(Some(now_ns())),
        NewTimestamp::Timestamp(Datetime {
            seconds,
            nanoseconds,
        }) => i64::try_from(seconds)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .and_then(|ns| ns.checked_add(i64::from(nanoseconds)))
            .map(Some)
            .ok_or_else(|| ErrorCode::Overflow.into()),
    }
}

fn fs_error(errno: i32) -> FsError {
    error_code(errno).into()
}

/// The `wasi:filesystem` error code for a preview-1 errno (the adapter maps each back to
/// the same errno).
pub fn error_code(errno: i32) -> ErrorCode {
    match errno {
        errno::ACCES => ErrorCode::Access,
        errno::AGAIN => ErrorCode::WouldBlock,
        errno::BADF => ErrorCode::BadDescriptor,
        errno::BUSY => ErrorCode::Busy,
        errno::EXIST => ErrorCode::Exist,
        errno::FBIG => ErrorCode::FileTooLarge,
        errno::ILSEQ => ErrorCode::IllegalByteSequence,
        errno::INVAL => ErrorCode::Invalid,
        errno::ISDIR => ErrorCode::IsDirectory,
        errno::LOOP => ErrorCode::Loop,
        errno::NAMETOOLONG => ErrorCode::NameTooLong,
        errno::NOENT => ErrorCode::NoEntry,
        errno::NOSPC => ErrorCode::InsufficientSpace,
        errno::NOTDIR => ErrorCode::NotDirectory,
        errno::NOTEMPTY => ErrorCode::NotEmpty,
        errno::NOTSUP => ErrorCode::Unsupported,
        errno::OVERFLOW => ErrorCode::Overflow,
        errno::PERM => ErrorCode::NotPermitted,
        errno::ROFS => ErrorCode::ReadOnly,
        errno::XDEV => ErrorCode::CrossDevice,
        _ => ErrorCode::Io,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each errno a sealed store answers becomes the error code that wasmtime-wasi's own
    /// preview-1 layer turns back into that errno, as the preview-1 adapter does.
    #[test]
    fn error_codes_turn_back_into_the_errnos_they_stand_for() {
        for errno in [
            errno::ACCES,
            errno::AGAIN,
            errno::BADF,
            errno::BUSY,
            errno::EXIST,
            errno::FBIG,
            errno::ILSEQ,
            errno::INVAL,
            errno::IO,
            errno::ISDIR,
            errno::LOOP,
            errno::NAMETOOLONG,
            errno::NOENT,
            errno::NOSPC,
            errno::NOTDIR,
            errno::NOTEMPTY,
            errno::NOTSUP,
            errno::OVERFLOW,
            errno::PERM,
            errno::ROFS,
            errno::XDEV,
        ] {
            let back = wasmtime_wasi::p1::types::Errno::from(error_code(errno));
            assert_eq!(back as i32, errno, "{:?}", error_code(errno));
        }
    }
}
