//! What this host can attest with: which TEE it is (or has), which kernel interfaces are
//! there, and so which Keep backends can run here, with the remedy for what is missing.
//!
//! Everything is read from the filesystem under a root (normally `/`), so a simulated tree
//! can stand in for a confidential VM.

use std::path::Path;

use serde::Serialize;

use crate::TeeKind;

/// A backend and whether it can run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backend {
    /// Its name as `keep run --backend` spells it.
    pub name: &'static str,
    /// Whether it can run here.
    pub usable: bool,
    /// What it gives, or why it cannot run and how to fix that.
    pub note: String,
}

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Platform {
    /// The TEE this host is a guest of (SEV-SNP, TDX) or offers (SGX), or `none`.
    pub tee: TeeKind,
    /// Attestation interfaces found: `configfs-tsm`, `/dev/sev-guest`, `/dev/tdx_guest`,
    /// `/dev/sgx_enclave`.
    pub interfaces: Vec<&'static str>,
    /// The backends and whether each can run here.
    pub backends: Vec<Backend>,
}

impl Platform {
    /// The backend `keep run --backend auto` picks here: `cvm` where it is usable, else
    /// `process`.
    pub fn auto_backend(&self) -> &'static str {
        if self.backends.iter().any(|b| b.name == "cvm" && b.usable) {
            "cvm"
        } else {
            "process"
        }
    }
}

/// Examines the host under `root`.
pub fn detect(root: &Path) -> Platform {
    let exists = |path: &str| root.join(path.trim_start_matches('/')).exists();
    let cpu_flags = std::fs::read_to_string(root.join("proc/cpuinfo"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("flags"))
                .map(|line| {
                    line.split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
        })
        .unwrap_or_default();
    let has_flag = |flag: &str| cpu_flags.iter().any(|f| f == flag);

    let mut interfaces = Vec::new();
    let tsm = root.join("sys/kernel/config/tsm/report").is_dir();
    for (present, name) in [
        (tsm, "configfs-tsm"),
        (exists("/dev/sev-guest"), "/dev/sev-guest"),
        (exists("/dev/tdx_guest"), "/dev/tdx_guest"),
        (exists("/dev/sgx_enclave"), "/dev/sgx_enclave"),
    ] {
        if present {
            interfaces.push(name);
        }
    }
    let snp_guest = exists("/dev/sev-guest") || has_flag("sev_snp") && has_flag("hypervisor");
    let tdx_guest = exists("/dev/tdx_guest") || has_flag("tdx_guest");
    let sgx = exists("/dev/sgx_enclave") || has_flag("sgx");
    let tee = if snp_guest {
        TeeKind::SevSnp
    } else if tdx_guest {
        TeeKind::Tdx
    } else if sgx {
        TeeKind::Sgx
    } else {
        TeeKind::None
    };

    let cvm = match tee {
        TeeKind::SevSnp | TeeKind::Tdx if tsm || (snp_guest && exists("/dev/sev-guest")) => {
            Backend {
                name: "cvm",
                usable: true,
                note: format!(
                    "this is an {} guest: the hardware protects the VM's memory (and the Keep in \
                 it) from the host; evidence comes from {}",
                    if tee == TeeKind::SevSnp {
                        "AMD SEV-SNP"
                    } else {
                        "Intel TDX"
                    },
                    if tsm {
                        "configfs-tsm"
                    } else {
                        "/dev/sev-guest"
                    }
                ),
            }
        }
        TeeKind::SevSnp | TeeKind::Tdx => Backend {
            name: "cvm",
            usable: false,
            note: "a confidential VM without an attestation interface: use Linux ≥ 6.7 with \
                   configfs mounted (mount -t configfs none /sys/kernel/config), or load the \
                   guest driver (modprobe sev-guest / tdx-guest)"
                .to_owned(),
        },
        _ => Backend {
            name: "cvm",
            usable: false,
            note: "not a confidential VM: run Keep inside an AMD SEV-SNP or Intel TDX guest \
                   (a confidential VM offered by your cloud or your own SNP/TDX host)"
                .to_owned(),
        },
    };
    let sgx_backend = Backend {
        name: "sgx",
        usable: false,
        note: if sgx {
            "SGX is present, but Keep does not run enclaves yet (it verifies SGX quotes)".to_owned()
        } else {
            "no SGX here (no /dev/sgx_enclave); Keep verifies SGX quotes but does not run enclaves yet"
                .to_owned()
        },
    };
    Platform {
        tee,
        interfaces,
        backends: vec![
            Backend {
                name: "process",
                usable: true,
                note: "the Wasm sandbox protects the host from the guest; nothing protects the \
                       guest from the host (no confidentiality, evidence kind `none`)"
                    .to_owned(),
            },
            cvm,
            sgx_backend,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_host_offers_the_process_backend_only() {
        let root = tempfile::tempdir().unwrap();
        let platform = detect(root.path());
        assert_eq!(platform.tee, TeeKind::None);
        let usable: Vec<_> = platform
            .backends
            .iter()
            .filter(|b| b.usable)
            .map(|b| b.name)
            .collect();
        assert_eq!(usable, ["process"]);
    }

    #[test]
    fn a_simulated_snp_guest_with_configfs_tsm_can_run_cvm() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("sys/kernel/config/tsm/report")).unwrap();
        std::fs::create_dir_all(root.path().join("dev")).unwrap();
        std::fs::write(root.path().join("dev/sev-guest"), "").unwrap();
        let platform = detect(root.path());
        assert_eq!(platform.tee, TeeKind::SevSnp);
        assert_eq!(platform.interfaces, ["configfs-tsm", "/dev/sev-guest"]);
        let cvm = platform.backends.iter().find(|b| b.name == "cvm").unwrap();
        assert!(cvm.usable, "{}", cvm.note);
        assert!(cvm.note.contains("configfs-tsm"), "{}", cvm.note);
    }

    #[test]
    fn a_tdx_guest_without_interfaces_is_told_how_to_fix_it() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("proc")).unwrap();
        std::fs::write(
            root.path().join("proc/cpuinfo"),
            "processor : 0\nflags : fpu tdx_guest hypervisor\n",
        )
        .unwrap();
        let platform = detect(root.path());
        assert_eq!(platform.tee, TeeKind::Tdx);
        let cvm = platform.backends.iter().find(|b| b.name == "cvm").unwrap();
        assert!(!cvm.usable);
        assert!(cvm.note.contains("mount -t configfs"), "{}", cvm.note);
    }
}
