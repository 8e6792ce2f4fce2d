//! Landlock: the filesystem the confined process can still reach, TCP bind and connect when
//! no network is granted, and the scopes (abstract Unix sockets, signals) it cannot leave.

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible as _, Ruleset, RulesetAttr as _,
    RulesetCreatedAttr as _, RulesetStatus, Scope, path_beneath_rules,
};

use crate::{Grants, Item, Status};

/// The newest ABI Keep asks for; older kernels get what they support ("best effort").
const ABI_WANTED: ABI = ABI::V6;

/// Restricts the calling thread (and the threads it starts) to `grants`.
pub fn apply(grants: &Grants) -> Item {
    match restrict(grants) {
        Ok(status) => status,
        Err(e) => Item {
            name: "landlock",
            status: Status::Failed,
            detail: e.to_string(),
        },
    }
}

fn restrict(grants: &Grants) -> Result<Item, landlock::RulesetError> {
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI_WANTED))?
        .scope(Scope::from_all(ABI_WANTED))?;
    if !grants.sockets {
        ruleset = ruleset.handle_access(AccessNet::from_all(ABI_WANTED))?;
    }
    let status = ruleset
        .create()?
        .add_rules(path_beneath_rules(
            &grants.read_write_dirs,
            AccessFs::from_all(ABI_WANTED),
        ))?
        .add_rules(path_beneath_rules(
            grants.read_only_dirs.iter().chain(&grants.read_only_paths),
            AccessFs::from_read(ABI_WANTED),
        ))?
        .restrict_self()?;
    let abi = abi();
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => Item {
            name: "landlock",
            status: Status::Active,
            detail: describe(grants, abi),
        },
        RulesetStatus::PartiallyEnforced => Item {
            name: "landlock",
            status: Status::Partial,
            detail: format!(
                "{} (kernel ABI {abi} lacks some rights of ABI {})",
                describe(grants, abi),
                ABI_WANTED as i32
            ),
        },
        RulesetStatus::NotEnforced => Item {
            name: "landlock",
            status: Status::Unavailable,
            detail: "the kernel has no Landlock (Linux 5.13+ with `landlock` in lsm=)".into(),
        },
    })
}

fn describe(grants: &Grants, abi: i32) -> String {
    format!(
        "ABI {abi}; files: {} read-write and {} read-only director{}, {} runtime path{}; \
         TCP bind/connect: {}",
        grants.read_write_dirs.len(),
        grants.read_only_dirs.len(),
        if grants.read_only_dirs.len() == 1 {
            "y"
        } else {
            "ies"
        },
        grants.read_only_paths.len(),
        if grants.read_only_paths.len() == 1 {
            ""
        } else {
            "s"
        },
        if grants.sockets { "granted" } else { "refused" }
    )
}

/// The kernel's Landlock ABI version (0: none).
pub fn abi() -> i32 {
    // SAFETY: landlock_create_ruleset with a null attribute, size 0 and the VERSION flag
    // only returns the ABI version (or an error); it reads and writes no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    i32::try_from(version).unwrap_or(0).max(0)
}

/// Whether Landlock is available here.
pub fn probe() -> Item {
    match abi() {
        0 => Item {
            name: "landlock",
            status: Status::Unavailable,
            detail: "the kernel has no Landlock (Linux 5.13+ with `landlock` in lsm=)".into(),
        },
        abi => Item {
            name: "landlock",
            status: Status::Active,
            detail: format!("ABI {abi}: files limited to the preopened directories"),
        },
    }
}
