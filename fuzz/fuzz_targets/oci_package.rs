//! Package manifests from registries and layouts, package references, public keys,
//! signatures and encrypted layers: any bytes give a package whose every blob matched its
//! digest (or a key, a verdict, a plaintext), or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// A key no fuzz input is encrypted to.
fn key() -> p256::SecretKey {
    p256::SecretKey::from_bytes(&[3u8; 32].into()).unwrap()
}

fuzz_target!(|data: &[u8]| {
    // The manifest, then (after a NUL) the bytes every blob fetch returns.
    let (manifest, blob) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    match keep_oci::Package::from_manifest(manifest, |_| Ok(blob.to_vec())) {
        Ok((package, blobs)) => {
            assert_eq!(package.program, blob);
            for stored in blobs {
                assert_eq!(keep_oci::Digest::of(&stored.bytes), stored.digest);
            }
            // An encrypted program: decrypting it with a key nobody encrypted to fails.
            if package.encryption.is_some() {
                assert!(package.decrypt(&key()).is_err());
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(reference) = keep_oci::PackageRef::parse(text) {
            let _ = (reference.to_string(), reference.is_loopback(), reference.digest());
        }
        let _ = keep_oci::signing_key::verifying_key(text);
        let _ = keep_oci::encryption::public_key(text);
        let _ = keep_oci::encryption::private_key(text.as_bytes());
    }
    // ocicrypt annotations (a JSON object of strings) over the blob.
    if let Ok(annotations) = serde_json::from_slice(manifest) {
        let layer = keep_oci::encryption::EncryptedLayer {
            bytes: blob.to_vec(),
            annotations,
        };
        assert!(keep_oci::encryption::decrypt(&layer, &key()).is_err());
    }
    // A signature payload and a signature: never valid for a key nobody has.
    let signed = keep_oci::signature::Signed {
        payload: manifest.to_vec(),
        signature: String::from_utf8_lossy(blob).into_owned(),
    };
    let key = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
    let digest = keep_oci::Digest::of(b"fuzz");
    assert!(
        keep_oci::signature::verify(&[signed], &[*key.verifying_key()], "fuzz/x", &digest).is_err()
    );
});
