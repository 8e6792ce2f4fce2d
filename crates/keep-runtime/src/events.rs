//! What happens during a run that the caller may want to tell its user. The runtime never
//! prints: it reports [`Event`]s to the caller's [`EventSink`], and the caller (the `keep`
//! binary) decides what to show, and whether to end the process.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use keep_config::StewardUrl;
use keep_identity::RenewalEvent;

use crate::WorkloadDigest;

/// One thing that happened during a run.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The Steward certified the Keep; listeners present this certificate.
    Attested {
        /// The Steward.
        steward: &'a StewardUrl,
        /// The workload its certificate names.
        workload: WorkloadDigest,
        /// The TEE the certificate states (`none`: the process backend).
        tee: &'static str,
        /// The Steward trusted a test root for this Keep's evidence (`--insecure-test-roots`).
        insecure_test_root: bool,
        /// When the certificate expires (it is renewed before).
        not_after: SystemTime,
    },
    /// The certificate was renewed, or a renewal failed; secrets asked for again changed.
    Renewal(RenewalEvent),
    /// Secrets delivered as files are served from memory at `dir` in the guest.
    SecretFiles {
        /// Where the guest sees them.
        dir: &'a str,
        /// Whether the kernel keeps their pages out of swap (tmpfs `noswap`, Linux 6.4+).
        noswap: bool,
    },
    /// A `[[files]]` listener is bound.
    ListenerBound {
        /// Its name in `[[files]]`.
        name: &'a str,
        /// `tcp` or `tls`.
        prot: &'static str,
        /// The address it got (with the port the kernel chose for port 0).
        addr: SocketAddr,
    },
    /// `tls` listeners present a self-signed certificate made at start-up, which no client
    /// can verify.
    SelfSignedCertificate {
        /// SHA-256 of the certificate, colon-separated hex (to pin it).
        fingerprint: String,
    },
    /// The process confined itself before the guest's first instruction.
    Confined(&'a keep_confine::Report),
    /// A sealed directory failed an operation of the guest, which got `EIO`: content that
    /// does not authenticate (changed by the host), a log that cannot be written, or a
    /// Steward that did not record a commit.
    SealedFailure {
        /// The directory, as the guest sees it.
        dir: &'a str,
        /// What failed.
        error: &'a keep_sealed::SealedError,
    },
    /// The guest ran past its timeout and, blocked in a host call, could not be interrupted
    /// within a grace period. The run cannot end on its own: the caller should end the
    /// process (the `keep` binary exits with the timeout status).
    Unresponsive {
        /// The timeout it ran past.
        timeout: Duration,
    },
}

/// A function that hears of events, from the thread where they happen.
type Report = dyn Fn(Event<'_>) + Send + Sync;

/// Where a run reports its [`Event`]s. The default drops them.
#[derive(Clone, Default)]
pub struct EventSink(Option<Arc<Report>>);

impl EventSink {
    /// A sink that calls `report` for each event (from the thread where it happens).
    pub fn new(report: impl Fn(Event<'_>) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(report)))
    }

    /// Reports `event`.
    pub fn report(&self, event: Event<'_>) {
        if let Some(report) = &self.0 {
            report(event);
        }
    }
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "EventSink(..)"
        } else {
            "EventSink(none)"
        })
    }
}
