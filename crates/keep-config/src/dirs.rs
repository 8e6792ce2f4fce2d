//! `[[dirs]]` and `--dir`: host directories preopened for the guest.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

/// A host directory the guest may use, under a guest path.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawDir")]
pub struct DirGrant {
    /// The directory on the host. Relative paths in a config file are relative to that file.
    pub host: PathBuf,
    /// Where the guest sees it.
    pub guest: String,
    /// Refuse every write (create, write, rename, delete) when set.
    pub read_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    host: PathBuf,
    guest: Option<String>,
    #[serde(default)]
    read_only: bool,
}

impl TryFrom<RawDir> for DirGrant {
    type Error = String;

    fn try_from(raw: RawDir) -> Result<Self, String> {
        Self::new(raw.host, raw.guest, raw.read_only)
    }
}

impl DirGrant {
    fn new(host: PathBuf, guest: Option<String>, read_only: bool) -> Result<Self, String> {
        if host.as_os_str().is_empty() {
            return Err("`host` must not be empty".into());
        }
        let guest = match guest {
            Some(guest) => guest,
            None => host
                .to_str()
                .ok_or_else(|| format!("host path {host:?} is not UTF-8; give `guest` explicitly"))?
                .to_owned(),
        };
        if guest.is_empty() || guest.contains('\0') {
            return Err(format!(
                "guest path {guest:?} must be non-empty and without NUL"
            ));
        }
        Ok(Self {
            host,
            guest,
            read_only,
        })
    }

    /// Makes a relative host path relative to `base` (the directory of the config file).
    pub(crate) fn resolve_against(&mut self, base: &Path) {
        if self.host.is_relative() {
            self.host = base.join(&self.host);
        }
    }
}

/// `HOST[::GUEST][:ro]`, the syntax of `keep run --dir`.
impl FromStr for DirGrant {
    type Err = String;

    fn from_str(spec: &str) -> Result<Self, String> {
        let (rest, read_only) = match spec.strip_suffix(":ro") {
            Some(rest) => (rest, true),
            None => (spec, false),
        };
        let (host, guest) = match rest.split_once("::") {
            Some((host, guest)) => (host, Some(guest.to_owned())),
            None => (rest, None),
        };
        Self::new(PathBuf::from(host), guest, read_only)
            .map_err(|e| format!("invalid --dir {spec:?}: {e}; expected HOST[::GUEST][:ro]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_spec_forms() {
        let d: DirGrant = "data".parse().unwrap();
        assert_eq!(
            (d.host.to_str(), d.guest.as_str(), d.read_only),
            (Some("data"), "data", false)
        );
        let d: DirGrant = "/srv/x::/data:ro".parse().unwrap();
        assert_eq!(
            (d.host.to_str(), d.guest.as_str(), d.read_only),
            (Some("/srv/x"), "/data", true)
        );
        let d: DirGrant = "in:ro".parse().unwrap();
        assert_eq!(
            (d.host.to_str(), d.guest.as_str(), d.read_only),
            (Some("in"), "in", true)
        );
        assert!("::/x".parse::<DirGrant>().is_err());
        assert!("x::".parse::<DirGrant>().is_err());
    }
}
