//! A package (a program and its Keep.toml) and the OCI manifest, config and layers it is
//! made of.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::encryption::{self, EncryptedLayer, EncryptionError};
use crate::media;
use crate::media::TITLE;

/// A program and the Keep.toml it runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    /// The program layer's bytes: the program (a core module or a component), or, when
    /// `encryption` is given, its ciphertext.
    pub program: Vec<u8>,
    /// How the program layer is encrypted, if it is.
    pub encryption: Option<Encryption>,
    /// Keep.toml's bytes, if the package carries one.
    pub keep_toml: Option<Vec<u8>>,
    /// The CA files that Keep.toml names, by the path it gives them.
    pub ca_files: BTreeMap<String, Vec<u8>>,
    /// How its config is typed.
    pub format: Format,
}

/// An encrypted program layer's annotations, and what they say in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// ocicrypt's annotations (wrapped keys, public options).
    pub annotations: BTreeMap<String, String>,
    /// The SHA-256 of the program it decrypts to ([`media::PROGRAM_DIGEST`]).
    pub program_digest: Digest,
    /// The config's `os`: `wasip1` (core module) or `wasip2` (component).
    pub os: String,
}

impl Encryption {
    /// What an encrypted program layer's annotations say (its title aside), for a package
    /// whose config states `os`.
    pub fn from_annotations(
        mut annotations: BTreeMap<String, String>,
        os: &str,
    ) -> Result<Self, PackageError> {
        annotations.remove(TITLE);
        let digest = annotations.remove(media::PROGRAM_DIGEST).ok_or_else(|| {
            PackageError::Layers(format!(
                "the encrypted program layer has no `{}` annotation (the digest of the program, \
                 which the workload digest covers)",
                media::PROGRAM_DIGEST
            ))
        })?;
        let program_digest = Digest::parse(&digest).map_err(|error| PackageError::Fetch {
            what: format!("`{}` annotation", media::PROGRAM_DIGEST),
            error: error.into(),
        })?;
        Ok(Self {
            annotations,
            program_digest,
            os: os.to_owned(),
        })
    }

    /// The program in `ciphertext` (this layer's bytes), decrypted with `key` and checked
    /// against the digest the package states for it.
    pub fn decrypt(
        &self,
        ciphertext: Vec<u8>,
        key: &p256::SecretKey,
    ) -> Result<Vec<u8>, EncryptionError> {
        let plain = encryption::decrypt(
            &EncryptedLayer {
                bytes: ciphertext,
                annotations: self.annotations.clone(),
            },
            key,
        )?;
        if Digest::of(&plain) != self.program_digest {
            return Err(EncryptionError::Tampered("program digest"));
        }
        Ok(plain)
    }
}

/// The type of a package's config: the one thing that differs between what Wasm tools and
/// what containerd accept. The layers (program, Keep.toml) are the same in both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// The CNCF Wasm OCI artifact: config `application/vnd.wasm.config.v0+json`, what Wasm
    /// registries and tools (wkg, ORAS, wasmtime's OCI support) expect.
    #[default]
    Artifact,
    /// An OCI image for the `wasm` platform: config `application/vnd.oci.image.config.v1+json`
    /// (with the artifact's fields and an empty root filesystem), what containerd 1.7 runs
    /// (`ctr run`, Kubernetes through a RuntimeClass); its `ctr run` rejects any other config
    /// type before a shim sees the image.
    Image,
}

/// A package as OCI content: its manifest and the blobs the manifest names.
#[derive(Debug, Clone)]
pub struct Built {
    /// The manifest's bytes, exactly as pushed or stored.
    pub manifest: Vec<u8>,
    /// The manifest's digest: the package's identity in a registry.
    pub digest: Digest,
    /// The config blob, then the layers.
    pub blobs: Vec<Blob>,
}

/// A blob of a package.
#[derive(Debug, Clone)]
pub struct Blob {
    /// What the blob is (config, program, Keep.toml).
    pub media_type: String,
    /// Its digest, checked.
    pub digest: Digest,
    /// Its content.
    pub bytes: Vec<u8>,
}

/// Why content is not a package Keep can run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageError {
    /// The manifest or the config is not the JSON it should be.
    #[error("the {what} is not valid: {error}")]
    Json {
        what: &'static str,
        error: serde_json::Error,
    },
    /// The manifest is an index (a manifest per platform) with no Wasm entry.
    #[error(
        "the reference names an image index with no manifest for the Wasm platform \
         (platforms: {0})"
    )]
    NoWasmPlatform(String),
    /// The manifest is of another kind.
    #[error("the manifest's media type is `{0}`, not an OCI image manifest (`{manifest}`)", manifest = media::MANIFEST)]
    NotAManifest(String),
    /// The config is neither a Wasm config nor an image config.
    #[error(
        "the config's media type is `{0}`, neither `{wasm}` nor `{image}`: this is not a Wasm \
         OCI artifact",
        wasm = media::WASM_CONFIG,
        image = media::IMAGE_CONFIG
    )]
    NotWasm(String),
    /// The config names another platform.
    #[error("the package is for {os}/{architecture}, not for wasm")]
    Platform { architecture: String, os: String },
    /// The layers are not a program and at most one Keep.toml.
    #[error("{0}")]
    Layers(String),
    /// A blob differs from the digest the manifest gives it.
    #[error("the {what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    /// A blob or a manifest could not be read.
    #[error("cannot read the {what}: {error:#}")]
    Fetch { what: String, error: anyhow::Error },
}

/// An OCI content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

/// An OCI image manifest (or, with `manifests`, an index).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    manifests: Vec<Descriptor>,
}

/// The config of a Wasm OCI artifact (its fields as the CNCF Wasm OCI artifact defines
/// them). Written here rather than taken from the `oci-wasm` crate, which pins an older
/// `oci-client` and a third copy of the wasm-tools crates, for five fields.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WasmConfig {
    /// Optional in an OCI image config.
    #[serde(default)]
    created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    author: Option<String>,
    architecture: String,
    os: String,
    #[serde(default)]
    layer_digests: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    component: Option<ComponentInfo>,
    /// An image config's root filesystem: no filesystem layers (containerd unpacks none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rootfs: Option<RootFs>,
    /// An image config's process: containers need a command, and the program's name is it.
    #[serde(default, rename = "config", skip_serializing_if = "Option::is_none")]
    process: Option<Process>,
}

/// The `config` (process) of an OCI image config.
#[derive(Debug, Serialize, Deserialize)]
struct Process {
    /// Optional, and `null` in many images' configs.
    #[serde(
        default,
        rename = "Entrypoint",
        skip_serializing_if = "Option::is_none"
    )]
    entrypoint: Option<Vec<String>>,
}

/// The `rootfs` of an OCI image config.
#[derive(Debug, Serialize, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    diff_ids: Vec<String>,
}

/// What a component imports and exports (its top-level names).
#[derive(Debug, Serialize, Deserialize)]
struct ComponentInfo {
    imports: Vec<String>,
    exports: Vec<String>,
    #[serde(default)]
    target: Option<String>,
}

/// The time a package says it was created: fixed, so that the same program and Keep.toml
/// always make the same package, with the same digest (reproducible, as SOURCE_DATE_EPOCH
/// builds are).
const CREATED: &str = "1970-01-01T00:00:00Z";

/// The file name of the program layer (and the command of an image package).
const PROGRAM_TITLE: &str = "program.wasm";

impl Package {
    /// This package with its program encrypted to `recipients` ([`crate::encryption`]); the
    /// config then states no imports or exports.
    pub fn encrypt(self, recipients: &[p256::PublicKey]) -> Result<Self, EncryptionError> {
        if self.encryption.is_some() {
            return Ok(self);
        }
        let layer = encryption::encrypt(&self.program, recipients)?;
        let os = if component_info(&self.program).is_some() {
            "wasip2"
        } else {
            "wasip1"
        };
        Ok(Self {
            encryption: Some(Encryption {
                annotations: layer.annotations,
                program_digest: Digest::of(&self.program),
                os: os.to_owned(),
            }),
            program: layer.bytes,
            ..self
        })
    }

    /// This package with its program decrypted with `key`, checked against the digest the
    /// package states for it.
    pub fn decrypt(self, key: &p256::SecretKey) -> Result<Self, EncryptionError> {
        let Some(encryption) = self.encryption else {
            return Ok(self);
        };
        Ok(Self {
            program: encryption.decrypt(self.program, key)?,
            encryption: None,
            ..self
        })
    }

    /// The manifest, config and layers of this package.
    pub fn build(&self) -> Built {
        let program_type = match self.encryption {
            Some(_) => media::WASM_ENCRYPTED,
            None => media::WASM,
        };
        let program = blob(program_type, self.program.clone());
        let mut layers = vec![program];
        let mut titles = vec![PROGRAM_TITLE.to_owned()];
        if let Some(keep_toml) = &self.keep_toml {
            layers.push(blob(media::KEEP_TOML, keep_toml.clone()));
            titles.push("Keep.toml".to_owned());
        }
        for (name, pem) in &self.ca_files {
            layers.push(blob(media::KEEP_CA, pem.clone()));
            titles.push(name.clone());
        }
        // An encrypted program's interface is not stated in the clear.
        let component = match self.encryption {
            Some(_) => None,
            None => component_info(&self.program),
        };
        let os = match (&self.encryption, &component) {
            (Some(encryption), _) => encryption.os.clone(),
            (None, Some(_)) => "wasip2".to_owned(),
            (None, None) => "wasip1".to_owned(),
        };
        let config = WasmConfig {
            created: CREATED.to_owned(),
            author: None,
            architecture: "wasm".to_owned(),
            os,
            layer_digests: layers.iter().map(|l| l.digest.to_string()).collect(),
            component,
            rootfs: (self.format == Format::Image).then(|| RootFs {
                kind: "layers".to_owned(),
                diff_ids: Vec::new(),
            }),
            process: (self.format == Format::Image).then(|| Process {
                entrypoint: Some(vec![PROGRAM_TITLE.to_owned()]),
            }),
        };
        let config_type = match self.format {
            Format::Artifact => media::WASM_CONFIG,
            Format::Image => media::IMAGE_CONFIG,
        };
        // Serialising these types cannot fail: they hold only strings and numbers.
        let config = blob(config_type, serde_json::to_vec(&config).unwrap_or_default());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::MANIFEST.to_owned()),
            config: Some(descriptor(&config)),
            layers: layers
                .iter()
                .zip(titles)
                .map(|(layer, title)| {
                    // The file name ORAS clients save a layer under.
                    let mut annotations: BTreeMap<String, String> =
                        [(TITLE.to_owned(), title)].into();
                    if let (Some(encryption), media::WASM_ENCRYPTED) =
                        (&self.encryption, layer.media_type.as_str())
                    {
                        annotations.extend(encryption.annotations.clone());
                        annotations.insert(
                            media::PROGRAM_DIGEST.to_owned(),
                            encryption.program_digest.to_string(),
                        );
                    }
                    Descriptor {
                        annotations: Some(annotations),
                        ..descriptor(layer)
                    }
                })
                .collect(),
            manifests: Vec::new(),
        };
        let manifest = serde_json::to_vec(&manifest).unwrap_or_default();
        let mut blobs = vec![config];
        blobs.extend(layers);
        Built {
            digest: Digest::of(&manifest),
            manifest,
            blobs,
        }
    }

    /// The package that `manifest` describes, its blobs read with `fetch` and each
    /// checked against its digest and size.
    pub fn from_manifest(
        manifest: &[u8],
        mut fetch: impl FnMut(&Descriptor) -> anyhow::Result<Vec<u8>>,
    ) -> Result<(Self, Vec<Blob>), PackageError> {
        let parsed: Manifest =
            serde_json::from_slice(manifest).map_err(|error| PackageError::Json {
                what: "manifest",
                error,
            })?;
        let media_type = parsed.media_type.clone().unwrap_or_default();
        if media_type != media::MANIFEST || parsed.config.is_none() {
            return Err(PackageError::NotAManifest(media_type));
        }
        let Some(config_descriptor) = parsed.config else {
            return Err(PackageError::NotAManifest(media_type));
        };
        let format = match config_descriptor.media_type.as_str() {
            media::WASM_CONFIG => Format::Artifact,
            media::IMAGE_CONFIG => Format::Image,
            _ => return Err(PackageError::NotWasm(config_descriptor.media_type)),
        };
        let mut read = |descriptor: &Descriptor, what: &str| -> Result<Blob, PackageError> {
            let expected =
                Digest::parse(&descriptor.digest).map_err(|error| PackageError::Fetch {
                    what: what.to_owned(),
                    error: error.into(),
                })?;
            let bytes = fetch(descriptor).map_err(|error| PackageError::Fetch {
                what: what.to_owned(),
                error,
            })?;
            let actual = Digest::of(&bytes);
            if actual != expected || bytes.len() as u64 != descriptor.size {
                return Err(PackageError::DigestMismatch {
                    what: what.to_owned(),
                    expected,
                    actual,
                });
            }
            Ok(Blob {
                media_type: descriptor.media_type.clone(),
                digest: actual,
                bytes,
            })
        };
        let config_blob = read(&config_descriptor, "config")?;
        let config: WasmConfig =
            serde_json::from_slice(&config_blob.bytes).map_err(|error| PackageError::Json {
                what: "config",
                error,
            })?;
        if config.architecture != "wasm" {
            return Err(PackageError::Platform {
                architecture: config.architecture,
                os: config.os,
            });
        }
        let mut program = None;
        let mut keep_toml = None;
        let mut ca_files = BTreeMap::new();
        let mut encryption = None;
        let mut blobs = vec![config_blob];
        for layer in &parsed.layers {
            let title = layer.annotations.as_ref().and_then(|a| a.get(TITLE));
            let slot = match layer.media_type.as_str() {
                media::WASM => &mut program,
                media::WASM_ENCRYPTED => {
                    let annotations = layer.annotations.clone().unwrap_or_default();
                    encryption = Some(Encryption::from_annotations(annotations, &config.os)?);
                    &mut program
                }
                media::KEEP_TOML => &mut keep_toml,
                media::KEEP_CA => {
                    let Some(name) = title.filter(|name| !name.is_empty()) else {
                        return Err(PackageError::Layers(format!(
                            "a CA file layer (`{}`) without a title: the title is the \
                             name its Keep.toml gives it",
                            media::KEEP_CA
                        )));
                    };
                    let blob = read(layer, &format!("CA file `{name}`"))?;
                    if ca_files.insert(name.clone(), blob.bytes.clone()).is_some() {
                        return Err(PackageError::Layers(format!(
                            "two CA file layers titled `{name}`"
                        )));
                    }
                    blobs.push(blob);
                    continue;
                }
                other => {
                    return Err(PackageError::Layers(format!(
                        "a layer of media type `{other}`: a package holds its program \
                         (`{}`, or `{}`), at most a Keep.toml (`{}`) and the CA files it \
                         names (`{}`)",
                        media::WASM,
                        media::WASM_ENCRYPTED,
                        media::KEEP_TOML,
                        media::KEEP_CA
                    )));
                }
            };
            if slot.is_some() {
                return Err(PackageError::Layers(format!(
                    "two layers of media type `{}`: a package holds one program and at most \
                     one Keep.toml",
                    layer.media_type
                )));
            }
            let what = if layer.media_type == media::KEEP_TOML {
                "Keep.toml"
            } else {
                "program"
            };
            let blob = read(layer, what)?;
            *slot = Some(blob.bytes.clone());
            blobs.push(blob);
        }
        let Some(program) = program else {
            return Err(PackageError::Layers(format!(
                "no layer of media type `{}`: the package has no program",
                media::WASM
            )));
        };
        if keep_toml.is_none() && !ca_files.is_empty() {
            return Err(PackageError::Layers(
                "CA file layers without a Keep.toml that names them".to_owned(),
            ));
        }
        Ok((
            Self {
                program,
                encryption,
                keep_toml,
                ca_files,
                format,
            },
            blobs,
        ))
    }
}

/// The manifest of the Wasm platform among an index's entries, if `manifest` is an index.
pub(crate) fn wasm_entry(manifest: &[u8]) -> Result<Option<Descriptor>, PackageError> {
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|error| PackageError::Json {
            what: "manifest",
            error,
        })?;
    if parsed.media_type.as_deref() != Some(media::INDEX) && parsed.manifests.is_empty() {
        return Ok(None);
    }
    let platforms: Vec<String> = parsed
        .manifests
        .iter()
        .map(|m| {
            m.platform.as_ref().map_or("unknown".to_owned(), |p| {
                // As docker and the OCI spec write platforms: OS/ARCHITECTURE.
                format!("{}/{}", p.os, p.architecture)
            })
        })
        .collect();
    parsed
        .manifests
        .into_iter()
        .find(|m| {
            m.platform
                .as_ref()
                .is_some_and(|p| p.architecture == "wasm")
        })
        .map(Some)
        .ok_or_else(|| PackageError::NoWasmPlatform(platforms.join(", ")))
}

/// The layers' descriptors of a manifest.
pub(crate) fn layers(manifest: &[u8]) -> Result<Vec<Descriptor>, PackageError> {
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|error| PackageError::Json {
            what: "manifest",
            error,
        })?;
    Ok(parsed.layers)
}

/// The config's and the layers' descriptors of a manifest, to fetch them.
pub(crate) fn descriptors(manifest: &[u8]) -> Result<Vec<Descriptor>, PackageError> {
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|error| PackageError::Json {
            what: "manifest",
            error,
        })?;
    Ok(parsed.config.into_iter().chain(parsed.layers).collect())
}

fn blob(media_type: &str, bytes: Vec<u8>) -> Blob {
    Blob {
        media_type: media_type.to_owned(),
        digest: Digest::of(&bytes),
        bytes,
    }
}

pub(crate) fn descriptor(blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: blob.media_type.clone(),
        digest: blob.digest.to_string(),
        size: blob.bytes.len() as u64,
        annotations: None,
        platform: None,
    }
}

/// The top-level imports and exports of `program` if it is a component.
fn component_info(program: &[u8]) -> Option<ComponentInfo> {
    let parser = wasmparser::Parser::new(0);
    if !wasmparser::Parser::is_component(program) {
        return None;
    }
    let mut info = ComponentInfo {
        imports: Vec::new(),
        exports: Vec::new(),
        target: None,
    };
    let mut depth = 0usize;
    for payload in parser.parse_all(program) {
        match payload.ok()? {
            wasmparser::Payload::Version { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(imports) if depth == 1 => {
                for import in imports.into_iter().flatten() {
                    info.imports.push(import.name.name.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(exports) if depth == 1 => {
                for export in exports.into_iter().flatten() {
                    info.exports.push(export.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_from(built: &Built) -> impl FnMut(&Descriptor) -> anyhow::Result<Vec<u8>> + '_ {
        |descriptor| {
            built
                .blobs
                .iter()
                .find(|b| b.digest.as_str() == descriptor.digest)
                .map(|b| b.bytes.clone())
                .ok_or_else(|| anyhow::anyhow!("no blob {}", descriptor.digest))
        }
    }

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    #[test]
    fn a_package_reads_back_as_built_and_builds_the_same_every_time() {
        let package = Package {
            program: MODULE.to_vec(),
            encryption: None,
            keep_toml: Some(b"[tls]\nca = [\"ca/root.pem\"]\n".to_vec()),
            ca_files: [("ca/root.pem".to_owned(), b"PEM".to_vec())].into(),
            format: Format::Artifact,
        };
        let built = package.build();
        assert_eq!(built.digest, package.build().digest);
        let (read, blobs) = Package::from_manifest(&built.manifest, fetch_from(&built)).unwrap();
        assert_eq!(read, package);
        assert_eq!(blobs.len(), 4);
        assert_eq!(blobs[0].media_type, media::WASM_CONFIG);
        assert_eq!(blobs[3].media_type, media::KEEP_CA);
        let manifest: serde_json::Value = serde_json::from_slice(&built.manifest).unwrap();
        assert_eq!(manifest["layers"][2]["annotations"][TITLE], "ca/root.pem");

        // A CA file needs its title, and a Keep.toml that names it.
        let untitled = String::from_utf8(built.manifest.clone())
            .unwrap()
            .replace("\"ca/root.pem\"", "\"\"");
        let err = Package::from_manifest(untitled.as_bytes(), fetch_from(&built)).unwrap_err();
        assert!(err.to_string().contains("without a title"), "{err}");
        let alone = Package {
            keep_toml: None,
            ..package
        }
        .build();
        let err = Package::from_manifest(&alone.manifest, fetch_from(&alone)).unwrap_err();
        assert!(err.to_string().contains("without a Keep.toml"), "{err}");
    }

    #[test]
    fn an_encrypted_package_hides_its_program_reads_back_and_decrypts_only_with_its_key() {
        let key = p256::SecretKey::from_bytes(&[9; 32].into()).unwrap();
        let other = p256::SecretKey::from_bytes(&[8; 32].into()).unwrap();
        let plain = Package {
            program: MODULE.to_vec(),
            encryption: None,
            keep_toml: Some(b"[env]\nA = \"1\"\n".to_vec()),
            ca_files: BTreeMap::new(),
            format: Format::Artifact,
        };
        let encrypted = plain.clone().encrypt(&[key.public_key()]).unwrap();
        assert_ne!(encrypted.program, MODULE);
        let built = encrypted.build();
        let manifest: serde_json::Value = serde_json::from_slice(&built.manifest).unwrap();
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], media::WASM_ENCRYPTED);
        assert_eq!(
            layer["annotations"][media::PROGRAM_DIGEST],
            Digest::of(MODULE).to_string()
        );
        assert!(layer["annotations"][encryption::ANNOTATION_JWE].is_string());
        assert!(!built.blobs.iter().any(|b| b.bytes == MODULE));
        let (read, _) = Package::from_manifest(&built.manifest, fetch_from(&built)).unwrap();
        assert_eq!(read, encrypted);
        assert!(matches!(
            read.clone().decrypt(&other),
            Err(EncryptionError::NotARecipient(1))
        ));
        assert_eq!(read.decrypt(&key).unwrap(), plain);

        // The digest in the clear must be the program's: one that is not is refused.
        let wrong = Package {
            encryption: encrypted.encryption.clone().map(|e| Encryption {
                program_digest: Digest::of(b"another program"),
                ..e
            }),
            ..encrypted
        };
        assert!(matches!(
            wrong.decrypt(&key),
            Err(EncryptionError::Tampered("program digest"))
        ));
    }

    #[test]
    fn an_image_package_has_an_image_config_with_no_filesystem_and_reads_back() {
        let package = Package {
            program: MODULE.to_vec(),
            encryption: None,
            keep_toml: None,
            ca_files: BTreeMap::new(),
            format: Format::Image,
        };
        let built = package.build();
        assert_eq!(built.blobs[0].media_type, media::IMAGE_CONFIG);
        let config: serde_json::Value = serde_json::from_slice(&built.blobs[0].bytes).unwrap();
        assert_eq!(config["architecture"], "wasm");
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([]));
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["program.wasm"])
        );
        let artifact = Package {
            format: Format::Artifact,
            ..package.clone()
        };
        assert_ne!(built.digest, artifact.build().digest);
        let (read, _) = Package::from_manifest(&built.manifest, fetch_from(&built)).unwrap();
        assert_eq!(read, package);
    }

    #[test]
    fn a_changed_blob_is_refused_by_its_digest() {
        let built = Package {
            program: MODULE.to_vec(),
            encryption: None,
            keep_toml: None,
            ca_files: BTreeMap::new(),
            format: Format::Artifact,
        }
        .build();
        let mut tampered = built.clone();
        tampered.blobs[1].bytes.push(0);
        let error = Package::from_manifest(&built.manifest, fetch_from(&tampered)).unwrap_err();
        assert!(matches!(
            error,
            PackageError::Fetch { .. } | PackageError::DigestMismatch { .. }
        ));
    }

    #[test]
    fn an_index_is_followed_to_its_wasm_entry_or_refused_for_another_platform() {
        let index = |platforms: &[(&str, &str)]| {
            let manifests: Vec<String> = platforms
                .iter()
                .enumerate()
                .map(|(i, (arch, os))| {
                    format!(
                        r#"{{"mediaType":"{}","digest":"sha256:{:064x}","size":1,
                        "platform":{{"architecture":"{arch}","os":"{os}"}}}}"#,
                        media::MANIFEST,
                        i
                    )
                })
                .collect();
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
                media::INDEX,
                manifests.join(",")
            )
        };
        let entry = wasm_entry(index(&[("amd64", "linux"), ("wasm", "wasip2")]).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(entry.digest, format!("sha256:{:064x}", 1));
        let error = wasm_entry(index(&[("amd64", "linux")]).as_bytes()).unwrap_err();
        assert!(error.to_string().contains("linux/amd64"), "{error}");
        let manifest = Package {
            program: MODULE.to_vec(),
            encryption: None,
            keep_toml: None,
            ca_files: BTreeMap::new(),
            format: Format::Artifact,
        }
        .build()
        .manifest;
        assert!(wasm_entry(&manifest).unwrap().is_none());
    }

    #[test]
    fn a_config_for_another_architecture_is_refused() {
        // As many Linux images write it: no `created`, a null entrypoint.
        let config = br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null}}"#;
        let config_digest = Digest::of(config);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
            media::MANIFEST,
            media::WASM_CONFIG,
            config_digest,
            config.len()
        );
        let error =
            Package::from_manifest(manifest.as_bytes(), |_| Ok(config.to_vec())).unwrap_err();
        assert!(matches!(error, PackageError::Platform { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "the package is for linux/amd64, not for wasm"
        );
    }

    #[test]
    fn content_that_is_not_a_package_is_named() {
        let error = Package::from_manifest(b"{", |_| unreachable!()).unwrap_err();
        assert!(
            error.to_string().starts_with("the manifest is not valid"),
            "{error}"
        );
        let image = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:00","size":2},
            "layers":[]}"#;
        let error = Package::from_manifest(image, |_| unreachable!()).unwrap_err();
        assert!(matches!(error, PackageError::NotWasm(_)), "{error}");
    }
}
