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
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keep-sealed v1 store key").extract(secret);
        let mut key = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"store key"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut *key))
            .ok()?;
        Some(Self(key))
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
