//! `/dev/sev-guest` as an SEV-SNP guest's kernel presents it (Linux
//! `drivers/virt/coco/sev-guest`, `include/uapi/linux/sev-guest.h`), over FUSE: a directory
//! holding one file, `sev-guest`, that answers the `SNP_GET_DERIVED_KEY` ioctl with keys the
//! simulated firmware derives (`MSG_KEY_REQ`).
//!
//! The ioctl's argument holds the addresses of the request and of the answer in the
//! caller's memory; the kernel copies them in and out, and so does this simulator, with
//! `process_vm_readv` and `process_vm_writev` on the calling process (which needs the
//! privilege to do so: root, as the tests run).

use std::ffi::OsStr;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, IoctlFlags, OpenFlags,
    ReplyAttr, ReplyDirectory, ReplyEntry, ReplyIoctl, ReplyOpen, Request,
};
use sha2::Digest as _;

use crate::snp::Launch;

/// `_IOWR('S', 1, struct snp_guest_request_ioctl)`.
const SNP_GET_DERIVED_KEY: u32 = 0xc020_5301;
/// `struct snp_guest_request_ioctl`: msg_version (u8, padded to 8), req_data, resp_data,
/// exitinfo2.
const IOCTL_ARG_LEN: usize = 32;
/// `struct snp_derived_key_req` (message version 1).
const KEY_REQUEST_LEN: usize = 32;
/// `struct snp_derived_key_resp`: STATUS, 28 reserved bytes, the key.
const KEY_RESPONSE_LEN: usize = 64;
/// The firmware's INVALID_PARAM status.
const INVALID_PARAM: u32 = 0x16;
/// GUEST_FIELD_SELECT bits the firmware knows (bit 6, LAUNCH_MIT_VECTOR, is message
/// version 2's).
const KNOWN_FIELDS: u64 = 0x3f;

const TTL: Duration = Duration::from_secs(1);
const DEVICE_INODE: u64 = 2;
const DEVICE_NAME: &str = "sev-guest";

/// MSG_KEY_REQ of the simulated firmware: the key of `request` for the VM `launch`, or the
/// status refusing it. The chip's secret is made from its ID (a simulation: real chips
/// keep theirs fused in); the VMRK root is refused (no VM root key was given at launch).
pub fn derive_key(launch: &Launch, request: &[u8; KEY_REQUEST_LEN]) -> Result<[u8; 32], u32> {
    let word = |at: usize| {
        u32::from_le_bytes([
            request[at],
            request[at + 1],
            request[at + 2],
            request[at + 3],
        ])
    };
    let root_key_select = word(0);
    let reserved = word(4);
    let fields = u64::from_le_bytes(request[8..16].try_into().unwrap_or_default());
    let vmpl = word(16);
    let guest_svn = word(20);
    let tcb = &request[24..32];
    // TCB_VERSION: BOOTLOADER, TEE, 4 reserved, SNP, MICROCODE (Milan and Genoa).
    let committed = [
        launch.tcb.bootloader,
        launch.tcb.tee,
        0,
        0,
        0,
        0,
        launch.tcb.snp,
        launch.tcb.microcode,
    ];
    let tcb_above_committed = tcb.iter().zip(committed).any(|(asked, held)| *asked > held);
    if root_key_select != 0
        || reserved != 0
        || fields & !KNOWN_FIELDS != 0
        || vmpl > 3
        || guest_svn > 0
        || tcb_above_committed
    {
        return Err(INVALID_PARAM);
    }
    let mut hash = sha2::Sha256::new();
    hash.update(b"keep-tee-sim MSG_KEY_REQ\0");
    hash.update(sha2::Sha512::digest(
        [b"keep-tee-sim CEK\0".as_slice(), &launch.chip_id].concat(),
    ));
    hash.update(vmpl.to_le_bytes());
    hash.update(fields.to_le_bytes());
    let selected = |bit: u32| fields & (1 << bit) != 0;
    if selected(0) {
        hash.update(launch.policy.to_le_bytes());
    }
    // IMAGE_ID and FAMILY_ID: the simulated VM has no ID block, both are zero.
    for bit in [1, 2] {
        if selected(bit) {
            hash.update([0u8; 16]);
        }
    }
    if selected(3) {
        hash.update(launch.measurement);
    }
    if selected(4) {
        hash.update(guest_svn.to_le_bytes());
    }
    if selected(5) {
        hash.update(tcb);
    }
    Ok(hash.finalize().into())
}

/// The device directory.
pub struct SevGuest {
    launch: Launch,
    uid: u32,
    gid: u32,
}

impl SevGuest {
    /// The device of the VM `launch`.
    pub fn new(launch: Launch) -> Self {
        Self {
            launch,
            // SAFETY: getuid and getgid cannot fail and touch no memory.
            uid: unsafe { libc::getuid() },
            // SAFETY: as above.
            gid: unsafe { libc::getgid() },
        }
    }

    fn attr(&self, inode: u64) -> FileAttr {
        let (kind, perm) = if inode == 1 {
            (FileType::Directory, 0o755)
        } else {
            (FileType::RegularFile, 0o600)
        };
        FileAttr {
            ino: INodeNo(inode),
            size: 0,
            blocks: 0,
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink: if inode == 1 { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            flags: 0,
            blksize: 4096,
        }
    }

    /// SNP_GET_DERIVED_KEY for the process `pid`, whose argument is `arg`.
    fn get_derived_key(&self, pid: u32, arg: &[u8]) -> Result<(), Errno> {
        let arg: &[u8; IOCTL_ARG_LEN] = arg.try_into().map_err(|_| Errno::EINVAL)?;
        let address =
            |at: usize| u64::from_le_bytes(arg[at..at + 8].try_into().unwrap_or_default());
        let (msg_version, request_at, response_at) = (arg[0], address(8), address(16));
        if msg_version != 1 {
            return Err(Errno::EINVAL);
        }
        let mut request = [0u8; KEY_REQUEST_LEN];
        copy_from_process(pid, request_at, &mut request)?;
        let mut response = [0u8; KEY_RESPONSE_LEN];
        match derive_key(&self.launch, &request) {
            Ok(key) => response[32..].copy_from_slice(&key),
            Err(status) => response[..4].copy_from_slice(&status.to_le_bytes()),
        }
        copy_to_process(pid, response_at, &response)
    }
}

/// Reads `buffer.len()` bytes at `address` in process `pid`, as `copy_from_user` does.
fn copy_from_process(pid: u32, address: u64, buffer: &mut [u8]) -> Result<(), Errno> {
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let remote = remote(address, buffer.len());
    // SAFETY: `local` describes `buffer`, writable for its length; `remote` is only an
    // address in the other process, which the kernel checks.
    let copied = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    whole(copied, buffer.len())
}

/// Writes `bytes` at `address` in process `pid`, as `copy_to_user` does.
fn copy_to_process(pid: u32, address: u64, bytes: &[u8]) -> Result<(), Errno> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let remote = remote(address, bytes.len());
    // SAFETY: `local` describes `bytes`, which the kernel only reads; `remote` is only an
    // address in the other process, which the kernel checks.
    let copied = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    whole(copied, bytes.len())
}

/// `len` bytes at `address` in another process.
fn remote(address: u64, len: usize) -> libc::iovec {
    libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: len,
    }
}

/// A copy of `len` bytes that copied them all, or `EFAULT` as the kernel answers.
fn whole(copied: isize, len: usize) -> Result<(), Errno> {
    if usize::try_from(copied) == Ok(len) {
        Ok(())
    } else {
        Err(Errno::EFAULT)
    }
}

impl Filesystem for SevGuest {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if u64::from(parent) == 1 && name == DEVICE_NAME {
            reply.entry(&TTL, &self.attr(DEVICE_INODE), fuser::Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match u64::from(ino) {
            inode @ (1 | DEVICE_INODE) => reply.attr(&TTL, &self.attr(inode)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO);
    }

    fn ioctl(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        if u64::from(ino) != DEVICE_INODE || cmd != SNP_GET_DERIVED_KEY {
            return reply.error(Errno::ENOTTY);
        }
        match self.get_derived_key(req.pid(), in_data) {
            // The argument goes back as it came: exitinfo2 stays zero, no error.
            Ok(()) => reply.ioctl(0, in_data),
            Err(errno) => reply.error(errno),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if u64::from(ino) != 1 {
            return reply.error(Errno::ENOTDIR);
        }
        let listing = [
            (1, FileType::Directory, "."),
            (1, FileType::Directory, ".."),
            (DEVICE_INODE, FileType::RegularFile, DEVICE_NAME),
        ];
        for (index, (inode, kind, name)) in listing.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*inode), index as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{Tcb, chip_id};

    fn launch(chip: &str, measurement: u8) -> Launch {
        Launch {
            measurement: [measurement; 48],
            host_data: [0; 32],
            policy: 0x30000,
            tcb: Tcb {
                bootloader: 9,
                tee: 0,
                snp: 23,
                microcode: 72,
            },
            chip_id: chip_id(chip),
        }
    }

    fn request(fields: u64, vmpl: u32, tcb: u64) -> [u8; 32] {
        let mut request = [0u8; 32];
        request[8..16].copy_from_slice(&fields.to_le_bytes());
        request[16..20].copy_from_slice(&vmpl.to_le_bytes());
        request[24..32].copy_from_slice(&tcb.to_le_bytes());
        request
    }

    #[test]
    fn keys_differ_by_chip_and_by_selected_field_only() {
        let asked = request(0b1001, 0, 0);
        let key = derive_key(&launch("a", 1), &asked).unwrap();
        assert_eq!(key, derive_key(&launch("a", 1), &asked).unwrap());
        assert_ne!(key, derive_key(&launch("b", 1), &asked).unwrap());
        assert_ne!(key, derive_key(&launch("a", 2), &asked).unwrap());
        // Without MEASUREMENT selected, the measurement does not matter.
        let unbound = request(0b0001, 0, 0);
        assert_eq!(
            derive_key(&launch("a", 1), &unbound).unwrap(),
            derive_key(&launch("a", 2), &unbound).unwrap()
        );
    }

    #[test]
    fn invalid_requests_are_refused_with_invalid_param() {
        let launch = launch("a", 1);
        let mut vmrk = request(0, 0, 0);
        vmrk[0] = 1;
        // SNP 24 is above the committed 23.
        let future_tcb = u64::from_le_bytes([9, 0, 0, 0, 0, 0, 24, 72]);
        for asked in [
            vmrk,
            request(1 << 7, 0, 0),
            request(0, 4, 0),
            request(0, 0, future_tcb),
        ] {
            assert_eq!(derive_key(&launch, &asked), Err(INVALID_PARAM));
        }
    }
}
