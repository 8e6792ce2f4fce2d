//! References to packages in registries: `[oci://]HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]`.

use std::fmt;

use crate::digest::Digest;

/// A package in a registry, by tag or by digest.
#[derive(Debug, Clone)]
pub struct PackageRef(oci_client::Reference);

impl PackageRef {
    /// Parses `text`, with or without `oci://`. A reference must name its registry
    /// (`HOST/REPOSITORY`): Keep does not guess one.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let bare = text.strip_prefix("oci://").unwrap_or(text);
        let Some((host, _)) = bare.split_once('/') else {
            anyhow::bail!(
                "`{text}` is not a package reference: expected HOST[:PORT]/REPOSITORY[:TAG] \
                 or HOST[:PORT]/REPOSITORY@sha256:DIGEST"
            );
        };
        if !host.contains(['.', ':']) && host != "localhost" {
            anyhow::bail!(
                "`{text}` does not name a registry host (`{host}` has no dot or port): write \
                 the registry's host in full, e.g. registry.example/{bare}"
            );
        }
        let reference: oci_client::Reference = bare
            .parse()
            .map_err(|error| anyhow::anyhow!("`{text}` is not a package reference: {error}"))?;
        if let Some(digest) = reference.digest() {
            Digest::parse(digest)?;
        }
        Ok(Self(reference))
    }

    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        self.0.resolve_registry()
    }

    /// Whether the registry is on this machine (plain HTTP is accepted only there, or when
    /// asked).
    pub fn is_loopback(&self) -> bool {
        let host = self.registry();
        let name = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name == "localhost"
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The digest the reference pins, if any.
    pub fn digest(&self) -> Option<Digest> {
        self.0.digest().and_then(|d| Digest::parse(d).ok())
    }

    /// `HOST/REPOSITORY`: what a signature names.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.0.registry(), self.0.repository())
    }

    /// The same repository at `tag`.
    pub(crate) fn with_tag(&self, tag: &str) -> Self {
        Self(oci_client::Reference::with_tag(
            self.0.registry().to_owned(),
            self.0.repository().to_owned(),
            tag.to_owned(),
        ))
    }

    /// This reference pinned to `digest` (same repository).
    pub fn with_digest(&self, digest: &Digest) -> Self {
        Self(oci_client::Reference::with_digest(
            self.0.registry().to_owned(),
            self.0.repository().to_owned(),
            digest.to_string(),
        ))
    }

    pub(crate) fn inner(&self) -> &oci_client::Reference {
        &self.0
    }
}

impl fmt::Display for PackageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.whole())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_registry() {
        let reference = PackageRef::parse("oci://127.0.0.1:5000/keep/hello:v1").unwrap();
        assert_eq!(reference.registry(), "127.0.0.1:5000");
        assert!(reference.is_loopback());
        assert_eq!(reference.to_string(), "127.0.0.1:5000/keep/hello:v1");
        assert!(
            !PackageRef::parse("registry.example/app:1")
                .unwrap()
                .is_loopback()
        );
        assert!(
            PackageRef::parse("localhost:5000/app")
                .unwrap()
                .is_loopback()
        );
        for bad in [
            "hello",
            "hello:v1",
            "library/hello:v1",
            "oci://",
            "host.example/UPPER:x",
        ] {
            assert!(PackageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
