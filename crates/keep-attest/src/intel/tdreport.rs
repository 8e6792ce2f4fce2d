//! The TDREPORT a TD gets from the TDX module (Intel TDX Module ABI, "TDREPORT_STRUCT"):
//! 1024 bytes, MAC'ed for the local platform only. A quote is made from it; Keep parses it to
//! show what a TD would attest.

use crate::Error;

/// Size of a TDREPORT.
pub const TDREPORT_LEN: usize = 1024;

/// The fields of a TDREPORT that name the TD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TdReport {
    /// REPORTMACSTRUCT.REPORTTYPE.TYPE (0x81 for TDX). Not enforced: the report is only
    /// meaningful to the local TDX module, which checks its MAC.
    pub report_type: u8,
    /// REPORTMACSTRUCT.CPUSVN.
    pub cpu_svn: [u8; 16],
    /// REPORTMACSTRUCT.REPORTDATA.
    pub report_data: [u8; 64],
    /// TDINFO.ATTRIBUTES.
    pub td_attributes: [u8; 8],
    /// TDINFO.XFAM.
    pub xfam: [u8; 8],
    /// TDINFO.MRTD: the build-time measurement.
    pub mr_td: [u8; 48],
    /// TDINFO.MRCONFIGID.
    pub mr_config_id: [u8; 48],
    /// TDINFO.MROWNER.
    pub mr_owner: [u8; 48],
    /// TDINFO.MROWNERCONFIG.
    pub mr_owner_config: [u8; 48],
    /// TDINFO.RTMR[0..4]: the run-time measurements.
    pub rtmrs: [[u8; 48]; 4],
}

impl TdReport {
    /// Parses a TDREPORT.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() != TDREPORT_LEN {
            return Err(Error::malformed(
                "TDREPORT",
                format!("{} bytes, expected {TDREPORT_LEN}", bytes.len()),
            ));
        }
        // Offsets: REPORTMACSTRUCT at 0 (CPUSVN at 16, REPORTDATA at 128), TEE_TCB_INFO at
        // 256, TDINFO at 512.
        let tdinfo = 512;
        let mut rtmrs = [[0u8; 48]; 4];
        for (index, rtmr) in rtmrs.iter_mut().enumerate() {
            *rtmr = take(bytes, tdinfo + 208 + 48 * index);
        }
        Ok(Self {
            report_type: bytes[0],
            cpu_svn: take(bytes, 16),
            report_data: take(bytes, 128),
            td_attributes: take(bytes, tdinfo),
            xfam: take(bytes, tdinfo + 8),
            mr_td: take(bytes, tdinfo + 16),
            mr_config_id: take(bytes, tdinfo + 64),
            mr_owner: take(bytes, tdinfo + 112),
            mr_owner_config: take(bytes, tdinfo + 160),
            rtmrs,
        })
    }
}

/// The `N` bytes of `bytes` at `at` (the caller checked the length).
fn take<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut field = [0u8; N];
    field.copy_from_slice(&bytes[at..at + N]);
    field
}
