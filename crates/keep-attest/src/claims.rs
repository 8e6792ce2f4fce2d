//! [`Claims`]: what verified evidence says, in one shape for every TEE.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The kind of Trusted Execution Environment that produced evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeeKind {
    /// AMD SEV-SNP confidential VM.
    SevSnp,
    /// Intel TDX trust domain.
    Tdx,
    /// Intel SGX enclave.
    Sgx,
    /// No TEE: the process backend.
    None,
}

/// How the platform's TCB compares with the vendor's current recommendation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TcbStatus {
    /// Current.
    UpToDate,
    /// Current, but software mitigations are needed.
    SwHardeningNeeded,
    /// Current, but the platform configuration needs changes.
    ConfigurationNeeded,
    /// Both of the above.
    ConfigurationAndSwHardeningNeeded,
    /// Older than the vendor's current TCB.
    OutOfDate,
    /// Older, and the configuration needs changes.
    OutOfDateConfigurationNeeded,
    /// Revoked by the vendor.
    Revoked,
    /// Older than every TCB level the vendor lists (Intel: "TCB not supported").
    NotSupported,
    /// No TCB information was evaluated (SEV-SNP: the TCB is endorsed by the VCEK/VLEK, and
    /// a policy's minimum TCB judges it; Intel: no collateral supplied).
    NotEvaluated,
}

/// What verified evidence says about a Keep. Byte strings are lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    /// Which TEE.
    pub tee: TeeKind,
    /// Launch measurements by name: `measurement` (SEV-SNP), `mrtd` and `rtmr0`..`rtmr3`
    /// (TDX), `mrenclave` (SGX).
    pub measurements: BTreeMap<String, String>,
    /// The 64 bytes the Keep bound into the evidence (its key and workload digest).
    pub report_data: String,
    /// Data the host supplied at launch: SEV-SNP `host_data`, TDX `mrconfigid`.
    pub host_data: Option<String>,
    /// Digests of the keys that signed the launched image: SEV-SNP `id_key_digest` and
    /// `author_key_digest`, SGX `mrsigner`, TDX `mrsignerseam`.
    pub signers: BTreeMap<String, String>,
    /// The platform's TCB components by name (security version numbers).
    pub tcb: BTreeMap<String, u64>,
    /// The TCB's standing with the vendor.
    pub tcb_status: TcbStatus,
    /// The evidence chains to a test root ([`crate::TestRoots`]), not to AMD's or Intel's:
    /// it proves nothing about real hardware.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub insecure_test_root: bool,
    /// Whether the TEE allows debugging (its memory is then readable by the host).
    pub debug: bool,
    /// Security advisories that apply to the platform's TCB.
    pub advisories: Vec<String>,
    /// TEE-specific facts worth showing (versions, policy bits, signing key kind).
    pub details: BTreeMap<String, String>,
}

impl Claims {
    /// The claims as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        // Serializing this struct (strings, numbers, maps with string keys) cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl TeeKind {
    /// The name used in JSON and policies: `sev-snp`, `tdx`, `sgx`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SevSnp => "sev-snp",
            Self::Tdx => "tdx",
            Self::Sgx => "sgx",
            Self::None => "none",
        }
    }

    /// The claim names this TEE's measurements, signers and host data go by.
    pub fn value_names(self) -> &'static [&'static str] {
        match self {
            Self::SevSnp => &[
                "measurement",
                "id_key_digest",
                "author_key_digest",
                "host_data",
            ],
            Self::Tdx => &[
                "mrtd",
                "rtmr0",
                "rtmr1",
                "rtmr2",
                "rtmr3",
                "mrsignerseam",
                "host_data",
            ],
            Self::Sgx => &["mrenclave", "mrsigner"],
            Self::None => &[],
        }
    }
}

/// The name used in JSON and policies: `up-to-date`, `out-of-date`, ...
impl std::fmt::Display for TcbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        f.write_str(&name)
    }
}

impl std::fmt::Display for TeeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Claims {
    /// The claim named `name` (a measurement, a signer digest or `host_data`).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.measurements
            .get(name)
            .or_else(|| self.signers.get(name))
            .map(String::as_str)
            .or_else(|| {
                (name == "host_data")
                    .then_some(self.host_data.as_deref())
                    .flatten()
            })
    }
}
