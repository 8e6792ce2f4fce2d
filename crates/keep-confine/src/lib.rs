//! Confinement of the Keep's own process: the second wall of the `process` backend.
//!
//! The Wasm sandbox is the first wall. If a flaw in it ever let a guest run code in the
//! runtime, the runtime process itself must still be unable to touch what the Keep was not
//! granted. After set-up (program compiled and cached, descriptors and directories opened,
//! the guest linked) and before the first guest instruction, [`confine`] applies, in order:
//!
//! 1. **rlimits** ([`rlimits`]): no core dumps (they would write the guest's memory to disk),
//!    a cap on open files;
//! 2. **capabilities** ([`capabilities`]): when run as root, every capability is dropped from
//!    the bounding, inheritable, permitted and effective sets;
//! 3. **no-new-privs**: no exec can ever gain privileges;
//! 4. **Landlock** ([`landlock`]): the filesystem shrinks to the preopened directories (with
//!    their read-only flags) and the few files the runtime still reads; TCP bind and connect
//!    are refused when no network is granted; abstract Unix sockets and signals cannot reach
//!    outside the Keep;
//! 5. **seccomp-bpf** ([`seccomp`]): an allow-list of the system calls the runtime needs from
//!    then on; process creation, exec, ptrace and the like return `EPERM`, and sockets can be
//!    created only when the network is granted.
//!
//! Capabilities, no-new-privs and Landlock act on the calling thread and the threads it starts
//! later; seccomp is synchronised to every thread. The runtime therefore confines itself while
//! it has a single thread (the [`Report`] says how many there were), except for helper
//! threads that must run before (a sealed directory's file system serves the preopen that
//! set-up opens): each confines itself first with [`confine_helper`], to what it needs,
//! which is never more than the runtime's.
//!
//! A kernel lacking a feature is not an error: the [`Report`] says what is active, what is
//! unavailable and why, and the caller shows it.

mod bpf;
pub mod capabilities;
pub mod landlock;
pub mod rlimits;
pub mod seccomp;

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// What the confined process may still do.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Directories the guest may read and write (preopens).
    pub read_write_dirs: Vec<PathBuf>,
    /// Directories the guest may only read (read-only preopens).
    pub read_only_dirs: Vec<PathBuf>,
    /// Files and directories the runtime itself still reads (name resolution, say).
    pub read_only_paths: Vec<PathBuf>,
    /// Whether new sockets may be created (bind, connect): the network is granted.
    pub sockets: bool,
    /// The most descriptors the process may have open.
    pub max_open_files: u64,
}

/// The state of one confinement mechanism.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// In force.
    Active,
    /// In force, with less than everything asked (an older kernel ABI, say).
    Partial,
    /// Not in force: the kernel or the environment does not offer it.
    Unavailable,
    /// Not applicable (capabilities when not running as root).
    NotNeeded,
    /// Tried and failed.
    Failed,
}

/// One mechanism and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// `rlimits`, `capabilities`, `no-new-privs`, `landlock`, `seccomp`.
    pub name: &'static str,
    /// Its state.
    pub status: Status,
    /// Details for people: the ABI, what is limited, why it is unavailable.
    pub detail: String,
}

/// What [`confine`] did, or what [`probe`] finds the kernel offers.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// One entry per mechanism, in the order applied.
    pub items: Vec<Item>,
    /// Threads of the process when confinement was applied (1 is what the runtime aims for:
    /// per-thread mechanisms then cover every later thread).
    pub threads: Option<usize>,
}

impl Report {
    /// Whether every mechanism that applies is fully in force.
    pub fn is_complete(&self) -> bool {
        self.items
            .iter()
            .all(|i| matches!(i.status, Status::Active | Status::NotNeeded))
    }

    /// One line: `no-new-privs, landlock (ABI 7), seccomp, rlimits, capabilities (not root)`.
    pub fn summary(&self) -> String {
        self.items
            .iter()
            .map(|item| match item.status {
                Status::Active => item.name.to_owned(),
                Status::Partial => format!("{} (partial: {})", item.name, item.detail),
                Status::Unavailable => format!("{} UNAVAILABLE ({})", item.name, item.detail),
                Status::NotNeeded => format!("{} (not needed: {})", item.name, item.detail),
                Status::Failed => format!("{} FAILED ({})", item.name, item.detail),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            let status = match item.status {
                Status::Active => "active",
                Status::Partial => "partial",
                Status::Unavailable => "unavailable",
                Status::NotNeeded => "not needed",
                Status::Failed => "FAILED",
            };
            writeln!(f, "  {:<13} {status}: {}", item.name, item.detail)?;
        }
        Ok(())
    }
}

/// Threads that confined themselves with [`confine_helper`] (with those they started).
static CONFINED_HELPERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Confines the calling thread, a helper started before [`confine`], to `grants` (without
/// seccomp, which [`confine`] later synchronises to every thread): capabilities dropped,
/// no-new-privs, Landlock. `threads` is how many threads it accounts for, itself and those
/// it starts afterwards (which inherit all three): unless one failed, [`confine`] does not
/// count them as escaping. Returns what became of each.
pub fn confine_helper(grants: &Grants, threads: usize) -> Vec<Item> {
    let items = vec![
        capabilities::drop_all(),
        no_new_privs(),
        landlock::apply(grants),
    ];
    if !items.iter().any(|i| i.status == Status::Failed) {
        CONFINED_HELPERS.fetch_add(threads, std::sync::atomic::Ordering::SeqCst);
    }
    items
}

/// Confines the calling process; see the crate documentation. Never fails: what could not be
/// applied is reported.
pub fn confine(grants: &Grants) -> Report {
    let threads = thread_count()
        .map(|n| n.saturating_sub(CONFINED_HELPERS.load(std::sync::atomic::Ordering::SeqCst)));
    let mut items = vec![
        rlimits::apply(grants.max_open_files),
        capabilities::drop_all(),
        no_new_privs(),
        landlock::apply(grants),
        seccomp::apply(grants.sockets),
    ];
    // Capabilities and Landlock are per thread: say so when other threads escaped them.
    if let Some(n) = threads.filter(|n| *n > 1) {
        for item in items
            .iter_mut()
            .filter(|i| matches!(i.name, "capabilities" | "landlock"))
            .filter(|i| i.status == Status::Active)
        {
            item.status = Status::Partial;
            item.detail += &format!("; {} threads started before it are not covered", n - 1);
        }
    }
    Report { items, threads }
}

/// What the kernel offers, without confining anything (for `keep platform info`).
pub fn probe() -> Report {
    Report {
        items: vec![
            Item {
                name: "rlimits",
                status: Status::Active,
                detail: "core dumps off, open files capped".into(),
            },
            capabilities::probe(),
            Item {
                name: "no-new-privs",
                status: Status::Active,
                detail: "prctl(PR_SET_NO_NEW_PRIVS)".into(),
            },
            landlock::probe(),
            seccomp::probe(),
        ],
        threads: None,
    }
}

fn no_new_privs() -> Item {
    match rustix::thread::set_no_new_privs(true) {
        Ok(()) => Item {
            name: "no-new-privs",
            status: Status::Active,
            detail: "no exec can gain privileges".into(),
        },
        Err(e) => Item {
            name: "no-new-privs",
            status: Status::Failed,
            detail: e.to_string(),
        },
    }
}

/// Threads of this process, from `/proc/self/task` (read before Landlock hides it).
fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task")
        .ok()
        .map(Iterator::count)
}
