//! The compiled-module cache.
//!
//! An entry is keyed by BLAKE3 over the cache format version, the engine fingerprint
//! (wasmtime version, target, code-generation settings), the program kind and the program
//! bytes. Its file is `MAGIC ‖ BLAKE3(payload) ‖ payload`, where the payload is wasmtime's
//! serialized artifact. An entry is only handed to wasmtime after its digest checks, so a
//! truncated, corrupted or foreign file is recompiled, never executed. Entries are written to
//! a temporary file and renamed into place, so readers never see half an entry, and a file
//! once in place is never written again.
//!
//! A warm start hashes both the program (to find its entry) and the entry (to check it), so
//! the hash is BLAKE3 (a cryptographic hash, several times faster than SHA-256), and the
//! entry is read through a read-only mapping of the file rather than copied to the heap.
//!
//! The digest detects accidents (a truncated or corrupted file), not an attacker: whoever
//! can write the cache directory can write a valid entry. The cache directory is the user's
//! own, as trusted as the `keep` binary; where the disk belongs to someone else (a
//! confidential VM's host), entries must not be trusted at all.
//!
//! wasmtime's own `cache` feature is not used: it keys on the module only, does no integrity
//! check of the entry before loading it, and logs rather than reports its failures.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::program::ProgramKind;

/// First bytes of every cache entry; the digits are the entry format version.
const MAGIC: &[u8; 8] = b"KEEPCW02";
const ENTRY_SUFFIX: &str = ".cwasm";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// A directory of compiled artifacts.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
}

/// What `keep cache info` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStats {
    /// The cache directory.
    pub dir: PathBuf,
    /// Number of entries.
    pub entries: u64,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// A verified cache entry, mapped from its file.
pub struct CachedArtifact {
    entry: memmap2::Mmap,
}

impl CachedArtifact {
    /// The serialized artifact, ready for `deserialize` (borrowed from the entry, so a large
    /// program's code is not copied on the start-up path).
    pub fn bytes(&self) -> &[u8] {
        &self.entry[HEADER_LEN..]
    }
}

/// The result of looking a program up.
pub enum Lookup {
    /// A verified artifact.
    Hit(CachedArtifact),
    /// No usable entry; the reason is `Some` when an entry existed but was rejected.
    Miss(Option<String>),
}

impl ModuleCache {
    /// A cache in `dir` (created on first store).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/keep`, else `$HOME/.cache/keep`.
    pub fn default_dir() -> Option<PathBuf> {
        let nonempty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        if let Some(xdg) = nonempty("XDG_CACHE_HOME") {
            return Some(PathBuf::from(xdg).join("keep"));
        }
        nonempty("HOME").map(|home| PathBuf::from(home).join(".cache").join("keep"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The entry path for a program compiled by an engine with `fingerprint`.
    pub fn entry_path(&self, fingerprint: &[u8; 32], kind: ProgramKind, wasm: &[u8]) -> PathBuf {
        let mut key = blake3::Hasher::new();
        key.update(MAGIC);
        key.update(fingerprint);
        key.update(kind.as_str().as_bytes());
        key.update_rayon(wasm);
        self.dir
            .join(format!("{}{ENTRY_SUFFIX}", key.finalize().to_hex()))
    }

    /// Reads and verifies the entry at `path`.
    pub fn load(&self, path: &Path) -> Lookup {
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss(None),
            Err(e) => return Lookup::Miss(Some(format!("cannot read it: {e}"))),
        };
        // SAFETY: the mapping is read-only and private. Keep never writes an entry in place
        // (entries are written to a temporary file and renamed), so the file's content stays
        // what is verified below; a file changed behind Keep's back by someone who can write
        // the cache directory is outside what the cache protects against (module docs).
        let entry = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(entry) => entry,
            Err(e) => return Lookup::Miss(Some(format!("cannot read it: {e}"))),
        };
        match verify(&entry) {
            Ok(()) => Lookup::Hit(CachedArtifact { entry }),
            Err(reason) => Lookup::Miss(Some(reason.into())),
        }
    }

    /// Writes `artifact` atomically at `path`.
    pub fn store(&self, path: &Path, artifact: &[u8]) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create cache directory {}", self.dir.display()))?;
        let mut file = tempfile::NamedTempFile::new_in(&self.dir)
            .with_context(|| format!("cannot create a file in {}", self.dir.display()))?;
        file.write_all(MAGIC)
            .and_then(|()| file.write_all(digest(artifact).as_bytes()))
            .and_then(|()| file.write_all(artifact))
            .and_then(|()| file.flush())
            .context("cannot write cache entry")?;
        file.persist(path)
            .with_context(|| format!("cannot move cache entry to {}", path.display()))?;
        Ok(())
    }

    /// Removes a rejected entry so the next run does not look at it again.
    pub fn discard(&self, path: &Path) {
        if let Err(e) = fs::remove_file(path) {
            tracing::debug!("cannot remove cache entry {}: {e}", path.display());
        }
    }

    /// Counts entries and their size. A missing directory is an empty cache.
    pub fn stats(&self) -> anyhow::Result<CacheStats> {
        let mut stats = CacheStats {
            dir: self.dir.clone(),
            entries: 0,
            bytes: 0,
        };
        for entry in self.entries()? {
            stats.entries += 1;
            stats.bytes += fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        }
        Ok(stats)
    }

    /// Deletes every entry (and only entries: other files are left alone). Returns the count.
    pub fn clear(&self) -> anyhow::Result<u64> {
        let mut removed = 0;
        for entry in self.entries()? {
            fs::remove_file(&entry)
                .with_context(|| format!("cannot remove {}", entry.display()))?;
            removed += 1;
        }
        Ok(removed)
    }

    fn entries(&self) -> anyhow::Result<Vec<PathBuf>> {
        let read_dir = match fs::read_dir(&self.dir) {
            Ok(read_dir) => read_dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot list {}", self.dir.display()));
            }
        };
        let mut entries = Vec::new();
        for entry in read_dir {
            let path = entry
                .with_context(|| format!("cannot list {}", self.dir.display()))?
                .path();
            let is_entry = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(ENTRY_SUFFIX));
            if is_entry {
                entries.push(path);
            }
        }
        Ok(entries)
    }
}

/// BLAKE3 of `bytes`, on the threads of the current rayon pool (the run's compiler threads,
/// see `compile.rs`) for large inputs.
fn digest(bytes: &[u8]) -> blake3::Hash {
    blake3::Hasher::new().update_rayon(bytes).finalize()
}

fn verify(entry: &[u8]) -> Result<(), &'static str> {
    if entry.len() < HEADER_LEN {
        return Err("it is truncated");
    }
    let (magic, rest) = entry.split_at(MAGIC.len());
    if magic != MAGIC {
        return Err("it is not a Keep cache entry of this format version");
    }
    let (digest, payload) = rest.split_at(32);
    // `blake3::Hash` compares in constant time; any mismatch is a rejected entry.
    let expected = blake3::Hash::from_bytes(digest.try_into().map_err(|_| "it is truncated")?);
    if self::digest(payload) != expected {
        return Err("its digest does not match its content (corrupted or truncated)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ModuleCache::new(dir.path().join("c"));
        let path = cache.entry_path(&[7; 32], ProgramKind::Module, b"wasm");
        assert!(matches!(cache.load(&path), Lookup::Miss(None)));

        cache.store(&path, b"artifact").unwrap();
        assert!(matches!(cache.load(&path), Lookup::Hit(a) if a.bytes() == b"artifact"));
        assert_eq!(cache.stats().unwrap().entries, 1);

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(cache.load(&path), Lookup::Miss(Some(r)) if r.contains("digest")));

        fs::write(&path, &bytes[..10]).unwrap();
        assert!(matches!(cache.load(&path), Lookup::Miss(Some(r)) if r.contains("truncated")));

        fs::write(
            &path,
            b"ELF-ish garbage that is long enough to have a header.....",
        )
        .unwrap();
        assert!(matches!(cache.load(&path), Lookup::Miss(Some(r)) if r.contains("format")));

        fs::write(dir.path().join("c").join("unrelated.txt"), b"x").unwrap();
        assert_eq!(cache.clear().unwrap(), 1);
        assert!(dir.path().join("c").join("unrelated.txt").exists());
    }

    #[test]
    fn keys_depend_on_every_input() {
        let cache = ModuleCache::new("/c");
        let base = cache.entry_path(&[0; 32], ProgramKind::Module, b"a");
        assert_ne!(base, cache.entry_path(&[1; 32], ProgramKind::Module, b"a"));
        assert_ne!(
            base,
            cache.entry_path(&[0; 32], ProgramKind::Component, b"a")
        );
        assert_ne!(base, cache.entry_path(&[0; 32], ProgramKind::Module, b"b"));
    }
}
