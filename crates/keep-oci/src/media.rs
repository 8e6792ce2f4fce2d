//! Media types of a Keep package.

/// The manifest: an OCI image manifest.
pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index (a manifest per platform).
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The config blob of a Wasm OCI artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// The config blob of an OCI image (a package of [`crate::Format::Image`]).
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The program layer of a Wasm OCI artifact.
pub const WASM: &str = "application/wasm";
/// Keep's own layer: the Keep.toml the program runs with. Tools that do not know it skip
/// it, and it is part of the workload digest as it is for `keep digest`.
pub const KEEP_TOML: &str = "application/vnd.keep.config.v1+toml";
