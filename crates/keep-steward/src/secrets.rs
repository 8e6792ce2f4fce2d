//! Secrets the Steward releases to attested Keeps (`--secrets FILE`): where each value comes
//! from, and who may have it.
//!
//! ```toml
//! [[secret]]
//! name = "db-password"
//! file = "/run/keep/db-password"   # or: env = "DB_PASSWORD" (of the Steward's process)
//!
//! [[directory]]                    # every file in it is a secret named by its file name
//! path = "/run/keep/secrets"
//!
//! [[release]]                      # who gets which; without a matching rule, nobody
//! secrets = ["db-password"]
//! workloads = ["sha256:6b1f..."]   # the certificate's workload digest is one of these, and/or
//! names = ["api.example.com"]      # the certificate carries one of these names
//! repositories = ["registry.example/team/api"]  # or: a Keep certified to fetch from here
//! tee = ["sev-snp", "tdx"]         # optional: the TEE the certificate states
//! measurement = ["…"]              # optional: its launch measurement
//! signer = ["…"]                   # optional: a signer it states (SNP ID/author key digest, …)
//! min_tcb = { snp = 23 }           # optional: each component at least this
//! ```
//!
//! A certificate issued to a Keep about to fetch its workload (`[[fetch]]` in the policy)
//! qualifies only through `repositories`, and only such certificates do: registry
//! credentials go to Keeps about to fetch, workload secrets to Keeps that run.
//!
//! Values are read when the file is loaded (values up to 1 MiB, any bytes), held in memory
//! that is zeroed when dropped, and never logged: errors and log lines name secrets only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keep_attest::TeeKind;
use keep_attest::certificate::AttestedClaims;
use keep_config::ConfigError;
use serde::Deserialize;
use zeroize::Zeroizing;

/// The largest secret value.
pub const MAX_VALUE: usize = 1024 * 1024;

/// The secrets file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default, rename = "secret")]
    secrets: Vec<SecretSource>,
    #[serde(default, rename = "directory")]
    directories: Vec<Directory>,
    #[serde(default, rename = "release")]
    releases: Vec<Release>,
}

/// One `[[secret]]`: a name and where its value comes from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretSource {
    name: String,
    #[serde(default)]
    file: Option<PathBuf>,
    #[serde(default)]
    env: Option<String>,
}

/// One `[[directory]]` of secrets.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Directory {
    path: PathBuf,
}

/// One `[[release]]` rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// The secrets it releases.
    pub secrets: Vec<String>,
    /// Workload digests (`sha256:<hex>`) it releases them to.
    #[serde(default)]
    pub workloads: Vec<String>,
    /// Names (DNS names, URIs) a certificate must carry one of.
    #[serde(default)]
    pub names: Vec<String>,
    /// Repositories (`HOST[:PORT]/REPOSITORY`) it releases them to Keeps about to fetch
    /// from (certified under a `[[fetch]]` rule): registry credentials.
    #[serde(default)]
    pub repositories: Vec<String>,
    /// TEEs it releases them in (`sev-snp`, `tdx`, `sgx`, `none`); empty: any.
    #[serde(default)]
    pub tee: Vec<TeeKind>,
    /// Launch measurements (hex); empty: any.
    #[serde(default)]
    pub measurement: Vec<String>,
    /// Signers (hex): SEV-SNP `id_key_digest` or `author_key_digest`, TDX `mrsignerseam`,
    /// SGX `mrsigner`; one of the certificate's must be among them. Empty: any.
    #[serde(default)]
    pub signer: Vec<String>,
    /// The least security version of each named TCB component.
    #[serde(default)]
    pub min_tcb: BTreeMap<String, u64>,
}

/// A released secret: its name and value (zeroed when dropped).
pub type Released = (String, Zeroizing<Vec<u8>>);

/// What a Keep presents when it asks for secrets: its certificate's statement and names.
#[derive(Debug, Clone)]
pub struct Requester {
    /// What the certificate states.
    pub claims: AttestedClaims,
    /// The DNS names and URIs it carries.
    pub names: Vec<String>,
}

impl Requester {
    /// The requester of a client certificate the Steward issued (its chain already verified
    /// by the TLS handshake): the statement of its `id-pe-cmw` extension and its names.
    pub fn from_certificate(der: &[u8]) -> Result<Self, String> {
        use der::Decode as _;
        let claims = AttestedClaims::from_certificate(der).map_err(|e| e.to_string())?;
        let certificate =
            x509_cert::Certificate::from_der(der).map_err(|e| format!("the certificate: {e}"))?;
        let subject_alt_name = der::asn1::ObjectIdentifier::new_unwrap("2.5.29.17");
        let mut names = Vec::new();
        for extension in certificate.tbs_certificate.extensions.iter().flatten() {
            if extension.extn_id != subject_alt_name {
                continue;
            }
            let alternatives =
                x509_cert::ext::pkix::SubjectAltName::from_der(extension.extn_value.as_bytes())
                    .map_err(|e| format!("the certificate's names: {e}"))?;
            for name in alternatives.0 {
                match name {
                    x509_cert::ext::pkix::name::GeneralName::DnsName(dns) => {
                        names.push(dns.to_string());
                    }
                    x509_cert::ext::pkix::name::GeneralName::UniformResourceIdentifier(uri) => {
                        names.push(uri.to_string());
                    }
                    _ => {}
                }
            }
        }
        Ok(Self { claims, names })
    }
}

/// Why a secret was not released.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// No secret has the name.
    #[error("no secret is named `{0}`")]
    Unknown(String),
    /// No `[[release]]` rule gives it to this Keep; `why` says what each rule lacked.
    #[error("secret `{name}` is not released to workload {workload} in TEE {tee}: {why}")]
    NotReleased {
        /// The secret.
        name: String,
        /// The requester's workload digest.
        workload: String,
        /// The requester's TEE.
        tee: TeeKind,
        /// What the rules that name the secret required and the Keep lacks.
        why: String,
    },
}

/// The secrets and their release rules.
pub struct Secrets {
    values: BTreeMap<String, Zeroizing<Vec<u8>>>,
    releases: Vec<Release>,
    /// The secrets file, the value files and the directories it names.
    sources: Sources,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: a value must never reach a log.
        f.debug_struct("Secrets")
            .field("names", &self.values.keys().collect::<Vec<_>>())
            .field("releases", &self.releases)
            .finish()
    }
}

impl Secrets {
    /// Reads the secrets file at `path` and every value it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::whole_file(path, format!("cannot read the secrets file: {e}"))
        })?;
        Self::parse(&text, path, &|name| std::env::var_os(name))
    }

    /// Parses secrets-file text (`path` names it in errors), reading values from files and
    /// from `env`.
    pub fn parse(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, ConfigError> {
        let file: SecretsFile = keep_config::parse_toml(text, path)?;
        let error = |message: String| ConfigError::whole_file(path, message);
        let mut values = BTreeMap::new();
        let mut sources = vec![path.to_owned()];
        let mut add = |name: String, value: Zeroizing<Vec<u8>>| {
            if name.is_empty() || name.contains(['/', '\0']) {
                return Err(error(format!(
                    "secret name `{name}`: empty, or holds `/` or NUL"
                )));
            }
            if value.len() > MAX_VALUE {
                return Err(error(format!(
                    "secret `{name}`: {} bytes, more than the {MAX_VALUE} a secret may hold",
                    value.len()
                )));
            }
            if values.insert(name.clone(), value).is_some() {
                return Err(error(format!("secret `{name}` is defined twice")));
            }
            Ok(())
        };
        for source in file.secrets {
            let value = match (&source.file, &source.env) {
                (Some(file), None) => {
                    sources.push(file.clone());
                    read_value(file).map_err(|e| {
                        error(format!("secret `{}`: {}: {e}", source.name, file.display()))
                    })?
                }
                (None, Some(variable)) => {
                    let value = env(variable).ok_or_else(|| {
                        error(format!(
                            "secret `{}`: the environment variable {variable} is not set",
                            source.name
                        ))
                    })?;
                    Zeroizing::new(std::os::unix::ffi::OsStringExt::into_vec(value))
                }
                _ => {
                    return Err(error(format!(
                        "secret `{}`: give exactly one of `file` and `env`",
                        source.name
                    )));
                }
            };
            add(source.name, value)?;
        }
        for directory in file.directories {
            sources.push(directory.path.clone());
            let entries = std::fs::read_dir(&directory.path)
                .map_err(|e| error(format!("directory {}: {e}", directory.path.display())))?;
            for entry in entries {
                let entry = entry
                    .map_err(|e| error(format!("directory {}: {e}", directory.path.display())))?;
                if !entry.file_type().is_ok_and(|t| t.is_file()) {
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                let value = read_value(&entry.path()).map_err(|e| {
                    error(format!("secret `{name}`: {}: {e}", entry.path().display()))
                })?;
                add(name, value)?;
            }
        }
        for (index, release) in file.releases.iter().enumerate() {
            if let Some(unknown) = release.secrets.iter().find(|s| !values.contains_key(*s)) {
                return Err(error(format!(
                    "[[release]] {}: no secret is named `{unknown}`",
                    index + 1
                )));
            }
            if release.workloads.is_empty()
                && release.names.is_empty()
                && release.repositories.is_empty()
            {
                return Err(error(format!(
                    "[[release]] {}: name the workloads (digests), the names or the \
                     repositories it releases to",
                    index + 1
                )));
            }
        }
        Ok(Self {
            values,
            releases: file.releases,
            sources: Sources(sources),
        })
    }

    /// The files these secrets were read from: a change to them calls for a reload.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The names of the secrets.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The values of `wanted` for `requester`, or why one is refused (nothing is released
    /// unless everything asked for is).
    pub fn release(
        &self,
        requester: &Requester,
        wanted: &[String],
    ) -> Result<Vec<Released>, Refused> {
        let mut released = Vec::with_capacity(wanted.len());
        for name in wanted {
            let Some(value) = self.values.get(name) else {
                return Err(Refused::Unknown(name.clone()));
            };
            let rules: Vec<&Release> = self
                .releases
                .iter()
                .filter(|r| r.secrets.contains(name))
                .collect();
            let mut lacking = Vec::new();
            if !rules.iter().any(|rule| match rule.lacks(requester) {
                None => true,
                Some(why) => {
                    lacking.push(why);
                    false
                }
            }) {
                return Err(Refused::NotReleased {
                    name: name.clone(),
                    workload: requester.claims.workload_digest.clone(),
                    tee: requester.claims.tee,
                    why: if lacking.is_empty() {
                        "no [[release]] rule names it".to_owned()
                    } else {
                        lacking.join("; ")
                    },
                });
            }
            released.push((name.clone(), value.clone()));
        }
        Ok(released)
    }
}

impl Release {
    /// What the requester lacks for this rule, or `None` when it qualifies.
    fn lacks(&self, requester: &Requester) -> Option<String> {
        let claims = &requester.claims;
        if let Some(reference) = &claims.fetch {
            let repository = keep_oci::PackageRef::parse(reference)
                .map(|r| r.repository())
                .unwrap_or_default();
            if !self.repositories.contains(&repository) {
                return Some(format!(
                    "the Keep is about to fetch from {repository}, and the rule is not for \
                     that repository"
                ));
            }
        } else {
            let workload_ok = self
                .workloads
                .iter()
                .any(|w| w.eq_ignore_ascii_case(&claims.workload_digest));
            let name_ok = self.names.iter().any(|n| requester.names.contains(n));
            if !workload_ok && !name_ok {
                return Some("the rule is for other workloads and names".to_owned());
            }
        }
        if !self.tee.is_empty() && !self.tee.contains(&claims.tee) {
            return Some(format!(
                "the rule wants TEE {}",
                self.tee
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        }
        if !self.measurement.is_empty() {
            let actual = claims.launch_measurement().map(|(_, value)| value);
            if !actual.is_some_and(|a| self.measurement.iter().any(|m| m.eq_ignore_ascii_case(a))) {
                return Some(format!(
                    "the rule wants measurement {}, the Keep's is {}",
                    self.measurement.join(" or "),
                    actual.unwrap_or("none")
                ));
            }
        }
        if !self.signer.is_empty()
            && !claims
                .signers
                .values()
                .any(|actual| self.signer.iter().any(|s| s.eq_ignore_ascii_case(actual)))
        {
            let stated: Vec<String> = claims
                .signers
                .iter()
                .map(|(name, value)| format!("{name} {value}"))
                .collect();
            return Some(format!(
                "the rule wants signer {}, the Keep states {}",
                self.signer.join(" or "),
                if stated.is_empty() {
                    "none".to_owned()
                } else {
                    stated.join(", ")
                }
            ));
        }
        for (component, least) in &self.min_tcb {
            let actual = claims.tcb.get(component).copied();
            if actual.is_none_or(|a| a < *least) {
                return Some(format!(
                    "the rule wants TCB {component} ≥ {least}, the Keep's is {}",
                    actual.map_or("absent".to_owned(), |a| a.to_string())
                ));
            }
        }
        None
    }
}

/// The secrets file, the value files and the directories it names.
#[derive(Debug, Clone)]
pub struct Sources(Vec<PathBuf>);

impl Sources {
    /// What the files behind these secrets look like now (identity, size and times of the
    /// secrets file, each value file, each directory and its entries), to tell when they
    /// changed. Symbolic links are followed, so that a Kubernetes secret volume, which swaps
    /// a `..data` link, counts as changed.
    pub fn state(&self) -> SourcesState {
        let mut seen = Vec::new();
        for path in &self.0 {
            seen.push((path.clone(), FileState::of(path)));
            if let Ok(entries) = std::fs::read_dir(path) {
                let mut entries: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                entries.sort();
                seen.extend(entries.into_iter().map(|p| {
                    let state = FileState::of(&p);
                    (p, state)
                }));
            }
        }
        SourcesState(seen)
    }
}

/// The state of the files a [`Secrets`] was read from; two are equal when no file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesState(Vec<(PathBuf, FileState)>);

/// What identifies one version of a file: device, inode, size, and modification and change
/// times; or the error kind when it cannot be looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum FileState {
    Present {
        dev: u64,
        ino: u64,
        size: u64,
        mtime: (i64, i64),
        ctime: (i64, i64),
    },
    Unreadable(std::io::ErrorKind),
}

impl FileState {
    fn of(path: &Path) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        match std::fs::metadata(path) {
            Ok(m) => Self::Present {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            },
            Err(e) => Self::Unreadable(e.kind()),
        }
    }
}

/// A value from a file, refused past [`MAX_VALUE`] without reading more. The buffer is sized
/// from the file's length first, so that growing it leaves no copy of the value behind in
/// freed memory (unless the file grows while it is read).
fn read_value(path: &Path) -> std::io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let length = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    let mut value = Zeroizing::new(Vec::with_capacity(length.min(MAX_VALUE) + 1));
    file.take(MAX_VALUE as u64 + 1).read_to_end(&mut value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester(workload: &str, tee: TeeKind, names: &[&str]) -> Requester {
        let json = format!(
            r#"{{"tee":"{}","workload_digest":"{workload}","tcb_status":"not-evaluated",
                "debug":false,"measurements":{{"measurement":"aa"}},"tcb":{{"snp":23}},
                "signers":{{"author_key_digest":"a1"}}}}"#,
            tee.as_str()
        );
        Requester {
            claims: serde_json::from_str(&json).unwrap(),
            names: names.iter().map(|n| n.to_string()).collect(),
        }
    }

    fn load(text: &str) -> Result<Secrets, ConfigError> {
        let env = |name: &str| (name == "API_KEY").then(|| "k3y".into());
        Secrets::parse(text, Path::new("secrets.toml"), &env)
    }

    #[test]
    fn secrets_go_only_where_a_rule_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("db"), b"\x00binary\xff").unwrap();
        let secrets = load(&format!(
            "[[secret]]\nname = \"db\"\nfile = \"{}\"\n[[secret]]\nname = \"api\"\nenv = \"API_KEY\"\n\
             [[release]]\nsecrets = [\"db\", \"api\"]\nworkloads = [\"sha256:aa\"]\ntee = [\"sev-snp\"]\n\
             min_tcb = {{ snp = 23 }}\n[[release]]\nsecrets = [\"api\"]\nnames = [\"api.example.com\"]\n",
            dir.path().join("db").display()
        ))
        .unwrap();
        assert!(
            !format!("{secrets:?}").contains("k3y"),
            "values are not debug-printed"
        );

        let keep = requester("sha256:aa", TeeKind::SevSnp, &[]);
        let released = secrets
            .release(&keep, &["db".to_owned(), "api".to_owned()])
            .unwrap();
        assert_eq!(released[0].1.as_slice(), b"\x00binary\xff");
        assert_eq!(released[1].1.as_slice(), b"k3y");

        let other = requester("sha256:bb", TeeKind::SevSnp, &[]);
        let refused = secrets.release(&other, &["db".to_owned()]).unwrap_err();
        assert!(
            refused.to_string().contains(
                "secret `db` is not released to workload sha256:bb in TEE sev-snp: the rule is \
                 for other workloads and names"
            ),
            "{refused}"
        );
        let none = requester("sha256:aa", TeeKind::None, &[]);
        let refused = secrets.release(&none, &["db".to_owned()]).unwrap_err();
        assert!(
            refused.to_string().contains("the rule wants TEE sev-snp"),
            "{refused}"
        );
        // Another rule releases `api` by name, to any TEE.
        let named = requester("sha256:cc", TeeKind::None, &["api.example.com"]);
        assert!(secrets.release(&named, &["api".to_owned()]).is_ok());
        assert_eq!(
            secrets.release(&keep, &["nope".to_owned()]).unwrap_err(),
            Refused::Unknown("nope".to_owned())
        );
    }

    #[test]
    fn a_signer_rule_wants_one_of_the_signers_the_certificate_states() {
        let secrets = load(
            "[[secret]]\nname = \"api\"\nenv = \"API_KEY\"\n[[release]]\nsecrets = [\"api\"]\n\
             workloads = [\"sha256:aa\"]\nsigner = [\"B2\", \"A1\"]\n",
        )
        .unwrap();
        let keep = requester("sha256:aa", TeeKind::SevSnp, &[]);
        assert!(secrets.release(&keep, &["api".to_owned()]).is_ok());
        let mut unsigned = keep.clone();
        unsigned.claims.signers.clear();
        let refused = secrets.release(&unsigned, &["api".to_owned()]).unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("the rule wants signer B2 or A1, the Keep states none"),
            "{refused}"
        );
    }

    #[test]
    fn registry_credentials_go_only_to_keeps_about_to_fetch_from_that_repository() {
        let secrets = load(
            "[[secret]]\nname = \"registry\"\nenv = \"API_KEY\"\n[[release]]\n\
             secrets = [\"registry\"]\nrepositories = [\"r.test:5000/team/api\"]\n\
             tee = [\"sev-snp\"]\n[[release]]\nsecrets = [\"registry\"]\nworkloads = [\"sha256:aa\"]\n\
             names = [\"api.example.com\"]\n",
        )
        .unwrap();
        let wanted = ["registry".to_owned()];
        let fetching = |reference: &str| {
            let mut keep = requester("sha256:ff", TeeKind::SevSnp, &[]);
            keep.claims.fetch = Some(reference.to_owned());
            keep
        };
        assert!(
            secrets
                .release(&fetching("r.test:5000/team/api:v2"), &wanted)
                .is_ok()
        );
        let refused = secrets
            .release(&fetching("r.test:5000/team/other:v2"), &wanted)
            .unwrap_err();
        assert!(
            refused
                .to_string()
                .contains("about to fetch from r.test:5000/team/other"),
            "{refused}"
        );
        // A certificate for fetching qualifies by nothing else, even with the workload digest
        // or the name another rule names; a running workload not by a repository.
        let mut disguised = fetching("r.test:5000/team/other:v2");
        disguised.claims.workload_digest = "sha256:aa".into();
        disguised.names = vec!["api.example.com".into()];
        assert!(secrets.release(&disguised, &wanted).is_err());
        let running = requester("sha256:bb", TeeKind::SevSnp, &[]);
        assert!(secrets.release(&running, &wanted).is_err());
        assert!(
            load("[[secret]]\nname = \"a\"\nenv = \"API_KEY\"\n[[release]]\nsecrets = [\"a\"]\nrepositories = [\"r/a\"]\n")
                .is_ok(),
            "a rule may name only repositories"
        );
    }

    #[test]
    fn a_changed_value_file_or_directory_entry_changes_the_sources_state() {
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values");
        std::fs::create_dir(&values).unwrap();
        std::fs::write(dir.path().join("db"), b"one").unwrap();
        let text = format!(
            "[[secret]]\nname = \"db\"\nfile = \"{}\"\n[[directory]]\npath = \"{}\"\n",
            dir.path().join("db").display(),
            values.display()
        );
        let secrets = load(&text).unwrap();
        let before = secrets.sources().state();
        assert_eq!(before, secrets.sources().state(), "nothing changed");

        // Replaced by rename, as editors and Kubernetes do: a new inode.
        std::fs::write(dir.path().join("db.new"), b"two").unwrap();
        std::fs::rename(dir.path().join("db.new"), dir.path().join("db")).unwrap();
        let replaced = secrets.sources().state();
        assert_ne!(before, replaced);

        std::fs::write(values.join("api"), b"k").unwrap();
        assert_ne!(
            replaced,
            secrets.sources().state(),
            "a new secret in a directory"
        );
    }

    #[test]
    fn a_bad_secrets_file_is_refused_by_what_is_wrong() {
        for (text, message) in [
            (
                "[[secret]]\nname = \"a\"\n",
                "give exactly one of `file` and `env`",
            ),
            (
                "[[secret]]\nname = \"a\"\nenv = \"UNSET\"\n",
                "UNSET is not set",
            ),
            (
                "[[secret]]\nname = \"a/b\"\nenv = \"API_KEY\"\n",
                "holds `/`",
            ),
            (
                "[[secret]]\nname = \"a\"\nenv = \"API_KEY\"\n[[secret]]\nname = \"a\"\nenv = \"API_KEY\"\n",
                "defined twice",
            ),
            (
                "[[release]]\nsecrets = [\"x\"]\nnames = [\"n\"]\n",
                "no secret is named `x`",
            ),
            (
                "[[secret]]\nname = \"a\"\nenv = \"API_KEY\"\n[[release]]\nsecrets = [\"a\"]\n",
                "name the workloads",
            ),
            ("[[secrets]]\n", "unknown field"),
        ] {
            let error = load(text).unwrap_err().to_string();
            assert!(error.contains(message), "{text:?}: {error}");
        }
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        std::fs::write(&big, vec![0u8; MAX_VALUE + 1]).unwrap();
        let error = load(&format!(
            "[[directory]]\npath = \"{}\"\n",
            dir.path().display()
        ))
        .unwrap_err()
        .to_string();
        assert!(error.contains("more than the 1048576"), "{error}");
    }
}
