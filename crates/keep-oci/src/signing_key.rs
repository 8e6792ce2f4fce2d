//! Signing keys in cosign's key-pair format, so that keys `cosign generate-key-pair` makes
//! sign for Keep and keys Keep makes sign for cosign and skopeo
//! (`--sign-by-sigstore-private-key`):
//!
//! - the private key: PEM `ENCRYPTED SIGSTORE PRIVATE KEY` (or cosign's older `ENCRYPTED
//!   COSIGN PRIVATE KEY`), whose body is JSON: scrypt's parameters and salt, a NaCl
//!   secretbox nonce, and the sealed PKCS#8 DER of an ECDSA P-256 key;
//! - the public key: PEM `PUBLIC KEY` (SPKI).
//!
//! Written here rather than taken from `sigstore-rs`, whose key support comes with an
//! OpenID/Fulcio/Rekor stack Keep does not use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use crypto_secretbox::aead::{Aead as _, KeyInit as _};
use p256::ecdsa::{SigningKey, VerifyingKey};
use p256::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
    LineEnding,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// PEM labels of an encrypted private key: sigstore's, and cosign's before it.
const ENCRYPTED_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// scrypt's cost as cosign sets it (N = 2^15, r = 8, p = 1).
const SCRYPT_LOG_N: u8 = 15;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;

/// Why a key cannot be read or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not PEM, or PEM of another kind.
    #[error("not a cosign key: {0}")]
    Format(String),
    /// The passphrase does not open the key (or the key was changed).
    #[error("the passphrase does not open this key")]
    Passphrase,
    /// The system's random source failed.
    #[error("no randomness: {0}")]
    Random(String),
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "base64_bytes")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "base64_bytes")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "base64_bytes")]
    nonce: Vec<u8>,
}

/// Go's `[]byte` in JSON: standard base64.
mod base64_bytes {
    use super::*;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

fn random(bytes: &mut [u8]) -> Result<(), KeyError> {
    getrandom::getrandom(bytes).map_err(|e| KeyError::Random(e.to_string()))
}

fn secretbox_key(
    passphrase: &[u8],
    salt: &[u8],
    params: &ScryptParams,
) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let log_n = u8::try_from(params.n.trailing_zeros())
        .ok()
        .filter(|_| params.n.is_power_of_two() && params.n > 1)
        .ok_or_else(|| {
            KeyError::Format(format!("scrypt N = {} is not a power of two", params.n))
        })?;
    // A key file must not make Keep spin or allocate without bound: scrypt needs
    // 128 * r * N bytes, here at most 256 MiB (cosign's keys need 32 MiB).
    if log_n > 17 || params.r > 16 || params.p > 4 {
        return Err(KeyError::Format(
            "scrypt's parameters are beyond any cosign key's".into(),
        ));
    }
    let scrypt_params = scrypt::Params::new(log_n, params.r, params.p, 32)
        .map_err(|e| KeyError::Format(format!("scrypt parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(passphrase, salt, &scrypt_params, key.as_mut())
        .map_err(|e| KeyError::Format(format!("scrypt: {e}")))?;
    Ok(key)
}

/// A new key pair: (the encrypted private key PEM, the public key PEM).
pub fn generate(passphrase: &[u8]) -> Result<(String, String), KeyError> {
    let signing = loop {
        let mut scalar = Zeroizing::new([0u8; 32]);
        random(scalar.as_mut())?;
        if let Ok(key) = SigningKey::from_bytes(scalar.as_ref().into()) {
            break key;
        }
    };
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| KeyError::Format(format!("PKCS#8: {e}")))?;
    let params = ScryptParams {
        n: 1 << SCRYPT_LOG_N,
        r: SCRYPT_R,
        p: SCRYPT_P,
    };
    let mut salt = vec![0u8; 32];
    random(&mut salt)?;
    let mut nonce = vec![0u8; 24];
    random(&mut nonce)?;
    let key = secretbox_key(passphrase, &salt, &params)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.as_ref().into());
    let ciphertext = cipher
        .encrypt(nonce.as_slice().into(), der.as_bytes())
        .map_err(|_| KeyError::Format("cannot seal the key".into()))?;
    let envelope = Envelope {
        kdf: Kdf {
            name: "scrypt".into(),
            params,
            salt,
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce,
        },
        ciphertext,
    };
    let body = serde_json::to_vec(&envelope).map_err(|e| KeyError::Format(e.to_string()))?;
    let private = pem(ENCRYPTED_LABELS[0], &body);
    let public = signing
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Format(format!("SPKI: {e}")))?;
    Ok((private, public))
}

/// The signing key in `pem` (cosign's encrypted form, opened with `passphrase`; or an
/// unencrypted PKCS#8 `PRIVATE KEY`).
pub fn signing_key(pem_text: &str, passphrase: &[u8]) -> Result<SigningKey, KeyError> {
    if pem_text.contains("-----BEGIN PRIVATE KEY-----") {
        return SigningKey::from_pkcs8_pem(pem_text)
            .map_err(|e| KeyError::Format(format!("PKCS#8: {e}")));
    }
    let (label, body) = unpem(pem_text)?;
    if !ENCRYPTED_LABELS.contains(&label.as_str()) {
        return Err(KeyError::Format(format!(
            "a PEM `{label}`, not an encrypted cosign private key"
        )));
    }
    let envelope: Envelope = serde_json::from_slice(&body)
        .map_err(|e| KeyError::Format(format!("the key's JSON: {e}")))?;
    if envelope.kdf.name != "scrypt" || envelope.cipher.name != "nacl/secretbox" {
        return Err(KeyError::Format(format!(
            "sealed with {} and {}, not scrypt and nacl/secretbox",
            envelope.kdf.name, envelope.cipher.name
        )));
    }
    if envelope.cipher.nonce.len() != 24 {
        return Err(KeyError::Format("the nonce is not 24 bytes".into()));
    }
    let key = secretbox_key(passphrase, &envelope.kdf.salt, &envelope.kdf.params)?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(key.as_ref().into());
    let der = Zeroizing::new(
        cipher
            .decrypt(
                envelope.cipher.nonce.as_slice().into(),
                envelope.ciphertext.as_slice(),
            )
            .map_err(|_| KeyError::Passphrase)?,
    );
    SigningKey::from_pkcs8_der(&der).map_err(|e| KeyError::Format(format!("PKCS#8: {e}")))
}

/// The verifying key in a PEM `PUBLIC KEY`.
pub fn verifying_key(pem_text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem_text)
        .map_err(|e| KeyError::Format(format!("a P-256 public key: {e}")))
}

fn pem(label: &str, body: &[u8]) -> String {
    let encoded = BASE64.encode(body);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

/// The label and body of the first PEM block in `text`.
fn unpem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let start = text
        .find("-----BEGIN ")
        .ok_or_else(|| KeyError::Format("no PEM block".into()))?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let (label, rest) = rest
        .split_once("-----")
        .ok_or_else(|| KeyError::Format("a broken PEM header".into()))?;
    let end = format!("-----END {label}-----");
    let (body, _) = rest
        .split_once(end.as_str())
        .ok_or_else(|| KeyError::Format(format!("no `{end}`")))?;
    let body: String = body.split_whitespace().collect();
    let body = BASE64
        .decode(body)
        .map_err(|e| KeyError::Format(format!("the PEM body: {e}")))?;
    Ok((label.to_owned(), body))
}

#[cfg(test)]
mod tests {
    use p256::ecdsa::signature::{Signer as _, Verifier as _};

    use super::*;

    #[test]
    fn a_generated_key_pair_signs_and_verifies_and_needs_its_passphrase() {
        let (private, public) = generate(b"correct horse").unwrap();
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        let signing = signing_key(&private, b"correct horse").unwrap();
        let signature: p256::ecdsa::Signature = signing.sign(b"payload");
        verifying_key(&public)
            .unwrap()
            .verify(b"payload", &signature)
            .unwrap();
        assert!(matches!(
            signing_key(&private, b"wrong"),
            Err(KeyError::Passphrase)
        ));
        assert!(matches!(
            signing_key(&public, b""),
            Err(KeyError::Format(_))
        ));
        assert!(matches!(
            signing_key("garbage", b""),
            Err(KeyError::Format(_))
        ));
    }

    /// A key `cosign generate-key-pair` made (testdata/README.md) opens, and signs what its
    /// public key verifies.
    #[test]
    fn a_key_cosign_made_opens_and_signs() {
        let pem = include_str!("../testdata/cosign_generated_encrypted_empty_private.key");
        let signing = signing_key(pem, b"").unwrap();
        let signature: p256::ecdsa::Signature = signing.sign(b"payload");
        signing
            .verifying_key()
            .verify(b"payload", &signature)
            .unwrap();
        assert!(matches!(
            signing_key(pem, b"not empty"),
            Err(KeyError::Passphrase)
        ));
    }
}
