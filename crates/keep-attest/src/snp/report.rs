//! The SEV-SNP attestation report (AMD SEV-SNP ABI specification, table "ATTESTATION_REPORT
//! Structure"): parsed by virtee's `sev` crate, with the raw bytes kept because the
//! signature covers them exactly.

use sev::firmware::guest::AttestationReport;
use sev::parser::ByteParser as _;

use crate::Error;

/// Size of a report (versions 2, 3 and 5).
pub const REPORT_LEN: usize = 0x4A0;
/// The signature covers bytes `0..SIGNED_LEN`.
const SIGNED_LEN: usize = 0x2A0;
/// ECDSA P-384 signature: R then S, each 72 bytes little-endian (48 significant).
const SIGNATURE_R: std::ops::Range<usize> = 0x2A0..0x2A0 + 48;
const SIGNATURE_S: std::ops::Range<usize> = 0x2E8..0x2E8 + 48;
/// The guest policy's DEBUG bit.
const POLICY_DEBUG: u64 = 1 << 19;

/// Which key signed a report (KEY_INFO.SIGNING_KEY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKey {
    /// Versioned Chip Endorsement Key: one chip, one TCB.
    Vcek,
    /// Versioned Loaded Endorsement Key: a cloud provider's key, certified by AMD's ASVK.
    Vlek,
}

/// A parsed attestation report.
#[derive(Debug, Clone)]
pub struct Report {
    raw: Vec<u8>,
    /// The fields, as decoded by `sev`.
    pub fields: AttestationReport,
}

impl Report {
    /// Parses a binary report, or the same as hex text (whitespace ignored).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let is_hex_text = bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace());
        let raw = if bytes.len() != REPORT_LEN && !bytes.is_empty() && is_hex_text {
            let text: Vec<u8> = bytes
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            hex::decode(&text).map_err(|e| Error::malformed("SEV-SNP report (hex text)", e))?
        } else {
            bytes.to_vec()
        };
        if raw.len() != REPORT_LEN {
            return Err(Error::malformed(
                "SEV-SNP report",
                format!("{} bytes, expected {REPORT_LEN}", raw.len()),
            ));
        }
        let version = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        if !matches!(version, 2 | 3 | 5) {
            return Err(Error::Unsupported {
                what: "SEV-SNP report version",
                detail: format!("{version} (Keep verifies versions 2, 3 and 5)"),
            });
        }
        let fields = AttestationReport::from_bytes(&raw)
            .map_err(|e| Error::malformed("SEV-SNP report", e))?;
        Ok(Self { raw, fields })
    }

    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.raw[..SIGNED_LEN]
    }

    /// The ECDSA P-384 signature as `r ‖ s`, 48 bytes each, big-endian (the report stores
    /// them little-endian).
    pub fn signature(&self) -> [u8; 96] {
        let mut fixed = [0; 96];
        fixed[..48].copy_from_slice(&self.raw[SIGNATURE_R]);
        fixed[48..].copy_from_slice(&self.raw[SIGNATURE_S]);
        fixed[..48].reverse();
        fixed[48..].reverse();
        fixed
    }

    /// The key that signed the report.
    pub fn signing_key(&self) -> Result<SigningKey, Error> {
        match self.fields.key_info.signing_key() {
            0 => Ok(SigningKey::Vcek),
            1 => Ok(SigningKey::Vlek),
            7 => Err(Error::Signature(
                "the report is unsigned (KEY_INFO.SIGNING_KEY = none)".into(),
            )),
            other => Err(Error::malformed(
                "SEV-SNP report",
                format!("KEY_INFO.SIGNING_KEY = {other} is reserved"),
            )),
        }
    }

    /// Whether the guest policy allows debugging.
    pub fn debug(&self) -> bool {
        u64::from(self.fields.policy) & POLICY_DEBUG != 0
    }
}
