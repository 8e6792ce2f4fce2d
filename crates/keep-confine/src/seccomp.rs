//! The seccomp-bpf allow-list of the confined process, synchronised to every thread.
//!
//! Allowed: what the runtime and its guest's I/O need once set up (memory, threads, time,
//! descriptors, files through Landlock, accepting and using sockets). Anything else returns
//! `EPERM`: exec, process creation, ptrace and other processes' memory, mounts, namespaces,
//! kernel keyrings, BPF, module loading, reboot... `socket` is allowed only when the network
//! is granted, and then only for IPv4 and IPv6; `socketpair` only for unnamed Unix pairs,
//! which reach nothing outside the process. `clone` is allowed only for threads;
//! `clone3`, whose flags a filter cannot read, returns `ENOSYS` so that the C library falls
//! back to `clone`.

use crate::bpf::{self, Rule};
use crate::{Item, Status};

/// System calls allowed with any arguments.
const ALLOWED: &[i64] = &[
    // Descriptors and files (paths are Landlock's business).
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_lseek,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_mkdirat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_linkat,
    libc::SYS_symlinkat,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_utimensat,
    libc::SYS_ftruncate,
    libc::SYS_fallocate,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fadvise64,
    libc::SYS_fcntl,
    libc::SYS_ioctl,
    libc::SYS_dup,
    libc::SYS_dup3,
    libc::SYS_pipe2,
    libc::SYS_eventfd2,
    libc::SYS_getcwd,
    // Readiness.
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_ppoll,
    libc::SYS_pselect6,
    // Existing sockets: accept on listeners, use connections.
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_recvmsg,
    libc::SYS_recvmmsg,
    libc::SYS_sendto,
    libc::SYS_sendmsg,
    libc::SYS_sendmmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockname,
    libc::SYS_getpeername,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
    // Memory.
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    // Threads and synchronisation.
    libc::SYS_futex,
    libc::SYS_set_robust_list,
    libc::SYS_get_robust_list,
    libc::SYS_rseq,
    libc::SYS_set_tid_address,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_prctl,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
    // Signals (wasmtime turns guest faults into traps with them).
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_tgkill,
    // Time and randomness.
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettimeofday,
    libc::SYS_getrandom,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_settime,
    libc::SYS_getrlimit,
    libc::SYS_prlimit64,
    libc::SYS_uname,
    libc::SYS_sysinfo,
];

/// The older forms x86_64 still has (the C library may use them).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[i64] = &[
    libc::SYS_open,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_access,
    libc::SYS_readlink,
    libc::SYS_getdents,
    libc::SYS_mkdir,
    libc::SYS_rmdir,
    libc::SYS_unlink,
    libc::SYS_rename,
    libc::SYS_pipe,
    libc::SYS_dup2,
    libc::SYS_poll,
    libc::SYS_select,
    libc::SYS_epoll_wait,
    libc::SYS_accept,
    libc::SYS_arch_prctl,
    libc::SYS_time,
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH: &[i64] = &[];

/// System calls that create or attach sockets: allowed only with the network.
const NETWORK: &[i64] = &[libc::SYS_bind, libc::SYS_listen, libc::SYS_connect];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Socket families a Keep with network may create.
static INET: [u32; 2] = [libc::AF_INET as u32, libc::AF_INET6 as u32];

/// The family of the socket pairs every Keep may create.
static UNIX: [u32; 1] = [libc::AF_UNIX as u32];

/// Installs the filter on every thread of the process.
pub fn apply(sockets: bool) -> Item {
    let rules = rules(sockets);
    let allowed = rules
        .iter()
        .filter(|(_, r)| *r != Rule::Errno(libc::ENOSYS as u32))
        .count();
    let installed = bpf::program(AUDIT_ARCH, &rules, libc::EPERM as u32)
        .ok_or_else(|| std::io::Error::other("the allow-list does not fit a BPF program"))
        .and_then(|program| install(&program));
    match installed {
        Ok(()) => Item {
            name: "seccomp",
            status: Status::Active,
            detail: format!(
                "{allowed} system calls allowed; new sockets {}; exec, fork, ptrace refused",
                if sockets {
                    "allowed (IPv4, IPv6, and unnamed Unix pairs)"
                } else {
                    "refused (but unnamed Unix pairs)"
                }
            ),
        },
        Err(e) => Item {
            name: "seccomp",
            status: if seccomp_available() {
                Status::Failed
            } else {
                Status::Unavailable
            },
            detail: e.to_string(),
        },
    }
}

/// The rules, sorted by system call number.
fn rules(sockets: bool) -> Vec<(u32, Rule)> {
    let number = |call: i64| u32::try_from(call).unwrap_or(u32::MAX);
    let mut rules: Vec<(u32, Rule)> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .map(|&call| (number(call), Rule::Allow))
        .collect();
    // Threads only: CLONE_THREAD must be set. clone3's flags are in memory a filter cannot
    // read: ENOSYS makes the C library fall back to clone.
    let thread = libc::CLONE_THREAD as u32;
    rules.push((
        number(libc::SYS_clone),
        Rule::Arg0Masked {
            mask: thread,
            value: thread,
        },
    ));
    rules.push((number(libc::SYS_clone3), Rule::Errno(libc::ENOSYS as u32)));
    // A connected pair of Unix sockets, with no address: it reaches nothing outside the
    // process. tokio makes one for its signal driver when a runtime with I/O starts (when its
    // `signal` feature is built in, as the workspace's containerd shim has it).
    rules.push((number(libc::SYS_socketpair), Rule::Arg0OneOf(&UNIX)));
    if sockets {
        rules.extend(NETWORK.iter().map(|&call| (number(call), Rule::Allow)));
        rules.push((number(libc::SYS_socket), Rule::Arg0OneOf(&INET)));
    }
    rules.sort_by_key(|(nr, _)| *nr);
    rules.dedup_by_key(|(nr, _)| *nr);
    rules
}

/// Installs the raw filter `program` on every thread (TSYNC), as [`apply`] does; the caller
/// must have set no-new-privs (or hold CAP_SYS_ADMIN). SPEC_ALLOW keeps the kernel from switching
/// on its speculative-execution mitigations for seccomp tasks (IBPB on context switches,
/// store-bypass disable): guarding the guest against Spectre is the job of wasmtime's
/// generated code (bounds-check masking), not of this filter.
pub fn install(program: &[libc::sock_filter]) -> std::io::Result<()> {
    let filter = libc::sock_fprog {
        len: u16::try_from(program.len()).map_err(|_| std::io::ErrorKind::InvalidInput)?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `filter` points to `program`, alive for the call; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            &filter as *const libc::sock_fprog,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn seccomp_available() -> bool {
    // SAFETY: prctl(PR_GET_SECCOMP) takes no pointer and only reports the mode.
    unsafe { libc::prctl(libc::PR_GET_SECCOMP) >= 0 }
}

/// Whether seccomp filters can be installed here.
pub fn probe() -> Item {
    if seccomp_available() {
        Item {
            name: "seccomp",
            status: Status::Active,
            detail: "system call allow-list; exec, fork, ptrace refused".into(),
        }
    } else {
        Item {
            name: "seccomp",
            status: Status::Unavailable,
            detail: "the kernel has no seccomp (CONFIG_SECCOMP_FILTER)".into(),
        }
    }
}
