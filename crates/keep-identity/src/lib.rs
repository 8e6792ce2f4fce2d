//! The Keep's identity: its keys and certificate, the certificate requests that carry its
//! evidence to the Steward, the Steward's client, and the rustls configurations that present
//! the certificate.
//!
//! - [`tls`]: where the certificate comes from ([`IdentitySource`]), the identity a run
//!   presents and can replace while connections are open ([`LiveIdentity`]), and the rustls
//!   client and server configurations built from `[tls]` ([`TlsSetup`]);
//! - [`attested`]: attestation with the Steward before anything is opened, and renewal;
//! - [`steward`]: the Steward's protocol, client side (requests, the HTTPS exchange);
//! - [`peer`]: reading the chain a Keep presents, for relying parties (`keep verify`).
//!
//! Both the runtime and the Steward use this crate; nothing here links the Steward's server.

#![warn(missing_docs)]

pub mod attested;
pub mod peer;
pub mod steward;
pub mod tls;

pub use attested::{AttestedIdentity, RenewalEvent, RenewedSecrets};
pub use tls::{Identity, IdentitySource, LiveIdentity, PlatformEvidence, StewardSource, TlsSetup};
