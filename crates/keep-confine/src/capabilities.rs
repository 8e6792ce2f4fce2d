//! Capabilities: a Keep run as root drops every one of them, so that root inside the
//! confined process is no more than an ordinary user (Landlock and seccomp still apply).

use rustix::thread::{
    CapabilitySet, CapabilitySets, capabilities, remove_capability_from_bounding_set,
    set_capabilities,
};

use crate::{Item, Status};

/// Drops every capability of the calling thread (bounding set first, then the effective,
/// permitted and inheritable sets), when it has any.
pub fn drop_all() -> Item {
    let held = match capabilities(None) {
        Ok(sets) => sets,
        Err(e) => return failed(format!("cannot read the capabilities: {e}")),
    };
    if held.permitted.is_empty() && held.effective.is_empty() {
        return Item {
            name: "capabilities",
            status: Status::NotNeeded,
            detail: "the process holds none".into(),
        };
    }
    // Bounding-set removal needs CAP_SETPCAP, so it comes before the sets are emptied.
    for capability in CapabilitySet::all().iter() {
        // Capabilities the kernel does not know report EINVAL: nothing to drop.
        let _ = remove_capability_from_bounding_set(capability);
    }
    let empty = CapabilitySets {
        effective: CapabilitySet::empty(),
        permitted: CapabilitySet::empty(),
        inheritable: CapabilitySet::empty(),
    };
    match set_capabilities(None, empty) {
        Ok(()) => Item {
            name: "capabilities",
            status: Status::Active,
            detail: format!("all {} dropped", held.permitted.iter().count()),
        },
        Err(e) => failed(format!("cannot drop them: {e}")),
    }
}

/// Whether dropping would be needed here.
pub fn probe() -> Item {
    match capabilities(None) {
        Ok(sets) if sets.permitted.is_empty() => Item {
            name: "capabilities",
            status: Status::NotNeeded,
            detail: "the process holds none".into(),
        },
        Ok(sets) => Item {
            name: "capabilities",
            status: Status::Active,
            detail: format!(
                "{} held (root): all dropped before the guest starts",
                sets.permitted.iter().count()
            ),
        },
        Err(e) => failed(e.to_string()),
    }
}

fn failed(detail: String) -> Item {
    Item {
        name: "capabilities",
        status: Status::Failed,
        detail,
    }
}
