//! Package manifests from registries and layouts, and package references: any bytes give a
//! package whose every blob matched its digest, or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

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
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(reference) = keep_oci::PackageRef::parse(text)
    {
        let _ = (reference.to_string(), reference.is_loopback(), reference.digest());
    }
});
