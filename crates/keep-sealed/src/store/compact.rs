//! Compaction: the log rewritten with only what the tree still uses.
//!
//! The log only grows: a rewritten chunk leaves its old frame behind, and every commit
//! stays. When most of a log is such garbage, the store rewrites it: the live chunks,
//! re-sealed at their new places, then one snapshot frame whose operations rebuild the
//! tree, at the next version. The new log is written beside the old one, synced, and
//! renamed over it, so a crash leaves one or the other whole; the witness then records the
//! new version, so putting the old log back is refused as an old copy.
//!
//! It happens when the store opens, and after a commit of a running store, when the
//! garbage has outgrown the live data by [`AT_OPEN`] or [`WHILE_RUNNING`] times: the log
//! then stays under three times the live data (plus [`MIN_GARBAGE`], and the
//! [`COUNT_EVERY`] appended since the garbage was last counted), and the copy, which
//! holds the store while it runs, costs at most half a write more for each byte written.
//! Reads planned before it finish on the log they were planned on, which stays open.

use std::fs::File;
use std::os::unix::fs::FileExt as _;

use super::{LOG, Store, WRITE_BUFFER};
use crate::error::SealedError;
use crate::format::{CHUNK_FRAME, HEADER_LEN, Header};
use crate::store::FsError;

/// Garbage below this is left alone: rewriting a log costs a read and a write of what is
/// live.
const MIN_GARBAGE: u64 = 8 * 1024 * 1024;

/// At open, a log is compacted once its garbage outgrows its live data.
const AT_OPEN: u64 = 1;
/// While a store runs, once its garbage outgrows twice its live data: the guest waits for
/// the copy, so it is done half as often, and a workload that rewrites all its data between
/// two starts (a benchmark's runs) is not made to wait.
const WHILE_RUNNING: u64 = 2;
/// While a store runs, the garbage is counted (a walk over every file) only once the log
/// has grown by this much since the last count, not at every commit.
const COUNT_EVERY: u64 = 1024 * 1024;

/// A log rewritten beside the one in use, not yet in its place.
struct Rewritten {
    file: File,
    len: u64,
    tree: crate::tree::Tree,
    last_commit: [u8; 32],
}

impl Store {
    /// Compacts the log of a store being opened if it is worth it.
    pub(super) fn compact_at_open(&mut self) -> Result<(), SealedError> {
        self.compact_if_worthwhile(AT_OPEN)
    }

    /// Compacts the log after a commit if it is worth it.
    pub(super) fn compact_after_commit(&mut self) -> Result<(), SealedError> {
        if self.written < self.garbage_counted_at.saturating_add(COUNT_EVERY) {
            return Ok(());
        }
        self.garbage_counted_at = self.written;
        self.compact_if_worthwhile(WHILE_RUNNING)
    }

    /// Bytes of the log that no chunk in the tree uses (commits count as garbage: one
    /// snapshot replaces them all).
    fn garbage(&self) -> u64 {
        let live: u64 = self
            .tree
            .inodes
            .values()
            .map(|inode| inode.chunks.len() as u64 * CHUNK_FRAME as u64)
            .sum();
        self.written.saturating_sub(HEADER_LEN as u64 + live)
    }

    /// Compacts the log if at least [`MIN_GARBAGE`] of it is garbage, and more than
    /// `times_live` times the live data. Called with nothing pending (at open, after a
    /// commit). If the new log cannot be written (a chunk that does not authenticate, a
    /// full disk), the store goes on with the old one, unchanged; an error is returned only
    /// once the new log has replaced the old. After a failure, the store does not try again
    /// until it is opened again.
    fn compact_if_worthwhile(&mut self, times_live: u64) -> Result<(), SealedError> {
        let garbage = self.garbage();
        let live = self.written - garbage;
        if self.compaction_failed
            || garbage < MIN_GARBAGE
            || garbage <= live.saturating_mul(times_live)
        {
            return Ok(());
        }
        let dir = self.log_path.parent().unwrap_or(std::path::Path::new("."));
        let temporary = dir.join(format!("{LOG}.new"));
        // From the rename on, the new log is the store: the old one's descriptor must not
        // be written again.
        let rewritten = match self.rewrite(&temporary) {
            Ok(rewritten) if std::fs::rename(&temporary, &self.log_path).is_ok() => rewritten,
            _ => {
                let _ = std::fs::remove_file(&temporary);
                self.compaction_failed = true;
                return Ok(());
            }
        };
        self.log = std::sync::Arc::new(rewritten.file);
        self.written = rewritten.len;
        self.zeroed_to = rewritten.len;
        self.tree = rewritten.tree;
        self.version += 1;
        self.last_commit = rewritten.last_commit;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(SealedError::io(dir))?;
        self.witness
            .advance(&self.store_id, self.version)
            .map_err(SealedError::Witness)
    }

    /// Writes the compacted log to `path`, synced.
    fn rewrite(&self, path: &std::path::Path) -> Result<Rewritten, FsError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(SealedError::io(path))?;
        let header = Header::new(self.store_id, &self.keys.check);
        let mut frames = header.to_bytes().to_vec();
        let mut written = 0;
        let mut tree = self.tree.clone();
        let mut inos: Vec<_> = tree.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(inode) = tree.inodes.get_mut(&ino) else {
                continue;
            };
            for (&index, chunk) in inode.chunks.iter_mut() {
                let mut frame = vec![0; CHUNK_FRAME];
                self.log
                    .read_exact_at(&mut frame, chunk.offset)
                    .map_err(SealedError::io(&self.log_path))?;
                let plain = self.open_chunk(ino, index, *chunk, &mut frame)?;
                *chunk = self.seal_chunks(&mut frames, written, &[(ino, index, plain)])?[0];
                if frames.len() >= WRITE_BUFFER {
                    file.write_all_at(&frames, written)
                        .map_err(SealedError::io(path))?;
                    written += frames.len() as u64;
                    frames.clear();
                }
            }
        }
        let ops = tree.snapshot_ops();
        let last_commit = self.seal_commit(
            &mut frames,
            written,
            (self.version + 1, &[0; 32]),
            &ops,
            true,
        )?;
        file.write_all_at(&frames, written)
            .and_then(|()| file.sync_all())
            .map_err(SealedError::io(path))?;
        written += frames.len() as u64;
        Ok(Rewritten {
            file,
            len: written,
            tree,
            last_commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt as _;
    use std::sync::Arc;

    use super::*;
    use crate::store::{FileKind, ROOT, Witness};

    /// A witness that holds nothing: these tests do not reopen.
    struct Forgetful;

    impl Witness for Forgetful {
        fn current(&self, _: &[u8; 16]) -> Result<Option<u64>, String> {
            Ok(None)
        }
        fn advance(&self, _: &[u8; 16], _: u64) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_running_store_whose_compaction_failed_does_not_try_again_at_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::StoreKey::from_bytes(&[3; 32]).unwrap();
        let mut store = Store::open(dir.path(), "/data", &key, Arc::new(Forgetful)).unwrap();
        let kept = store.create(ROOT, b"kept", FileKind::File).unwrap();
        store.write(kept.ino, 0, &[1; 4096]).unwrap();
        store.commit().unwrap();
        // The host changes the live chunk: a compaction cannot re-seal it.
        let log = File::options()
            .write(true)
            .open(dir.path().join(LOG))
            .unwrap();
        log.write_all_at(&[0xff], HEADER_LEN as u64 + 100).unwrap();
        let rewritten = store.create(ROOT, b"rewritten", FileKind::File).unwrap();
        let mut sizes = Vec::new();
        for round in 0..12u8 {
            store
                .write(rewritten.ino, 0, &vec![round; 1 << 20])
                .unwrap();
            store.commit().unwrap();
            sizes.push(store.written);
        }
        assert!(store.garbage() >= MIN_GARBAGE, "{sizes:?}");
        assert!(
            store.compaction_failed,
            "a compaction was tried, and failed"
        );
        assert!(
            sizes.windows(2).all(|w| w[1] > w[0]),
            "the log was never replaced: {sizes:?}"
        );
        assert!(!dir.path().join(format!("{LOG}.new")).exists());
    }
}
