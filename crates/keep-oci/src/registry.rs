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
use crate::package::{self, Built, Package};
use crate::reference::PackageRef;

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
