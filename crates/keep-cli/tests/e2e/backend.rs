//! `keep run --backend auto|process|cvm` on simulated hosts: what is chosen and why, what is
//! refused with its remedy, and that a Keep in a confidential VM takes its evidence from the
//! platform and caches no compiled code. (`KEEP_PLATFORM_ROOT` puts the TEE's interfaces
//! under a test directory.)

use std::path::Path;

use crate::common::{GUESTS, KEEP_ERROR, Keep};

/// A host under `root`: an SEV-SNP guest with configfs-tsm, a TDX guest without it, or none.
fn simulate(root: &Path, host: &str) {
    match host {
        "snp" => {
            std::fs::create_dir_all(root.join("sys/kernel/config/tsm/report")).unwrap();
            std::fs::create_dir_all(root.join("dev")).unwrap();
            std::fs::write(root.join("dev/sev-guest"), "").unwrap();
        }
        "tdx-old-kernel" => {
            std::fs::create_dir_all(root.join("proc")).unwrap();
            std::fs::write(
                root.join("proc/cpuinfo"),
                "processor : 0\nflags : fpu tdx_guest hypervisor\n",
            )
            .unwrap();
        }
        _ => {}
    }
}

fn keep_on(root: &Path) -> Keep {
    Keep::new().env("KEEP_PLATFORM_ROOT", root.to_str().unwrap())
}

#[test]
fn auto_runs_a_process_where_there_is_no_tee_and_cvm_is_refused_with_the_remedy() {
    let root = tempfile::tempdir().unwrap();
    let hello = GUESTS.module("hello");
    keep_on(root.path())
        .arg("run")
        .arg_path(&hello)
        .finish()
        .expect_code(0)
        .expect_stderr_contains(
            "keep: note: backend `process` (auto: not in a confidential VM with an attestation \
             interface)",
        );
    let done = keep_on(root.path())
        .args(["run", "--backend", "cvm"])
        .arg_path(&hello)
        .finish();
    done.expect_code(KEEP_ERROR).expect_stderr_contains(
        "--backend cvm cannot run here: not a confidential VM: run Keep inside an AMD SEV-SNP \
         or Intel TDX guest",
    );
    assert_eq!(done.stdout_text(), "", "the guest must not start");

    let tdx = tempfile::tempdir().unwrap();
    simulate(tdx.path(), "tdx-old-kernel");
    keep_on(tdx.path())
        .args(["run", "--backend", "cvm"])
        .arg_path(&hello)
        .finish()
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains(
            "a confidential VM without an attestation interface: use Linux ≥ 6.7",
        );
}

#[test]
fn in_a_confidential_vm_auto_is_cvm_and_nothing_compiled_is_cached() {
    let root = tempfile::tempdir().unwrap();
    simulate(root.path(), "snp");
    let cache = tempfile::tempdir().unwrap();
    let hello = GUESTS.module("hello");
    let done = Keep::with_cache(cache.path())
        .env("KEEP_PLATFORM_ROOT", root.path().to_str().unwrap())
        .arg("run")
        .arg_path(&hello)
        .finish();
    done.expect_code(0)
        .expect_stderr_contains("keep: note: backend `cvm`: this is an AMD SEV-SNP guest")
        .expect_stderr_contains("compiled code is not cached");
    assert_eq!(done.stdout_text(), "Hello from a Keep!\n");
    assert!(
        !cache.path().join("keep").exists(),
        "a Keep in a confidential VM wrote compiled code to the host's disk"
    );
    // Asked for, the process backend still runs there.
    keep_on(root.path())
        .args(["run", "--backend", "process"])
        .arg_path(&hello)
        .finish()
        .expect_code(0)
        .expect_stderr_contains("backend `process` (asked for)");
}

#[test]
fn a_cvm_keep_attests_with_the_platforms_evidence_or_does_not_start() {
    // The simulated configfs-tsm tree does not answer like the kernel: collecting evidence
    // fails, and the Keep stops before it contacts its Steward (nothing listens at port 1),
    // naming the interface. On the process backend the same Keep would send `none`.
    let root = tempfile::tempdir().unwrap();
    simulate(root.path(), "snp");
    let config = root.path().join("Keep.toml");
    std::fs::write(&config, "steward = \"https://127.0.0.1:1\"\n").unwrap();
    let done = keep_on(root.path())
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("hello"))
        .finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("cannot collect evidence from the platform")
        .expect_stderr_contains("sys/kernel/config/tsm/report/keep-");
    assert_eq!(done.stdout_text(), "", "the guest must not start");
}
