//! Secrets reaching the guest through each interface Keep.toml names (environment variable,
//! in-memory file, `wasi:config/store`), for modules and components; values changed and
//! revoked at the Steward reaching a running Keep at renewal; and no copy of a value left
//! anywhere a run writes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::child::{ChildLog, wait_with_deadline};
use crate::common::net::*;
use crate::common::steward::*;
use crate::common::{GUESTS, KEEP_ERROR};

/// Text value: an environment variable, a file and a config value.
const DB_VALUE: &str = "pa55-Word-of-the-db-7391";
/// Binary value: a file only.
const KEY_VALUE: &[u8] = b"\x00\x01binary-key-\xff\xfe-8842";

fn sha256(value: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(value))
}

/// The Steward's secrets file in `dir`: `db` and `key`, from files, released to `workloads`.
fn secrets_file(dir: &Path, workloads: &[&str]) -> PathBuf {
    std::fs::write(dir.join("db"), DB_VALUE).unwrap();
    std::fs::write(dir.join("key"), KEY_VALUE).unwrap();
    write_config(
        dir,
        "secrets.toml",
        &format!(
            "[[secret]]\nname = \"db\"\nfile = \"{}\"\n[[secret]]\nname = \"key\"\nfile = \"{}\"\n\
             [[release]]\nsecrets = [\"db\", \"key\"]\nworkloads = {workloads:?}\n",
            dir.join("db").display(),
            dir.join("key").display(),
        ),
    )
}

/// A Keep.toml in `dir` for the secrets guest with `args`: `db` in `DB_PASSWORD`, file
/// `db-password` and (for components) config key `db`; `key` in file `key`.
fn secrets_config(dir: &Path, name: &str, ca: &Path, args: &[&str], config_key: bool) -> PathBuf {
    let config = if config_key { "config = \"db\"\n" } else { "" };
    keep_config(
        dir,
        name,
        ca,
        &format!("args = {args:?}\n"),
        &format!(
            "[[secrets]]\nname = \"db\"\nenv = \"DB_PASSWORD\"\nfile = \"db-password\"\n{config}\
             [[secrets]]\nname = \"key\"\nfile = \"key\"\n"
        ),
        "",
    )
}

/// A `keep run` with stdin piped and its output collected; killed when dropped unfinished
/// (a failed assertion then ends the test instead of waiting on the guest's stdin).
struct RunningKeep {
    child: Child,
    stdout: Option<ChildLog>,
    stderr: Option<ChildLog>,
}

impl RunningKeep {
    /// Starts `keep run` of `program` with `config` and a cache in `cache`.
    fn start(config: &Path, program: &Path, cache: &Path) -> Self {
        let mut child = crate::common::keep_command()
            .env("XDG_CACHE_HOME", cache)
            .args(["run", "-c"])
            .arg(config)
            .arg(program)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = ChildLog::start(child.stdout.take().unwrap(), |_| {});
        let stderr = ChildLog::start(child.stderr.take().unwrap(), |_| {});
        Self {
            child,
            stdout: Some(stdout),
            stderr: Some(stderr),
        }
    }

    fn stdout(&self) -> &ChildLog {
        self.stdout.as_ref().unwrap()
    }

    fn stderr(&self) -> &ChildLog {
        self.stderr.as_ref().unwrap()
    }

    /// Writes a line to the guest's stdin.
    fn send_line(&mut self) {
        self.child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
    }

    /// Closes stdin and returns whether the run succeeded, its stdout and its stderr.
    fn finish(mut self) -> (bool, String, String) {
        drop(self.child.stdin.take());
        let status = wait_with_deadline(&mut self.child, Duration::from_secs(60));
        let stdout = self.stdout.take().unwrap().finish();
        let stderr = self.stderr.take().unwrap().finish();
        (status.is_ok_and(|s| s.success()), stdout, stderr)
    }
}

impl Drop for RunningKeep {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The mount points of the host's tmpfs filesystems, as its mount table lists them.
fn memory_filesystems() -> Vec<PathBuf> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut roots: Vec<PathBuf> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let separator = fields.iter().position(|f| *f == "-")?;
            (fields.get(separator + 1) == Some(&"tmpfs")).then(|| PathBuf::from(fields[4]))
        })
        .filter(|root| !root.starts_with("/sys") && !root.starts_with("/proc"))
        .collect();
    roots.dedup();
    roots
}

/// Every regular file under `root` (not following links) that holds `needle`.
fn files_holding(root: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            found.extend(files_holding(&entry.path(), needle));
        } else if kind.is_file()
            && entry.metadata().is_ok_and(|m| m.len() <= 1 << 24)
            && std::fs::read(entry.path())
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        {
            found.push(entry.path());
        }
    }
    found
}

#[test]
fn a_module_and_a_component_see_each_secret_where_keep_toml_puts_it_and_nothing_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    let cache = tmp.path().join("cache");
    let module = GUESTS.module("secrets");
    let component = GUESTS.component("secrets_config");
    let files = [
        "env:DB_PASSWORD",
        "file:/run/secrets/db-password",
        "file:/run/secrets/key",
    ];
    let module_args: Vec<&str> = files.iter().copied().chain(["wait"]).collect();
    let component_args: Vec<&str> = files.iter().copied().chain(["config:db"]).collect();
    let module_config = secrets_config(tmp.path(), "module.toml", &ca, &module_args, false);
    let component_config = secrets_config(tmp.path(), "component.toml", &ca, &component_args, true);
    let secrets = secrets_file(
        tmp.path(),
        &[
            &digest(&module, &module_config),
            &digest(&component, &component_config),
        ],
    );
    let steward = StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &[]);
    point_to(&module_config, &steward);
    point_to(&component_config, &steward);
    let db = sha256(DB_VALUE.as_bytes());
    let key = sha256(KEY_VALUE);
    let expected_files = format!(
        "env:DB_PASSWORD: sha256 {db}\n\
         file:/run/secrets/db-password: sha256 {db}\n\
         file:/run/secrets/db-password: write refused\n\
         file:/run/secrets/key: sha256 {key}\n\
         file:/run/secrets/key: write refused\n"
    );

    // The module waits after printing: while it runs, its secrets directory is in no mount
    // table, the host's or its own.
    let keep = RunningKeep::start(&module_config, &module, &cache);
    let printed = keep
        .stdout()
        .wait_for(Duration::from_secs(60), |t| t.contains("key: write"));
    assert_eq!(printed, expected_files, "{}", keep.stderr().text());
    let keep_pid = keep.child.id();
    for table in [
        "/proc/self/mountinfo".to_owned(),
        format!("/proc/{keep_pid}/mountinfo"),
    ] {
        let mounts = std::fs::read_to_string(&table).unwrap();
        assert!(!mounts.contains("/run/secrets"), "{table}: {mounts}");
    }
    // Nor is any file on the host's memory filesystems (where a careless runtime would
    // put secrets "in memory") holding a value.
    let mut during = Vec::new();
    for root in memory_filesystems() {
        during.extend(files_holding(&root, DB_VALUE.as_bytes()));
        during.extend(files_holding(&root, KEY_VALUE));
    }
    assert!(
        during.is_empty(),
        "secret bytes in files while the Keep runs: {during:?}"
    );
    let (success, module_stdout, module_stderr) = keep.finish();
    assert!(success, "{module_stderr}");

    // The component also reads `db` through wasi:config/store.
    let (success, component_stdout, component_stderr) =
        RunningKeep::start(&component_config, &component, &cache).finish();
    assert!(success, "{component_stderr}");
    assert_eq!(
        component_stdout,
        format!("{expected_files}config:db: sha256 {db}\n")
    );

    // No copy of either value anywhere the runs wrote: outputs, the Steward's log, the
    // compiled-module cache, the test's directory (but for the Steward's own files).
    let log = steward.log_with("secrets released: [db, key]");
    for (place, text) in [
        ("module stdout", &module_stdout),
        ("module stderr", &module_stderr),
        ("component stderr", &component_stderr),
        ("Steward log", &log),
    ] {
        assert!(!text.contains(DB_VALUE), "{place}: {text}");
        assert!(
            !text
                .as_bytes()
                .windows(KEY_VALUE.len())
                .any(|w| w == KEY_VALUE),
            "{place}"
        );
    }
    assert!(
        files_holding(&cache, b"binary-key").is_empty()
            && files_holding(&cache, DB_VALUE.as_bytes()).is_empty(),
        "the cache holds a secret"
    );
    assert!(
        std::fs::read_dir(&cache).unwrap().next().is_some(),
        "the runs used the cache (the search above looked somewhere)"
    );
    let mut left = files_holding(tmp.path(), DB_VALUE.as_bytes());
    left.retain(|p| p != &tmp.path().join("db"));
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_running_keep_gets_changed_values_at_renewal_and_loses_revoked_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    let component = GUESTS.component("secrets_config");
    let reads = [
        "file:/run/secrets/db-password",
        "config:db",
        "env:DB_PASSWORD",
    ];
    let args: Vec<&str> = [&reads[..], &["wait"], &reads[..], &["wait"], &reads[..]].concat();
    let config = secrets_config(tmp.path(), "Keep.toml", &ca, &args, true);
    let workload = digest(&component, &config);
    let secrets = secrets_file(tmp.path(), &[&workload]);
    // Certificates of 3 s: renewed every 2 s.
    let steward =
        StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &["--validity", "3s"]);
    point_to(&config, &steward);
    let mut keep = RunningKeep::start(&config, &component, &tmp.path().join("cache"));
    let old = sha256(DB_VALUE.as_bytes());
    let first = keep
        .stdout()
        .wait_for(Duration::from_secs(60), |t| t.lines().count() >= 4);
    assert_eq!(
        first,
        format!(
            "file:/run/secrets/db-password: sha256 {old}\n\
             file:/run/secrets/db-password: write refused\n\
             config:db: sha256 {old}\nenv:DB_PASSWORD: sha256 {old}\n"
        ),
        "{}",
        keep.stderr().text()
    );

    // Changed at the Steward: after the next renewal, the file and the config value hold
    // the new value; the environment keeps the old one.
    let new_value = "rotated-db-password-5512";
    std::fs::write(tmp.path().join("db"), new_value).unwrap();
    let changed = |n: usize| {
        move |t: &str| {
            t.matches("keep: secrets [db] changed or were withdrawn")
                .count()
                >= n
        }
    };
    let log = keep.stderr().wait_for(Duration::from_secs(30), changed(1));
    assert!(
        log.contains("keep: secrets [db] changed or were withdrawn"),
        "{log}"
    );
    keep.send_line();
    let new = sha256(new_value.as_bytes());
    let second = keep
        .stdout()
        .wait_for(Duration::from_secs(30), |t| t.lines().count() >= 8);
    assert!(
        second.ends_with(&format!(
            "file:/run/secrets/db-password: sha256 {new}\n\
             file:/run/secrets/db-password: write refused\n\
             config:db: sha256 {new}\nenv:DB_PASSWORD: sha256 {old}\n"
        )),
        "{second}"
    );

    // Revoked: the rule names another workload. At the next renewal the Steward refuses,
    // and the file and the config value are gone.
    let text = std::fs::read_to_string(&secrets).unwrap();
    std::fs::write(&secrets, text.replace(&workload, "sha256:00")).unwrap();
    let log = keep.stderr().wait_for(Duration::from_secs(30), changed(2));
    assert!(
        log.contains("keep: secrets [db, key] changed or were withdrawn"),
        "{log}"
    );
    keep.send_line();
    let (success, all, log) = keep.finish();
    assert!(success, "{log}");
    assert!(
        all.ends_with(&format!(
            "file:/run/secrets/db-password: absent\nconfig:db: absent\n\
             env:DB_PASSWORD: sha256 {old}\n"
        )),
        "{all}"
    );
    let steward_log = steward.log_with("is not released to workload");
    assert!(
        steward_log.contains("secret `db` is not released"),
        "{steward_log}"
    );
}

#[test]
fn a_config_key_for_a_module_is_refused_before_it_attests() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = steward_ca(&tmp.path().join("ca"));
    let module = GUESTS.module("secrets");
    let config = secrets_config(tmp.path(), "Keep.toml", &ca, &["config:db"], true);
    let secrets = secrets_file(tmp.path(), &[&digest(&module, &config)]);
    let steward = StewardProcess::with_secrets(&tmp.path().join("ca"), &secrets, &[]);
    point_to(&config, &steward);
    let (status, stderr) = run_to_end(None, &config, &module);
    assert_eq!(status, KEEP_ERROR, "{stderr}");
    assert!(
        stderr.contains("secret `db`: config key `db` needs a component"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("attested by the Steward"),
        "refused before it attested: {stderr}"
    );
}
