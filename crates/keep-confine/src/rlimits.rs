//! Resource limits of the confined process: no core dumps, a cap on open descriptors.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

use crate::{Item, Status};

/// Sets `RLIMIT_CORE` to 0 and `RLIMIT_NOFILE` to `max_open_files` (never above the hard
/// limit already in force).
pub fn apply(max_open_files: u64) -> Item {
    let core = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
    let hard = getrlimit(Resource::Nofile).maximum;
    let files = hard.map_or(max_open_files, |hard| hard.min(max_open_files));
    let nofile = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(files),
            maximum: Some(files),
        },
    );
    match (core, nofile) {
        (Ok(()), Ok(())) => Item {
            name: "rlimits",
            status: Status::Active,
            detail: format!("no core dumps, at most {files} open files"),
        },
        (core, nofile) => Item {
            name: "rlimits",
            status: Status::Failed,
            detail: format!("core: {core:?}, open files: {nofile:?}"),
        },
    }
}
