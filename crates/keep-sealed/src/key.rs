//! The store key and the keys derived from it.

use ring::{aead, hkdf, hmac};
use zeroize::Zeroizing;

/// A store's key: 32 bytes, zeroed when dropped.
pub struct StoreKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreKey(…)")
    }
}

impl StoreKey {
    /// The key `bytes` (exactly 32).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(Zeroizing::new(array)))
    }

    /// The least a secret must hold to key a store.
    pub const MIN_SECRET: usize = 16;

    /// The key derived from a Steward secret's value (HKDF-SHA256 extraction, so that any
    /// secret of at least [`Self::MIN_SECRET`] bytes serves).
    pub fn from_secret(secret: &[u8]) -> Option<Self> {
        if secret.len() < Self::MIN_SECRET {
            return None;
        }
        Some(Self::extract(b"keep-sealed v1 store key", secret, &[]))
    }

    /// This key with a key the TEE derived mixed in: a store sealed with it needs both.
    pub fn bound_to_hardware(&self, hardware: &[u8; 32]) -> Self {
        let input = Zeroizing::new([self.0.as_slice(), hardware].concat());
        Self::extract(b"keep-sealed v1 hardware-bound store key", &input, &[])
    }

    /// The key derived from a key the TEE derived alone, bound to `workload_digest`: the
    /// TEE's key is the VM's, and any workload in that VM could ask for it.
    pub fn from_hardware(hardware: &[u8; 32], workload_digest: &[u8; 32]) -> Self {
        Self::extract(
            b"keep-sealed v1 hardware store key",
            hardware,
            workload_digest,
        )
    }

    /// HKDF-SHA256 of `input` under `salt`, expanded with `context`.
    fn extract(salt: &[u8], input: &[u8], context: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(input);
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is within HKDF-SHA256's limit: neither call can fail.
        if let Ok(okm) = prk.expand(&[b"store key", context], hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut *key);
        }
        Self(key)
    }

    /// The keys of the store `store_id`.
    pub(crate) fn derive(&self, store_id: &[u8; 16]) -> DerivedKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, store_id).extract(&*self.0);
        let expand = |info: &'static [u8]| -> Zeroizing<[u8; 32]> {
            let mut out = Zeroizing::new([0u8; 32]);
            // 32 bytes is within HKDF-SHA256's limit: neither call can fail.
            if let Ok(okm) = prk.expand(&[info], hkdf::HKDF_SHA256) {
                let _ = okm.fill(&mut *out);
            }
            out
        };
        let data = expand(b"keep-sealed v1 data");
        let check = expand(b"keep-sealed v1 check");
        DerivedKeys {
            // AES-256-GCM takes any 32-byte key.
            data: aead::LessSafeKey::new(
                aead::UnboundKey::new(&aead::AES_256_GCM, &*data)
                    .unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key")),
            ),
            check: hmac::Key::new(hmac::HMAC_SHA256, &*check),
        }
    }
}

/// The keys one store uses.
pub(crate) struct DerivedKeys {
    /// Encrypts and authenticates frames.
    pub data: aead::LessSafeKey,
    /// Authenticates the header: a wrong key is told at open.
    pub check: hmac::Key,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(key: &StoreKey) -> [u8; 32] {
        *key.0
    }

    #[test]
    fn each_source_of_a_key_changes_it() {
        let secret = StoreKey::from_secret(b"a secret of the Steward").unwrap();
        let (chip_a, chip_b) = ([1u8; 32], [2u8; 32]);
        let bound = secret.bound_to_hardware(&chip_a);
        assert_eq!(bytes(&bound), bytes(&secret.bound_to_hardware(&chip_a)));
        assert_ne!(bytes(&bound), bytes(&secret));
        assert_ne!(bytes(&bound), bytes(&secret.bound_to_hardware(&chip_b)));
        let other = StoreKey::from_secret(b"another secret of the Steward").unwrap();
        assert_ne!(bytes(&bound), bytes(&other.bound_to_hardware(&chip_a)));

        let alone = StoreKey::from_hardware(&chip_a, &[7; 32]);
        assert_ne!(
            bytes(&alone),
            bytes(&StoreKey::from_hardware(&chip_a, &[8; 32]))
        );
        assert_ne!(
            bytes(&alone),
            bytes(&StoreKey::from_hardware(&chip_b, &[7; 32]))
        );
        assert_ne!(bytes(&alone), bytes(&bound));
        assert!(StoreKey::from_secret(&[0; StoreKey::MIN_SECRET - 1]).is_none());
    }

    #[test]
    fn a_secrets_store_key_is_what_version_1_stores_were_sealed_with() {
        // HKDF-SHA256, salt "keep-sealed v1 store key", info "store key": stores written
        // before hardware keys existed must still open.
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keep-sealed v1 store key")
            .extract(b"sixteen bytes!!!");
        let mut expected = [0u8; 32];
        prk.expand(&[b"store key".as_slice()], hkdf::HKDF_SHA256)
            .unwrap()
            .fill(&mut expected)
            .unwrap();
        let key = StoreKey::from_secret(b"sixteen bytes!!!").unwrap();
        assert_eq!(bytes(&key), expected);
    }
}
