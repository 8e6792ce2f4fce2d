//! The local content-addressed store of pulled packages: `blobs/sha256/HEX` (each written
//! whole, then moved into place, and checked against its name when read) and `refs/`
//! (a reference's manifest digest, written only once every blob it needs is stored).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::package::{Built, Package};
use crate::reference::PackageRef;
use crate::signature::Signed;

/// A content-addressed store of packages.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// A package read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The package.
    pub package: Package,
    /// Its manifest's bytes.
    pub manifest: Vec<u8>,
    /// The manifest's digest.
    pub digest: Digest,
}

impl Store {
    /// The store at `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn ref_path(&self, reference: &PackageRef) -> PathBuf {
        // A reference holds `/` and `:`; its hash names it safely.
        let name = hex::encode(Sha256::digest(reference.to_string().as_bytes()));
        self.dir.join("refs").join(name)
    }

    /// Stores `built` and records that `reference` names it: blobs first, the reference
    /// last, so that an interrupted save leaves no reference to a partial package.
    pub fn save(&self, reference: &PackageRef, built: &Built) -> anyhow::Result<()> {
        for blob in &built.blobs {
            self.put(&blob.digest, &blob.bytes)?;
        }
        self.put(&built.digest, &built.manifest)?;
        if reference.digest().is_none() {
            write_atomically(&self.ref_path(reference), built.digest.as_str().as_bytes())?;
        }
        Ok(())
    }

    /// Writes a blob unless it is there already.
    fn put(&self, digest: &Digest, bytes: &[u8]) -> anyhow::Result<()> {
        if Digest::of(bytes) != *digest {
            bail!("refusing to store a blob under another digest than its own ({digest})");
        }
        let path = self.blob_path(digest);
        if path.is_file() {
            return Ok(());
        }
        write_atomically(&path, bytes)
    }

    /// A stored blob, checked against its digest (a blob changed on disk is an error).
    fn get(&self, digest: &Digest) -> anyhow::Result<Option<Vec<u8>>> {
        let path = self.blob_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        };
        if Digest::of(&bytes) != *digest {
            bail!(
                "{} in the package store does not match its digest: remove it and pull \
                 again",
                path.display()
            );
        }
        Ok(Some(bytes))
    }

    /// The stored package `reference` names (by digest, or by the digest its tag had when
    /// pulled), with its manifest; `None` when it is not stored.
    pub fn load(&self, reference: &PackageRef) -> anyhow::Result<Option<Stored>> {
        let digest = match reference.digest() {
            Some(digest) => digest,
            None => match std::fs::read_to_string(self.ref_path(reference)) {
                Ok(text) => Digest::parse(text.trim())?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error.into()),
            },
        };
        let Some(manifest) = self.get(&digest)? else {
            return Ok(None);
        };
        let mut missing = false;
        let result = Package::from_manifest(&manifest, |descriptor| {
            let digest = Digest::parse(&descriptor.digest)?;
            match self.get(&digest)? {
                Some(bytes) => Ok(bytes),
                None => {
                    missing = true;
                    bail!("{digest} is not stored")
                }
            }
        });
        match result {
            Ok((package, _)) => Ok(Some(Stored {
                package,
                manifest,
                digest,
            })),
            Err(_) if missing => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn signatures_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("signatures")
            .join(format!("{}.json", digest.hex()))
    }

    /// Keeps the signatures found for `digest`, so that a later run checks them (or states
    /// them to a Steward) without the network. Whoever reads them verifies them.
    pub fn save_signatures(&self, digest: &Digest, signed: &[Signed]) -> anyhow::Result<()> {
        write_atomically(&self.signatures_path(digest), &serde_json::to_vec(signed)?)
    }

    /// The signatures of `digest` kept by [`Self::save_signatures`], if any.
    pub fn signatures(&self, digest: &Digest) -> anyhow::Result<Option<Vec<Signed>>> {
        let path = self.signatures_path(digest);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is not a list of signatures", path.display())
            })?)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// How many blobs the store holds, and their size in bytes.
    pub fn stats(&self) -> anyhow::Result<(u64, u64)> {
        let dir = self.dir.join("blobs/sha256");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot list {}", dir.display()));
            }
        };
        let (mut count, mut bytes) = (0, 0);
        for entry in entries {
            let metadata = entry?.metadata()?;
            if metadata.is_file() {
                count += 1;
                bytes += metadata.len();
            }
        }
        Ok((count, bytes))
    }

    /// Where the store is.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_package_loads_by_tag_and_by_digest_and_a_changed_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let package = Package {
            program: b"\0asm\x01\0\0\0".to_vec(),
            encryption: None,
            keep_toml: None,
            ca_files: std::collections::BTreeMap::new(),
            format: crate::Format::Artifact,
        };
        let built = package.build();
        let tag = PackageRef::parse("127.0.0.1:5000/keep/hello:v1").unwrap();
        assert!(store.load(&tag).unwrap().is_none());
        assert_eq!(store.stats().unwrap(), (0, 0));
        store.save(&tag, &built).unwrap();
        let size: usize =
            built.blobs.iter().map(|b| b.bytes.len()).sum::<usize>() + built.manifest.len();
        assert_eq!(store.stats().unwrap(), (3, size as u64));
        assert_eq!(
            store.load(&tag).unwrap().unwrap(),
            Stored {
                package: package.clone(),
                manifest: built.manifest.clone(),
                digest: built.digest.clone()
            }
        );
        let pinned = tag.with_digest(&built.digest);
        assert_eq!(store.load(&pinned).unwrap().unwrap().package, package);

        let program = store.blob_path(&built.blobs[1].digest);
        std::fs::write(&program, b"changed").unwrap();
        let error = store.load(&tag).unwrap_err();
        assert!(
            error.to_string().contains("does not match its digest"),
            "{error}"
        );
    }
}
