//! Attestation evidence for Keep: parse and verify what a Trusted Execution Environment
//! says about a Keep (AMD SEV-SNP reports, Intel TDX and SGX quotes), reduce it to one
//! [`Claims`] type, and judge the claims with a policy.
//!
//! Verification never reaches the network: certificates and other collateral come from the
//! evidence itself or from files, and the verification time is an input (evidence outlives
//! its certificates, and tests pin the moment).

#![warn(missing_docs)]

pub mod certificate;
pub mod claims;
pub mod cmw;
pub mod collect;
pub mod csr;
pub mod derived_key;
pub mod enarx;
mod error;
pub mod evidence;
pub mod intel;
pub mod platform;
pub mod policy;
pub mod request;
pub mod signer;
pub mod snp;
pub mod test_roots;
mod x509;

pub use claims::{Claims, TcbStatus, TeeKind};
pub use error::Error;
pub use evidence::{Endorsements, EvidenceKind, detect, inspect, verify};
pub use policy::{Policy, Rejection};
pub use test_roots::TestRoots;
pub use x509::{load_certificates, load_crl};
