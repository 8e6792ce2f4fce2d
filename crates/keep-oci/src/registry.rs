//! Pushing packages to and pulling them from an OCI registry (the `oci-client` crate):
//! HTTPS verified with the system's roots and the CAs given, plain HTTP only when asked;
//! every blob checked against its digest, and none read past the size its descriptor
//! gives.

use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{Context as _, bail};
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use crate::digest::Digest;
use crate::media;
use crate::package::{self, Blob, Built, Descriptor, Package};
use crate::reference::PackageRef;
use crate::signature::{self, Signed};

/// The largest manifest or blob Keep accepts from a registry: far above any program, and
/// a bound on what a hostile registry can make Keep hold.
const MAX_BLOB: u64 = 1 << 30;

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Speak plain HTTP (only when asked: `--plain-http`).
    pub plain_http: bool,
    /// PEM certificates to trust besides the system's roots.
    pub ca_pems: Vec<Vec<u8>>,
    /// User name and password (HTTP basic, or the token exchange it starts).
    pub credentials: Option<(String, String)>,
}

/// A registry client for one reference's registry.
pub struct Registry {
    client: oci_client::Client,
    auth: RegistryAuth,
}

impl Registry {
    /// A client for `reference`'s registry.
    pub fn new(reference: &PackageRef, options: &RegistryOptions) -> Self {
        // reqwest is built without a crypto provider of its own; this process's is ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: if options.plain_http {
                ClientProtocol::HttpsExcept(vec![reference.registry().to_owned()])
            } else {
                ClientProtocol::Https
            },
            extra_root_certificates: options
                .ca_pems
                .iter()
                .map(|pem| Certificate {
                    encoding: CertificateEncoding::Pem,
                    data: pem.clone(),
                })
                .collect(),
            ..ClientConfig::default()
        };
        Self {
            client: oci_client::Client::new(config),
            auth: match &options.credentials {
                Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
                None => RegistryAuth::Anonymous,
            },
        }
    }

    /// Pushes `built` as `reference`; returns the manifest's digest. Blobs the registry
    /// has already are not sent again.
    pub async fn push(&self, reference: &PackageRef, built: &Built) -> anyhow::Result<Digest> {
        let image = reference.inner();
        self.client
            .auth(image, &self.auth, oci_client::RegistryOperation::Push)
            .await
            .with_context(|| format!("cannot log in to {}", reference.registry()))?;
        for blob in &built.blobs {
            let present = self
                .client
                .blob_exists(image, blob.digest.as_str())
                .await
                .unwrap_or(false);
            if !present {
                self.client
                    .push_blob(image, blob.bytes.clone(), blob.digest.as_str())
                    .await
                    .with_context(|| format!("cannot push {} to {reference}", blob.digest))?;
            }
        }
        let content_type = media::MANIFEST
            .parse()
            .context("the manifest's content type")?;
        self.client
            .push_manifest_raw(image, built.manifest.clone(), content_type)
            .await
            .with_context(|| format!("cannot push the manifest to {reference}"))?;
        Ok(built.digest.clone())
    }

    /// Pulls the package `reference` names (the Wasm entry of an index), every blob
    /// checked against its digest.
    pub async fn pull(&self, reference: &PackageRef) -> anyhow::Result<(Package, Built)> {
        let image = reference.inner();
        let accepted = [media::MANIFEST, media::INDEX];
        let (manifest, _) = self
            .client
            .pull_manifest_raw(image, &self.auth, &accepted)
            .await
            .with_context(|| format!("cannot fetch the manifest of {reference}"))?;
        let mut manifest = manifest.to_vec();
        let mut digest = Digest::of(&manifest);
        check_pinned(reference, &digest)?;
        let mut image = image.clone();
        if let Some(entry) = package::wasm_entry(&manifest)? {
            let entry_digest = Digest::parse(&entry.digest)?;
            image = reference.with_digest(&entry_digest).inner().clone();
            let (bytes, _) = self
                .client
                .pull_manifest_raw(&image, &self.auth, &[media::MANIFEST])
                .await
                .with_context(|| format!("cannot fetch the Wasm manifest of {reference}"))?;
            manifest = bytes.to_vec();
            digest = Digest::of(&manifest);
            if digest != entry_digest {
                bail!("the Wasm manifest of {reference} does not match its digest {entry_digest}");
            }
        }
        let mut fetched = Vec::new();
        for descriptor in package::descriptors(&manifest)? {
            if descriptor.size > MAX_BLOB {
                bail!(
                    "{reference}: a blob of {} bytes, over Keep's limit of {MAX_BLOB}",
                    descriptor.size
                );
            }
            let mut out = Capped::new(descriptor.size);
            self.client
                .pull_blob(&image, descriptor.digest.as_str(), &mut out)
                .await
                .with_context(|| format!("cannot fetch {} of {reference}", descriptor.digest))?;
            fetched.push((descriptor.digest.clone(), out.bytes));
        }
        let (package, blobs) = Package::from_manifest(&manifest, |descriptor| {
            fetched
                .iter()
                .find(|(digest, _)| *digest == descriptor.digest)
                .map(|(_, bytes)| bytes.clone())
                .ok_or_else(|| anyhow::anyhow!("{} was not fetched", descriptor.digest))
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
}

impl Registry {
    /// The digest of the manifest `reference` names (what `keep sign` signs).
    pub async fn manifest_digest(&self, reference: &PackageRef) -> anyhow::Result<Digest> {
        let (manifest, _) = self
            .client
            .pull_manifest_raw(reference.inner(), &self.auth, &[media::MANIFEST])
            .await
            .with_context(|| format!("cannot fetch the manifest of {reference}"))?;
        let digest = Digest::of(&manifest);
        check_pinned(reference, &digest)?;
        Ok(digest)
    }

    /// The signatures attached to `digest` in `reference`'s repository (none when nothing
    /// is attached).
    pub async fn signatures(
        &self,
        reference: &PackageRef,
        digest: &Digest,
    ) -> anyhow::Result<Vec<Signed>> {
        let tag = reference.with_tag(&signature::signature_tag(digest));
        let manifest = match self
            .client
            .pull_manifest_raw(tag.inner(), &self.auth, &SIGNATURE_MANIFESTS)
            .await
        {
            Ok((manifest, _)) => manifest,
            Err(error) if is_not_found(&error) => return Ok(Vec::new()),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot fetch the signatures at {tag}"));
            }
        };
        let mut signed = Vec::new();
        for layer in package::layers(&manifest)? {
            let Some(signature) = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(signature::SIGNATURE_ANNOTATION))
            else {
                continue;
            };
            if layer.media_type != signature::SIMPLE_SIGNING || layer.size > MAX_SIGNATURE {
                continue;
            }
            let expected = Digest::parse(&layer.digest)?;
            let mut out = Capped::new(layer.size);
            self.client
                .pull_blob(tag.inner(), layer.digest.as_str(), &mut out)
                .await
                .with_context(|| format!("cannot fetch a signature payload at {tag}"))?;
            if Digest::of(&out.bytes) != expected {
                bail!("a signature payload at {tag} does not match its digest {expected}");
            }
            signed.push(Signed {
                payload: out.bytes,
                signature: signature.clone(),
            });
        }
        Ok(signed)
    }

    /// Attaches `signed` to `digest` in `reference`'s repository, beside the signatures
    /// already there.
    pub async fn attach(
        &self,
        reference: &PackageRef,
        digest: &Digest,
        signed: &Signed,
    ) -> anyhow::Result<()> {
        let mut all = self.signatures(reference, digest).await?;
        if !all.contains(signed) {
            all.push(signed.clone());
        }
        let layers: Vec<Blob> = all
            .iter()
            .map(|s| Blob {
                media_type: signature::SIMPLE_SIGNING.to_owned(),
                digest: Digest::of(&s.payload),
                bytes: s.payload.clone(),
            })
            .collect();
        // The config cosign writes: an image config whose layers are the payloads.
        let config = serde_json::json!({
            "architecture": "",
            "config": {},
            "created": "0001-01-01T00:00:00Z",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "os": "",
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>(),
            },
        });
        let config = serde_json::to_vec(&config)?;
        let config = Blob {
            media_type: "application/vnd.oci.image.config.v1+json".to_owned(),
            digest: Digest::of(&config),
            bytes: config,
        };
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::MANIFEST,
            "config": package::descriptor(&config),
            "layers": layers.iter().zip(&all).map(|(layer, signed)| Descriptor {
                annotations: Some(
                    [(signature::SIGNATURE_ANNOTATION.to_owned(), signed.signature.clone())].into(),
                ),
                ..package::descriptor(layer)
            }).collect::<Vec<_>>(),
        });
        let manifest = serde_json::to_vec(&manifest)?;
        let mut blobs = vec![config];
        blobs.extend(layers);
        let tag = reference.with_tag(&signature::signature_tag(digest));
        self.push(
            &tag,
            &Built {
                digest: Digest::of(&manifest),
                manifest,
                blobs,
            },
        )
        .await?;
        Ok(())
    }
}

/// The manifest types signatures are attached with: OCI's, and Docker's that older cosign
/// versions wrote.
const SIGNATURE_MANIFESTS: [&str; 2] = [
    media::MANIFEST,
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The largest signature payload Keep reads (they are a few hundred bytes).
const MAX_SIGNATURE: u64 = 1 << 20;

/// Whether `error` says the manifest does not exist.
fn is_not_found(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::{OciDistributionError, OciErrorCode};
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::ManifestUnknown),
        _ => false,
    }
}

/// A reference pinned by digest gets exactly that manifest.
fn check_pinned(reference: &PackageRef, digest: &Digest) -> anyhow::Result<()> {
    match reference.digest() {
        Some(pinned) if pinned != *digest => bail!(
            "the registry's manifest for {reference} does not match the digest asked for \
             (it is {digest})"
        ),
        _ => Ok(()),
    }
}

/// A buffer that refuses bytes past `limit`: a registry sending more than a descriptor's
/// size is cut off there rather than held.
struct Capped {
    bytes: Vec<u8>,
    limit: u64,
}

impl Capped {
    fn new(limit: u64) -> Self {
        Self {
            bytes: Vec::with_capacity(usize::try_from(limit.min(1 << 20)).unwrap_or(0)),
            limit,
        }
    }
}

impl tokio::io::AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() as u64 + data.len() as u64 > self.limit {
            return Poll::Ready(Err(std::io::Error::other(
                "the registry sent more than the blob's size",
            )));
        }
        self.bytes.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
