//! What went wrong while reading or verifying evidence.

use std::time::SystemTime;

/// Why evidence was rejected. Every variant names what failed; `Display` is the message a
/// user sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bytes that are not what they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The structure being read.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Well-formed, but a kind or version Keep does not verify.
    #[error("unsupported {what}: {detail}")]
    Unsupported {
        /// The structure being read.
        what: &'static str,
        /// Which kind or version it is.
        detail: String,
    },
    /// Verification needs something the caller did not supply.
    #[error("missing collateral: {0}")]
    MissingCollateral(String),
    /// The certificates do not form a chain to a trusted root.
    #[error("certificate chain invalid: {0}")]
    Chain(String),
    /// A certificate of the chain is not valid at the verification time.
    #[error(
        "certificate `{subject}` is not valid at {}: valid from {} to {}",
        rfc3339(*at), rfc3339(*not_before), rfc3339(*not_after)
    )]
    NotValidAt {
        /// The certificate's subject.
        subject: String,
        /// The verification time.
        at: SystemTime,
        /// Start of the certificate's validity.
        not_before: SystemTime,
        /// End of the certificate's validity.
        not_after: SystemTime,
    },
    /// The evidence's signature does not verify with the endorsed key.
    #[error("signature invalid: {0}")]
    Signature(String),
    /// The TCB collateral does not verify or does not cover the evidence.
    #[error("TCB collateral rejected: {0}")]
    Collateral(String),
    /// The evidence does not bind what it must (the request's key and workload).
    #[error("binding invalid: {0}")]
    Binding(String),
    /// The TCB the evidence reports differs from the TCB its key was endorsed for.
    #[error("TCB mismatch: {0}")]
    TcbMismatch(String),
}

impl Error {
    pub(crate) fn malformed(what: &'static str, reason: impl ToString) -> Self {
        Self::Malformed {
            what,
            reason: reason.to_string(),
        }
    }
}

/// `time` as an RFC 3339 UTC timestamp (seconds precision).
pub(crate) fn rfc3339(time: SystemTime) -> String {
    match der::asn1::GeneralizedTime::from_system_time(time) {
        Ok(t) => {
            let dt = t.to_date_time();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minutes(),
                dt.seconds()
            )
        }
        Err(_) => format!("{time:?}"),
    }
}
