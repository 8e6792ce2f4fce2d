//! The shim's configuration: what the node's operator sets for every Keep it runs.
//!
//! It is a Keep.toml of which the shim uses `steward` and `[tls] ca`: a Keep whose own
//! Keep.toml names no Steward attests to this one (trusted through these CAs). The file is
//! `$KEEP_SHIM_CONFIG`, else `/etc/keep/containerd-shim-keep.toml` if it exists.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context as _, bail};
use keep_config::Config;

/// Where the shim's configuration is when `KEEP_SHIM_CONFIG` is not set.
const DEFAULT_PATH: &str = "/etc/keep/containerd-shim-keep.toml";

static DEFAULTS: OnceLock<Config> = OnceLock::new();

/// Reads the shim's configuration (once, at start-up).
pub fn load() -> anyhow::Result<()> {
    let path = match std::env::var_os("KEEP_SHIM_CONFIG") {
        Some(path) => PathBuf::from(path),
        None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
        None => return Ok(()),
    };
    let config = Config::from_path(&path)?;
    let used = Config {
        steward: config.steward.clone(),
        tls: keep_config::Tls {
            ca: config.tls.ca.clone(),
            ..Default::default()
        },
        ..Default::default()
    };
    if used != config {
        bail!(
            "{}: the shim's configuration sets only `steward` and `[tls] ca`; put everything \
             else in each Keep's own Keep.toml",
            path.display()
        );
    }
    DEFAULTS
        .set(config)
        .ok()
        .context("the shim's configuration was read twice")
}

/// `config` (a Keep's own, if it has one) with the shim's Steward when it names none.
pub fn apply(config: Option<Config>) -> Option<Config> {
    let Some(defaults) = DEFAULTS.get().filter(|d| d.steward.is_some()) else {
        return config;
    };
    let mut config = config.unwrap_or_default();
    if config.steward.is_none() {
        config.steward = defaults.steward.clone();
        config.tls.ca.extend(defaults.tls.ca.iter().cloned());
    }
    Some(config)
}
