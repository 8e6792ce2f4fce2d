//! The Steward: an HTTPS service that verifies the evidence in a Keep's certificate request
//! against a policy and issues a short-lived certificate stating the Keep's TEE,
//! measurements, TCB and workload digest (`keep steward serve`).
//!
//! - [`decide`]: the decision on one request (verify, judge, issue), without HTTP;
//! - [`ca`]: the certificate authority that signs;
//! - [`server`]: the HTTPS endpoints;
//! - [`kds`]: the VCEKs requests lack, from AMD's Key Distribution Service;
//! - [`pcs`]: Intel's TCB collateral for quotes, from Intel's PCS or a PCCS;
//! - [`metrics`]: Prometheus counters;
//! - [`versions`]: the versions of sealed stores, witnessed against rollback.
//!
//! The request format is [`keep_attest::request`]; what certificates state is
//! [`keep_attest::certificate`]; the client side of the protocol is `keep_identity::steward`.

#![warn(missing_docs)]

pub mod ca;
pub mod decide;
mod fetch;
pub mod kds;
pub mod metrics;
pub mod pcs;
mod pool;
pub mod secrets;
pub mod server;
pub mod versions;

pub use ca::CertificateAuthority;
pub use decide::{Issued, Refusal, Steward, StewardBuilder};
pub use metrics::Metrics;
