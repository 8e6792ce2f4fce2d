//! Keys the AMD Secure Processor derives for an SEV-SNP guest (`MSG_KEY_REQ`, SEV-SNP
//! firmware ABI, asked through Linux's `/dev/sev-guest`, `include/uapi/linux/sev-guest.h`):
//! bound to the chip (its VCEK root) and to what the request selects of the VM's launch
//! (measurement, policy, …). Nothing outside the VM, the host included, can ask for them.
//!
//! virtee's `sev` crate makes this request too, but its `Firmware` opens only
//! `/dev/sev-guest`; Keep opens the device under its platform root (containers that mount
//! the host's /dev elsewhere, and the simulated guest of the tests), so the ioctl is made
//! here, on the kernel's structures, encoded field by field.

use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Where the kernel puts the device.
pub const DEFAULT_DEVICE: &str = "/dev/sev-guest";

/// The key the derivation starts from (`ROOT_KEY_SELECT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKey {
    /// The chip's VCEK: the key is bound to this chip.
    Vcek,
    /// The VM root key given at launch (`VMRK`): bound to the VM's owner, not to a chip.
    Vmrk,
}

/// What the firmware mixes into the key (`GUEST_FIELD_SELECT`), beside the root key and
/// the VMPL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(u64);

impl Fields {
    /// The guest policy.
    pub const GUEST_POLICY: Self = Self(1 << 0);
    /// The image ID of the ID block.
    pub const IMAGE_ID: Self = Self(1 << 1);
    /// The family ID of the ID block.
    pub const FAMILY_ID: Self = Self(1 << 2);
    /// The launch measurement.
    pub const MEASUREMENT: Self = Self(1 << 3);
    /// The guest SVN of the request.
    pub const GUEST_SVN: Self = Self(1 << 4);
    /// The TCB version of the request.
    pub const TCB_VERSION: Self = Self(1 << 5);

    /// Both `self` and `other`.
    pub const fn and(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The bits, as the request carries them.
    pub const fn bits(self) -> u64 {
        self.0
    }
}

/// A key request (`struct snp_derived_key_req`, message version 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRequest {
    /// The root key.
    pub root: RootKey,
    /// What is mixed in.
    pub fields: Fields,
    /// The VMPL mixed in: at least the caller's.
    pub vmpl: u32,
    /// The guest SVN mixed in (with [`Fields::GUEST_SVN`]): at most the launch's.
    pub guest_svn: u32,
    /// The TCB version mixed in (with [`Fields::TCB_VERSION`]): at most the committed one.
    pub tcb_version: u64,
}

impl KeyRequest {
    /// The size of the kernel's structure.
    pub const SIZE: usize = 32;

    /// The request as the kernel reads it (little-endian, the firmware's layout).
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut bytes = [0u8; Self::SIZE];
        let root = match self.root {
            RootKey::Vcek => 0u32,
            RootKey::Vmrk => 1,
        };
        bytes[0..4].copy_from_slice(&root.to_le_bytes());
        // 4..8 reserved, zero.
        bytes[8..16].copy_from_slice(&self.fields.bits().to_le_bytes());
        bytes[16..20].copy_from_slice(&self.vmpl.to_le_bytes());
        bytes[20..24].copy_from_slice(&self.guest_svn.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.tcb_version.to_le_bytes());
        bytes
    }
}

/// The size of the answer (`struct snp_derived_key_resp`): `STATUS` (4 bytes), 28 reserved,
/// the key (32).
pub const RESPONSE_SIZE: usize = 64;

/// `struct snp_guest_request_ioctl`: the message version, where the request and the answer
/// are, and the errors the firmware and the hypervisor gave.
#[repr(C)]
struct GuestRequest {
    msg_version: u8,
    req_data: u64,
    resp_data: u64,
    exitinfo2: u64,
}

/// `_IOWR('S', nr, struct snp_guest_request_ioctl)`, as Linux's `_IOC` encodes it.
const fn iowr(nr: u8) -> u64 {
    const READ_WRITE: u64 = 3;
    (READ_WRITE << 30)
        | ((std::mem::size_of::<GuestRequest>() as u64) << 16)
        | ((b'S' as u64) << 8)
        | nr as u64
}

/// `SNP_GET_DERIVED_KEY`.
pub const SNP_GET_DERIVED_KEY: u64 = iowr(1);

/// Why no key was derived.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DerivedKeyError {
    /// The device cannot be opened: not an SEV-SNP guest, or no access.
    #[error("{device}: {source} (a derived key needs an SEV-SNP guest's /dev/sev-guest)")]
    Open {
        /// The device.
        device: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The kernel refused the request, or the firmware or the hypervisor failed it.
    #[error(
        "{device}: SNP_GET_DERIVED_KEY: {source} (firmware error {fw_error:#x}, hypervisor error {vmm_error:#x})"
    )]
    Request {
        /// The device.
        device: PathBuf,
        /// What the system said.
        source: std::io::Error,
        /// The firmware's error code.
        fw_error: u32,
        /// The hypervisor's error code.
        vmm_error: u32,
    },
    /// The firmware answered with a status other than success (0x16: invalid parameters,
    /// such as a VMPL below the caller's or a TCB version above the committed one).
    #[error("{device}: the firmware refused to derive the key (status {status:#x})")]
    Refused {
        /// The device.
        device: PathBuf,
        /// `MSG_KEY_RSP.STATUS`.
        status: u32,
    },
}

/// Asks the firmware behind `device` for the key `request` describes.
pub fn derive(device: &Path, request: &KeyRequest) -> Result<Zeroizing<[u8; 32]>, DerivedKeyError> {
    let file = File::open(device).map_err(|source| DerivedKeyError::Open {
        device: device.to_owned(),
        source,
    })?;
    let request_bytes = request.to_bytes();
    let mut response = Zeroizing::new([0u8; RESPONSE_SIZE]);
    let mut ioctl = GuestRequest {
        msg_version: 1,
        req_data: request_bytes.as_ptr() as u64,
        resp_data: response.as_mut_ptr() as u64,
        exitinfo2: 0,
    };
    // SAFETY: `file` is open; the argument is a `struct snp_guest_request_ioctl` that lives
    // across the call, whose `req_data` points to the 32 bytes of `request_bytes` the kernel
    // reads, and `resp_data` to the 64 writable bytes of `response` it writes; both outlive
    // the call. (The request type is `c_ulong` on glibc, `c_int` on musl: hence the `as _`.)
    let result = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            SNP_GET_DERIVED_KEY as _,
            &mut ioctl as *mut GuestRequest,
        )
    };
    if result != 0 {
        return Err(DerivedKeyError::Request {
            device: device.to_owned(),
            source: std::io::Error::last_os_error(),
            fw_error: ioctl.exitinfo2 as u32,
            vmm_error: (ioctl.exitinfo2 >> 32) as u32,
        });
    }
    let status = u32::from_le_bytes([response[0], response[1], response[2], response[3]]);
    if status != 0 {
        return Err(DerivedKeyError::Refused {
            device: device.to_owned(),
            status,
        });
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&response[32..64]);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_is_the_kernels() {
        // include/uapi/linux/sev-guest.h: _IOWR('S', 0x1, struct snp_guest_request_ioctl),
        // a 32-byte structure.
        assert_eq!(std::mem::size_of::<GuestRequest>(), 32);
        assert_eq!(SNP_GET_DERIVED_KEY, 0xc020_5301);
    }

    #[test]
    fn a_request_is_laid_out_as_the_firmware_reads_it() {
        let request = KeyRequest {
            root: RootKey::Vmrk,
            fields: Fields::MEASUREMENT.and(Fields::GUEST_POLICY),
            vmpl: 2,
            guest_svn: 5,
            tcb_version: 0x0102_0304_0506_0708,
        };
        let bytes = request.to_bytes();
        assert_eq!(&bytes[0..8], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[0b1001, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[16..24], &[2, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[8, 7, 6, 5, 4, 3, 2, 1]);
    }

    #[test]
    fn a_missing_device_is_named() {
        let request = KeyRequest {
            root: RootKey::Vcek,
            fields: Fields::MEASUREMENT,
            vmpl: 0,
            guest_svn: 0,
            tcb_version: 0,
        };
        let error = derive(Path::new("/nonexistent/sev-guest"), &request).unwrap_err();
        assert!(matches!(error, DerivedKeyError::Open { .. }));
        assert!(
            error.to_string().contains("/nonexistent/sev-guest"),
            "{error}"
        );
    }
}
