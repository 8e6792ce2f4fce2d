//! The attestation policy: a TOML file judging [`Claims`]. One table per TEE that may be
//! accepted; evidence from a TEE without a table is refused. Every rejection names the rule
//! and the values that failed.
//!
//! ```toml
//! require_report_data = true      # the verifier must supply the expected report data
//!
//! [sev-snp]
//! measurement = ["ff71..."]       # allowed values of a claim (any claim name of the TEE)
//! id_key_digest = ["d71a..."]
//! host_data = ["00..."]
//! min_tcb = { bootloader = 3, snp = 8, microcode = 115 }
//! debug = false                   # the default
//! max_vmpl = 0                    # SEV-SNP: the report's privilege level (VMPL) at most this
//! smt = false                     # SEV-SNP guest policy: refuse guests that allow SMT
//! migration_agent = false         # SEV-SNP guest policy: the default refuses a migration agent
//!
//! [tdx]
//! mrtd = ["..."]
//! tcb_status = ["up-to-date", "sw-hardening-needed"]
//! allowed_advisories = ["INTEL-SA-00615"]
//!
//! [[workload]]                    # with any [[workload]], only listed workloads are accepted
//! digest = "sha256:6b1f..."       # what `keep digest` prints
//! names = ["api.example.com", "spiffe://example.com/api"]   # names it may be certified as
//!
//! [[workload]]                    # any workload from a package signed by one of these keys
//! signers = ["keys/release.pub"]  # cosign public keys, relative to the policy file
//! repository = "registry.example/team/api"   # optional: signed for this repository
//! names = ["api.example.com"]
//!
//! [[fetch]]                       # Keeps that attest before fetching may fetch from here
//! repository = "registry.example/team/api"
//! manifests = ["sha256:3c9a..."]  # optional: only a reference pinned to one of these
//! ```
//!
//! A `[[fetch]]` lets a Keep that has not fetched its workload yet be certified to fetch it
//! (`keep run --fetch-steward`): its certificate states the package it is about to fetch and
//! no workload, carries no names, and serves only to obtain the registry credentials that
//! `[[release]]` rules give to that repository. Without `[[fetch]]`, such requests are
//! refused. The TEE tables apply to them as to every request.
//!
//! A `[[workload]]` accepts a workload when all it gives holds: its `digest`, a valid
//! signature of the workload's package by one of its `signers`, its `repository`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use keep_config::ConfigError;
use serde::Deserialize;

use crate::signer::SignerKey;
use crate::{Claims, TcbStatus, TeeKind};

/// A parsed policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Require the claims' report data to equal what the verifier expects (the binding of
    /// the Keep's key and workload).
    #[serde(default)]
    pub require_report_data: bool,
    /// Rules for AMD SEV-SNP evidence.
    #[serde(default, rename = "sev-snp")]
    pub sev_snp: Option<TeeRules>,
    /// Rules for Intel TDX evidence.
    #[serde(default)]
    pub tdx: Option<TeeRules>,
    /// Rules for Intel SGX evidence.
    #[serde(default)]
    pub sgx: Option<TeeRules>,
    /// Rules for evidence of kind `none` (the process backend: no TEE at all).
    #[serde(default)]
    pub none: Option<TeeRules>,
    /// The workloads that may be certified, with the names each may have. Empty: any
    /// workload, under no name.
    #[serde(default, rename = "workload")]
    pub workloads: Vec<WorkloadRule>,
    /// The packages Keeps may be certified to fetch before they know their workload.
    /// Empty: none.
    #[serde(default, rename = "fetch")]
    pub fetches: Vec<FetchRule>,
}

/// A repository Keeps may fetch from after attestation (`[[fetch]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRule {
    /// The repository, `HOST[:PORT]/REPOSITORY`.
    pub repository: String,
    /// Manifest digests (`sha256:<hex>`) a reference must be pinned to; empty: any
    /// reference to the repository, tags included.
    #[serde(default)]
    pub manifests: Vec<String>,
}

impl FetchRule {
    /// Whether this rule lets a Keep fetch `pinned` (a manifest digest, if the reference
    /// names one) from `repository`.
    fn accepts(&self, repository: &str, pinned: Option<&str>) -> bool {
        self.repository == repository
            && (self.manifests.is_empty()
                || pinned.is_some_and(|p| self.manifests.iter().any(|m| m.eq_ignore_ascii_case(p))))
    }
}

/// A workload the policy accepts (`[[workload]]`): all it gives must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadRule {
    /// The workload digest, `sha256:<hex>`.
    #[serde(default)]
    pub digest: Option<String>,
    /// Keys one of which must have signed the package the workload came from (cosign
    /// public key files, relative to the policy file); loaded by [`Policy::parse`].
    #[serde(default, rename = "signers")]
    signer_files: Vec<PathBuf>,
    /// The keys of `signers`, once loaded.
    #[serde(skip)]
    pub signers: Vec<SignerKey>,
    /// The repository the package must have been signed for (`HOST[:PORT]/REPOSITORY`).
    #[serde(default)]
    pub repository: Option<String>,
    /// The DNS names and URIs its certificates may carry.
    #[serde(default)]
    pub names: Vec<String>,
}

/// What the Steward found about the package a Keep states its workload came from.
#[derive(Debug, Clone, Copy)]
pub struct PackageFacts<'a> {
    /// The repository it was pulled from.
    pub repository: &'a str,
    /// Its manifest's digest.
    pub manifest_digest: &'a str,
    /// Fingerprints ([`crate::signer::fingerprint`]) of the policy's keys with a valid
    /// signature of it for that repository.
    pub signed_by: &'a [String],
}

impl WorkloadRule {
    /// Whether this rule accepts the workload `digest` from `package`.
    fn accepts(&self, digest: &str, package: Option<&PackageFacts<'_>>) -> bool {
        let digest_holds = self
            .digest
            .as_ref()
            .is_none_or(|d| d.eq_ignore_ascii_case(digest));
        let signers_hold = self.signers.is_empty()
            || package.is_some_and(|p| {
                self.signers
                    .iter()
                    .any(|key| p.signed_by.contains(&key.fingerprint()))
            });
        let repository_holds = self
            .repository
            .as_ref()
            .is_none_or(|r| package.is_some_and(|p| p.repository == r));
        digest_holds && signers_hold && repository_holds
    }
}

/// What one TEE's claims must satisfy.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TeeRules {
    /// Whether a debuggable TEE is acceptable (its memory is readable by the host).
    #[serde(default)]
    pub debug: bool,
    /// Minimum security version of each named TCB component.
    #[serde(default)]
    pub min_tcb: BTreeMap<String, u64>,
    /// Acceptable TCB statuses; without it, anything but `revoked`.
    #[serde(default)]
    pub tcb_status: Option<Vec<TcbStatus>>,
    /// Advisories that may apply to the platform; without it, any.
    #[serde(default)]
    pub allowed_advisories: Option<Vec<String>>,
    /// SEV-SNP: the highest VMPL (virtual machine privilege level) the report may have been
    /// requested at; 0 is the guest kernel itself, higher levels run under a paravisor.
    #[serde(default)]
    pub max_vmpl: Option<u8>,
    /// SEV-SNP: whether a guest whose policy allows SMT (sharing its cores' siblings with
    /// other tenants) is acceptable; without it, yes.
    #[serde(default)]
    pub smt: Option<bool>,
    /// SEV-SNP: whether a guest whose policy lets a migration agent (which can read its
    /// memory to move it) be associated is acceptable; default no.
    #[serde(default)]
    pub migration_agent: bool,
    /// Allowed values (hex) of named claims: measurements, signers, `host_data`.
    #[serde(flatten)]
    pub values: BTreeMap<String, Vec<String>>,
}

/// SEV-SNP guest policy bits (AMD SEV-SNP ABI, `GUEST_POLICY`).
const POLICY_SMT: u64 = 1 << 16;
const POLICY_MIGRATE_MA: u64 = 1 << 18;

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule, as written in the policy: `[sev-snp].measurement`.
    pub rule: String,
    /// What the claims hold and what the rule wanted.
    pub reason: String,
}

/// The policy refused the claims; every failed rule is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Rejection(pub Vec<Violation>);

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the attestation policy rejects the evidence:")?;
        for violation in &self.0 {
            write!(f, "\n  {}: {}", violation.rule, violation.reason)?;
        }
        Ok(())
    }
}

impl Policy {
    /// Reads and checks a policy file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read the policy: {e}")))?;
        Self::parse(&text, path)
    }

    /// Parses and checks policy text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let policy: Self = keep_config::parse_toml(text, path)?;
        for (tee, rules) in policy.tables() {
            let Some(rules) = rules else { continue };
            let snp_only = [
                ("max_vmpl", rules.max_vmpl.is_some()),
                ("smt", rules.smt.is_some()),
                ("migration_agent", rules.migration_agent),
            ];
            if let Some((name, _)) = snp_only
                .iter()
                .find(|(_, given)| *given && tee != TeeKind::SevSnp)
            {
                return Err(ConfigError::whole_file(
                    path,
                    format!("[{tee}].{name}: only SEV-SNP evidence has it (write it in [sev-snp])"),
                ));
            }
            for (name, values) in &rules.values {
                if !tee.value_names().contains(&name.as_str()) {
                    return Err(ConfigError::whole_file(
                        path,
                        format!(
                            "[{tee}] has no claim `{name}`; its claims are: {}",
                            if tee.value_names().is_empty() {
                                "none".to_owned()
                            } else {
                                tee.value_names().join(", ")
                            }
                        ),
                    ));
                }
                if let Some(bad) = values.iter().find(|v| hex::decode(v).is_err()) {
                    return Err(ConfigError::whole_file(
                        path,
                        format!("[{tee}].{name}: `{bad}` is not hex"),
                    ));
                }
            }
        }
        let mut policy = policy;
        let base = path.parent().unwrap_or(Path::new("."));
        for (i, workload) in policy.workloads.iter_mut().enumerate() {
            let at = |what: String| {
                ConfigError::whole_file(path, format!("[[workload]] {}: {what}", i + 1))
            };
            if let Some(digest) = &workload.digest
                && !is_sha256(digest)
            {
                return Err(at(format!(
                    "digest `{digest}` is not sha256:<64 hex digits> (what `keep digest` prints)"
                )));
            }
            if workload.digest.is_none() && workload.signer_files.is_empty() {
                return Err(at(
                    "give the workload's `digest`, its package's `signers`, or both".into(),
                ));
            }
            if workload.repository.is_some() && workload.signer_files.is_empty() {
                return Err(at(
                    "`repository` is what a signature names: it needs `signers`".into(),
                ));
            }
            workload.signers = workload
                .signer_files
                .iter()
                .map(|file| {
                    SignerKey::load(&base.join(file)).map_err(|e| at(format!("signers: {e}")))
                })
                .collect::<Result<_, _>>()?;
        }
        for (i, fetch) in policy.fetches.iter().enumerate() {
            let at = |what: String| {
                ConfigError::whole_file(path, format!("[[fetch]] {}: {what}", i + 1))
            };
            if !fetch.repository.contains('/') || fetch.repository.contains(['@', ' ']) {
                return Err(at(format!(
                    "repository `{}` is not HOST[:PORT]/REPOSITORY",
                    fetch.repository
                )));
            }
            if let Some(bad) = fetch.manifests.iter().find(|m| !is_sha256(m)) {
                return Err(at(format!(
                    "manifest `{bad}` is not sha256:<64 hex digits>"
                )));
            }
        }
        Ok(policy)
    }

    /// Judges a Keep that asks to fetch `pinned` (the manifest digest its reference names,
    /// if any) from `repository` before it knows its workload, under `names`: a `[[fetch]]`
    /// must accept it, and it may have no names (it runs nothing yet).
    pub fn evaluate_fetch(
        &self,
        repository: &str,
        pinned: Option<&str>,
        names: &[String],
    ) -> Result<(), Rejection> {
        let mut violations = Vec::new();
        if !self.fetches.iter().any(|f| f.accepts(repository, pinned)) {
            violations.push(Violation {
                rule: "[[fetch]]".into(),
                reason: match pinned {
                    _ if self.fetches.is_empty() => {
                        "the policy lets no Keep fetch after attestation".to_owned()
                    }
                    Some(digest) => format!("fetching {repository}@{digest} is not in the policy"),
                    None => format!(
                        "fetching from {repository} by tag is not in the policy (its \
                         `[[fetch]]` rules need a reference pinned to a manifest digest, or \
                         the repository is not listed)"
                    ),
                },
            });
        }
        if let Some(name) = names.first() {
            violations.push(Violation {
                rule: "[[fetch]]".into(),
                reason: format!(
                    "a Keep about to fetch its workload is certified under no name, not `{name}`"
                ),
            });
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Rejection(violations))
        }
    }

    /// Every signer key the policy names (each once), to check a package's signatures with.
    pub fn signer_keys(&self) -> Vec<&SignerKey> {
        let mut keys: Vec<&SignerKey> = Vec::new();
        for key in self.workloads.iter().flat_map(|w| &w.signers) {
            if !keys.iter().any(|k| k.spki == key.spki) {
                keys.push(key);
            }
        }
        keys
    }

    /// Judges a workload (from `package`, if the Keep states one) and the names it asks
    /// for: with `[[workload]]` tables, one must accept the workload; every name must be
    /// listed by one that does.
    pub fn evaluate_workload(
        &self,
        digest: &[u8; 32],
        names: &[String],
        package: Option<&PackageFacts<'_>>,
    ) -> Result<(), Rejection> {
        let digest = format!("sha256:{}", hex::encode(digest));
        let accepting: Vec<&WorkloadRule> = self
            .workloads
            .iter()
            .filter(|w| w.accepts(&digest, package))
            .collect();
        let mut violations = Vec::new();
        if accepting.is_empty() && !self.workloads.is_empty() {
            let from = match package {
                None => " (the Keep states no package it came from)".to_owned(),
                Some(p) if p.signed_by.is_empty() => format!(
                    " (from package {}@{}, signed by none of the policy's keys)",
                    p.repository, p.manifest_digest
                ),
                Some(p) => format!(
                    " (from package {}@{}, signed by {})",
                    p.repository,
                    p.manifest_digest,
                    p.signed_by.join(", ")
                ),
            };
            violations.push(Violation {
                rule: "[[workload]]".into(),
                reason: format!("workload {digest} is not in the policy{from}"),
            });
        }
        for name in names
            .iter()
            .filter(|n| !accepting.iter().any(|w| w.names.contains(n)))
        {
            violations.push(Violation {
                rule: "[[workload]].names".into(),
                reason: format!("the name `{name}` is not allowed for workload {digest}"),
            });
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Rejection(violations))
        }
    }

    fn tables(&self) -> [(TeeKind, Option<&TeeRules>); 4] {
        [
            (TeeKind::SevSnp, self.sev_snp.as_ref()),
            (TeeKind::Tdx, self.tdx.as_ref()),
            (TeeKind::Sgx, self.sgx.as_ref()),
            (TeeKind::None, self.none.as_ref()),
        ]
    }

    /// Judges `claims`. `expected_report_data` is what the verifier computed the report
    /// data must be (hex or raw bytes compared as hex).
    pub fn evaluate(
        &self,
        claims: &Claims,
        expected_report_data: Option<&[u8]>,
    ) -> Result<(), Rejection> {
        let mut violations = Vec::new();
        let mut fail = |rule: String, reason: String| violations.push(Violation { rule, reason });
        let tee = claims.tee;
        if self.require_report_data {
            match expected_report_data {
                None => fail(
                    "require_report_data".into(),
                    "the verifier supplied no expected report data".into(),
                ),
                Some(expected)
                    if !claims
                        .report_data
                        .eq_ignore_ascii_case(&hex::encode(expected)) =>
                {
                    fail(
                        "require_report_data".into(),
                        format!(
                            "the evidence binds {} but {} was expected",
                            claims.report_data,
                            hex::encode(expected)
                        ),
                    )
                }
                Some(_) => {}
            }
        }
        let Some(rules) = self
            .tables()
            .into_iter()
            .find(|(kind, _)| *kind == tee)
            .and_then(|(_, r)| r)
        else {
            fail(
                format!("[{tee}]"),
                format!("evidence from {tee} is not allowed (the policy has no [{tee}] table)"),
            );
            return Err(Rejection(violations));
        };
        if claims.debug && !rules.debug {
            fail(
                format!("[{tee}].debug"),
                "the TEE allows debugging and the policy does not".into(),
            );
        }
        for (name, allowed) in &rules.values {
            let actual = claims.value(name).unwrap_or("(absent)");
            if !allowed.iter().any(|v| v.eq_ignore_ascii_case(actual)) {
                fail(
                    format!("[{tee}].{name}"),
                    format!("{actual} is not one of {}", allowed.join(", ")),
                );
            }
        }
        if tee == TeeKind::SevSnp {
            snp_guest_rules(rules, claims, &mut fail);
        }
        for (component, minimum) in &rules.min_tcb {
            match claims.tcb.get(component) {
                Some(value) if value >= minimum => {}
                Some(value) => fail(
                    format!("[{tee}].min_tcb.{component}"),
                    format!("{value} is below {minimum}"),
                ),
                None => fail(
                    format!("[{tee}].min_tcb.{component}"),
                    format!(
                        "the evidence has no TCB component `{component}` (it has: {})",
                        claims.tcb.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ),
            }
        }
        let status_ok = match &rules.tcb_status {
            Some(allowed) => allowed.contains(&claims.tcb_status),
            None => claims.tcb_status != TcbStatus::Revoked,
        };
        if !status_ok {
            fail(
                format!("[{tee}].tcb_status"),
                format!(
                    "{} is not allowed",
                    serde_json::to_string(&claims.tcb_status).unwrap_or_default()
                ),
            );
        }
        if let Some(allowed) = &rules.allowed_advisories {
            let unlisted: Vec<&str> = claims
                .advisories
                .iter()
                .filter(|a| !allowed.contains(a))
                .map(String::as_str)
                .collect();
            if !unlisted.is_empty() {
                fail(
                    format!("[{tee}].allowed_advisories"),
                    format!("{} apply and are not allowed", unlisted.join(", ")),
                );
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Rejection(violations))
        }
    }
}

/// The SEV-SNP rules on the report's privilege level and the guest policy bits.
/// Whether `text` is `sha256:` and 64 hex digits.
fn is_sha256(text: &str) -> bool {
    text.strip_prefix("sha256:")
        .is_some_and(|hex_part| hex_part.len() == 64 && hex::decode(hex_part).is_ok())
}

fn snp_guest_rules(rules: &TeeRules, claims: &Claims, fail: &mut impl FnMut(String, String)) {
    let detail = |name: &str| {
        let text = claims.details.get(name)?;
        match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => text.parse().ok(),
        }
    };
    if let Some(max) = rules.max_vmpl {
        match detail("vmpl") {
            Some(vmpl) if vmpl <= u64::from(max) => {}
            Some(vmpl) => fail(
                "[sev-snp].max_vmpl".into(),
                format!("the report was requested at VMPL {vmpl}, above {max}"),
            ),
            None => fail(
                "[sev-snp].max_vmpl".into(),
                "the evidence does not state its VMPL".into(),
            ),
        }
    }
    let Some(policy) = detail("policy") else {
        fail(
            "[sev-snp]".into(),
            "the evidence does not state its guest policy".into(),
        );
        return;
    };
    if rules.smt == Some(false) && policy & POLICY_SMT != 0 {
        fail(
            "[sev-snp].smt".into(),
            format!("the guest policy {policy:#x} allows SMT, and the policy says smt = false"),
        );
    }
    if !rules.migration_agent && policy & POLICY_MIGRATE_MA != 0 {
        fail(
            "[sev-snp].migration_agent".into(),
            format!(
                "the guest policy {policy:#x} allows a migration agent, and the policy does not \
                 (migration_agent = true would)"
            ),
        );
    }
}
