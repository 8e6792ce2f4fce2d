//! Package signatures in cosign's format: a "simple signing" payload naming the repository
//! and the manifest digest, signed with ECDSA P-256 (DER, base64), attached to the
//! repository as the manifest tagged `sha256-HEX.sig` whose layers are the payloads and
//! whose annotations carry the signatures. cosign, and skopeo with
//! `use-sigstore-attachments`, write and read the same.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The media type of a signature's payload.
pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation of a payload's layer that holds its signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The `type` of a cosign container image signature.
const SIGNATURE_TYPE: &str = "cosign container image signature";

/// A payload and its signature (base64 of DER), as attached to a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signed {
    /// The simple-signing payload's bytes.
    pub payload: Vec<u8>,
    /// The signature over them, base64 of an ASN.1 DER ECDSA signature.
    pub signature: String,
}

/// Why a package's signatures do not satisfy the keys required.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No signature is attached.
    #[error("the package is not signed (no signature at {tag}), and a signature is required")]
    Unsigned { tag: String },
    /// Signatures are attached, none from a required key for this package.
    #[error(
        "none of the package's {count} signature(s) is a valid signature of {digest} in \
         {repository} by the key(s) required{detail}"
    )]
    NoValidSignature {
        count: usize,
        digest: Digest,
        repository: String,
        detail: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Payload {
    critical: Critical,
    optional: Option<serde_json::Value>,
}

#[derive(Serialize, Deserialize)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Serialize, Deserialize)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// The tag signatures of `digest` are attached under.
pub fn signature_tag(digest: &Digest) -> String {
    format!("sha256-{}.sig", digest.hex())
}

/// Signs `digest` of a package in `repository` (`HOST/REPOSITORY`) with `key`.
pub fn sign(key: &SigningKey, repository: &str, digest: &Digest) -> Signed {
    let payload = Payload {
        critical: Critical {
            identity: Identity {
                docker_reference: repository.to_owned(),
            },
            image: Image {
                docker_manifest_digest: digest.to_string(),
            },
            kind: SIGNATURE_TYPE.to_owned(),
        },
        optional: None,
    };
    // Serialising strings cannot fail.
    let payload = serde_json::to_vec(&payload).unwrap_or_default();
    let signature: Signature = key.sign(&payload);
    Signed {
        signature: BASE64.encode(signature.to_der().as_bytes()),
        payload,
    }
}

/// The first of `keys` (its index) that made a valid signature, among `signed`, of `digest`
/// in `repository`.
pub fn verify(
    signed: &[Signed],
    keys: &[VerifyingKey],
    repository: &str,
    digest: &Digest,
) -> Result<usize, SignatureError> {
    let mut reasons = Vec::new();
    for candidate in signed {
        match check(candidate, keys, repository, digest) {
            Ok(index) => return Ok(index),
            Err(reason) => reasons.push(reason),
        }
    }
    reasons.dedup();
    Err(SignatureError::NoValidSignature {
        count: signed.len(),
        digest: digest.clone(),
        repository: repository.to_owned(),
        detail: if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join("; "))
        },
    })
}

fn check(
    candidate: &Signed,
    keys: &[VerifyingKey],
    repository: &str,
    digest: &Digest,
) -> Result<usize, String> {
    let payload: Payload = serde_json::from_slice(&candidate.payload)
        .map_err(|e| format!("a payload is not a simple-signing payload: {e}"))?;
    if payload.critical.kind != SIGNATURE_TYPE {
        return Err(format!("a payload of type `{}`", payload.critical.kind));
    }
    if payload.critical.image.docker_manifest_digest != digest.as_str() {
        return Err(format!(
            "a signature of another manifest ({})",
            payload.critical.image.docker_manifest_digest
        ));
    }
    if payload.critical.identity.docker_reference != repository {
        return Err(format!(
            "a signature for another repository ({})",
            payload.critical.identity.docker_reference
        ));
    }
    let der = BASE64
        .decode(candidate.signature.trim())
        .map_err(|_| "a signature that is not base64".to_owned())?;
    let signature =
        Signature::from_der(&der).map_err(|_| "a signature that is not ECDSA DER".to_owned())?;
    keys.iter()
        .position(|key| key.verify(&candidate.payload, &signature).is_ok())
        .ok_or_else(|| "a signature by another key".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        let (private, _) = crate::signing_key::generate(b"pass").unwrap();
        crate::signing_key::signing_key(&private, b"pass").unwrap()
    }

    /// The payload is cosign's, byte for byte (field order, compact, `"optional":null`), so
    /// that cosign verifies what Keep signs.
    /// A signature cosign made (testdata/README.md) verifies, for its digest and repository
    /// only: Keep checks what cosign writes.
    #[test]
    fn a_signature_cosign_made_verifies() {
        let testdata = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/");
        let read = |name: &str| std::fs::read(format!("{testdata}{name}")).unwrap();
        let key = crate::signing_key::verifying_key(
            &String::from_utf8(read("cosign_signed_busybox.pub")).unwrap(),
        )
        .unwrap();
        let signed = [Signed {
            signature: String::from_utf8(read("cosign_signed_busybox.sig")).unwrap(),
            payload: read("cosign_signed_busybox.payload"),
        }];
        let digest = Digest::parse(
            "sha256:f3cfc9d0dbf931d3db4685ec659b7ac68e2a578219da4aae65427886e649b06b",
        )
        .unwrap();
        let repository = "registry-testing.svc.lan/busybox";
        assert_eq!(verify(&signed, &[key], repository, &digest).unwrap(), 0);
        assert!(verify(&signed, &[key], "registry-testing.svc.lan/other", &digest).is_err());
        let mut tampered = signed.clone();
        tampered[0].payload = String::from_utf8(tampered[0].payload.clone())
            .unwrap()
            .replace("busybox", "busyb0x")
            .into_bytes();
        let other_repository = "registry-testing.svc.lan/busyb0x";
        assert!(verify(&tampered, &[key], other_repository, &digest).is_err());
    }

    #[test]
    fn the_payload_is_the_one_cosign_writes() {
        let digest = Digest::of(b"manifest");
        let signed = sign(&key(), "localhost:5000/team/app", &digest);
        assert_eq!(
            String::from_utf8(signed.payload).unwrap(),
            format!(
                "{{\"critical\":{{\"identity\":{{\"docker-reference\":\"localhost:5000/team/app\"}},\
                 \"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\
                 \"type\":\"cosign container image signature\"}},\"optional\":null}}"
            )
        );
    }

    #[test]
    fn a_signature_holds_for_its_key_digest_and_repository_only() {
        let (signer, other) = (key(), key());
        let digest = Digest::of(b"manifest");
        let signed = sign(&signer, "registry.example/app", &digest);
        let keys = [*other.verifying_key(), *signer.verifying_key()];
        assert_eq!(
            verify(
                std::slice::from_ref(&signed),
                &keys,
                "registry.example/app",
                &digest
            )
            .unwrap(),
            1
        );
        for (keys, repository, digest) in [
            (&keys[..1], "registry.example/app", digest.clone()),
            (&keys[..], "registry.example/other", digest.clone()),
            (&keys[..], "registry.example/app", Digest::of(b"another")),
        ] {
            let error =
                verify(std::slice::from_ref(&signed), keys, repository, &digest).unwrap_err();
            assert!(
                matches!(error, SignatureError::NoValidSignature { count: 1, .. }),
                "{error}"
            );
        }
        let mut tampered = signed;
        tampered.payload.push(b' ');
        assert!(
            verify(
                &[tampered],
                &keys,
                "registry.example/app",
                &Digest::of(b"manifest")
            )
            .is_err()
        );
    }
}
