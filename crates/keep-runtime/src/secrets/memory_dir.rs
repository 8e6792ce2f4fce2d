//! A directory that exists only in memory and only for this process: a tmpfs created with
//! the kernel's mount API (`fsopen`, `fsmount`) and never attached to any path.
//!
//! Why a kernel tmpfs and not a virtual directory in Keep: wasmtime-wasi serves files from
//! operating-system descriptors only, for preview-1 modules and components alike, and
//! re-implementing `wasi:filesystem` and its preview-1 twin to serve a few files would
//! duplicate much of wasmtime-wasi. A detached tmpfs gives what is wanted: the data lives
//! in RAM (and, with `noswap`, never in swap), is reachable by no path on the host and
//! appears in no mount table, and other processes reach it only through this process's
//! descriptors (which takes what reading its memory takes). It goes away with the process.
//!
//! The guest sees a read-only clone of the mount; Keep keeps the writable one, to replace
//! values when its certificate is renewed.

use std::io::Write as _;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::PathBuf;

use anyhow::Context as _;
use rustix::fs::{Mode, OFlags};
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, OpenTreeFlags, fsconfig_create, fsconfig_set_flag,
    fsconfig_set_string, fsmount, fsopen, open_tree,
};

/// The in-memory directory and the guest's read-only view of it.
#[derive(Debug)]
pub struct MemoryDir {
    /// The writable mount: Keep writes values through it.
    writable: OwnedFd,
    /// The guest's read-only clone of it.
    guest_view: OwnedFd,
    /// Whether the kernel took `noswap` (Linux 6.4+): its pages never go to swap.
    pub noswap: bool,
}

impl MemoryDir {
    /// A new empty directory able to hold `capacity` bytes of files.
    pub fn new(capacity: usize) -> anyhow::Result<Self> {
        let cannot = "cannot create the in-memory directory for secrets delivered as files \
                      (a private tmpfs, which needs CAP_SYS_ADMIN: run Keep as root, or \
                      deliver the secrets with `env` or `config`)";
        let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).context(cannot)?;
        // Room for every value twice (a new value is written before the old one goes) and
        // a page per file.
        let size = capacity.saturating_mul(2).saturating_add(1 << 20);
        fsconfig_set_string(fs.as_fd(), "size", size.to_string()).context(cannot)?;
        fsconfig_set_string(fs.as_fd(), "mode", "0700").context(cannot)?;
        let noswap = fsconfig_set_flag(fs.as_fd(), "noswap").is_ok();
        fsconfig_create(fs.as_fd()).context(cannot)?;
        let writable = fsmount(
            fs.as_fd(),
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOEXEC
                | MountAttrFlags::MOUNT_ATTR_NOSUID
                | MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .context(cannot)?;
        let guest_view = open_tree(
            writable.as_fd(),
            "",
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_EMPTY_PATH,
        )
        .context(cannot)?;
        make_read_only(&guest_view).context(cannot)?;
        Ok(Self {
            writable,
            guest_view,
            noswap,
        })
    }

    /// The path that opens the guest's read-only view (for wasmtime-wasi's preopen).
    pub fn guest_path(&self) -> PathBuf {
        proc_path(&self.guest_view)
    }

    /// The path of the writable mount (for the Landlock rule that lets Keep write there).
    pub fn writable_path(&self) -> PathBuf {
        proc_path(&self.writable)
    }

    /// Puts `value` in file `name`, replacing any previous file atomically: a guest that
    /// opens it sees the old value or the new one, never a mix. Returns whether the file
    /// changed (a file that already holds `value` is left alone).
    pub fn put(&self, name: &str, value: &[u8]) -> anyhow::Result<bool> {
        if self.holds(name, value) {
            return Ok(false);
        }
        let staging = format!(".{name}.new");
        let file = rustix::fs::openat(
            self.writable.as_fd(),
            staging.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::RUSR,
        )
        .with_context(|| format!("cannot create secret file `{name}` in memory"))?;
        std::fs::File::from(file)
            .write_all(value)
            .with_context(|| format!("cannot write secret file `{name}` in memory"))?;
        rustix::fs::renameat(
            self.writable.as_fd(),
            staging.as_str(),
            self.writable.as_fd(),
            name,
        )
        .with_context(|| format!("cannot put secret file `{name}` in place"))?;
        Ok(true)
    }

    /// Whether file `name` holds exactly `value`.
    fn holds(&self, name: &str, value: &[u8]) -> bool {
        use std::io::Read as _;
        let Ok(file) = rustix::fs::openat(
            self.writable.as_fd(),
            name,
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        ) else {
            return false;
        };
        let mut held = zeroize::Zeroizing::new(Vec::with_capacity(value.len() + 1));
        std::fs::File::from(file)
            .take(value.len() as u64 + 1)
            .read_to_end(&mut held)
            .is_ok_and(|_| held.as_slice() == value)
    }

    /// Removes file `name`; returns whether it was there.
    pub fn remove(&self, name: &str) -> anyhow::Result<bool> {
        match rustix::fs::unlinkat(self.writable.as_fd(), name, rustix::fs::AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("cannot remove secret file `{name}`")),
        }
    }
}

/// `/proc/self/fd/N`: opening it opens the mount root itself (a detached mount has no
/// other path).
fn proc_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Makes the detached mount `mount` read-only (`mount_setattr`, which rustix does not wrap).
fn make_read_only(mount: &OwnedFd) -> std::io::Result<()> {
    let attributes = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `size_of::<mount_attr>()` bytes from a valid, live
    // `mount_attr`, on a descriptor this function borrows, with an empty NUL-terminated
    // path and AT_EMPTY_PATH; it writes no memory of ours.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &raw const attributes,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn files_are_served_read_only_and_replaced_whole() {
        if !is_root() {
            // The test suite runs as root (scripts/test); a developer's unprivileged run
            // checks the error instead.
            let error = MemoryDir::new(16).unwrap_err();
            assert!(format!("{error:#}").contains("CAP_SYS_ADMIN"), "{error:#}");
            return;
        }
        let dir = MemoryDir::new(16).unwrap();
        assert!(dir.put("db", b"first").unwrap());
        assert!(
            !dir.put("db", b"first").unwrap(),
            "the same value: no change"
        );
        let guest = dir.guest_path();
        assert_eq!(std::fs::read(guest.join("db")).unwrap(), b"first");
        let error = std::fs::write(guest.join("db"), b"x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");
        let error = std::fs::write(guest.join("new"), b"x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EROFS), "{error}");

        // A reader that opened the old value keeps it; the next open sees the new one.
        let old = std::fs::File::open(guest.join("db")).unwrap();
        assert!(dir.put("db", b"second").unwrap());
        assert_eq!(std::io::read_to_string(old).unwrap(), "first");
        assert_eq!(std::fs::read(guest.join("db")).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(&guest)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["db"], "no staging file is left");

        assert!(dir.remove("db").unwrap());
        assert!(!dir.remove("db").unwrap());
        assert!(!guest.join("db").exists());

        // The directory is on no path: the mount table does not list its device.
        let stat = rustix::fs::fstat(&dir.writable).unwrap();
        let device = format!(
            " {}:{} ",
            rustix::fs::major(stat.st_dev),
            rustix::fs::minor(stat.st_dev)
        );
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            mounts.contains(" 0:"),
            "device numbers look like this: {mounts}"
        );
        assert!(!mounts.contains(&device), "{device} is mounted: {mounts}");
    }
}
