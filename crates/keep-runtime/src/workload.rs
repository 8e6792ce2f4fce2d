//! The workload digest: one SHA-256 naming what a Keep runs, for attestation policies,
//! certificates and verifiers (`keep digest`).
//!
//! ```text
//! digest = SHA-256( "keep-workload-v1\n"
//!                   "program sha256:<hex SHA-256 of the program's WebAssembly binary>\n"
//!                   "config <canonical configuration, or `none`>\n" )
//! ```
//!
//! The program is hashed as WebAssembly binary, so a `.wat` file and the `.wasm` it compiles
//! to have the same digest. The canonical configuration is the config file's TOML content
//! (comments, formatting and key order do not matter) as compact JSON with keys sorted,
//! without what only locates things on one host, and with file references replaced by
//! what they contain:
//!
//! - left out: `steward` (which attestation service is asked), `[[dirs]] host` (where the
//!   guest's directory lives on this host), `[tls] cert` and `key` (the Keep's identity,
//!   which the Steward issues);
//! - replaced by `sha256:<hex>` of the file's content: `[tls] ca` and each listener's
//!   `client_ca` (whom the Keep trusts is part of its behaviour).
//!
//! Everything else (arguments, environment, descriptors and sockets, guest paths and
//! read-only flags, limits, TLS policy, network allow lists) is covered. A key written with
//! its default value differs from the key left out: the digest names the configuration as
//! written.

use std::fmt;
use std::path::Path;

use anyhow::{Context as _, bail};
use sha2::{Digest as _, Sha256};

use crate::Program;

/// A workload digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadDigest(pub [u8; 32]);

impl fmt::Display for WorkloadDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// The digest of `program` run with the configuration file at `config` (if any).
pub fn workload_digest(program: &Program, config: Option<&Path>) -> anyhow::Result<WorkloadDigest> {
    let canonical = match config {
        Some(path) => canonical_config(path)?,
        None => "none".to_owned(),
    };
    let mut hasher = Sha256::new();
    hasher.update(b"keep-workload-v1\n");
    hasher.update(format!(
        "program sha256:{}\n",
        hex::encode(Sha256::digest(&program.bytes))
    ));
    hasher.update(format!("config {canonical}\n"));
    Ok(WorkloadDigest(hasher.finalize().into()))
}

/// The canonical form of a configuration file (see the module documentation).
fn canonical_config(path: &Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Only a valid configuration has a digest (errors name the line).
    keep_config::Config::parse(&text, path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    table.remove("steward");
    if let Some(toml::Value::Array(dirs)) = table.get_mut("dirs") {
        for dir in dirs.iter_mut().filter_map(toml::Value::as_table_mut) {
            dir.remove("host");
        }
    }
    if let Some(toml::Value::Table(tls)) = table.get_mut("tls") {
        tls.remove("cert");
        tls.remove("key");
        hash_files(tls, "ca", base)?;
    }
    if let Some(toml::Value::Array(files)) = table.get_mut("files") {
        for file in files.iter_mut().filter_map(toml::Value::as_table_mut) {
            hash_files(file, "client_ca", base)?;
        }
    }
    let mut out = String::new();
    write_canonical(&toml::Value::Table(table), &mut out);
    Ok(out)
}

/// Replaces the file names in `table[key]` by the SHA-256 of their content.
fn hash_files(table: &mut toml::Table, key: &str, base: &Path) -> anyhow::Result<()> {
    let Some(toml::Value::Array(paths)) = table.get_mut(key) else {
        return Ok(());
    };
    for value in paths.iter_mut() {
        let Some(name) = value.as_str() else {
            bail!("`{key}` must list file names");
        };
        let file = base.join(name);
        let content = std::fs::read(&file)
            .with_context(|| format!("`{key}`: cannot read {}", file.display()))?;
        *value = toml::Value::String(format!("sha256:{}", hex::encode(Sha256::digest(content))));
    }
    Ok(())
}

/// Compact JSON with sorted keys; TOML dates become strings.
fn write_canonical(value: &toml::Value, out: &mut String) {
    match value {
        toml::Value::String(s) => out.push_str(&serde_json::Value::String(s.clone()).to_string()),
        toml::Value::Integer(i) => out.push_str(&i.to_string()),
        toml::Value::Float(f) => out.push_str(&serde_json::json!(f).to_string()),
        toml::Value::Boolean(b) => out.push_str(&b.to_string()),
        toml::Value::Datetime(d) => {
            out.push_str(&serde_json::Value::String(d.to_string()).to_string())
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        toml::Value::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&table[key], out);
            }
            out.push('}');
        }
    }
}
