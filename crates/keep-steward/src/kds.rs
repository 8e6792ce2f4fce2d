//! The VCEK a report needs, from AMD's Key Distribution Service (KDS), when neither the
//! request nor the Steward's `--collateral` carries it.
//!
//! A VCEK is addressed by product line, chip ID and reported TCB
//! ([`keep_attest::snp::kds_vcek`]); a version-2 report does not name its product line, so
//! each is asked in turn (the KDS answers 404 for the others). What is fetched is kept in a
//! cache directory shared across restarts (a VCEK never changes; it is checked like any other
//! certificate every time it is used). The CRL of each product line's ARK
//! (`/vcek/v1/{product}/crl`, the revoked ASKs and ASVKs) is fetched the first time a report
//! of that line is verified, and again once past its next update. The KDS limits clients
//! (about one VCEK per 10 s per address): a 429 is retried after its `Retry-After`, a few
//! times, within a bound.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use rustls::RootCertStore;
use x509_cert::crl::CertificateList;

use crate::fetch::{Service, store};

/// AMD's KDS.
pub use keep_attest::snp::KDS_URL as DEFAULT_URL;

/// Largest certificate or CRL accepted from the KDS.
const MAX_CERTIFICATE: usize = 64 * 1024;
/// How long a product line without a CRL (404) is not asked again.
const NO_CRL_FOR: Duration = Duration::from_secs(3600);

/// What is known of a product line's CRL: the CRL and its next update, or that the KDS has
/// none (until the time given).
#[derive(Debug, Clone)]
enum KnownCrl {
    Current(Arc<CertificateList>, SystemTime),
    None(SystemTime),
}

/// A client of AMD's KDS (or a mirror with the same layout).
#[derive(Debug, Clone)]
pub struct Kds {
    service: Service,
    cache: Option<PathBuf>,
    crls: Arc<Mutex<HashMap<String, KnownCrl>>>,
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
            crls: Arc::default(),
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

impl Kds {
    /// The CRLs already fetched that are current at `now`.
    pub fn current_crls(&self, now: SystemTime) -> Vec<CertificateList> {
        let Ok(known) = self.crls.lock() else {
            return Vec::new();
        };
        known
            .values()
            .filter_map(|crl| match crl {
                KnownCrl::Current(crl, due) if now < *due => Some(CertificateList::clone(crl)),
                _ => None,
            })
            .collect()
    }

    /// Whether the CRL of `product` is known (fetched and current, or known not to exist).
    pub fn knows_crl(&self, product: &str, now: SystemTime) -> bool {
        let Ok(known) = self.crls.lock() else {
            return false;
        };
        match known.get(product) {
            Some(KnownCrl::Current(_, due) | KnownCrl::None(due)) => now < *due,
            None => false,
        }
    }

    /// The CRL of `product`'s ARK (`/vcek/v1/{product}/crl`), from the cache or the KDS;
    /// `None` when the KDS has none. Fetched again once past its next update.
    pub fn crl(&self, product: &str, now: SystemTime) -> anyhow::Result<Option<CertificateList>> {
        let path = format!("/vcek/v1/{product}/crl");
        let cached = self
            .cache
            .as_ref()
            .map(|dir| dir.join(format!("crl-{product}.der")));
        let current = |crl: &CertificateList| {
            crl.tbs_cert_list
                .next_update
                .map(|t| t.to_system_time())
                .filter(|due| now < *due)
        };
        let from_disk = cached
            .as_ref()
            .and_then(|file| std::fs::read(file).ok())
            .and_then(|der| keep_attest::load_crl(&der).ok())
            .and_then(|crl| Some((current(&crl)?, crl)));
        let (due, crl) = match from_disk {
            Some(found) => found,
            None => {
                let url = self.service.url(&path);
                let Some(answer) = self.service.get(&path, MAX_CERTIFICATE).with_context(|| {
                    format!("AMD's CRL for {product} could not be fetched from {url}")
                })?
                else {
                    self.remember(product, KnownCrl::None(now + NO_CRL_FOR));
                    return Ok(None);
                };
                let crl = keep_attest::load_crl(&answer.body)
                    .map_err(|e| anyhow::anyhow!("the CRL from {url}: {e}"))?;
                let due = current(&crl)
                    .ok_or_else(|| anyhow::anyhow!("the CRL from {url} is past its next update"))?;
                if let Some(file) = &cached {
                    store(file, &answer.body);
                }
                (due, crl)
            }
        };
        self.remember(product, KnownCrl::Current(Arc::new(crl.clone()), due));
        Ok(Some(crl))
    }

    fn remember(&self, product: &str, crl: KnownCrl) {
        if let Ok(mut known) = self.crls.lock() {
            known.insert(product.to_owned(), crl);
        }
    }
}
