//! `[[secrets]]`: the secrets a Keep gets from its Steward after attestation, and how the
//! guest sees each (an environment variable, a read-only file Keep serves from memory, a
//! `wasi:config/store` key).

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::{ConfigError, EnvName};

/// Where the guest finds secrets delivered as files, unless `secrets_dir` says otherwise
/// (the path Docker and Kubernetes use).
pub const DEFAULT_SECRETS_DIR: &str = "/run/secrets";

/// A secret the Steward releases to this Keep after attestation (`[[secrets]]`), and how the
/// guest sees it. The reference counts in the workload digest; the value does not.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// The secret's name at the Steward.
    pub name: String,
    /// The environment variable the guest finds it in.
    #[serde(default)]
    pub env: Option<EnvName>,
    /// The name of the read-only file, in `secrets_dir`, the guest finds it in.
    #[serde(default)]
    pub file: Option<String>,
    /// The `wasi:config/store` key a component finds it under.
    #[serde(default)]
    pub config: Option<String>,
    /// Start without it (absent from every place above) when the Steward does not release
    /// it; by default such a Keep does not start.
    #[serde(default)]
    pub optional: bool,
}

/// Checks the `[[secrets]]` of a configuration whose `[env]` names `env` and whose
/// `[[dirs]]` the guest sees at `dir_paths`: each secret goes somewhere, and no two places
/// collide.
pub(crate) fn validate<'a>(
    secrets: &[SecretRef],
    env: impl Iterator<Item = &'a EnvName>,
    secrets_dir: Option<&str>,
    mut dir_paths: impl Iterator<Item = &'a str>,
    path: &Path,
) -> Result<(), ConfigError> {
    let error = |message: String| Err(ConfigError::whole_file(path, message));
    let mut variables: BTreeSet<&EnvName> = env.collect();
    let mut files = BTreeSet::new();
    let mut keys = BTreeSet::new();
    for secret in secrets {
        let name = &secret.name;
        if secret.env.is_none() && secret.file.is_none() && secret.config.is_none() {
            return error(format!(
                "[[secrets]] `{name}`: say where the guest finds it: `env`, `file` or `config`"
            ));
        }
        if let Some(variable) = &secret.env
            && !variables.insert(variable)
        {
            return error(format!(
                "[[secrets]] `{name}`: the environment variable {} is given twice",
                variable.as_str()
            ));
        }
        if let Some(file) = &secret.file {
            if file.is_empty() || file == "." || file == ".." || file.contains(['/', '\0']) {
                return error(format!(
                    "[[secrets]] `{name}`: file `{file}` must be a plain file name (it is \
                     served in secrets_dir)"
                ));
            }
            if !files.insert(file) {
                return error(format!(
                    "[[secrets]] `{name}`: file `{file}` is given twice"
                ));
            }
        }
        if let Some(key) = &secret.config
            && (key.is_empty() || !keys.insert(key))
        {
            return error(format!(
                "[[secrets]] `{name}`: config key `{key}` is empty or given twice"
            ));
        }
    }
    if let Some(dir) = secrets_dir {
        if !dir.starts_with('/') || dir.contains('\0') {
            return error(format!(
                "secrets_dir `{dir}`: an absolute guest path, such as {DEFAULT_SECRETS_DIR}"
            ));
        }
        if files.is_empty() {
            return error(format!(
                "secrets_dir `{dir}`: no [[secrets]] entry has a `file` to serve there"
            ));
        }
    }
    let served = secrets_dir.unwrap_or(DEFAULT_SECRETS_DIR);
    if !files.is_empty() && dir_paths.any(|guest| guest.trim_end_matches('/') == served) {
        return error(format!(
            "secrets_dir {served}: a [[dirs]] entry is already seen there by the guest"
        ));
    }
    Ok(())
}
