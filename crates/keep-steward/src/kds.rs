//! The VCEK a report needs, from AMD's Key Distribution Service (KDS), when neither the
//! request nor the Steward's `--collateral` carries it.
//!
//! A VCEK is addressed by product line, chip ID and reported TCB
//! ([`keep_attest::snp::kds_vcek`]); a version-2 report does not name its product line, so
//! each is asked in turn (the KDS answers 404 for the others). What is fetched is kept in a
//! cache directory shared across restarts (a VCEK never changes; it is checked like any other
//! certificate every time it is used). The KDS limits clients (about one VCEK per 10 s per
//! address): a 429 is retried after its `Retry-After`, a few times, within a bound.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use rustls::RootCertStore;

use crate::fetch::{Service, store};

/// AMD's KDS.
pub use keep_attest::snp::KDS_URL as DEFAULT_URL;

/// Largest certificate accepted from the KDS.
const MAX_CERTIFICATE: usize = 64 * 1024;

/// A client of AMD's KDS (or a mirror with the same layout).
#[derive(Debug, Clone)]
pub struct Kds {
    service: Service,
    cache: Option<PathBuf>,
}

impl Kds {
    /// A client of the KDS at `base` (`https://HOST[:PORT][/PATH]`), trusting the Mozilla
    /// roots and `extra_roots`, caching what it fetches in `cache`.
    pub fn new(
        base: &str,
        extra_roots: RootCertStore,
        cache: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            service: Service::new("the KDS", base, extra_roots)
                .map_err(|e| anyhow::anyhow!("KDS {e:#}"))?,
            cache,
        })
    }

    /// The most a 429's `Retry-After` is waited for.
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.service = self.service.max_wait(max_wait);
        self
    }

    /// The VCEK (DER) that signs `report`, from the cache or the KDS. The error says what
    /// was asked where, and what came back.
    pub fn vcek(&self, report: &[u8]) -> anyhow::Result<Vec<u8>> {
        let candidates = keep_attest::snp::kds_vcek(report)?;
        let mut answers = Vec::new();
        for candidate in &candidates {
            let cached = self
                .cache
                .as_ref()
                .map(|dir| dir.join(&candidate.file_name));
            if let Some(der) = cached.as_ref().and_then(|path| std::fs::read(path).ok()) {
                return Ok(der);
            }
            let url = self.service.url(&candidate.path);
            match self.service.get(&candidate.path, MAX_CERTIFICATE) {
                Ok(Some(answer)) => {
                    if let Some(path) = &cached {
                        store(path, &answer.body);
                    }
                    return Ok(answer.body);
                }
                Ok(None) => answers.push(format!("{url}: not found")),
                Err(e) => bail!("the VCEK could not be fetched from {url}: {e:#}"),
            }
        }
        bail!("AMD's KDS has no such VCEK ({})", answers.join("; "))
    }
}
