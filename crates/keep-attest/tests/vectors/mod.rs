//! Access to the attestation vectors in `<repo>/tests/vectors` (see its README and
//! PROVENANCE.tsv), and tampering helpers.

#![allow(dead_code)] // Each test binary uses a different part of these helpers.

use std::path::PathBuf;
use std::time::SystemTime;

/// `<repo>/tests/vectors`.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// The bytes of `vectors/NAME`; a missing vector fails the test (they are required).
pub fn read(name: &str) -> Vec<u8> {
    let path = dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read vector {} ({e}): tests/vectors is part of the repository",
            path.display()
        )
    })
}

/// A copy of `bytes` with `bytes[offset]` replaced by `change(bytes[offset])`.
pub fn tampered(bytes: &[u8], offset: usize, change: impl Fn(u8) -> u8) -> Vec<u8> {
    let mut copy = bytes.to_vec();
    copy[offset] = change(copy[offset]);
    copy
}

/// An RFC 3339 UTC time (`YYYY-MM-DDTHH:MM:SSZ`) as a `SystemTime`.
pub fn at(rfc3339: &str) -> SystemTime {
    let datetime = der::DateTime::new(
        rfc3339[0..4].parse().unwrap(),
        rfc3339[5..7].parse().unwrap(),
        rfc3339[8..10].parse().unwrap(),
        rfc3339[11..13].parse().unwrap(),
        rfc3339[14..16].parse().unwrap(),
        rfc3339[17..19].parse().unwrap(),
    )
    .unwrap();
    datetime.to_system_time()
}
