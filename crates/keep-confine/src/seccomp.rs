//! The seccomp-bpf allow-list of the confined process, synchronised to every thread.
//!
//! Allowed: what the runtime and its guest's I/O need once set up (memory, threads, time,
//! descriptors, files through Landlock, accepting and using sockets). Anything else returns
//! `EPERM`: exec, process creation, ptrace and other processes' memory, mounts, namespaces,
//! kernel keyrings, BPF, module loading, reboot... `socket` is allowed only when the network
//! is granted, and then only for IPv4 and IPv6. `clone` is allowed only for threads;
//! `clone3`, whose flags a filter cannot read, returns `ENOSYS` so that the C library falls
//! back to `clone`.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

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
const ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const ARCH: TargetArch = TargetArch::aarch64;

/// Installs the filters on every thread of the process.
pub fn apply(sockets: bool) -> Item {
    let installed = filters(sockets).and_then(|(allow_list, no_clone3)| {
        // The allow-list refuses `seccomp` itself, so it comes last. It allows clone3, and
        // the first filter's ENOSYS takes precedence over an ALLOW.
        seccompiler::apply_filter_all_threads(&no_clone3)?;
        seccompiler::apply_filter_all_threads(&allow_list)
    });
    match installed {
        Ok(()) => Item {
            name: "seccomp",
            status: Status::Active,
            detail: format!(
                "{} system calls allowed; new sockets {}; exec, fork, ptrace refused",
                ALLOWED.len() + ALLOWED_ARCH.len() + 2 + if sockets { NETWORK.len() } else { 0 },
                if sockets {
                    "allowed (IPv4, IPv6)"
                } else {
                    "refused"
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

/// The allow-list and the `clone3` filter.
fn filters(sockets: bool) -> Result<(BpfProgram, BpfProgram), seccompiler::Error> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .chain(&[libc::SYS_clone3])
        .map(|&call| (call, Vec::new()))
        .collect();
    // Threads only: CLONE_THREAD must be set.
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
            libc::CLONE_THREAD as u64,
        )?])?],
    );
    if sockets {
        for &call in NETWORK {
            rules.insert(call, Vec::new());
        }
        let domain = |family: libc::c_int| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, family as u64)
                .and_then(|c| SeccompRule::new(vec![c]))
        };
        rules.insert(
            libc::SYS_socket,
            vec![domain(libc::AF_INET)?, domain(libc::AF_INET6)?],
        );
    }
    let allow_list = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        ARCH,
    )?
    .try_into()?;
    let no_clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        ARCH,
    )?
    .try_into()?;
    Ok((allow_list, no_clone3))
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
