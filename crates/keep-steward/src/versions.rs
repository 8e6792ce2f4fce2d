//! The versions of sealed stores (`--sealed-versions FILE`): the Steward is the witness a
//! Keep asks, when it opens a sealed store, which version the store must be at least, and
//! tells each time it commits one. An old copy of a store put back by the host is then
//! refused, because its version is below the one held here.
//!
//! Versions are kept per Steward secret (the one the store's key comes from) and store
//! identifier, only ever increase, and are written to the file (atomically: a new file,
//! synced, renamed over the old) before the Keep is answered. The file is what protects
//! against rollback: keep it where the Keeps' hosts cannot write it, and back it up with
//! the Steward's CA.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file as written.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionsFile {
    /// `SECRET/STORE-ID-HEX` to the version.
    versions: BTreeMap<String, u64>,
}

/// The versions, and the file they live in.
#[derive(Debug)]
pub struct SealedVersions {
    path: PathBuf,
    versions: Mutex<BTreeMap<String, u64>>,
}

/// Why a version could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct VersionsError {
    path: PathBuf,
    source: std::io::Error,
}

fn key(secret: &str, store: &[u8; 16]) -> String {
    format!("{secret}/{}", hex::encode(store))
}

impl SealedVersions {
    /// The versions in `path` (none yet when it does not exist).
    pub fn load(path: &Path) -> Result<Self, VersionsError> {
        let error = |source| VersionsError {
            path: path.to_owned(),
            source,
        };
        let versions = match std::fs::read(path) {
            Ok(bytes) => {
                let file: VersionsFile = serde_json::from_slice(&bytes)
                    .map_err(|e| error(std::io::Error::other(e.to_string())))?;
                file.versions
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(error(e)),
        };
        Ok(Self {
            path: path.to_owned(),
            versions: Mutex::new(versions),
        })
    }

    /// The version of `store` sealed under `secret`, if any was recorded.
    pub fn current(&self, secret: &str, store: &[u8; 16]) -> Option<u64> {
        self.lock().get(&key(secret, store)).copied()
    }

    /// Records that `store` reached `version` (a lower one changes nothing); returns the
    /// version held afterwards, once it is on disk.
    pub fn advance(
        &self,
        secret: &str,
        store: &[u8; 16],
        version: u64,
    ) -> Result<u64, VersionsError> {
        let mut versions = self.lock();
        let held = versions.get(&key(secret, store)).copied();
        if held.is_some_and(|held| held >= version) {
            return Ok(held.unwrap_or(version));
        }
        let mut next = versions.clone();
        next.insert(key(secret, store), version);
        self.write(&next)?;
        *versions = next;
        Ok(version)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.versions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the file with `versions`: a new file, synced, renamed over the old one, and
    /// the directory synced.
    fn write(&self, versions: &BTreeMap<String, u64>) -> Result<(), VersionsError> {
        let error = |source| VersionsError {
            path: self.path.clone(),
            source,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut temporary = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
        let file = VersionsFile {
            versions: versions.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| error(std::io::Error::other(e.to_string())))?;
        temporary.write_all(&bytes).map_err(error)?;
        temporary.as_file().sync_all().map_err(error)?;
        temporary.persist(&self.path).map_err(|e| error(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_only_increase_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("versions.json");
        let versions = SealedVersions::load(&path).unwrap();
        assert_eq!(versions.current("k", &[1; 16]), None);
        assert_eq!(versions.advance("k", &[1; 16], 3).unwrap(), 3);
        assert_eq!(versions.advance("k", &[1; 16], 2).unwrap(), 3);
        assert_eq!(versions.advance("other", &[1; 16], 1).unwrap(), 1);
        let again = SealedVersions::load(&path).unwrap();
        assert_eq!(again.current("k", &[1; 16]), Some(3));
        assert_eq!(again.current("other", &[1; 16]), Some(1));
        std::fs::write(&path, "not json").unwrap();
        assert!(SealedVersions::load(&path).is_err());
    }
}
