//! `sha256:HEX` content digests.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// A SHA-256 content digest, `sha256:` and 64 lowercase hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

/// A digest that is not `sha256:` and 64 lowercase hexadecimal digits.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a digest (`sha256:` and 64 lowercase hexadecimal digits)")]
pub struct DigestError(pub String);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, DigestError> {
        let valid = text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(DigestError(text.to_owned()))
        }
    }

    /// The hexadecimal part, which names the blob in a layout or a store.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The 32 bytes of the SHA-256.
    pub fn bytes(&self) -> [u8; 32] {
        let mut bytes = [0; 32];
        // Every digest is 64 hexadecimal digits (checked when made).
        let _ = hex::decode_to_slice(self.hex(), &mut bytes);
        bytes
    }

    /// The whole digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_sha256_and_64_lowercase_hex_digits() {
        let digest = Digest::of(b"");
        assert_eq!(
            digest.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::parse(digest.as_str()).unwrap(), digest);
        for bad in [
            "",
            "sha256:",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:../../../../etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }
}
