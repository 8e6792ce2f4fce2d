//! Sealed directories (`[[dirs]] sealed = true`) with a Steward releasing the key and
//! witnessing versions: files persist across runs of a preview-1 module and a component;
//! the host sees only ciphertext; a changed byte, an old copy, a wrong key and a second Keep
//! are each refused with a clear message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::common::child::ChildLog;
use crate::common::net::*;
use crate::common::steward::{StewardProcess, digest, keep_config, point_to, steward_ca};
use crate::common::tee::{Guest, MEASUREMENT, test_roots_flag};
use crate::common::{GUESTS, KEEP_ERROR, Keep, both_forms, keep_command};

/// A guest program and a Keep.toml running it with `args` on the sealed directory `/data`.
struct Workload {
    program: PathBuf,
    config: PathBuf,
    digest: String,
}

/// Sealed-store runs against one Steward.
struct Sealed {
    dir: PathBuf,
    ca: PathBuf,
    store: PathBuf,
    workloads: Vec<Workload>,
    /// Where the store's key comes from, as `[[dirs]]` says it.
    key_source: &'static str,
    /// The Steward's flags besides its secrets and versions.
    steward_flags: Vec<String>,
}

impl Sealed {
    fn new(dir: &Path) -> Self {
        let ca = steward_ca(&dir.join("ca"));
        Self {
            dir: dir.to_owned(),
            ca,
            store: dir.join("store"),
            workloads: Vec::new(),
            key_source: "key = \"state-key\"\n",
            steward_flags: Vec::new(),
        }
    }

    /// A workload running `program` with `args` on the store; returns its index.
    fn workload(&mut self, name: &str, program: PathBuf, args: &[&str]) -> usize {
        let args: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
        let config = keep_config(
            &self.dir,
            &format!("{name}.toml"),
            &self.ca,
            &format!("args = [{}]\n", args.join(", ")),
            &format!(
                "[[dirs]]\nhost = \"{}\"\nguest = \"/data\"\nsealed = true\n{}",
                self.store.display(),
                self.key_source
            ),
            "",
        );
        let digest = digest(&program, &config);
        self.workloads.push(Workload {
            program,
            config,
            digest,
        });
        self.workloads.len() - 1
    }

    /// A Steward releasing `key` (as `state-key`) to every workload, and witnessing
    /// versions in `versions`; the workloads point at it.
    fn steward(&self, key: &[u8], versions: &str) -> StewardProcess {
        let key_file = self.dir.join(format!("{versions}.key"));
        std::fs::write(&key_file, key).unwrap();
        let digests: Vec<String> = self
            .workloads
            .iter()
            .map(|w| format!("{:?}", w.digest))
            .collect();
        let secrets = write_config(
            &self.dir,
            &format!("{versions}-secrets.toml"),
            &format!(
                "[[secret]]\nname = \"state-key\"\nfile = \"{}\"\n[[release]]\n\
                 secrets = [\"state-key\"]\nworkloads = [{}]\n",
                key_file.display(),
                digests.join(", ")
            ),
        );
        let secrets = secrets.display().to_string();
        self.witness(
            versions,
            &["--insecure-accept-none", "--secrets", secrets.as_str()],
        )
    }

    /// A Steward witnessing versions in `versions`, with `flags` besides
    /// [`Self::steward_flags`] (none: it releases no secrets); the workloads point at it.
    fn witness(&self, versions: &str, flags: &[&str]) -> StewardProcess {
        let versions = self.dir.join(format!("{versions}.json"));
        let mut flags = flags.to_vec();
        flags.extend(["--sealed-versions", versions.to_str().unwrap()]);
        flags.extend(self.steward_flags.iter().map(String::as_str));
        let steward = StewardProcess::start(&self.dir.join("ca"), &flags);
        for workload in &self.workloads {
            point_to(&workload.config, &steward);
        }
        steward
    }

    /// `keep run FLAGS -c CONFIG PROGRAM` of workload `index`, to start in the background.
    fn command(&self, index: usize, flags: &[&str]) -> std::process::Command {
        let workload = &self.workloads[index];
        let mut command = keep_command();
        command
            .env("XDG_CACHE_HOME", self.dir.join("cache"))
            .arg("run")
            .args(flags)
            .arg("-c")
            .arg(&workload.config)
            .arg(&workload.program);
        command
    }

    /// `keep run -q` of workload `index` to its end.
    fn run(&self, index: usize) -> crate::common::Finished {
        self.run_in(index, None)
    }

    /// `keep run -q` of workload `index` to its end, in the simulated confidential VM `vm`
    /// (`--backend cvm`) if given, else on the process backend.
    fn run_in(&self, index: usize, vm: Option<&Guest>) -> crate::common::Finished {
        let workload = &self.workloads[index];
        let keep = match vm {
            Some(vm) => Keep::new()
                .env("KEEP_PLATFORM_ROOT", vm.root().to_str().unwrap())
                .args(["run", "-q", "--backend", "cvm", "-c"]),
            None => Keep::new().args(["run", "-q", "-c"]),
        };
        keep.arg_path(&workload.config)
            .arg_path(&workload.program)
            .finish()
    }

    fn log(&self) -> PathBuf {
        self.store.join("keep-sealed.log")
    }
}

#[test]
fn a_sealed_directory_keeps_its_files_from_the_host_and_refuses_what_the_host_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    let write = sealed.workload(
        "write",
        GUESTS.module("fsops"),
        &["write", "/data/notes.txt", "sealed notes"],
    );
    let mkdir = sealed.workload("mkdir", GUESTS.module("fsops"), &["mkdir", "/data/sub"]);
    let read = sealed.workload(
        "read",
        GUESTS.component("fsops"),
        &["read", "/data/notes.txt"],
    );
    let list = sealed.workload("list", GUESTS.component("fsops"), &["list", "/data"]);
    let read_module = sealed.workload(
        "read-module",
        GUESTS.module("fsops"),
        &["read", "/data/notes.txt"],
    );
    let append = sealed.workload(
        "append",
        GUESTS.module("fsops"),
        &["append", "/data/notes.txt", ", and more"],
    );
    let key: Vec<u8> = (0..32).collect();
    let steward = sealed.steward(&key, "versions");

    // Written by a preview-1 module, read and listed by a component.
    sealed.run(write).expect_code(0);
    sealed.run(mkdir).expect_code(0);
    let done = sealed.run(read);
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "sealed notes", "{}", done.stderr);
    let done = sealed.run(list);
    done.expect_code(0);
    let mut listed: Vec<String> = done.stdout_text().lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(listed, ["notes.txt", "sub"]);

    // The host sees a lock and a log, and neither names nor contents in them.
    let mut entries: Vec<String> = std::fs::read_dir(&sealed.store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    entries.sort();
    assert_eq!(entries, ["keep-sealed.lock", "keep-sealed.log"]);
    let log = std::fs::read(sealed.log()).unwrap();
    for needle in ["notes.txt", "sealed notes", "sub"] {
        assert!(
            !log.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the log holds `{needle}` in the clear"
        );
    }
    assert!(
        steward
            .log_with("sealed store")
            .contains("of secret `state-key`: version"),
        "the Steward witnessed the commits"
    );

    // A byte the host changed: the guest's read fails, and Keep names the file (through
    // FUSE for a component, from Keep's own descriptors for a module).
    let mut changed = log.clone();
    changed[64 + 5 + 3] ^= 1; // in the first chunk's ciphertext
    std::fs::write(sealed.log(), &changed).unwrap();
    for reader in [read, read_module] {
        let done = sealed.run(reader);
        done.expect_code(1)
            .expect_stderr_contains("error: read /data/notes.txt: I/O error")
            .expect_stderr_contains("sealed directory /data")
            .expect_stderr_contains("integrity: file /notes.txt: chunk 0");
        assert!(done.stdout.is_empty());
    }
    std::fs::write(sealed.log(), &log).unwrap();

    // An old copy put back: refused at open, with both versions, before the guest runs.
    sealed.run(append).expect_code(0);
    let done = sealed.run(read);
    assert_eq!(done.stdout_text(), "sealed notes, and more");
    let newer = std::fs::read(sealed.log()).unwrap();
    std::fs::write(sealed.log(), &log).unwrap();
    let done = sealed.run(read);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("rollback: the Steward expects version")
        .expect_stderr_contains("the disk holds version");
    assert!(done.stdout.is_empty());
    // ... and the whole store deleted: refused too.
    std::fs::remove_dir_all(&sealed.store).unwrap();
    sealed
        .run(read)
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("the disk holds version 0");
    std::fs::create_dir_all(&sealed.store).unwrap();
    std::fs::write(sealed.log(), &newer).unwrap();
    sealed.run(read).expect_code(0);
    drop(steward);

    // Another key for the same secret name: refused by what it is, nothing changed.
    let _other = sealed.steward(&[9; 32], "other-versions");
    let done = sealed.run(read);
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("the key does not open this sealed store");
    assert_eq!(std::fs::read(sealed.log()).unwrap(), newer);
}

#[test]
fn a_sealed_directory_answers_every_file_call_as_a_plain_one_does() {
    // The reference: the same program on a plain directory, served by wasmtime-wasi.
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    let reference = Keep::new()
        .args(["run", "-q", "--dir"])
        .arg(&format!("{}::/data", plain.display()))
        .arg_path(&GUESTS.module("fsconform"))
        .arg("/data")
        .finish();
    reference.expect_code(0);
    let reference = reference.stdout_text();
    assert!(
        reference.contains("create a.txt again, exclusive: EEXIST"),
        "{reference}"
    );
    // A module's sealed directory is served by Keep, a component's through FUSE.
    for (form, program) in both_forms("fsconform") {
        let dir = tmp.path().join(form);
        std::fs::create_dir(&dir).unwrap();
        let mut sealed = Sealed::new(&dir);
        let run = sealed.workload("conform", program, &["/data"]);
        let _steward = sealed.steward(&[7; 32], "versions");
        let done = sealed.run(run);
        done.expect_code(0);
        let output = done.stdout_text();
        assert_eq!(
            output.lines().count(),
            reference.lines().count(),
            "{form}:\n{output}"
        );
        for (want, got) in reference.lines().zip(output.lines()) {
            // A sealed store has no links; a plain directory on ext4 or tmpfs does.
            let want = match want {
                "hard link: ok" => "hard link: EPERM",
                "symbolic link: ok" => "symbolic link: EPERM",
                want => want,
            };
            assert_eq!(got, want, "{form}: the sealed directory differs");
        }
    }
}

#[test]
fn a_guest_cannot_leave_its_sealed_directory_nor_see_the_host_s_files_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    // Beside the store, on the host.
    std::fs::write(tmp.path().join("secret"), "the host's secret").unwrap();
    let attacks: Vec<usize> = [
        "/data/../secret",
        "/data/./../secret",
        "/data/keep-sealed.log",
        "/data/keep-sealed.lock",
        "/data/nothing/../../secret",
    ]
    .iter()
    .enumerate()
    .map(|(i, target)| {
        let name = format!("attack-{i}");
        sealed.workload(&name, GUESTS.module("hostile"), &["read", target])
    })
    .collect();
    let _steward = sealed.steward(&[1; 32], "versions");
    for attack in attacks {
        let done = sealed.run(attack);
        let stdout = done.stdout_text();
        assert!(
            !stdout.contains("ESCAPED") && stdout.contains("contained: open"),
            "{stdout}{}",
            done.stderr
        );
        done.expect_code(0);
    }
}

/// A WASI 0.3 component's sealed directory is mounted (wasmtime-wasi serves its files,
/// and its `wasi:filesystem` serves only host directories): through the mount it reads what
/// a module wrote and writes what a module then reads, sealed on the host.
#[test]
fn a_wasi_0_3_component_uses_a_sealed_directory_through_its_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    let write = sealed.workload(
        "write",
        GUESTS.module("fsops"),
        &["write", "/data/in.txt", "from a module\n"],
    );
    let probe = sealed.workload("probe", GUESTS.component("p3_probe"), &["files"]);
    let read = sealed.workload("read", GUESTS.module("fsops"), &["read", "/data/out.txt"]);
    let _steward = sealed.steward(&[9; 32], "versions");
    sealed.run(write).expect_code(0);
    let done = sealed.run(probe);
    done.expect_code(0);
    assert!(
        done.stdout_text()
            .contains("read: from a module\nwrote: 20 bytes\n"),
        "{}{}",
        done.stdout_text(),
        done.stderr
    );
    let done = sealed.run(read);
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "written by WASI 0.3\n",
        "{}",
        done.stderr
    );
    let log = std::fs::read(sealed.log()).unwrap();
    for needle in ["out.txt", "written by WASI 0.3"] {
        assert!(
            !log.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "the log holds `{needle}` in the clear"
        );
    }
}

#[test]
fn a_running_store_compacts_inside_its_confinement() {
    let tmp = tempfile::tempdir().unwrap();
    for (form, program) in both_forms("journal") {
        let dir = tmp.path().join(form);
        std::fs::create_dir(&dir).unwrap();
        let mut sealed = Sealed::new(&dir);
        let append = sealed.workload(
            "append",
            program.clone(),
            &["append", "/data/journal", "3000"],
        );
        let check = sealed.workload("check", program, &["check", "/data/journal"]);
        let _steward = sealed.steward(&[3; 32], "versions");
        // Each record is synced: 3000 commits, each rewriting the file's last 4 KiB chunk,
        // make a log of about 13 MiB unless the running store compacts it (at 8 MiB of
        // garbage), which it does in the store's directory, inside Keep's confinement.
        sealed.run(append).expect_code(0);
        let len = std::fs::metadata(sealed.log()).unwrap().len();
        assert!(
            len < 9 << 20,
            "{form}: the log holds {len} bytes: not compacted while running"
        );
        let done = sealed.run(check);
        done.expect_code(0);
        assert_eq!(done.stdout_text().trim(), "3000", "{form}");
    }
}

/// A Steward trusting the simulated SEV-SNP VMs of launch `MEASUREMENT` and `other`.
fn trust_snp_vms(sealed: &mut Sealed, other: &str) {
    let policy = write_config(
        &sealed.dir,
        "policy.toml",
        &format!(
            "[sev-snp]\nmeasurement = [\"{MEASUREMENT}\", \"{other}\"]\n\
             min_tcb = {{ bootloader = 9, snp = 23, microcode = 72 }}\n"
        ),
    );
    sealed.steward_flags = test_roots_flag().to_vec();
    sealed.steward_flags.extend([
        "--offline".to_owned(),
        "--policy".to_owned(),
        policy.display().to_string(),
    ]);
}

/// `hardware_key = "sev-snp"` besides a Steward secret: the store opens in the VM that
/// sealed it, and is refused on another chip, in a VM launched with another measurement,
/// and on the process backend, each with a message saying why.
#[test]
fn a_store_sealed_with_an_snp_key_opens_only_on_its_chip_and_launch() {
    let other_measurement = "0d".repeat(48);
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    sealed.key_source = "key = \"state-key\"\nhardware_key = \"sev-snp\"\n";
    trust_snp_vms(&mut sealed, &other_measurement);
    let write = sealed.workload(
        "write",
        GUESTS.module("fsops"),
        &["write", "/data/notes.txt", "sealed to the chip"],
    );
    let read = sealed.workload(
        "read",
        GUESTS.component("fsops"),
        &["read", "/data/notes.txt"],
    );
    let _steward = sealed.steward(&[4; 32], "versions");
    let vm = Guest::snp(&[]);

    sealed.run_in(write, Some(&vm)).expect_code(0);
    let done = sealed.run_in(read, Some(&vm));
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "sealed to the chip", "{}", done.stderr);
    let log = std::fs::read(sealed.log()).unwrap();

    // The Steward's secret alone no longer opens it: another chip, another launch.
    for args in [
        &["--chip", "chip-1"][..],
        &["--measurement", &other_measurement],
    ] {
        let elsewhere = Guest::snp(args);
        let done = sealed.run_in(read, Some(&elsewhere));
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains("the key does not open this sealed store");
        assert!(done.stdout.is_empty());
    }
    // No TEE, no key: said before the store is touched.
    sealed
        .run_in(read, None)
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("hardware_key = \"sev-snp\"")
        .expect_stderr_contains("the process backend, which has no TEE to derive a key");
    assert_eq!(
        std::fs::read(sealed.log()).unwrap(),
        log,
        "a refusal changed the store"
    );
    sealed.run_in(read, Some(&vm)).expect_code(0);
}

/// `hardware_key = "sev-snp"` alone: no Steward secret, the key is the VM's and the
/// workload's; a Steward that holds no secrets still witnesses the versions, under the
/// workload digest.
#[test]
fn a_store_sealed_with_an_snp_key_alone_is_its_workloads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    sealed.key_source = "hardware_key = \"sev-snp\"\n";
    trust_snp_vms(&mut sealed, MEASUREMENT);
    let append = sealed.workload(
        "append",
        GUESTS.module("journal"),
        &["append", "/data/journal", "2"],
    );
    let check = sealed.workload(
        "check",
        GUESTS.module("journal"),
        &["check", "/data/journal"],
    );
    let steward = sealed.witness("versions", &[]);
    let vm = Guest::snp(&[]);

    // The second run finds the first's two records, and adds two.
    let first = sealed.run_in(append, Some(&vm));
    first.expect_code(0);
    assert_eq!(first.stdout_text(), "synced 0\nsynced 1\n");
    let log = std::fs::read(sealed.log()).unwrap();
    let second = sealed.run_in(append, Some(&vm));
    second.expect_code(0);
    assert_eq!(second.stdout_text(), "synced 2\nsynced 3\n");
    let witnessed = format!("of workload {}: version", sealed.workloads[append].digest);
    assert!(
        steward.log_with(&witnessed).contains(&witnessed),
        "the Steward witnessed the commits under the workload"
    );
    // Another workload in the same VM does not get the key.
    sealed
        .run_in(check, Some(&vm))
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("the key does not open this sealed store");
    // An old copy is refused: the Steward holds the workload's versions.
    std::fs::write(sealed.log(), &log).unwrap();
    sealed
        .run_in(append, Some(&vm))
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("rollback: the Steward expects version");
}

#[test]
fn a_second_keep_on_an_open_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    // `cat` holds the store open while it waits for stdin.
    let holder = sealed.workload("hold", GUESTS.module("cat"), &[]);
    let read = sealed.workload("read", GUESTS.module("fsops"), &["list", "/data"]);
    let _steward = sealed.steward(&[7; 32], "versions");

    let mut child = sealed
        .command(holder, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (ready, confined) = mpsc::channel();
    let log = ChildLog::start(child.stderr.take().unwrap(), move |line| {
        if line.starts_with("keep: confined") {
            let _ = ready.send(());
        }
    });
    confined
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the first Keep did not start:\n{}", log.text()));

    sealed
        .run(read)
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("the sealed store is open in another Keep");
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "{}", log.text());
    drop(log);
    sealed.run(read).expect_code(0);
}

/// `keep run` with a sealed directory and no Steward is refused by the configuration.
#[test]
fn a_sealed_directory_needs_a_steward_and_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, text, message) in [
        (
            "Keep.toml",
            "[[dirs]]\nhost = \"s\"\nguest = \"/data\"\nsealed = true\nkey = \"k\"\n",
            "set `steward`",
        ),
        (
            "Keyless.toml",
            "steward = \"https://127.0.0.1:1\"\n[[dirs]]\nhost = \"s\"\nsealed = true\n",
            "needs `key`",
        ),
    ] {
        let config = write_config(tmp.path(), name, text);
        Keep::new()
            .args(["run", "-c"])
            .arg_path(&config)
            .arg_path(&GUESTS.module("hello"))
            .finish()
            .expect_code(KEEP_ERROR)
            .expect_stderr_contains(message);
    }
}

/// `kill -9` at points chosen at random while a guest appends records and syncs each: every
/// time, the store opens and holds at least every record whose fsync returned, whole and in
/// order.
#[test]
fn a_keep_killed_while_writing_leaves_a_store_that_opens_with_everything_it_synced() {
    // A module's store is served by Keep, a component's through FUSE (with the kernel's
    // writeback cache): both are killed in the middle of writing.
    let tmp = tempfile::tempdir().unwrap();
    for (form, program) in both_forms("journal") {
        let dir = tmp.path().join(form);
        std::fs::create_dir(&dir).unwrap();
        kill_while_writing(&dir, form, program);
    }
}

/// Kills a Keep appending synced records to a sealed journal at 12 random points; after
/// each, the store opens and holds at least every record the guest saw synced.
fn kill_while_writing(dir: &Path, form: &str, program: PathBuf) {
    use std::io::BufRead as _;
    let mut sealed = Sealed::new(dir);
    let append = sealed.workload(
        "append",
        program.clone(),
        &["append", "/data/journal", "100000"],
    );
    let check = sealed.workload("check", program, &["check", "/data/journal"]);
    let _steward = sealed.steward(&[5; 32], "versions");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    let mut state = seed;
    let mut random = move |bound: u64| {
        // xorshift64: enough to spread the kill points; the seed is in every message.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    let mut synced_so_far = 0u64;
    for round in 0..12 {
        let mut child = sealed
            .command(append, &["-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a random number of synced records (0: while it starts).
        let kill_after = random(30);
        let mut last_synced = None;
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        while last_synced.map_or(synced_so_far, |n: u64| n + 1) < synced_so_far + kill_after {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(n) = line.strip_prefix("synced ") {
                last_synced = Some(n.parse().unwrap());
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);
        if let Some(n) = last_synced {
            synced_so_far = n + 1;
        }
        let done = sealed.run(check);
        assert_eq!(
            done.code, 0,
            "{form}, round {round} (seed {seed}): the store does not open or holds a torn record:\n{}",
            done.stderr
        );
        let held: u64 = done.stdout_text().trim().parse().unwrap();
        assert!(
            held >= synced_so_far,
            "{form}, round {round} (seed {seed}): {held} records, but {synced_so_far} were synced"
        );
        synced_so_far = held;
    }
    assert!(
        synced_so_far > 0,
        "{form}: no record was ever synced (seed {seed})"
    );
}

/// SQLite (built from the amalgamation libsqlite3-sys ships) on a sealed directory: rows
/// inserted by one run are there for the next, and `kill -9` in the middle of inserting
/// leaves a database that passes `PRAGMA integrity_check` with every committed row.
#[test]
fn a_sqlite_database_on_a_sealed_directory_keeps_every_committed_row_through_kill_9() {
    use std::io::BufRead as _;
    let tmp = tempfile::tempdir().unwrap();
    let mut sealed = Sealed::new(tmp.path());
    let insert = sealed.workload(
        "insert",
        GUESTS.module("sqlite"),
        &["/data/app.db", "insert", "100000"],
    );
    // A module: as a component (preview-1 adapter 48.0.8) SQLite trips an assertion of the
    // adapter (`path_filestat_get`, `fd_seek`), under `wasmtime run` as under Keep.
    let check = sealed.workload("check", GUESTS.module("sqlite"), &["/data/app.db", "check"]);
    let _steward = sealed.steward(&[3; 32], "versions");

    let mut committed = 0u64;
    for round in 0..6u64 {
        let mut child = sealed
            .command(insert, &["-q"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(tmp.path().join(format!("insert-{round}.err"))).unwrap())
            .spawn()
            .unwrap();
        // Killed after 1 to 6 transactions of this round have committed.
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while seen <= round {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(rows) = line.strip_prefix("committed ") {
                committed = rows.parse().unwrap();
                seen += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        drop(lines);
        assert_eq!(
            seen,
            round + 1,
            "round {round}: the insert ended early: {}",
            std::fs::read_to_string(tmp.path().join(format!("insert-{round}.err"))).unwrap()
        );
        let done = sealed.run(check);
        assert_eq!(done.code, 0, "round {round}: {}", done.stderr);
        let rows: u64 = done
            .stdout_text()
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            rows >= committed,
            "round {round}: {rows} rows, but {committed} were committed"
        );
        committed = rows;
    }
    assert!(
        committed >= 100 * (1 + 2 + 3 + 4 + 5 + 6),
        "{committed} rows"
    );
}
