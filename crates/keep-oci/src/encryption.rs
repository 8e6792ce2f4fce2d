//! Encrypted layers in the containers ecosystem's format (ocicrypt, as `skopeo copy
//! --encryption-key jwe:…`, containerd's imgcrypt and CoCo use it): the layer is encrypted
//! with AES-256-CTR under a fresh key and authenticated with HMAC-SHA256 over the
//! ciphertext; the key, the nonce and the plaintext's digest are wrapped in a JWE for each
//! recipient's public key (ECDH-ES+A256KW with A256GCM, P-256 keys).
//!
//! | annotation | value |
//! |---|---|
//! | `org.opencontainers.image.enc.keys.jwe` | base64 of the JWE (JSON serialization); several JWEs comma-separated |
//! | `org.opencontainers.image.enc.pubopts` | base64 of `{"cipher":"AES_256_CTR_HMAC_SHA256","hmac":…,"cipheroptions":{}}` |
//!
//! The JWE's plaintext is `{"symkey":…,"digest":"sha256:…","cipheroptions":{"nonce":…}}`
//! (byte strings in standard base64, as Go's `encoding/json` writes them).
//!
//! Written here on RustCrypto's primitives: the Rust port of ocicrypt (`ocicrypt-rs`) is not
//! published on crates.io, and the JWE crates there either lack ECDH-ES+A256KW or bring
//! OpenSSL.

use std::collections::BTreeMap;

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ctr::cipher::{KeyIvInit as _, StreamCipher as _};
use hmac::Mac as _;
use p256::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::digest::Digest;

/// The annotation with the wrapped keys.
pub const ANNOTATION_JWE: &str = "org.opencontainers.image.enc.keys.jwe";
/// The annotation with the public cipher options (the cipher and the HMAC).
pub const ANNOTATION_PUBOPTS: &str = "org.opencontainers.image.enc.pubopts";
/// The suffix of an encrypted layer's media type.
pub const ENCRYPTED_SUFFIX: &str = "+encrypted";

/// The only layer cipher ocicrypt defines.
const CIPHER: &str = "AES_256_CTR_HMAC_SHA256";
/// The JWE key management and content encryption Keep writes and reads.
const ALG: &str = "ECDH-ES+A256KW";
const ENC: &str = "A256GCM";

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;
type HmacSha256 = hmac::Hmac<Sha256>;

/// Why a layer could not be encrypted or decrypted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptionError {
    /// The annotations or the JWE are not what ocicrypt writes.
    #[error("the encrypted layer's {what} is not valid: {detail}")]
    Malformed { what: &'static str, detail: String },
    /// A cipher or JWE algorithm Keep does not implement.
    #[error("{0} (Keep reads AES_256_CTR_HMAC_SHA256 layers with ECDH-ES+A256KW/A256GCM JWE keys)")]
    Unsupported(String),
    /// None of the wrapped keys opens with the key given.
    #[error("the layer is not encrypted to this key (none of its {0} recipient(s) opens with it)")]
    NotARecipient(usize),
    /// The ciphertext's HMAC or the plaintext's digest does not match: the layer was changed.
    #[error("the encrypted layer was changed: its {0} does not match")]
    Tampered(&'static str),
    /// No recipient to encrypt to.
    #[error("an encrypted layer needs at least one recipient")]
    NoRecipient,
}

fn malformed(what: &'static str, detail: impl std::fmt::Display) -> EncryptionError {
    EncryptionError::Malformed {
        what,
        detail: detail.to_string(),
    }
}

/// An encrypted layer: the ciphertext and the annotations its descriptor carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedLayer {
    /// The ciphertext (what the registry and the host see).
    pub bytes: Vec<u8>,
    /// [`ANNOTATION_JWE`] and [`ANNOTATION_PUBOPTS`].
    pub annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct PublicOptions {
    cipher: String,
    #[serde(with = "std_base64")]
    hmac: Vec<u8>,
    #[serde(default)]
    cipheroptions: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct PrivateOptions {
    #[serde(with = "std_base64")]
    symkey: Vec<u8>,
    digest: String,
    #[serde(default)]
    cipheroptions: BTreeMap<String, String>,
}

mod std_base64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    pub fn serialize<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(de)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// Encrypts `plain` for `recipients` (P-256 public keys).
pub fn encrypt(
    plain: &[u8],
    recipients: &[p256::PublicKey],
) -> Result<EncryptedLayer, EncryptionError> {
    if recipients.is_empty() {
        return Err(EncryptionError::NoRecipient);
    }
    let symkey = Zeroizing::new(random::<32>());
    let nonce = random::<16>();
    let mut bytes = plain.to_vec();
    Aes256Ctr::new(symkey.as_ref().into(), &nonce.into()).apply_keystream(&mut bytes);
    let hmac = mac(&symkey, &bytes);
    let private = PrivateOptions {
        symkey: symkey.to_vec(),
        digest: Digest::of(plain).to_string(),
        cipheroptions: [("nonce".to_owned(), STANDARD.encode(nonce))].into(),
    };
    // Serialising strings cannot fail.
    let private = Zeroizing::new(serde_json::to_vec(&private).unwrap_or_default());
    let jwe = jwe::encrypt(&private, recipients);
    let public = PublicOptions {
        cipher: CIPHER.to_owned(),
        hmac,
        cipheroptions: BTreeMap::new(),
    };
    let public = serde_json::to_vec(&public).unwrap_or_default();
    Ok(EncryptedLayer {
        bytes,
        annotations: [
            (ANNOTATION_JWE.to_owned(), STANDARD.encode(jwe)),
            (ANNOTATION_PUBOPTS.to_owned(), STANDARD.encode(public)),
        ]
        .into(),
    })
}

/// Decrypts `layer` with `key`, checking the ciphertext's HMAC and the plaintext's digest.
pub fn decrypt(layer: &EncryptedLayer, key: &p256::SecretKey) -> Result<Vec<u8>, EncryptionError> {
    let annotation = |name: &str, what: &'static str| {
        layer
            .annotations
            .get(name)
            .ok_or_else(|| malformed(what, format!("no `{name}` annotation")))
    };
    let public = STANDARD
        .decode(annotation(ANNOTATION_PUBOPTS, "public options")?)
        .map_err(|e| malformed("public options", e))?;
    let public: PublicOptions =
        serde_json::from_slice(&public).map_err(|e| malformed("public options", e))?;
    if public.cipher != CIPHER {
        return Err(EncryptionError::Unsupported(format!(
            "the layer cipher `{}`",
            public.cipher
        )));
    }
    let wrapped: Vec<&str> = annotation(ANNOTATION_JWE, "wrapped keys")?
        .split(',')
        .collect();
    let private = wrapped
        .iter()
        .find_map(|one| {
            let json = STANDARD
                .decode(one)
                .map_err(|e| malformed("wrapped keys", e));
            json.and_then(|json| jwe::decrypt(&json, key)).transpose()
        })
        .transpose()?
        .ok_or(EncryptionError::NotARecipient(wrapped.len()))?;
    let private: PrivateOptions =
        serde_json::from_slice(&private).map_err(|e| malformed("private options", e))?;
    let symkey = Zeroizing::new(private.symkey);
    let nonce = private
        .cipheroptions
        .get("nonce")
        .and_then(|nonce| STANDARD.decode(nonce).ok())
        .ok_or_else(|| malformed("private options", "no nonce"))?;
    let (Ok(symkey_array), Ok(nonce)) = (
        <[u8; 32]>::try_from(symkey.as_slice()),
        <[u8; 16]>::try_from(nonce.as_slice()),
    ) else {
        return Err(malformed(
            "private options",
            "the key is not 32 bytes or the nonce not 16",
        ));
    };
    let symkey_array = Zeroizing::new(symkey_array);
    let mut check = <HmacSha256 as hmac::Mac>::new_from_slice(symkey_array.as_ref())
        .map_err(|e| malformed("private options", e))?;
    check.update(&layer.bytes);
    check
        .verify_slice(&public.hmac)
        .map_err(|_| EncryptionError::Tampered("HMAC"))?;
    let mut plain = layer.bytes.clone();
    Aes256Ctr::new(symkey_array.as_ref().into(), &nonce.into()).apply_keystream(&mut plain);
    if Digest::of(&plain).to_string() != private.digest {
        return Err(EncryptionError::Tampered("digest"));
    }
    Ok(plain)
}

/// A recipient's public key: PEM `PUBLIC KEY` (P-256), as `openssl ec -pubout` writes it and
/// `skopeo --encryption-key jwe:FILE` reads it.
pub fn public_key(pem: &str) -> Result<p256::PublicKey, String> {
    use p256::pkcs8::DecodePublicKey as _;
    p256::PublicKey::from_public_key_pem(pem.trim())
        .map_err(|e| format!("not a PEM `PUBLIC KEY` for P-256: {e}"))
}

/// A recipient's private key: PEM `PRIVATE KEY` (PKCS#8) or `EC PRIVATE KEY` (SEC1), P-256
/// (a file's bytes, or a secret's value).
pub fn private_key(pem: &[u8]) -> Result<p256::SecretKey, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    let pem = std::str::from_utf8(pem)
        .map_err(|_| "not a PEM private key (not UTF-8)".to_owned())?
        .trim();
    p256::SecretKey::from_pkcs8_pem(pem)
        .or_else(|_| p256::SecretKey::from_sec1_pem(pem))
        .map_err(|e| format!("not a PEM `PRIVATE KEY` or `EC PRIVATE KEY` for P-256: {e}"))
}

fn mac(key: &[u8; 32], bytes: &[u8]) -> Vec<u8> {
    let mut mac =
        <HmacSha256 as hmac::Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    mac.finalize().into_bytes().to_vec()
}

fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    // The OS's randomness; without it no key can be made at all.
    getrandom::getrandom(&mut bytes).expect("the OS random number generator");
    bytes
}

/// JWE (RFC 7516) with ECDH-ES+A256KW key agreement (RFC 7518 §4.6) and A256GCM content
/// encryption: the one combination ocicrypt writes for EC keys.
mod jwe {
    use super::*;

    #[derive(Serialize, Deserialize, Default, Clone)]
    struct Header {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        alg: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        enc: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epk: Option<Jwk>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        apu: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        apv: Option<String>,
    }

    #[derive(Serialize, Deserialize, Clone)]
    struct Jwk {
        kty: String,
        crv: String,
        x: String,
        y: String,
    }

    #[derive(Serialize, Deserialize)]
    struct Recipient {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<Header>,
        encrypted_key: String,
    }

    /// The flattened (one recipient) or general (`recipients`) JSON serialization.
    #[derive(Serialize, Deserialize)]
    struct Jwe {
        protected: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unprotected: Option<Header>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        header: Option<Header>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        encrypted_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recipients: Option<Vec<Recipient>>,
        iv: String,
        ciphertext: String,
        tag: String,
    }

    pub(super) fn encrypt(plain: &[u8], recipients: &[p256::PublicKey]) -> Vec<u8> {
        let cek = Zeroizing::new(random::<32>());
        let wrapped: Vec<(Header, String)> = recipients
            .iter()
            .map(|recipient| {
                let ephemeral = ephemeral_key();
                let kek = key_encryption_key(&ephemeral, recipient, &[], &[]);
                let encrypted_key = aes_kw::KekAes256::from(*kek)
                    .wrap_vec(cek.as_ref())
                    .expect("a 32-byte key wraps");
                let header = Header {
                    alg: Some(ALG.to_owned()),
                    epk: Some(jwk(&ephemeral.public_key())),
                    ..Header::default()
                };
                (header, URL_SAFE_NO_PAD.encode(encrypted_key))
            })
            .collect();
        let one = wrapped.len() == 1;
        let mut protected = Header {
            enc: Some(ENC.to_owned()),
            ..Header::default()
        };
        let mut recipients_json = Vec::new();
        let mut flat_key = None;
        for (header, encrypted_key) in wrapped {
            if one {
                protected.alg = header.alg;
                protected.epk = header.epk;
                flat_key = Some(encrypted_key);
            } else {
                recipients_json.push(Recipient {
                    header: Some(header),
                    encrypted_key,
                });
            }
        }
        let protected = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&protected).unwrap_or_default());
        let iv = random::<12>();
        let sealed = aes_gcm::Aes256Gcm::new(cek.as_ref().into())
            .encrypt(
                (&iv).into(),
                Payload {
                    msg: plain,
                    aad: protected.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message of this size");
        let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
        let jwe = Jwe {
            protected,
            unprotected: None,
            header: None,
            encrypted_key: flat_key,
            recipients: (!one).then_some(recipients_json),
            iv: URL_SAFE_NO_PAD.encode(iv),
            ciphertext: URL_SAFE_NO_PAD.encode(ciphertext),
            tag: URL_SAFE_NO_PAD.encode(tag),
        };
        serde_json::to_vec(&jwe).unwrap_or_default()
    }

    /// The plaintext, if one of the JWE's recipients is `key`.
    pub(super) fn decrypt(
        json: &[u8],
        key: &p256::SecretKey,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, EncryptionError> {
        let jwe: Jwe = serde_json::from_slice(json).map_err(|e| malformed("JWE", e))?;
        let b64 = |what: &'static str, text: &str| {
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|e| malformed(what, e))
        };
        let protected: Header = serde_json::from_slice(&b64("JWE header", &jwe.protected)?)
            .map_err(|e| malformed("JWE header", e))?;
        let recipients: Vec<(Option<Header>, String)> = match (&jwe.recipients, &jwe.encrypted_key)
        {
            (Some(list), _) => list
                .iter()
                .map(|r| (r.header.clone(), r.encrypted_key.clone()))
                .collect(),
            (None, Some(key)) => vec![(None, key.clone())],
            (None, None) => return Err(malformed("JWE", "no recipient")),
        };
        let shared = [jwe.unprotected.as_ref(), jwe.header.as_ref()];
        let mut unsupported = Vec::new();
        let count = recipients.len();
        for (header, encrypted_key) in recipients {
            let pick = |field: fn(&Header) -> Option<&String>| {
                std::iter::once(&protected)
                    .chain(shared.into_iter().flatten())
                    .chain(header.as_ref())
                    .find_map(field)
                    .cloned()
            };
            let alg = pick(|h| h.alg.as_ref()).unwrap_or_default();
            let enc = pick(|h| h.enc.as_ref()).unwrap_or_default();
            if alg != ALG || enc != ENC {
                // Wrapped for a kind of key Keep does not hold (an RSA key, say): another
                // recipient may be this key.
                unsupported.push(format!("`{alg}` with `{enc}`"));
                continue;
            }
            let epk = std::iter::once(&protected)
                .chain(shared.into_iter().flatten())
                .chain(header.as_ref())
                .find_map(|h| h.epk.clone())
                .ok_or_else(|| malformed("JWE header", "no `epk`"))?;
            let ephemeral = public_key(&epk)?;
            let apu = pick(|h| h.apu.as_ref())
                .map(|a| b64("JWE header", &a))
                .transpose()?;
            let apv = pick(|h| h.apv.as_ref())
                .map(|a| b64("JWE header", &a))
                .transpose()?;
            let kek = key_encryption_key(
                key,
                &ephemeral,
                apu.as_deref().unwrap_or_default(),
                apv.as_deref().unwrap_or_default(),
            );
            let Ok(cek) =
                aes_kw::KekAes256::from(*kek).unwrap_vec(&b64("JWE key", &encrypted_key)?)
            else {
                // Wrapped for another key.
                continue;
            };
            let cek = Zeroizing::new(cek);
            if cek.len() != 32 {
                return Err(malformed("JWE key", "the content key is not 32 bytes"));
            }
            let iv = b64("JWE iv", &jwe.iv)?;
            if iv.len() != 12 {
                return Err(malformed("JWE iv", "not 12 bytes"));
            }
            let mut sealed = b64("JWE ciphertext", &jwe.ciphertext)?;
            sealed.extend(b64("JWE tag", &jwe.tag)?);
            let plain = aes_gcm::Aes256Gcm::new(cek.as_slice().into())
                .decrypt(
                    aes_gcm::Nonce::from_slice(&iv),
                    Payload {
                        msg: &sealed,
                        aad: jwe.protected.as_bytes(),
                    },
                )
                .map_err(|_| EncryptionError::Tampered("JWE tag"))?;
            return Ok(Some(Zeroizing::new(plain)));
        }
        if unsupported.len() == count {
            return Err(EncryptionError::Unsupported(format!(
                "JWE recipients of {}",
                unsupported.join(", ")
            )));
        }
        Ok(None)
    }

    /// The key that wraps the content key: Concat KDF (NIST SP 800-56A, SHA-256) of the
    /// ECDH shared secret, for `ECDH-ES+A256KW` (RFC 7518 §4.6.2).
    fn key_encryption_key(
        secret: &p256::SecretKey,
        public: &p256::PublicKey,
        apu: &[u8],
        apv: &[u8],
    ) -> Zeroizing<[u8; 32]> {
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
        let field = |bytes: &[u8]| {
            let mut out = (bytes.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(bytes);
            out
        };
        let digest = Sha256::new()
            .chain_update(1u32.to_be_bytes())
            .chain_update(shared.raw_secret_bytes())
            .chain_update(field(ALG.as_bytes()))
            .chain_update(field(apu))
            .chain_update(field(apv))
            .chain_update(256u32.to_be_bytes())
            .finalize();
        Zeroizing::new(digest.into())
    }

    /// A fresh P-256 key: random bytes, drawn again in the rare case (2^-32) that they are not
    /// a scalar below the group order.
    fn ephemeral_key() -> p256::SecretKey {
        loop {
            if let Ok(key) = p256::SecretKey::from_bytes(&random::<32>().into()) {
                return key;
            }
        }
    }

    fn jwk(key: &p256::PublicKey) -> Jwk {
        let point = key.to_encoded_point(false);
        Jwk {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x: URL_SAFE_NO_PAD.encode(point.x().map(|x| x.as_slice()).unwrap_or_default()),
            y: URL_SAFE_NO_PAD.encode(point.y().map(|y| y.as_slice()).unwrap_or_default()),
        }
    }

    fn public_key(jwk: &Jwk) -> Result<p256::PublicKey, EncryptionError> {
        if jwk.kty != "EC" || jwk.crv != "P-256" {
            return Err(EncryptionError::Unsupported(format!(
                "an ephemeral key of type {} {}",
                jwk.kty, jwk.crv
            )));
        }
        let coordinate = |text: &str| -> Result<p256::FieldBytes, EncryptionError> {
            let bytes = URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|e| malformed("JWE epk", e))?;
            <[u8; 32]>::try_from(bytes.as_slice())
                .map(Into::into)
                .map_err(|_| malformed("JWE epk", "a coordinate is not 32 bytes"))
        };
        let point = p256::EncodedPoint::from_affine_coordinates(
            &coordinate(&jwk.x)?,
            &coordinate(&jwk.y)?,
            false,
        );
        Option::from(p256::PublicKey::from_encoded_point(&point))
            .ok_or_else(|| malformed("JWE epk", "not a point on P-256"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> p256::SecretKey {
        p256::SecretKey::from_bytes(&[byte; 32].into()).unwrap()
    }

    #[test]
    fn a_layer_opens_for_each_recipient_only_and_a_change_is_detected() {
        let plain = b"\0asm\x01\0\0\0 a program".to_vec();
        for recipients in [vec![key(1)], vec![key(1), key(2)]] {
            let public: Vec<_> = recipients.iter().map(p256::SecretKey::public_key).collect();
            let layer = encrypt(&plain, &public).unwrap();
            assert_ne!(layer.bytes, plain);
            for recipient in &recipients {
                assert_eq!(decrypt(&layer, recipient).unwrap(), plain);
            }
            assert!(matches!(
                decrypt(&layer, &key(3)),
                Err(EncryptionError::NotARecipient(1))
            ));
            let mut changed = layer.clone();
            changed.bytes[0] ^= 1;
            assert!(matches!(
                decrypt(&changed, &recipients[0]),
                Err(EncryptionError::Tampered("HMAC"))
            ));
        }
        // Fresh keys each time: the same plaintext never gives the same ciphertext.
        let public = [key(1).public_key()];
        assert_ne!(
            encrypt(&plain, &public).unwrap(),
            encrypt(&plain, &public).unwrap()
        );
        assert!(matches!(
            encrypt(&plain, &[]),
            Err(EncryptionError::NoRecipient)
        ));
    }

    #[test]
    fn a_recipient_of_another_kind_is_passed_over_for_this_key() {
        let layer = encrypt(b"x", &[key(1).public_key(), key(2).public_key()]).unwrap();
        let jwe = STANDARD.decode(&layer.annotations[ANNOTATION_JWE]).unwrap();
        let mut jwe: serde_json::Value = serde_json::from_slice(&jwe).unwrap();
        jwe["recipients"][0]["header"]["alg"] = "RSA-OAEP".into();
        let mut mixed = layer.clone();
        mixed.annotations.insert(
            ANNOTATION_JWE.to_owned(),
            STANDARD.encode(serde_json::to_vec(&jwe).unwrap()),
        );
        assert_eq!(decrypt(&mixed, &key(2)).unwrap(), b"x");
        assert!(matches!(
            decrypt(&mixed, &key(1)),
            Err(EncryptionError::NotARecipient(1))
        ));
        jwe["recipients"][1]["header"]["alg"] = "RSA-OAEP".into();
        mixed.annotations.insert(
            ANNOTATION_JWE.to_owned(),
            STANDARD.encode(serde_json::to_vec(&jwe).unwrap()),
        );
        let err = decrypt(&mixed, &key(2)).unwrap_err().to_string();
        assert!(err.contains("RSA-OAEP"), "{err}");
    }

    #[test]
    fn malformed_annotations_are_named_not_panicked_on() {
        let layer = encrypt(b"x", &[key(1).public_key()]).unwrap();
        let mut missing = layer.clone();
        missing.annotations.remove(ANNOTATION_JWE);
        let err = decrypt(&missing, &key(1)).unwrap_err().to_string();
        assert!(err.contains(ANNOTATION_JWE), "{err}");
        for (name, value) in [
            (ANNOTATION_JWE, "!!!"),
            (ANNOTATION_JWE, "e30="),
            (ANNOTATION_PUBOPTS, "e30="),
        ] {
            let mut bad = layer.clone();
            bad.annotations.insert(name.to_owned(), value.to_owned());
            assert!(decrypt(&bad, &key(1)).is_err(), "{name} {value}");
        }
        let mut other_cipher = layer;
        other_cipher.annotations.insert(
            ANNOTATION_PUBOPTS.to_owned(),
            STANDARD.encode(br#"{"cipher":"AES_128_GCM","hmac":""}"#),
        );
        assert!(matches!(
            decrypt(&other_cipher, &key(1)),
            Err(EncryptionError::Unsupported(_))
        ));
    }
}
