//! Helpers shared by the end-to-end tests: they drive the real `keep` binary.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::Duration;

use keep_test_guests::Guests;

pub mod child;
pub mod net;
pub mod steward;
pub mod tee;

/// The repository's guest programs, built once per test binary.
pub static GUESTS: LazyLock<Guests> = LazyLock::new(|| Guests::new(env!("CARGO_TARGET_TMPDIR")));

/// An empty directory standing for the root of a host without a TEE.
static NO_TEE_ROOT: LazyLock<PathBuf> = LazyLock::new(|| {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-without-tee");
    std::fs::create_dir_all(&root).expect("create the simulated host root");
    root
});

/// The `keep` binary, on a simulated host without a TEE whatever machine the tests run on
/// (so `--backend auto` is `process`); tests of other hosts set `KEEP_PLATFORM_ROOT` again.
pub fn keep_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keep"));
    command.env("KEEP_PLATFORM_ROOT", &*NO_TEE_ROOT);
    command
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Keep's exit status when it cannot run the program.
pub const KEEP_ERROR: i32 = 126;

/// No test run of `keep` takes anywhere near this long; one that does is hung.
const HUNG_AFTER: Duration = Duration::from_secs(120);

/// How a `keep` invocation ended.
#[derive(Debug)]
pub struct Finished {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts the exit code, showing everything on failure.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "unexpected exit code\nstdout: {}\nstderr: {}",
            self.stdout_text(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout_text().contains(needle),
            "stdout lacks {needle:?}\nstdout: {}\nstderr: {}",
            self.stdout_text(),
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\nstderr: {}",
            self.stderr
        );
        self
    }
}

/// A `keep` command with its own empty cache directory and no inherited config.
pub struct Keep {
    command: Command,
    stdin: Vec<u8>,
    hold_stdin_open: bool,
    _cache: Option<tempfile::TempDir>,
}

impl Keep {
    pub fn new() -> Self {
        let cache = tempfile::tempdir().expect("temp dir");
        let mut keep = Self::with_cache(cache.path());
        keep._cache = Some(cache);
        keep
    }

    /// A `keep` command using `cache_home` as `XDG_CACHE_HOME`.
    pub fn with_cache(cache_home: &Path) -> Self {
        let mut command = keep_command();
        command
            .env("XDG_CACHE_HOME", cache_home)
            .env_remove("KEEP_CONFIG")
            .env_remove("KEEP_LOG");
        Self {
            command,
            stdin: Vec::new(),
            hold_stdin_open: false,
            _cache: None,
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn stdin(mut self, bytes: &[u8]) -> Self {
        self.stdin = bytes.to_vec();
        self
    }

    /// Leaves stdin open (and idle) until keep exits, like a terminal nobody types into.
    pub fn hold_stdin_open(mut self) -> Self {
        self.hold_stdin_open = true;
        self
    }

    pub fn finish(mut self) -> Finished {
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start keep");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = std::mem::take(&mut self.stdin);
        // Feed stdin and drain stdout/stderr from threads so that no pipe can deadlock.
        let (exited, wait_for_exit) = std::sync::mpsc::channel::<()>();
        let hold = self.hold_stdin_open;
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
            if hold {
                let _ = wait_for_exit.recv();
            }
        });
        let mut stdout = child.stdout.take().expect("stdout");
        let mut stderr = child.stderr.take().expect("stderr");
        let out = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stdout.read_to_end(&mut bytes);
            bytes
        });
        let err = std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stderr.read_to_end(&mut bytes);
            bytes
        });
        // A hung `keep` must fail its test, not hang the suite.
        let status = child::wait_with_deadline(&mut child, HUNG_AFTER)
            .unwrap_or_else(|_| panic!("keep did not finish within {HUNG_AFTER:?}"));
        drop(exited);
        feeder.join().expect("stdin feeder");
        Finished {
            code: status.code().unwrap_or(-1),
            stdout: out.join().expect("stdout reader"),
            stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
        }
    }
}

/// `keep run -q PROGRAM ARGS...`
pub fn keep_run(program: &Path, args: &[&str]) -> Keep {
    Keep::new().args(["run", "-q"]).arg_path(program).args(args)
}

impl Keep {
    /// Runs `program` (with keep's environment) instead of `keep`, e.g. a wrapper.
    pub fn program(mut self, program: &str) -> Self {
        let mut command = Command::new(program);
        for (name, value) in self.command.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        self.command = command;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn arg_path(mut self, path: &Path) -> Self {
        self.command.arg(path);
        self
    }
}

/// A guest in both of its forms: the preview-1 module and the WASI 0.2 component.
pub fn both_forms(name: &str) -> [(&'static str, PathBuf); 2] {
    [
        ("module", GUESTS.module(name)),
        ("component", GUESTS.component(name)),
    ]
}
