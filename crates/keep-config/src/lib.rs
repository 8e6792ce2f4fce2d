//! The `Keep.toml` schema: a strict superset of Enarx's `Enarx.toml`.
//!
//! An `Enarx.toml` parses with the same meaning (`args`, `env`, `steward`, `[[files]]`).
//! Keep adds `[[dirs]]` (preopened directories), `[limits]`, `[tls]`, `[network]`, `[[secrets]]`
//! and `[http]` (`keep serve`). Unknown keys are errors,
//! and every error names the file, line, column and key: see [`ConfigError`].
//!
//! ```
//! let config = keep_config::Config::parse(
//!     r#"
//!     args = ["--verbose"]
//!     [env]
//!     GREETING = "hello"
//!     [[files]]
//!     kind = "null"
//!     [[files]]
//!     kind = "stdout"
//!     [[files]]
//!     kind = "stderr"
//!     [limits]
//!     memory = "64MiB"
//!     "#,
//!     std::path::Path::new("Keep.toml"),
//! )
//! .unwrap();
//! assert_eq!(config.fd_names(), "null:stdout:stderr");
//! ```

#![warn(missing_docs)]

/// Implements `Deserialize` for a type through its `FromStr`, with the parse error as the
/// message (so it is reported at the value's position).
macro_rules! deserialize_from_str {
    ($type:ty) => {
        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                <String as serde::Deserialize>::deserialize(de)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use deserialize_from_str;

mod canonical;
mod dirs;
mod error;
mod files;
mod http;
mod limits;
mod network;
mod secrets;
mod steward;
mod tls;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

pub use dirs::{DirGrant, HardwareKey, SealedKey};
pub use error::ConfigError;
pub use files::{DEFAULT_LISTEN_ADDR, DEFAULT_PORT, File, FileKind, Protocol};
pub use http::{DEFAULT_HTTP_ADDR, DEFAULT_HTTP_PORT, Http};
pub use limits::{DEFAULT_OPEN_FILES, Fuel, Limits, MemorySize, Timeout};
pub use network::{AddressRule, HostPattern, NetworkPolicy};
pub use secrets::{DEFAULT_SECRETS_DIR, SecretRef};
pub use steward::StewardUrl;
pub use tls::{CaFile, ClientAuth, IdentityFiles, Tls, TlsVersion};

/// A parsed and validated `Keep.toml` (or `Enarx.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The guest's `argv[0]` (Keep's addition; default: the program path as given).
    #[serde(default)]
    pub argv0: Option<String>,
    /// Arguments given to the guest after `argv[0]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables of the guest.
    #[serde(default)]
    pub env: BTreeMap<EnvName, String>,
    /// URL of the Steward that certifies this Keep.
    #[serde(default)]
    pub steward: Option<StewardUrl>,
    /// The guest's file descriptors; descriptor number = index. Empty means the usual
    /// stdin, stdout and stderr.
    #[serde(default)]
    pub files: Vec<File>,
    /// Host directories preopened for the guest.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// TLS identity, trust anchors and protocol policy.
    #[serde(default)]
    pub tls: Tls,
    /// What components may do with `wasi:sockets`.
    #[serde(default)]
    pub network: NetworkPolicy,
    /// Secrets the Steward releases to this Keep, and how the guest sees each.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// Where the guest finds secrets delivered as files (default [`DEFAULT_SECRETS_DIR`]).
    #[serde(default)]
    pub secrets_dir: Option<String>,
    /// How `keep serve` serves a `wasi:http` component; `None` when the table is absent.
    #[serde(default)]
    pub http: Option<Http>,
    /// What a package run with this Keep.toml must satisfy, and what opens it; `None` when
    /// absent.
    #[serde(default)]
    pub package: Option<PackageRules>,
}

/// `[package]`: who must have signed a package, and what decrypts it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRules {
    /// The name of the Steward secret whose value is the private key (PEM, P-256) that
    /// decrypts the package's program. The Keep asks for it with its certificate and never
    /// gives it to the guest.
    #[serde(default)]
    pub key: Option<String>,
    /// Cosign public keys (PEM files, relative to the Keep.toml) one of which must have
    /// signed the package `keep run oci://` runs with this Keep.toml (as `--verify-key`).
    #[serde(default)]
    pub signers: Vec<std::path::PathBuf>,
}

impl Config {
    /// Reads and validates the configuration file at `path`, and reads the CA files it
    /// names (`[tls] ca`, `client_ca`): each file is read exactly once, here, and everything
    /// later (the workload digest, the TLS set-up) uses these bytes.
    pub fn from_path(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
        Self::from_text(&text, path, path.parent().unwrap_or(Path::new(".")))
    }

    /// [`Self::from_path`] for a Keep.toml that is not a file of its own: `text`, named
    /// `path` in messages, its relative paths taken from `base`.
    pub fn from_text(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        Self::from_text_reading(text, path, base, &mut |ca| {
            std::fs::read(&ca.path).map_err(|e| format!("cannot read `{}`: {e}", ca.path.display()))
        })
    }

    /// [`Self::from_text`] for the Keep.toml a package carries, with the CA files the
    /// package carries beside it (`ca_files`, by the name the Keep.toml gives them): they
    /// are not read from this host, so that the package's signature covers them too. Other
    /// relative paths (`[[dirs]] host`, `[tls] cert`) are this host's, taken from `base`.
    pub fn from_packaged_text(
        text: &str,
        path: &Path,
        base: &Path,
        ca_files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        Self::from_text_reading(text, path, base, &mut |ca| {
            ca_files.get(&ca.name).cloned().ok_or_else(|| {
                format!(
                    "`{}` is not in the package (a package carries the CA files its \
                     Keep.toml names: package it again with `keep package`)",
                    ca.name
                )
            })
        })
    }

    fn from_text_reading(
        text: &str,
        path: &Path,
        base: &Path,
        read_ca: &mut dyn FnMut(&CaFile) -> Result<Vec<u8>, String>,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::parse(text, path)?;
        for dir in &mut config.dirs {
            dir.resolve_against(base);
        }
        config.tls.resolve_against(base);
        for signer in config.package.iter_mut().flat_map(|p| &mut p.signers) {
            *signer = base.join(&*signer);
        }
        if let Some(http) = &mut config.http {
            http.resolve_against(base);
        }
        for file in &mut config.files {
            if let FileKind::Listen { client_auth, .. } = &mut file.kind {
                client_auth.resolve_against(base);
            }
        }
        for (key, ca) in config.ca_files_mut() {
            ca.pem =
                read_ca(ca).map_err(|e| ConfigError::whole_file(path, format!("{key}: {e}")))?;
        }
        Ok(config)
    }

    /// The CA files this configuration names, by name as written, with the content read
    /// with it: what a package carries beside its Keep.toml.
    pub fn ca_contents(&self) -> BTreeMap<String, Vec<u8>> {
        let mut copy = self.clone();
        copy.ca_files_mut()
            .into_iter()
            .map(|(_, ca)| (ca.name.clone(), std::mem::take(&mut ca.pem)))
            .collect()
    }

    /// Every CA file the configuration names, with the key that names it (for messages).
    fn ca_files_mut(&mut self) -> Vec<(String, &mut CaFile)> {
        let mut files: Vec<(String, &mut CaFile)> = self
            .tls
            .ca
            .iter_mut()
            .map(|ca| ("tls.ca".to_owned(), ca))
            .collect();
        if let Some(ClientAuth::Optional { ca } | ClientAuth::Required { ca }) =
            self.http.as_mut().map(|http| &mut http.client_auth)
        {
            files.extend(ca.iter_mut().map(|ca| ("http.client_ca".to_owned(), ca)));
        }
        for file in &mut self.files {
            if let FileKind::Listen {
                client_auth: ClientAuth::Optional { ca } | ClientAuth::Required { ca },
                ..
            } = &mut file.kind
            {
                let key = format!("files `{}` client_ca", file.name);
                files.extend(ca.iter_mut().map(|ca| (key.clone(), ca)));
            }
        }
        files
    }

    /// Parses configuration text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Self = parse_toml(text, path)?;
        if !config.secrets.is_empty() && config.steward.is_none() {
            return Err(ConfigError::whole_file(
                path,
                "[[secrets]] come from a Steward after attestation: set `steward`",
            ));
        }
        if config.dirs.iter().any(|d| d.sealed.is_some()) && config.steward.is_none() {
            return Err(ConfigError::whole_file(
                path,
                "[[dirs]] sealed: the Steward witnesses the store's versions (and releases its \
                 key, with `key`) after attestation: set `steward`",
            ));
        }
        if let Some(package) = &config.package {
            if package.key.is_none() && package.signers.is_empty() {
                return Err(ConfigError::whole_file(
                    path,
                    "[package] gives neither `key` nor `signers`",
                ));
            }
            if package.key.is_some() && config.steward.is_none() {
                return Err(ConfigError::whole_file(
                    path,
                    "[package] key comes from a Steward after attestation: set `steward`",
                ));
            }
        }
        secrets::validate(
            &config.secrets,
            config.env.keys(),
            config.secrets_dir.as_deref(),
            config.dirs.iter().map(|d| d.guest.as_str()),
            path,
        )?;
        Ok(config)
    }

    /// `[http]`, or its defaults when the table is absent.
    pub fn http_or_default(&self) -> Http {
        self.http.clone().unwrap_or_default()
    }

    /// The value of `FD_NAMES`: descriptor names joined with `:`.
    pub fn fd_names(&self) -> String {
        self.effective_files()
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// The descriptors the guest gets: `[[files]]`, or stdin, stdout and stderr when empty.
    pub fn effective_files(&self) -> Vec<File> {
        if !self.files.is_empty() {
            return self.files.clone();
        }
        [FileKind::Stdin, FileKind::Stdout, FileKind::Stderr]
            .into_iter()
            .map(|kind| File {
                name: kind.as_str().to_owned(),
                kind,
            })
            .collect()
    }
}

/// Parses any TOML document into `T` with the errors of `Keep.toml`: file, line, column
/// and dotted key. Other TOML files of Keep (attestation policies) use it too.
pub fn parse_toml<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::at_offset(path, text, e.span().map(|s| s.start), None, e.message())
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        ConfigError::at_offset(
            path,
            text,
            inner.span().map(|s| s.start),
            Some(key),
            inner.message(),
        )
    })
}

/// An environment variable name: non-empty, without `=` or NUL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvName(String);

impl EnvName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EnvName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            Err(format!(
                "invalid environment variable name {name:?}: it must be non-empty, without '=' or NUL"
            ))
        } else {
            Ok(Self(name.to_owned()))
        }
    }
}

crate::deserialize_from_str!(EnvName);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("Keep.toml"))
    }

    #[test]
    fn secrets_need_a_steward_and_their_own_variables() {
        let with = |rest: &str| {
            parse(&format!(
                "steward = \"https://steward.example\"\n{rest}[[secrets]]\nname = \"db\"\nenv = \"DB\"\n"
            ))
        };
        let config = with("").unwrap();
        assert_eq!(config.secrets[0].name, "db");
        assert!(!config.secrets[0].optional);
        assert!(
            config
                .canonical()
                .contains(r#""secrets":[{"env":"DB","name":"db","optional":false}]"#),
            "{}",
            config.canonical()
        );
        assert!(
            !parse("").unwrap().canonical().contains("secrets"),
            "no secrets: the digest of older configurations is unchanged"
        );
        let error = with("[env]\nDB = \"x\"\n").unwrap_err().to_string();
        assert!(
            error.contains("the environment variable DB is given twice"),
            "{error}"
        );
        let error = parse("[[secrets]]\nname = \"db\"\nenv = \"DB\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("set `steward`"), "{error}");
    }

    #[test]
    fn secrets_go_somewhere_and_nowhere_twice() {
        let with = |rest: &str| {
            parse(&format!("steward = \"https://s.example\"\n{rest}"))
                .map(|c| c.canonical())
                .map_err(|e| e.to_string())
        };
        let canonical =
            with("[[secrets]]\nname = \"db\"\nfile = \"db\"\nconfig = \"db-password\"\n").unwrap();
        assert!(
            canonical.contains(
                r#""secrets":[{"config":"db-password","file":"db","name":"db","optional":false}],"secrets_dir":"/run/secrets""#
            ),
            "{canonical}"
        );
        let moved = with("secrets_dir = \"/secrets\"\n[[secrets]]\nname = \"db\"\nfile = \"db\"\n")
            .unwrap();
        assert!(moved.contains(r#""secrets_dir":"/secrets""#), "{moved}");
        for (rest, message) in [
            ("[[secrets]]\nname = \"db\"\n", "`env`, `file` or `config`"),
            (
                "[[secrets]]\nname = \"db\"\nfile = \"../db\"\n",
                "must be a plain file name",
            ),
            (
                "[[secrets]]\nname = \"a\"\nfile = \"x\"\n[[secrets]]\nname = \"b\"\nfile = \"x\"\n",
                "file `x` is given twice",
            ),
            (
                "[[secrets]]\nname = \"a\"\nconfig = \"x\"\n[[secrets]]\nname = \"b\"\nconfig = \"x\"\n",
                "config key `x` is empty or given twice",
            ),
            (
                "secrets_dir = \"run\"\n[[secrets]]\nname = \"db\"\nfile = \"db\"\n",
                "an absolute guest path",
            ),
            (
                "secrets_dir = \"/s\"\n[[secrets]]\nname = \"db\"\nenv = \"DB\"\n",
                "no [[secrets]] entry has a `file`",
            ),
            (
                "[[dirs]]\nhost = \"/tmp\"\nguest = \"/run/secrets\"\n[[secrets]]\nname = \"db\"\nfile = \"db\"\n",
                "a [[dirs]] entry is already seen there",
            ),
        ] {
            let error = with(rest).unwrap_err();
            assert!(error.contains(message), "{rest:?}: {error}");
        }
    }

    /// The `[[files]]` test of Enarx's own config crate, unchanged.
    #[test]
    fn enarx_files_keep_their_meaning() {
        let config = parse(
            r#"
            [[files]]
            kind = "stdin"

            [[files]]
            name = "X"
            kind = "listen"
            prot = "tcp"
            port = 9000

            [[files]]
            kind = "stdout"

            [[files]]
            kind = "null"

            [[files]]
            kind = "stderr"

            [[files]]
            kind = "connect"
            host = "example.com"
            "#,
        )
        .unwrap();
        assert_eq!(config.fd_names(), "stdin:X:stdout:null:stderr:example.com");
        assert_eq!(
            config.files[1].kind,
            FileKind::Listen {
                addr: "::".into(),
                port: 9000,
                prot: Protocol::Tcp,
                client_auth: ClientAuth::None,
            }
        );
        assert_eq!(
            config.files[5].kind,
            FileKind::Connect {
                host: "example.com".into(),
                port: 443,
                prot: Protocol::Tls
            }
        );
    }

    #[test]
    fn no_files_means_standard_streams() {
        let config = parse("args = [\"a\"]").unwrap();
        assert_eq!(config.fd_names(), "stdin:stdout:stderr");
        assert_eq!(config.args, ["a"]);
    }

    #[test]
    fn unknown_keys_are_errors_with_position_and_key() {
        let err = parse("args = []\n[limits]\nmemroy = \"1MiB\"\n").unwrap_err();
        assert_eq!(err.line, Some(3));
        assert_eq!(err.column, Some(1));
        assert!(err.message.contains("unknown field `memroy`"), "{err}");

        let err = parse("[[files]]\nkind = \"null\"\n[[files]]\nkind = \"null\"\nnmae = \"x\"\n")
            .unwrap_err();
        assert_eq!(err.key.as_deref(), Some("files[1].nmae"), "{err}");
        assert!(err.message.contains("nmae"), "{err}");
    }

    #[test]
    fn values_are_validated() {
        let cases = [
            (
                "[[files]]\nkind = \"listen\"\nname = \"a\"\nport = 70000\n",
                "files[0]",
            ),
            ("[[files]]\nkind = \"listen\"\nport = 80\n", "files[0]"),
            ("[[files]]\nkind = \"connect\"\n", "files[0]"),
            ("[[files]]\nkind = \"pipe\"\n", "files[0]"),
            ("[[files]]\nkind = \"null\"\nname = \"a:b\"\n", "files[0]"),
            ("[[files]]\nkind = \"stdout\"\nport = 1\n", "files[0]"),
            ("[limits]\nmemory = \"lots\"\n", "limits.memory"),
            ("[limits]\ntimeout = \"0s\"\n", "limits.timeout"),
            ("[limits]\nfuel = 0\n", "limits.fuel"),
            ("[limits]\noutput = 0\n", "limits.output"),
            ("[limits]\noutput = \"a lot\"\n", "limits.output"),
            ("[limits]\noutput_rate = 0\n", "limits.output_rate"),
            ("[env]\n\"A=B\" = \"x\"\n", "env"),
            ("steward = \"ftp://x\"\n", "steward"),
            ("[[dirs]]\nguest = \"/x\"\n", "dirs[0]"),
            ("[tls]\ncert = \"a.pem\"\n", "tls"),
            ("[tls]\nmin_version = \"1.1\"\n", "tls.min_version"),
            ("[network]\nconnect = [\"10.0.0.1\"]\n", "network.connect"),
            ("[network]\nlisten = [\"x y:1\"]\n", "network.listen"),
            (
                "[[files]]\nkind = \"listen\"\nname = \"a\"\nclient_auth = \"required\"\n",
                "files[0]",
            ),
            (
                "[[files]]\nkind = \"listen\"\nname = \"a\"\nprot = \"tcp\"\nclient_ca = [\"c.pem\"]\n",
                "files[0]",
            ),
            (
                "[[files]]\nkind = \"connect\"\nhost = \"h\"\nclient_auth = \"none\"\n",
                "files[0]",
            ),
        ];
        for (text, key) in cases {
            let err = parse(text).expect_err(text);
            assert!(
                err.key.as_deref().is_some_and(|k| k.starts_with(key)),
                "{text:?} gave {err}"
            );
            assert!(err.line.is_some(), "{text:?} gave {err}");
        }
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let err = parse("args = [\n").unwrap_err();
        assert!(err.line.is_some());
        assert!(err.to_string().starts_with("Keep.toml:"), "{err}");
    }

    #[test]
    fn relative_dirs_resolve_against_the_config_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("Keep.toml");
        std::fs::write(
            &path,
            "[[dirs]]\nhost = \"data\"\nguest = \"/data\"\nread_only = true\n",
        )
        .unwrap();
        let config = Config::from_path(&path).unwrap();
        assert_eq!(config.dirs[0].host, dir.join("data"));
        assert!(config.dirs[0].read_only);
    }

    #[test]
    fn ca_files_are_read_with_the_configuration_or_named_when_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("Keep.toml");
        std::fs::write(tmp.path().join("ca.pem"), "trusted\n").unwrap();
        std::fs::write(
            &path,
            "[tls]\nca = [\"ca.pem\"]\n[[files]]\nkind = \"listen\"\nname = \"api\"\n\
             client_auth = \"required\"\nclient_ca = [\"ca.pem\"]\n",
        )
        .unwrap();
        let config = Config::from_path(&path).unwrap();
        assert_eq!(config.tls.ca[0].pem, b"trusted\n");
        let FileKind::Listen { client_auth, .. } = &config.files[0].kind else {
            panic!("a listener");
        };
        assert_eq!(client_auth.ca()[0].pem, b"trusted\n");

        std::fs::remove_file(tmp.path().join("ca.pem")).unwrap();
        let err = Config::from_path(&path).unwrap_err().to_string();
        assert!(err.contains("tls.ca: cannot read `"), "{err}");
        assert!(err.contains("ca.pem`"), "{err}");
        std::fs::write(
            &path,
            "[[files]]\nkind = \"listen\"\nname = \"api\"\nclient_auth = \"required\"\n\
             client_ca = [\"gone.pem\"]\n",
        )
        .unwrap();
        let err = Config::from_path(&path).unwrap_err().to_string();
        assert!(
            err.contains("files `api` client_ca: cannot read `"),
            "{err}"
        );
    }

    #[test]
    fn a_packaged_keep_toml_takes_its_ca_files_from_the_package_not_the_host() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("ca.pem"), "host's\n").unwrap();
        let text = "[tls]\nca = [\"ca.pem\"]\n";
        let packaged: BTreeMap<String, Vec<u8>> =
            [("ca.pem".to_owned(), b"packaged\n".to_vec())].into();
        let name = Path::new("oci://example/app/Keep.toml");
        let config = Config::from_packaged_text(text, name, tmp.path(), &packaged).unwrap();
        assert_eq!(config.tls.ca[0].pem, b"packaged\n");
        assert_eq!(config.ca_contents(), packaged);

        let err = Config::from_packaged_text(text, name, tmp.path(), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tls.ca: `ca.pem` is not in the package"),
            "{err}"
        );
    }

    #[test]
    fn a_package_key_needs_a_steward_and_counts_in_the_canonical_form() {
        let name = Path::new("Keep.toml");
        let err = Config::parse("[package]\nkey = \"k\"\n", name).unwrap_err();
        assert!(err.to_string().contains("set `steward`"), "{err}");
        let steward = "steward = \"https://steward.example\"\n";
        let with = Config::parse(&format!("{steward}[package]\nkey = \"k\"\n"), name).unwrap();
        let other = Config::parse(&format!("{steward}[package]\nkey = \"j\"\n"), name).unwrap();
        let without = Config::parse(steward, name).unwrap();
        assert_eq!(with.package.as_ref().unwrap().key.as_deref(), Some("k"));
        let err = Config::parse("[package]\n", name).unwrap_err();
        assert!(
            err.to_string().contains("neither `key` nor `signers`"),
            "{err}"
        );
        let signed = Config::parse("[package]\nsigners = [\"ops.pub\"]\n", name).unwrap();
        assert_eq!(signed.canonical(), Config::default().canonical());
        assert_ne!(with.canonical(), other.canonical());
        assert!(!without.canonical().contains("package"));
    }

    #[test]
    fn missing_file_is_named() {
        let err = Config::from_path(Path::new("/nonexistent/Keep.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/Keep.toml: cannot read"),
            "{err}"
        );
    }
}
