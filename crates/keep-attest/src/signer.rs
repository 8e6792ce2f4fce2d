//! Package signers: the cosign public keys (ECDSA P-256, PEM `PUBLIC KEY`) that a Steward's
//! policy trusts to sign packages, and the fingerprint a certificate names each by.

use std::path::{Path, PathBuf};

use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};
use sha2::{Digest as _, Sha256};

/// A signer's public key, read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey {
    /// The file it was read from (as the policy names it, resolved).
    pub path: PathBuf,
    /// The key, DER SubjectPublicKeyInfo.
    pub spki: Vec<u8>,
}

impl SignerKey {
    /// Reads a cosign public key (`cosign.pub`, what `keep generate-key-pair` writes).
    pub fn load(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
        Self::from_pem(&pem)
            .map(|spki| Self {
                path: path.to_owned(),
                spki,
            })
            .map_err(|e| format!("`{}`: {e}", path.display()))
    }

    /// The DER SubjectPublicKeyInfo of a PEM `PUBLIC KEY` that is an ECDSA P-256 key (the
    /// keys cosign makes and Keep verifies).
    fn from_pem(pem: &str) -> Result<Vec<u8>, String> {
        let key = p256::PublicKey::from_public_key_pem(pem.trim()).map_err(|e| {
            format!("not a PEM `PUBLIC KEY` for ECDSA P-256 (a cosign public key): {e}")
        })?;
        key.to_public_key_der()
            .map(|der| der.as_bytes().to_vec())
            .map_err(|e| format!("cannot encode the key: {e}"))
    }

    /// How certificates and policies name this key.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.spki)
    }
}

/// `sha256:<hex>` of a DER SubjectPublicKeyInfo: how a certificate names the key that
/// signed a Keep's package.
pub fn fingerprint(spki: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(spki)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cosign_public_key_loads_and_anything_else_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let secret = p256::SecretKey::from_slice(&[7; 32]).unwrap();
        let pem = secret
            .public_key()
            .to_public_key_pem(Default::default())
            .unwrap();
        let path = dir.path().join("cosign.pub");
        std::fs::write(&path, &pem).unwrap();
        let key = SignerKey::load(&path).unwrap();
        let der = secret.public_key().to_public_key_der().unwrap();
        assert_eq!(key.spki, der.as_bytes());
        assert_eq!(key.fingerprint(), fingerprint(der.as_bytes()));
        assert!(key.fingerprint().starts_with("sha256:"));

        std::fs::write(&path, "not a key").unwrap();
        let err = SignerKey::load(&path).unwrap_err();
        assert!(err.contains("cosign.pub`: not a PEM `PUBLIC KEY`"), "{err}");
        let err = SignerKey::load(&dir.path().join("gone.pub")).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
