//! The workload digest: one SHA-256 naming what a Keep runs, for attestation policies,
//! certificates and verifiers (`keep digest`).
//!
//! ```text
//! digest = SHA-256( "keep-workload-v2\n"
//!                   "program sha256:<hex SHA-256 of the program's WebAssembly binary>\n"
//!                   "config <canonical configuration, or `none`>\n" )
//! ```
//!
//! The program is hashed as WebAssembly binary, so a `.wat` file and the `.wasm` it compiles
//! to have the same digest. The canonical configuration is
//! [`keep_config::Config::canonical`]: the configuration's meaning as compact JSON, without
//! what only locates things on one host, with CA files by the content that was read.
//!
//! Both inputs are the bytes the Keep runs: [`crate::run`] compiles the same [`Program`] and
//! uses the same [`keep_config::Config`] (CA files included) that were digested, so nothing
//! read from disk between the digest and the run can change what runs under the digest's
//! name.

use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::Program;

/// A workload digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadDigest(pub [u8; 32]);

impl fmt::Display for WorkloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// The digest of `program` run with `config` (if any).
pub fn workload_digest(program: &Program, config: Option<&keep_config::Config>) -> WorkloadDigest {
    workload_digest_of(&Sha256::digest(&program.bytes).into(), config)
}

/// The digest of the program whose SHA-256 is `program_sha256` run with `config`: for a
/// program known by its digest before its bytes are (an encrypted package's).
pub fn workload_digest_of(
    program_sha256: &[u8; 32],
    config: Option<&keep_config::Config>,
) -> WorkloadDigest {
    let canonical = match config {
        Some(config) => config.canonical(),
        None => "none".to_owned(),
    };
    let mut hasher = Sha256::new();
    hasher.update(b"keep-workload-v2\n");
    hasher.update(format!("program sha256:{}\n", hex::encode(program_sha256)));
    hasher.update(format!("config {canonical}\n"));
    WorkloadDigest(hasher.finalize().into())
}
