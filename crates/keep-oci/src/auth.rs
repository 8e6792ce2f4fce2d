//! Registry credentials from the files docker and podman keep them in: `auths.HOST.auth`
//! (base64 of `USER:PASSWORD`) in `$REGISTRY_AUTH_FILE`, podman's
//! `$XDG_RUNTIME_DIR/containers/auth.json`, and docker's `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`, the first that names the registry. Credential helpers
//! (`credsStore`) are not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use serde::Deserialize;

#[derive(Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
}

/// The files searched, in order.
fn auth_files() -> Vec<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let mut files = Vec::new();
    files.extend(var("REGISTRY_AUTH_FILE"));
    files.extend(var("XDG_RUNTIME_DIR").map(|dir| dir.join("containers/auth.json")));
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(dir.join("config.json")),
        None => files.extend(var("HOME").map(|home| home.join(".docker/config.json"))),
    }
    files
}

/// The user name and password stored for `registry`, if any file names it.
pub fn stored_credentials(registry: &str) -> anyhow::Result<Option<(String, String)>> {
    for file in auth_files() {
        if let Some(credentials) = credentials_in(&file, registry)? {
            return Ok(Some(credentials));
        }
    }
    Ok(None)
}

fn credentials_in(file: &Path, registry: &str) -> anyhow::Result<Option<(String, String)>> {
    let text = match std::fs::read(file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", file.display())),
    };
    let parsed: AuthFile = serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a registry auth file", file.display()))?;
    // Entries may be written with a scheme (`https://HOST`), as docker login once did.
    let entry = parsed.auths.iter().find(|(name, _)| {
        name.trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            == registry
    });
    let Some((name, AuthEntry { auth: Some(auth) })) = entry else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|text| text.split_once(':')) else {
        bail!(
            "{}: auths.\"{name}\".auth is not base64 of USER:PASSWORD",
            file.display()
        );
    };
    Ok(Some((user.to_owned(), password.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_by_registry_and_a_bad_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.json");
        std::fs::write(
            &file,
            r#"{"auths":{"https://registry.example":{"auth":"YWxpY2U6czNjcmV0"},
                "bad.example":{"auth":"!!"}}}"#,
        )
        .unwrap();
        assert_eq!(
            credentials_in(&file, "registry.example").unwrap(),
            Some(("alice".to_owned(), "s3cret".to_owned()))
        );
        assert_eq!(credentials_in(&file, "other.example").unwrap(), None);
        let error = credentials_in(&file, "bad.example").unwrap_err();
        assert!(
            error.to_string().contains("auths.\"bad.example\".auth"),
            "{error}"
        );
        std::fs::write(&file, "{").unwrap();
        assert!(credentials_in(&file, "x").is_err());
    }
}
