//! The preview-1 functions that take a descriptor, and what each does with one Keep owns.

use super::abi::errno;

/// What a function does when its descriptor is one Keep owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnKeep {
    /// Keep serves it.
    Serve(Op),
    /// It does not apply to sockets or streams: this errno.
    Fail(i32),
}

/// The operations Keep serves on its own descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Write,
    Close,
    FdstatGet,
    FdstatSetFlags,
    FilestatGet,
    Accept,
    Recv,
    Send,
    Shutdown,
    /// `fd_renumber`: served by Keep for every descriptor (it moves table entries).
    Renumber,
    /// `poll_oneoff`: served by Keep when a subscription names a Keep descriptor.
    Poll,
}

/// A forwarded preview-1 function.
#[derive(Debug)]
pub struct FdFunction {
    pub name: &'static str,
    /// Parameters that are descriptors.
    pub fds: &'static [usize],
    /// Parameter that points to where a new descriptor is written on success.
    pub returns_fd: Option<usize>,
    pub on_keep: OnKeep,
}

const fn f(name: &'static str, fds: &'static [usize], on_keep: OnKeep) -> FdFunction {
    FdFunction {
        name,
        fds,
        returns_fd: None,
        on_keep,
    }
}

use OnKeep::{Fail, Serve};

/// Every `wasi_snapshot_preview1` function that names a descriptor (or, for `poll_oneoff`,
/// descriptors in memory). The rest (`args_get`, clocks, random, `proc_exit`...) go to
/// wasmtime-wasi directly.
pub const FD_FUNCTIONS: &[FdFunction] = &[
    f("fd_advise", &[0], Fail(errno::SPIPE)),
    f("fd_allocate", &[0], Fail(errno::SPIPE)),
    f("fd_close", &[0], Serve(Op::Close)),
    f("fd_datasync", &[0], Fail(errno::INVAL)),
    f("fd_fdstat_get", &[0], Serve(Op::FdstatGet)),
    f("fd_fdstat_set_flags", &[0], Serve(Op::FdstatSetFlags)),
    f("fd_fdstat_set_rights", &[0], Fail(errno::NOTSUP)),
    f("fd_filestat_get", &[0], Serve(Op::FilestatGet)),
    f("fd_filestat_set_size", &[0], Fail(errno::INVAL)),
    f("fd_filestat_set_times", &[0], Fail(errno::NOTSUP)),
    f("fd_pread", &[0], Fail(errno::SPIPE)),
    f("fd_prestat_get", &[0], Fail(errno::BADF)),
    f("fd_prestat_dir_name", &[0], Fail(errno::BADF)),
    f("fd_pwrite", &[0], Fail(errno::SPIPE)),
    f("fd_read", &[0], Serve(Op::Read)),
    f("fd_readdir", &[0], Fail(errno::NOTDIR)),
    f("fd_renumber", &[0, 1], Serve(Op::Renumber)),
    f("fd_seek", &[0], Fail(errno::SPIPE)),
    f("fd_sync", &[0], Fail(errno::INVAL)),
    f("fd_tell", &[0], Fail(errno::SPIPE)),
    f("fd_write", &[0], Serve(Op::Write)),
    f("path_create_directory", &[0], Fail(errno::NOTDIR)),
    f("path_filestat_get", &[0], Fail(errno::NOTDIR)),
    f("path_filestat_set_times", &[0], Fail(errno::NOTDIR)),
    f("path_link", &[0, 4], Fail(errno::NOTDIR)),
    FdFunction {
        name: "path_open",
        fds: &[0],
        returns_fd: Some(8),
        on_keep: Fail(errno::NOTDIR),
    },
    f("path_readlink", &[0], Fail(errno::NOTDIR)),
    f("path_remove_directory", &[0], Fail(errno::NOTDIR)),
    f("path_rename", &[0, 3], Fail(errno::NOTDIR)),
    f("path_symlink", &[2], Fail(errno::NOTDIR)),
    f("path_unlink_file", &[0], Fail(errno::NOTDIR)),
    f("poll_oneoff", &[], Serve(Op::Poll)),
    f("sock_accept", &[0], Serve(Op::Accept)),
    f("sock_recv", &[0], Serve(Op::Recv)),
    f("sock_send", &[0], Serve(Op::Send)),
    f("sock_shutdown", &[0], Serve(Op::Shutdown)),
];
