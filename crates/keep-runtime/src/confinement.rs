//! The `process` backend's second wall: what the runtime process keeps once the guest is
//! about to run ([`keep_confine`] does the confining).

use std::path::PathBuf;

use keep_config::DirGrant;
use keep_confine::{Grants, Report};

use crate::RunSpec;

/// Files the C library reads to resolve host names, granted when the network is.
pub const NAME_RESOLUTION: &[&str] = &[
    "/etc/hosts",
    "/etc/resolv.conf",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
];

/// What a Keep run with `spec` still needs once set up: its preopened directories (`dirs`,
/// as opened: sealed ones at their mounts), the
/// in-memory directory where Keep replaces secrets at renewal (`secrets_dir`, if any), and
/// the network when `[network]` grants anything or a Steward renews its certificate.
pub fn grants(spec: &RunSpec, dirs: &[DirGrant], secrets_dir: Option<PathBuf>) -> Grants {
    let sockets =
        !spec.network.is_deny_all() || matches!(spec.identity, crate::IdentitySource::Steward(_));
    let (read_only, read_write): (Vec<_>, Vec<_>) = dirs.iter().partition(|grant| grant.read_only);
    Grants {
        read_write_dirs: read_write
            .into_iter()
            .map(|g| g.host.clone())
            .chain(secrets_dir)
            .collect(),
        read_only_dirs: read_only.into_iter().map(|g| g.host.clone()).collect(),
        read_only_paths: if sockets {
            NAME_RESOLUTION.iter().map(PathBuf::from).collect()
        } else {
            Vec::new()
        },
        sockets,
        max_open_files: open_files(spec),
    }
}

/// The `[limits] open_files` of `spec`, or the default.
pub fn open_files(spec: &RunSpec) -> u64 {
    spec.limits
        .open_files
        .unwrap_or(keep_config::DEFAULT_OPEN_FILES)
}

/// Confines the process for `spec` and `secrets_dir` (see [`grants`]) (or, with confinement off, applies the limits only) and
/// reports what it did ([`crate::Event::Confined`]).
pub fn enter(spec: &RunSpec, dirs: &[DirGrant], secrets_dir: Option<PathBuf>) -> Option<Report> {
    if !spec.confine {
        let limits = keep_confine::rlimits::apply(open_files(spec));
        tracing::info!("confinement off; {}", limits.detail);
        return None;
    }
    let report = keep_confine::confine(&grants(spec, dirs, secrets_dir));
    spec.events.report(crate::Event::Confined(&report));
    if !report.is_complete() {
        tracing::warn!("confinement is not complete:\n{report}");
    }
    Some(report)
}
