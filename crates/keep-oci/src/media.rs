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
/// Keep's own layer: a CA file (PEM) that the package's Keep.toml names (`[tls] ca`,
/// `client_ca`), titled with the path the Keep.toml gives it. A package carries them so that
/// its digest, and so its signature, covers every trust anchor the workload uses.
pub const KEEP_CA: &str = "application/vnd.keep.ca.v1+pem";
/// The annotation that names a layer's file: what ORAS clients save it as, and a CA file's
/// name in its Keep.toml.
pub const TITLE: &str = "org.opencontainers.image.title";
/// The program layer encrypted with ocicrypt ([`crate::encryption`]).
pub const WASM_ENCRYPTED: &str = "application/wasm+encrypted";
/// The annotation of an encrypted program layer that gives the SHA-256 of the program it
/// decrypts to: what the workload digest covers, known before the key is.
pub const PROGRAM_DIGEST: &str = "dev.keep.program.digest";
