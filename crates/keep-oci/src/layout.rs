//! The OCI image layout on disk (`oci-layout`, `index.json`, `blobs/sha256/`), as
//! `keep package` writes it and skopeo (`oci:DIR:TAG`) reads and writes it.

use std::path::Path;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::media;
use crate::package::{Built, Descriptor, Package};

/// The annotation that names a manifest's tag in an index.
const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    manifests: Vec<Descriptor>,
}

/// Writes `built` as a new OCI image layout at `dir`, its manifest tagged `tag`. The
/// layout is written beside `dir` and moved into place whole: `dir` must not exist.
pub fn write(dir: &Path, built: &Built, tag: &str) -> anyhow::Result<()> {
    if dir.exists() {
        bail!(
            "{} exists: `keep package` writes a new directory",
            dir.display()
        );
    }
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let staging = tempfile::Builder::new()
        .prefix(".keep-package-")
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a directory in {}", parent.display()))?;
    let blobs = staging.path().join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for blob in &built.blobs {
        std::fs::write(blobs.join(blob.digest.hex()), &blob.bytes)?;
    }
    std::fs::write(blobs.join(built.digest.hex()), &built.manifest)?;
    std::fs::write(
        staging.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let index = Index {
        schema_version: 2,
        media_type: Some(media::INDEX.to_owned()),
        manifests: vec![Descriptor {
            media_type: media::MANIFEST.to_owned(),
            digest: built.digest.to_string(),
            size: built.manifest.len() as u64,
            annotations: Some([(REF_NAME.to_owned(), tag.to_owned())].into()),
            platform: None,
        }],
    };
    std::fs::write(
        staging.path().join("index.json"),
        serde_json::to_vec(&index)?,
    )?;
    // On failure the staging directory is removed with `staging`.
    std::fs::rename(staging.path(), dir)
        .with_context(|| format!("cannot move the package into {}", dir.display()))?;
    // Renamed away: nothing is left for `staging` to remove.
    let _ = staging.keep();
    Ok(())
}

/// Whether `dir` is an OCI image layout.
pub fn is_layout(dir: &Path) -> bool {
    dir.join("oci-layout").is_file()
}

/// The package at `dir` (the manifest tagged `tag`, or its only manifest), every blob
/// checked against its digest; and the manifest's digest.
pub fn read(dir: &Path, tag: Option<&str>) -> anyhow::Result<(Package, Built)> {
    let index_path = dir.join("index.json");
    let index: Index = serde_json::from_slice(
        &std::fs::read(&index_path)
            .with_context(|| format!("cannot read {}", index_path.display()))?,
    )
    .with_context(|| format!("{} is not an OCI index", index_path.display()))?;
    let tagged = |m: &&Descriptor| {
        tag.is_none_or(|tag| {
            m.annotations
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .is_some_and(|name| name == tag)
        })
    };
    let mut candidates = index.manifests.iter().filter(tagged);
    let (Some(entry), None) = (candidates.next(), candidates.next()) else {
        match tag {
            Some(tag) => bail!("{} has no single manifest tagged `{tag}`", dir.display()),
            None => bail!(
                "{} holds {} manifests: name the one to use with DIR:TAG",
                dir.display(),
                index.manifests.len()
            ),
        }
    };
    let digest = Digest::parse(&entry.digest)?;
    let blob = |digest: &Digest| -> anyhow::Result<Vec<u8>> {
        let path = dir.join("blobs/sha256").join(digest.hex());
        std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let manifest = blob(&digest)?;
    if Digest::of(&manifest) != digest {
        bail!(
            "the manifest in {} does not match its digest {digest}",
            dir.display()
        );
    }
    let (package, blobs) = Package::from_manifest(&manifest, |descriptor| {
        blob(&Digest::parse(&descriptor.digest)?)
    })?;
    Ok((
        package,
        Built {
            manifest,
            digest,
            blobs,
        },
    ))
}
