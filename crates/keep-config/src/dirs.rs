//! `[[dirs]]` and `--dir`: host directories preopened for the guest, and sealed stores
//! (`sealed = true`) that the guest sees as directories.

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
    /// A sealed store: the host directory holds only its encrypted log, and the guest sees
    /// the tree sealed in it, under the key of this Steward secret.
    pub sealed: Option<SealedKey>,
}

/// Where a sealed directory's key comes from: a Steward secret, a key the TEE derives, or
/// both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    /// The Steward secret the store's key is derived from (at least 16 bytes); the
    /// Steward's `[[release]]` rules decide which Keeps get it, and so what the store is
    /// sealed to (a workload digest, or names a new version keeps). The Steward keeps the
    /// store's versions under this name.
    pub secret: Option<String>,
    /// A key the TEE derives, mixed in: the store then opens only on this chip, in a VM
    /// launched as this one was. Without `secret`, the workload digest is mixed in too, and
    /// the Steward keeps the store's versions under the workload digest.
    pub hardware: Option<HardwareKey>,
}

/// A key the TEE derives for the VM it runs (`hardware_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum HardwareKey {
    /// `sev-snp`: AMD SEV-SNP's MSG_KEY_REQ, from the chip's VCEK, mixing in the VM's launch
    /// measurement and guest policy.
    #[serde(rename = "sev-snp")]
    SevSnp,
}

impl std::fmt::Display for HardwareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::SevSnp => "sev-snp",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDir {
    host: PathBuf,
    guest: Option<String>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    sealed: bool,
    key: Option<String>,
    hardware_key: Option<HardwareKey>,
}

impl TryFrom<RawDir> for DirGrant {
    type Error = String;

    fn try_from(raw: RawDir) -> Result<Self, String> {
        let mut grant = Self::new(raw.host, raw.guest, raw.read_only)?;
        if raw.key.as_deref() == Some("") {
            return Err("`key` must name a Steward secret".into());
        }
        grant.sealed = match (raw.sealed, raw.key, raw.hardware_key) {
            (true, None, None) => {
                return Err(
                    "a sealed directory needs `key`, the Steward secret its key comes \
                            from, or `hardware_key`, or both"
                        .into(),
                );
            }
            (true, secret, hardware) => Some(SealedKey { secret, hardware }),
            (false, None, None) => None,
            (false, _, _) => {
                return Err(
                    "`key` and `hardware_key` are for sealed directories (sealed = true)".into(),
                );
            }
        };
        if grant.sealed.is_some() && grant.read_only {
            return Err("a sealed directory is read-write: leave out `read_only`".into());
        }
        Ok(grant)
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
            sealed: None,
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

    #[test]
    fn a_sealed_dir_names_its_key_and_is_read_write() {
        let parse = |text: &str| -> Result<DirGrant, String> {
            #[derive(Deserialize)]
            struct Holder {
                dirs: Vec<DirGrant>,
            }
            toml::from_str::<Holder>(text)
                .map(|mut h| h.dirs.remove(0))
                .map_err(|e| e.to_string())
        };
        let sealed =
            parse("[[dirs]]\nhost = \"s\"\nguest = \"/data\"\nsealed = true\nkey = \"k\"\n")
                .unwrap();
        assert_eq!(
            sealed.sealed,
            Some(SealedKey {
                secret: Some("k".into()),
                hardware: None
            })
        );
        let hardware =
            parse("[[dirs]]\nhost = \"s\"\nsealed = true\nhardware_key = \"sev-snp\"\n").unwrap();
        assert_eq!(
            hardware.sealed,
            Some(SealedKey {
                secret: None,
                hardware: Some(HardwareKey::SevSnp)
            })
        );
        for (text, message) in [
            ("[[dirs]]\nhost = \"s\"\nsealed = true\n", "needs `key`"),
            (
                "[[dirs]]\nhost = \"s\"\nsealed = true\nkey = \"\"\n",
                "must name a Steward secret",
            ),
            (
                "[[dirs]]\nhost = \"s\"\nsealed = true\nhardware_key = \"tdx\"\n",
                "unknown variant `tdx`",
            ),
            (
                "[[dirs]]\nhost = \"s\"\nhardware_key = \"sev-snp\"\n",
                "for sealed directories",
            ),
            (
                "[[dirs]]\nhost = \"s\"\nkey = \"k\"\n",
                "for sealed directories",
            ),
            (
                "[[dirs]]\nhost = \"s\"\nsealed = true\nkey = \"k\"\nread_only = true\n",
                "read-write",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(message), "{err}");
        }
    }
}
