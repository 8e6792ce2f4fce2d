//! How the guest gets the secrets its Steward released, as Keep.toml's `[[secrets]]` say:
//! environment variables, read-only files Keep serves from memory (`memory_dir`), and
//! `wasi:config/store` keys for components ([`ConfigValues`]); and how values asked for
//! again at renewal replace them.

mod config_store;
mod memory_dir;

use std::path::PathBuf;

use anyhow::Context as _;
use keep_config::{DirGrant, SecretRef};
use keep_identity::RenewedSecrets;
use keep_identity::attested::ReleasedSecret;
use wasmtime_wasi::WasiCtxBuilder;
use zeroize::Zeroizing;

pub use config_store::{ConfigValues, add_to_linker};
use memory_dir::MemoryDir;

/// The largest secret value a Steward releases (the in-memory directory is sized for each
/// file secret at this size).
const MAX_VALUE: usize = 1024 * 1024;

/// Where the secrets are, for the guest and for later replacement.
#[derive(Debug)]
pub struct SecretDelivery {
    /// The in-memory directory, and where the guest sees it, when a secret is a file.
    files: Option<(MemoryDir, String)>,
    /// The `wasi:config/store` values (empty when no secret has a config key).
    config: ConfigValues,
}

impl SecretDelivery {
    /// Puts `released` (of `wanted`) in place: files in a new in-memory directory seen at
    /// `secrets_dir`, config keys in the store ([`set_environment`] does the variables).
    pub fn new(
        wanted: &[SecretRef],
        secrets_dir: &str,
        released: &[ReleasedSecret],
    ) -> anyhow::Result<Self> {
        let file_count = wanted.iter().filter(|s| s.file.is_some()).count();
        let files = if file_count > 0 {
            Some((
                MemoryDir::new(file_count.saturating_mul(MAX_VALUE))?,
                secrets_dir.to_owned(),
            ))
        } else {
            None
        };
        let delivery = Self {
            files,
            config: ConfigValues::default(),
        };
        for secret in released {
            delivery.put(secret)?;
        }
        Ok(delivery)
    }

    /// The guest's read-only preopen of the files, if any.
    pub fn dir_grant(&self) -> Option<DirGrant> {
        self.files.as_ref().map(|(dir, guest)| DirGrant {
            host: dir.guest_path(),
            guest: guest.clone(),
            read_only: true,
            sealed: None,
        })
    }

    /// The path through which Keep writes the files (for its confinement's rules).
    pub fn writable_dir(&self) -> Option<PathBuf> {
        self.files.as_ref().map(|(dir, _)| dir.writable_path())
    }

    /// Whether the files' pages are kept out of swap (`None`: no files).
    pub fn noswap(&self) -> Option<bool> {
        self.files.as_ref().map(|(dir, _)| dir.noswap)
    }

    /// The `wasi:config/store` values, to share with a component's store.
    pub fn config(&self) -> &ConfigValues {
        &self.config
    }

    /// Replaces the files and config values with those asked for again at renewal, and
    /// takes withdrawn secrets away. Environment variables cannot change in a running
    /// guest and stay as they were. Returns the names of the secrets that changed.
    pub fn update(&self, renewed: RenewedSecrets) -> anyhow::Result<Vec<String>> {
        let mut changed = Vec::new();
        for secret in &renewed.released {
            if self.put(secret)? {
                changed.push(secret.reference.name.clone());
            }
        }
        for reference in &renewed.withdrawn {
            let mut removed = false;
            if let (Some(name), Some((dir, _))) = (&reference.file, &self.files) {
                removed |= dir.remove(name)?;
            }
            if let Some(key) = &reference.config {
                removed |= self.config.remove(key);
            }
            if removed {
                changed.push(reference.name.clone());
            }
        }
        Ok(changed)
    }

    /// Puts `secret` in its file and config key; returns whether either changed.
    fn put(&self, secret: &ReleasedSecret) -> anyhow::Result<bool> {
        let mut changed = false;
        if let (Some(name), Some((dir, _))) = (&secret.reference.file, &self.files) {
            changed |= dir.put(name, &secret.value)?;
        }
        if let Some(key) = &secret.reference.config {
            changed |= self.config.put(key, text(secret, "a config value")?);
        }
        Ok(changed)
    }
}

/// Gives the guest the secrets in `released` that Keep.toml puts in environment variables.
/// WASI environment values are strings: a value that is not UTF-8 is refused by name.
pub fn set_environment(
    wasi: &mut WasiCtxBuilder,
    released: &[ReleasedSecret],
) -> anyhow::Result<()> {
    for (variable, value) in environment(released)? {
        wasi.env(variable, value.as_str());
    }
    Ok(())
}

/// The environment variables Keep.toml puts secrets of `released` in, and their values; a
/// value that is not UTF-8 is refused by name.
pub fn environment(
    released: &[ReleasedSecret],
) -> anyhow::Result<Vec<(String, Zeroizing<String>)>> {
    released
        .iter()
        .filter_map(|secret| Some((secret, secret.reference.env.as_ref()?)))
        .map(|(secret, variable)| {
            Ok((
                variable.as_str().to_owned(),
                text(secret, "an environment variable")?,
            ))
        })
        .collect()
}

/// The value of `secret` as text, which `place` requires.
fn text(secret: &ReleasedSecret, place: &str) -> anyhow::Result<Zeroizing<String>> {
    let value = std::str::from_utf8(&secret.value).ok().context(format!(
        "secret `{}` is not UTF-8 text, which {place} must be",
        secret.reference.name
    ))?;
    Ok(Zeroizing::new(value.to_owned()))
}
