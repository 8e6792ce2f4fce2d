//! Wasm packages as OCI artifacts, in the layout the field uses (the CNCF Wasm OCI
//! artifact: an image manifest whose config is `application/vnd.wasm.config.v0+json` and
//! whose program is an `application/wasm` layer), with Keep.toml as a layer of its own
//! ([`media::KEEP_TOML`]):
//!
//! - [`Package`]: a program and its Keep.toml, and the manifest, config and layers they
//!   make ([`Package::build`]); read back from a manifest and its blobs, each checked
//!   against its digest ([`Package::from_manifest`]);
//! - [`layout`]: the OCI image layout on disk (`oci-layout`, `index.json`, `blobs/`), which
//!   skopeo and other tools read and write;
//! - [`Registry`]: push to and pull from a registry (the `oci-client` crate);
//! - [`Store`]: the local content-addressed store that pulled packages live in, so that a
//!   second run needs no network;
//! - [`auth`]: credentials from docker's and podman's auth files;
//! - [`signature`] and [`signing_key`]: signatures and keys in cosign's formats.

pub mod auth;
mod digest;
pub mod encryption;
pub mod layout;
pub mod media;
mod package;
mod reference;
mod registry;
pub mod signature;
pub mod signing_key;
pub mod store;

pub use digest::{Digest, DigestError};
pub use package::{Blob, Built, Descriptor, Encryption, Format, Package, PackageError, Platform};
pub use reference::PackageRef;
pub use registry::{Registry, RegistryOptions};
pub use store::Store;
