//! The canonical form of a configuration: what the workload digest covers.
//!
//! It is built from the typed [`Config`], field by field (each struct is destructured in
//! full, so a new field does not compile until it is decided here whether it counts), as
//! compact JSON with keys sorted:
//!
//! - left out: `steward` (which attestation service is asked), `[package] signers` (whether
//!   a package may run; what runs counts), `[[dirs]] host` (where the
//!   guest's directory lives on this host), `[tls] cert` and `key` (the Keep's identity,
//!   which the Steward issues), `[http] addr`, `port` and `admin` (where `keep serve`
//!   listens on this host, which `--addr` may change too);
//! - CA files (`[tls] ca`, `client_ca`) appear as `sha256:<hex>` of the content that was
//!   read with the configuration (the same bytes the TLS set-up uses);
//! - everything else counts, with its meaning rather than its spelling: sizes in bytes,
//!   durations in nanoseconds, defaults written out (`port` left out and `port = 443` are
//!   the same configuration).

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::{
    AddressRule, CaFile, ClientAuth, Config, DirGrant, File, FileKind, Http, Limits, NetworkPolicy,
    Protocol, SealedKey, SecretRef, Tls, TlsVersion,
};

impl Config {
    /// The canonical form of this configuration (see the module documentation). CA files
    /// count by the content read by [`Config::from_path`].
    pub fn canonical(&self) -> String {
        let Config {
            argv0,
            args,
            env,
            steward: _, // which Steward certifies the Keep is not what it runs
            files,
            dirs,
            limits,
            tls,
            network,
            secrets,
            secrets_dir,
            http,
            package,
        } = self;
        let env: Map<String, Value> = env
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), json!(value)))
            .collect();
        let value = json!({
            "argv0": argv0,
            "args": args,
            "env": env,
            "files": files.iter().map(file).collect::<Vec<_>>(),
            "dirs": dirs.iter().map(dir).collect::<Vec<_>>(),
            "limits": self::limits(limits),
            "tls": self::tls(tls),
            "network": self::network(network),
        });
        // The references count (which secret, where the guest sees it); values do not. Left
        // out when there are none, so that configurations without secrets keep their digests.
        let mut value = value;
        if !secrets.is_empty()
            && let Some(object) = value.as_object_mut()
        {
            object.insert(
                "secrets".to_owned(),
                secrets.iter().map(secret).collect::<Vec<_>>().into(),
            );
            // Where the files are is part of what the guest sees, when there are files.
            if secrets.iter().any(|s| s.file.is_some()) {
                object.insert(
                    "secrets_dir".to_owned(),
                    secrets_dir
                        .as_deref()
                        .unwrap_or(crate::DEFAULT_SECRETS_DIR)
                        .into(),
                );
            }
        }
        // Left out when absent, so that configurations without it keep their digests.
        if let (Some(http), Some(object)) = (http, value.as_object_mut()) {
            object.insert("http".to_owned(), self::http(http));
        }
        // Which secret decrypts the program; left out when absent, as `http`. The signers
        // decide whether a package runs, not what runs (its program and Keep.toml count).
        if let (Some(key), Some(object)) = (
            package.as_ref().and_then(|p| p.key.as_ref()),
            value.as_object_mut(),
        ) {
            object.insert("package".to_owned(), json!({ "key": key }));
        }
        let mut out = String::new();
        write_sorted(&value, &mut out);
        out
    }
}

fn secret(secret: &SecretRef) -> Value {
    let SecretRef {
        name,
        env,
        file,
        config,
        optional,
    } = secret;
    // Each place only when given, so that a secret in an environment variable keeps the
    // digest it had before files and config keys existed.
    let mut value = json!({ "name": name, "optional": optional });
    for (key, place) in [
        ("env", env.as_ref().map(|e| e.as_str())),
        ("file", file.as_deref()),
        ("config", config.as_deref()),
    ] {
        if let (Some(place), Some(object)) = (place, value.as_object_mut()) {
            object.insert(key.to_owned(), place.into());
        }
    }
    value
}

fn file(file: &File) -> Value {
    let File { name, kind } = file;
    let prot = |prot: &Protocol| match prot {
        Protocol::Tls => "tls",
        Protocol::Tcp => "tcp",
    };
    match kind {
        FileKind::Null | FileKind::Stdin | FileKind::Stdout | FileKind::Stderr => {
            json!({ "name": name, "kind": kind.as_str() })
        }
        FileKind::Listen {
            addr,
            port,
            prot: protocol,
            client_auth,
        } => {
            let (mode, ca) = client_auth_parts(client_auth);
            json!({
                "name": name, "kind": "listen", "addr": addr, "port": port,
                "prot": prot(protocol), "client_auth": mode, "client_ca": ca_digests(ca),
            })
        }
        FileKind::Connect {
            host,
            port,
            prot: protocol,
        } => json!({
            "name": name, "kind": "connect", "host": host, "port": port, "prot": prot(protocol),
        }),
    }
}

fn http(http: &Http) -> Value {
    let Http {
        addr: _, // where the service listens on this host
        port: _,
        tls,
        client_auth,
        concurrency,
        queue,
        max_body,
        max_headers,
        header_timeout,
        drain_timeout,
        access_log,
        admin: _, // where this host scrapes metrics
    } = http;
    let (mode, ca) = client_auth_parts(client_auth);
    let nanos = |t: &crate::Timeout| u64::try_from(t.0.as_nanos()).unwrap_or(u64::MAX);
    json!({
        "tls": tls, "client_auth": mode, "client_ca": ca_digests(ca),
        "concurrency": concurrency, "queue": queue,
        "max_body": max_body.map(|m| m.0), "max_headers": max_headers.0,
        "header_timeout_ns": nanos(header_timeout), "drain_timeout_ns": nanos(drain_timeout),
        "access_log": access_log,
    })
}

/// The `client_auth` spelling and the CA files of a client-certificate policy.
fn client_auth_parts(client_auth: &ClientAuth) -> (&'static str, &[CaFile]) {
    match client_auth {
        ClientAuth::None => ("none", &[]),
        ClientAuth::Optional { ca } => ("optional", ca),
        ClientAuth::Required { ca } => ("required", ca),
    }
}

fn dir(dir: &DirGrant) -> Value {
    let DirGrant {
        host: _, // where the directory lives on this host
        guest,
        read_only,
        sealed,
    } = dir;
    match sealed {
        // Left out when plain, so that configurations without sealed directories keep
        // their digests.
        None => json!({ "guest": guest, "read_only": read_only }),
        Some(SealedKey { secret, hardware }) => {
            let mut sealed = Map::new();
            sealed.insert("key".into(), json!(secret));
            // Left out when not asked for, so that stores keyed by a secret alone keep
            // their digests.
            if let Some(hardware) = hardware {
                sealed.insert("hardware_key".into(), json!(hardware.to_string()));
            }
            json!({ "guest": guest, "read_only": read_only, "sealed": sealed })
        }
    }
}

fn limits(limits: &Limits) -> Value {
    let Limits {
        memory,
        timeout,
        fuel,
        table_elements,
        open_files,
        output,
        output_rate,
    } = limits;
    json!({
        "memory": memory.map(|m| m.0),
        "timeout_ns": timeout.map(|t| u64::try_from(t.0.as_nanos()).unwrap_or(u64::MAX)),
        "fuel": fuel.map(|f| f.0),
        "table_elements": table_elements,
        "open_files": open_files,
        "output": output.map(|m| m.0),
        "output_rate": output_rate.map(|m| m.0),
    })
}

fn tls(tls: &Tls) -> Value {
    let Tls {
        identity: _, // the Keep's own certificate and key: the Steward issues them
        ca,
        mozilla_roots,
        min_version,
        cipher_suites,
        names,
    } = tls;
    json!({
        "ca": ca_digests(ca),
        "mozilla_roots": mozilla_roots,
        "min_version": match min_version {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        },
        "cipher_suites": cipher_suites,
        "names": names,
    })
}

fn network(network: &NetworkPolicy) -> Value {
    let NetworkPolicy {
        connect,
        listen,
        udp,
        dns,
    } = network;
    let rules = |rules: &[AddressRule]| rules.iter().map(ToString::to_string).collect::<Vec<_>>();
    json!({ "connect": rules(connect), "listen": rules(listen), "udp": udp, "dns": dns })
}

fn ca_digests(files: &[CaFile]) -> Vec<String> {
    files
        .iter()
        .map(|file| format!("sha256:{}", hex::encode(Sha256::digest(&file.pem))))
        .collect()
}

/// Compact JSON with object keys sorted (independent of serde_json's map order, which a
/// feature elsewhere in a build could change).
fn write_sorted(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_sorted(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (index, key) in keys.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_sorted(&map[key], out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn canonical(text: &str) -> String {
        Config::parse(text, Path::new("Keep.toml"))
            .unwrap()
            .canonical()
    }

    #[test]
    fn spelling_does_not_count_meaning_does() {
        let base = canonical("args = [\"a\"]\n[limits]\nmemory = \"1MiB\"\ntimeout = \"1m\"\n");
        assert_eq!(
            canonical("# x\n[limits]\ntimeout = \"60s\"\nmemory = 1048576\n\n"),
            canonical("[limits]\nmemory = \"1MiB\"\ntimeout = \"1m\"\n"),
            "comments, order, units"
        );
        assert_eq!(
            canonical("args = [ \"a\" ]\n[limits]\ntimeout = \"60s\"\nmemory = 1048576\n"),
            base
        );
        assert_ne!(
            base,
            canonical("args = [\"b\"]\n[limits]\nmemory = \"1MiB\"\ntimeout = \"1m\"\n")
        );
        assert_ne!(
            base,
            canonical("args = [\"a\"]\n[limits]\nmemory = \"1MiB\"\n")
        );
    }

    #[test]
    fn host_local_keys_do_not_count() {
        let a = canonical(
            "steward = \"https://a.example\"\n[[dirs]]\nhost = \"/srv/a\"\nguest = \"/data\"\n",
        );
        let b = canonical("[[dirs]]\nhost = \"/srv/b\"\nguest = \"/data\"\n");
        assert_eq!(a, b);
        assert_ne!(
            a,
            canonical("[[dirs]]\nhost = \"/srv/b\"\nguest = \"/other\"\n")
        );
    }

    #[test]
    fn where_a_sealed_directorys_key_comes_from_counts() {
        let sealed = |key: &str| {
            canonical(&format!(
                "steward = \"https://a.example\"\n[[dirs]]\nhost = \"/srv\"\nguest = \"/data\"\n\
                 sealed = true\n{key}"
            ))
        };
        let secret = sealed("key = \"k\"\n");
        assert!(
            secret.contains(r#""sealed":{"key":"k"}"#),
            "a secret alone is written as before hardware keys: {secret}"
        );
        let both = sealed("key = \"k\"\nhardware_key = \"sev-snp\"\n");
        let hardware = sealed("hardware_key = \"sev-snp\"\n");
        assert_ne!(secret, both);
        assert_ne!(both, hardware);
        assert_ne!(secret, hardware);
        assert_ne!(secret, sealed("key = \"other\"\n"));
    }

    #[test]
    fn http_counts_except_where_it_listens() {
        let served = canonical("[http]\naddr = \"::\"\nport = 443\n");
        assert_eq!(
            served,
            canonical("[http]\n"),
            "addr and port are the host's"
        );
        assert_eq!(served, canonical("[http]\ntls = true\nconcurrency = 64\n"));
        assert_ne!(served, canonical(""), "serving at all counts");
        assert_ne!(served, canonical("[http]\ntls = false\n"));
        assert_ne!(served, canonical("[http]\nmax_body = \"1MiB\"\n"));
        assert!(
            !canonical("").contains("http"),
            "older digests are unchanged"
        );
    }

    #[test]
    fn defaults_written_out_are_the_same_configuration() {
        assert_eq!(
            canonical("[[files]]\nkind = \"connect\"\nhost = \"h\"\n"),
            canonical("[[files]]\nkind = \"connect\"\nhost = \"h\"\nport = 443\nprot = \"tls\"\n"),
        );
        assert_eq!(canonical(""), canonical("[tls]\nmozilla_roots = true\n"));
    }

    #[test]
    fn ca_files_count_by_content() {
        let mut config = Config::parse("[tls]\nca = [\"ca.pem\"]\n", Path::new("K")).unwrap();
        config.tls.ca[0].pem = b"first".to_vec();
        let first = config.canonical();
        config.tls.ca[0].path = "elsewhere.pem".into();
        assert_eq!(config.canonical(), first, "the path does not count");
        config.tls.ca[0].pem = b"second".to_vec();
        assert_ne!(config.canonical(), first, "the content does");
    }

    #[test]
    fn the_form_is_compact_sorted_json() {
        let text = canonical("args = [\"x\"]\n");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["args"], json!(["x"]));
        assert!(
            text.starts_with("{\"args\":[\"x\"],\"argv0\":null,\"dirs\":[]"),
            "{text}"
        );
    }
}
