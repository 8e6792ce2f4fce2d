//! Intel's TCB collateral for a quote, from Intel's Provisioning Certification Service (PCS)
//! or a caching service with its layout (PCCS), when the Steward's `--collateral` has none:
//!
//! - `GET /{sgx|tdx}/certification/v4/tcb?fmspc=FMSPC`: the TCB info of the platform's
//!   FMSPC (from its PCK certificate), its issuer chain in `TCB-Info-Issuer-Chain`;
//! - `GET /{sgx|tdx}/certification/v4/qe/identity`: the Quoting Enclave's identity;
//! - `GET /sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der`: the PCK CA's CRL;
//! - the Intel SGX Root CA's CRL: from `certificates.trustedservices.intel.com` when the
//!   service is Intel's PCS, else from the service's `/sgx/certification/v4/rootcacrl`
//!   (a PCCS serves it hex-encoded).
//!
//! `dcap-qvl` has such a fetcher, but only with its `report` feature, which brings `reqwest`
//! and a second HTTP and TLS stack; the four GETs are made here with the Steward's own client.
//!
//! What is fetched is kept in memory and in a cache directory shared across restarts (one
//! directory per FMSPC in `--collateral`'s layout), and fetched again once the earliest
//! `nextUpdate` of its parts has passed.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use keep_attest::intel::Collateral;
use rustls::RootCertStore;

use crate::fetch::{Answer, Service, store};

/// Intel's PCS.
pub const DEFAULT_URL: &str = "https://api.trustedservices.intel.com";
/// Where Intel publishes the Intel SGX Root CA's CRL.
const INTEL_ROOT_CRL: (&str, &str) = (
    "https://certificates.trustedservices.intel.com",
    "/IntelSGXRootCA.der",
);
/// Largest answer accepted (a TCB info is a few KiB; CRLs of the PCK CA grow).
const MAX_ANSWER: usize = 1024 * 1024;

/// A client of the PCS (or a PCCS).
#[derive(Debug)]
pub struct Pcs {
    service: Service,
    root_crl: Option<Service>,
    cache: Option<PathBuf>,
    fetched: Mutex<HashMap<String, (Collateral, SystemTime)>>,
}

impl Pcs {
    /// A client of the service at `base`, trusting the Mozilla roots and `extra_roots`,
    /// caching in `cache`.
    pub fn new(
        base: &str,
        extra_roots: RootCertStore,
        cache: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let service =
            Service::new("the PCS", base, extra_roots.clone()).map_err(|e| anyhow!("PCS {e:#}"))?;
        let root_crl = if service.is_at(DEFAULT_URL) {
            Some(Service::new("Intel", INTEL_ROOT_CRL.0, extra_roots)?)
        } else {
            None
        };
        Ok(Self {
            service,
            root_crl,
            cache,
            fetched: Mutex::new(HashMap::new()),
        })
    }

    /// The collateral of `quote` valid at `now`: from memory, the cache, or the service.
    pub fn collateral(&self, quote: &[u8], now: SystemTime) -> anyhow::Result<Collateral> {
        let keep_attest::intel::PcsKey { tee, fmspc, ca } = keep_attest::intel::pcs_key(quote)?;
        let key = format!("{tee}-{fmspc}-{ca}");
        let remembered = self
            .fetched
            .lock()
            .ok()
            .and_then(|map| map.get(&key).cloned());
        if let Some((collateral, due)) = remembered
            && now < due
        {
            return Ok(collateral);
        }
        let dir = self
            .cache
            .as_ref()
            .map(|cache| cache.join("pcs").join(&key));
        let cached = dir
            .as_ref()
            .and_then(|dir| Collateral::from_dir(dir).ok().flatten())
            .and_then(|c| Some((c.next_update().ok()?, c)))
            .filter(|(due, _)| now < *due);
        let (due, collateral) = match cached {
            Some(found) => found,
            None => {
                let collateral = self.fetch(tee, &fmspc, ca)?;
                let due = collateral.next_update().context("the fetched collateral")?;
                if let Some(dir) = &dir {
                    for (file, bytes) in [
                        ("tcb_info.json", collateral.tcb_info.as_bytes()),
                        ("qe_identity.json", collateral.qe_identity.as_bytes()),
                        (
                            "tcb_signing_chain.pem",
                            collateral.tcb_signing_chain.as_bytes(),
                        ),
                        ("root_ca_crl.der", &collateral.root_ca_crl),
                        ("pck_crl.der", &collateral.pck_crl),
                    ] {
                        store(&dir.join(file), bytes);
                    }
                }
                (due, collateral)
            }
        };
        if now >= due {
            anyhow::bail!(
                "the {tee} collateral of FMSPC {fmspc} that {} serves is out of date (its \
                 next update was due {})",
                self.service.url(""),
                humantime::format_rfc3339_seconds(due)
            );
        }
        if let Ok(mut map) = self.fetched.lock() {
            map.insert(key, (collateral.clone(), due));
        }
        Ok(collateral)
    }

    fn fetch(&self, tee: &str, fmspc: &str, ca: &str) -> anyhow::Result<Collateral> {
        let get = |service: &Service, path: &str| -> anyhow::Result<Answer> {
            service
                .get(path, MAX_ANSWER)
                .and_then(|answer| answer.ok_or_else(|| anyhow!("not found")))
                .with_context(|| format!("GET {}", service.url(path)))
        };
        let header = |answer: &Answer, names: &[&str], path: &str| -> anyhow::Result<String> {
            let value = names
                .iter()
                .find_map(|name| answer.headers.get(*name))
                .ok_or_else(|| anyhow!("{}: no {} header", self.service.url(path), names[0]))?;
            let text = value.to_str().context("the issuer chain header")?;
            percent_decode(text)
        };
        let tcb_path = format!("/{tee}/certification/v4/tcb?fmspc={fmspc}");
        let tcb = get(&self.service, &tcb_path)?;
        let tcb_signing_chain = header(
            &tcb,
            &["TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"],
            &tcb_path,
        )?;
        let qe = get(
            &self.service,
            &format!("/{tee}/certification/v4/qe/identity"),
        )?;
        let pck_crl = get(
            &self.service,
            &format!("/sgx/certification/v4/pckcrl?ca={ca}&encoding=der"),
        )?;
        let root_ca_crl = match &self.root_crl {
            Some(intel) => get(intel, INTEL_ROOT_CRL.1)?.body,
            None => {
                let body = get(&self.service, "/sgx/certification/v4/rootcacrl")?.body;
                // A PCCS answers with the DER in hex.
                match std::str::from_utf8(&body).ok().map(str::trim) {
                    Some(text)
                        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) =>
                    {
                        hex::decode(text).context("the root CA CRL (hex)")?
                    }
                    _ => body,
                }
            }
        };
        let text = |answer: Answer, what: &str| {
            String::from_utf8(answer.body).map_err(|_| anyhow!("the {what} is not text"))
        };
        Ok(Collateral {
            tcb_info: text(tcb, "TCB info")?,
            qe_identity: text(qe, "QE identity")?,
            tcb_signing_chain,
            root_ca_crl,
            pck_crl: pck_crl.body,
            pck_chain: None,
        })
    }
}

/// The PEM chain of an issuer-chain header, which the PCS percent-encodes.
fn percent_decode(text: &str) -> anyhow::Result<String> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|chain| chain.into_owned())
        .context("the issuer chain is not text")
}

#[cfg(test)]
mod tests {
    #[test]
    fn issuer_chains_are_percent_decoded() {
        assert_eq!(
            super::percent_decode("-----BEGIN%20CERTIFICATE-----%0AMII%2B").unwrap(),
            "-----BEGIN CERTIFICATE-----\nMII+"
        );
        assert!(super::percent_decode("%C3%28").is_err(), "not UTF-8");
    }
}
