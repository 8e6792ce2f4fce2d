//! The versions of sealed stores (`--sealed-versions FILE`): the Steward is the witness a
//! Keep asks, when it opens a sealed store, which version the store must be at least, and
//! tells each time it commits one. An old copy of a store put back by the host is then
//! refused, because its version is below the one held here.
//!
//! Versions are kept per [`VersionScope`] (the Steward secret the store's key comes from,
//! or the workload of a store sealed with a TEE's key alone) and store identifier, and only
//! ever increase. The file is a journal of JSON lines, `{"store": "SECRET/STORE-ID-HEX",
//! "version": N}` (`workload/DIGEST/STORE-ID-HEX` for a workload's; a secret's name holds
//! no `/`, so the two never meet): each new version is written after the last and synced
//! (`fdatasync`) before the Keep is answered, so a commit costs the Steward one sync. The
//! journal keeps zeros written ahead of its last line, synced with it, so that most lines
//! overwrite blocks the file already has and their sync writes data alone, not the file's
//! new size too (on the benchmark machine's disk, 90 µs against 155 µs for an append). At
//! start the journal is read (the highest version of each store counts; the last piece,
//! a line cut short by a crash or the zeros, is dropped) and rewritten with one line per
//! store. The file is what
//! protects against rollback: keep it where the Keeps' hosts cannot write it, and back it up
//! with the Steward's CA.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One line of the journal.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    /// `SECRET/STORE-ID-HEX`.
    store: String,
    version: u64,
}

/// The versions, and the journal they are appended to.
#[derive(Debug)]
pub struct SealedVersions {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    versions: BTreeMap<String, u64>,
    journal: File,
    /// Where the last line ends.
    written: u64,
    /// Where the zeros written after it end.
    zeroed_to: u64,
}

/// Zeros written after the journal's last line when fewer than half of them are left.
const ZEROED_AHEAD: u64 = 64 * 1024;

/// Why the versions could not be read or a version recorded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct VersionsError {
    path: PathBuf,
    source: std::io::Error,
}

/// Whose stores a version belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionScope<'a> {
    /// The stores sealed with this Steward secret.
    Secret(&'a str),
    /// The stores of this workload digest, sealed with a key its TEE derived.
    Workload(&'a str),
}

impl std::fmt::Display for VersionScope<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Secret(name) => write!(f, "secret `{name}`"),
            Self::Workload(digest) => write!(f, "workload {digest}"),
        }
    }
}

fn key(scope: VersionScope<'_>, store: &[u8; 16]) -> String {
    match scope {
        VersionScope::Secret(name) => format!("{name}/{}", hex::encode(store)),
        VersionScope::Workload(digest) => format!("workload/{digest}/{}", hex::encode(store)),
    }
}

fn line(store: &str, version: u64) -> Vec<u8> {
    let entry = Entry {
        store: store.to_owned(),
        version,
    };
    // A string and a number always serialise.
    let mut bytes = serde_json::to_vec(&entry).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

impl SealedVersions {
    /// The versions in the journal `path` (none yet when it does not exist), which is then
    /// rewritten with one line per store.
    pub fn load(path: &Path) -> Result<Self, VersionsError> {
        let error = |source| VersionsError {
            path: path.to_owned(),
            source,
        };
        let mut versions = BTreeMap::new();
        match std::fs::read(path) {
            Ok(mut bytes) => {
                // The zeros written ahead of the next line are no part of any line, wherever
                // an owner's edit left them.
                bytes.retain(|b| *b != 0);
                let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
                for (number, text) in lines.iter().enumerate() {
                    if text.is_empty() {
                        continue;
                    }
                    match serde_json::from_slice::<Entry>(text) {
                        Ok(entry) => {
                            let held = versions.entry(entry.store).or_insert(0);
                            *held = entry.version.max(*held);
                        }
                        // The last line, cut short by a crash while it was appended.
                        Err(_) if number == lines.len() - 1 => {}
                        Err(e) => {
                            return Err(error(std::io::Error::other(format!(
                                "line {}: {e}",
                                number + 1
                            ))));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(error(e)),
        }
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut compacted = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
        for (store, version) in &versions {
            compacted.write_all(&line(store, *version)).map_err(error)?;
        }
        compacted.as_file().sync_all().map_err(error)?;
        compacted.persist(path).map_err(|e| error(e.error))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(error)?;
        let journal = File::options().write(true).open(path).map_err(error)?;
        let written = journal.metadata().map_err(error)?.len();
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(State {
                versions,
                journal,
                written,
                zeroed_to: written,
            }),
        })
    }

    /// The version of `store` in `scope`, if any was recorded.
    pub fn current(&self, scope: VersionScope<'_>, store: &[u8; 16]) -> Option<u64> {
        self.lock().versions.get(&key(scope, store)).copied()
    }

    /// Records that `store` reached `version` (a lower one changes nothing); returns the
    /// version held afterwards, once it is on disk.
    pub fn advance(
        &self,
        scope: VersionScope<'_>,
        store: &[u8; 16],
        version: u64,
    ) -> Result<u64, VersionsError> {
        let mut state = self.lock();
        let store = key(scope, store);
        if let Some(held) = state
            .versions
            .get(&store)
            .copied()
            .filter(|h| *h >= version)
        {
            return Ok(held);
        }
        let error = |source| VersionsError {
            path: self.path.clone(),
            source,
        };
        let mut bytes = line(&store, version);
        let end = state.written + bytes.len() as u64;
        let zeroed_to = if end + ZEROED_AHEAD / 2 > state.zeroed_to {
            bytes.resize(bytes.len() + ZEROED_AHEAD as usize, 0);
            end + ZEROED_AHEAD
        } else {
            state.zeroed_to
        };
        state
            .journal
            .write_all_at(&bytes, state.written)
            .and_then(|()| state.journal.sync_data())
            .map_err(error)?;
        state.written = end;
        state.zeroed_to = zeroed_to;
        state.versions.insert(store, version);
        Ok(version)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: VersionScope<'static> = VersionScope::Secret("k");
    const OTHER: VersionScope<'static> = VersionScope::Secret("other");
    const WORKLOAD: VersionScope<'static> = VersionScope::Workload("sha256:00");

    #[test]
    fn versions_only_increase_and_survive_a_restart_and_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versions.jsonl");
        let versions = SealedVersions::load(&path).unwrap();
        assert_eq!(versions.current(K, &[1; 16]), None);
        assert_eq!(versions.advance(K, &[1; 16], 3).unwrap(), 3);
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(versions.advance(K, &[1; 16], 2).unwrap(), 3);
        assert_eq!(versions.advance(K, &[1; 16], 4).unwrap(), 4);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "the next line went into the zeros"
        );
        assert_eq!(versions.advance(OTHER, &[1; 16], 1).unwrap(), 1);
        // The same store ID under a workload is another store.
        assert_eq!(versions.advance(WORKLOAD, &[1; 16], 9).unwrap(), 9);
        drop(versions);
        // Lines go into zeros written ahead of them; a crash in the middle of one leaves
        // half a line there.
        let journal = std::fs::read(&path).unwrap();
        let zeros = journal.iter().rev().take_while(|b| **b == 0).count();
        assert!(zeros >= ZEROED_AHEAD as usize / 2, "{zeros} zeros ahead");
        let file = File::options().write(true).open(&path).unwrap();
        file.write_all_at(b"{\"store\":\"k/01", (journal.len() - zeros) as u64)
            .unwrap();
        let again = SealedVersions::load(&path).unwrap();
        assert_eq!(again.current(K, &[1; 16]), Some(4));
        assert_eq!(again.current(OTHER, &[1; 16]), Some(1));
        assert_eq!(again.current(WORKLOAD, &[1; 16]), Some(9));
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            3,
            "rewritten with one line per store"
        );
        drop(again);
        // A line an owner added at the end, after the zeros of a Steward that stopped.
        SealedVersions::load(&path)
            .unwrap()
            .advance(OTHER, &[2; 16], 1)
            .unwrap();
        let mut file = File::options().append(true).open(&path).unwrap();
        let added = format!("{{\"store\":\"k/{}\",\"version\":7}}\n", "03".repeat(16));
        file.write_all(added.as_bytes()).unwrap();
        let again = SealedVersions::load(&path).unwrap();
        assert_eq!(again.current(K, &[3; 16]), Some(7));
        assert_eq!(again.current(OTHER, &[2; 16]), Some(1));
        std::fs::write(&path, "not json\n{}\n").unwrap();
        let err = SealedVersions::load(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
