//! Configuration files, malformed inputs and the compiled-module cache, end to end.

use std::fs;
use std::path::Path;

use crate::common::{GUESTS, KEEP_ERROR, Keep, keep_run};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// An `Enarx.toml` of the shape Enarx's own tests used runs unchanged.
#[test]
fn an_enarx_toml_runs_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "Enarx.toml",
        r#"
args = ["--from-config", "two words"]

[env]
GREETING = "hello"
EMPTY = ""

[[files]]
kind = "null"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"
"#,
    );
    // The Enarx spelling of the flag, and input on stdin that `null` must hide.
    let done = Keep::new()
        .args(["run", "-q", "--wasmcfgfile"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("fdnames"))
        .stdin(b"must not be seen")
        .finish();
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "FD_COUNT=3\nFD_NAMES=null:stdout:stderr\nstdin read returned 0\n"
    );
    assert_eq!(done.stderr, "to fd 2\n");

    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("args"))
        .arg("from-cli")
        .finish();
    done.expect_code(0);
    assert!(
        done.stdout_text()
            .ends_with("argv[1]=--from-config\nargv[2]=two words\nargv[3]=from-cli\n"),
        "{}",
        done.stdout_text()
    );

    let done = Keep::new()
        .env("KEEP_CONFIG", config.to_str().unwrap())
        .args(["run", "-q", "--env", "GREETING=overridden"])
        .arg_path(&GUESTS.module("printenv"))
        .args(["GREETING", "EMPTY", "FD_COUNT"])
        .finish();
    done.expect_code(0);
    // The config's `args` come first, then the command line's.
    assert_eq!(
        done.stdout_text(),
        "--from-config unset\ntwo words unset\nGREETING=overridden\nEMPTY=\nFD_COUNT=3\n"
    );
}

#[test]
fn files_map_stdout_and_stderr_where_the_config_says() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write(
        tmp.path(),
        "Keep.toml",
        "[[files]]\nkind = \"stdin\"\nname = \"in\"\n[[files]]\nkind = \"stderr\"\n[[files]]\nkind = \"null\"\n",
    );
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("fdnames"))
        .stdin(b"x")
        .finish();
    done.expect_code(0);
    // fd 1 goes to the host's stderr and fd 2 is discarded.
    assert_eq!(done.stdout_text(), "");
    assert_eq!(
        done.stderr,
        "FD_COUNT=3\nFD_NAMES=in:stderr:null\nstdin read returned 1\n"
    );
}

#[test]
fn dirs_from_the_config_are_relative_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("files")).unwrap();
    fs::write(tmp.path().join("files/greeting.txt"), "from a config dir").unwrap();
    let config = write(
        tmp.path(),
        "Keep.toml",
        "[[dirs]]\nhost = \"files\"\nguest = \"/files\"\nread_only = true\n",
    );
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("fsops"))
        .args(["read", "/files/greeting.txt"])
        .finish();
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "from a config dir");
}

/// Every malformed input gets Keep's error code and a message naming the problem.
#[test]
fn malformed_inputs_are_named_not_crashed_on() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = fs::read(GUESTS.module("hello")).unwrap();

    let truncated = tmp.path().join("truncated.wasm");
    fs::write(&truncated, &hello[..hello.len() / 2]).unwrap();
    let corrupted = tmp.path().join("corrupted.wasm");
    let mut bytes = hello.clone();
    bytes[8] = 0x7f; // the first section id: no such section
    fs::write(&corrupted, &bytes).unwrap();
    let text = write(tmp.path(), "notes.txt", "this is not a module\n");
    let binary = tmp.path().join("random.bin");
    fs::write(&binary, [0xff, 0xfe, 0x00, 0x01, 0x80]).unwrap();

    let cases: Vec<(&Path, &str)> = vec![
        (
            Path::new(env!("CARGO_BIN_EXE_keep")),
            "is a native ELF executable, not WebAssembly",
        ),
        (&truncated, "is not a valid WebAssembly module"),
        (&corrupted, "is not a valid WebAssembly module"),
        (
            &text,
            "is neither a WebAssembly binary nor valid WebAssembly text",
        ),
        (&binary, "is not WebAssembly (it starts with bytes"),
        (
            Path::new("/nonexistent/app.wasm"),
            "cannot read `/nonexistent/app.wasm`: No such file or directory (os error 2)\n",
        ),
    ];
    for (path, message) in cases {
        let done = keep_run(path, &[]).finish();
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains("keep: error: ")
            .expect_stderr_contains(message);
        assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
    }

    let done = keep_run(&GUESTS.module("missing_import"), &[]).finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("imports what Keep does not provide")
        .expect_stderr_contains("`env::host_magic` (function)");

    let done = keep_run(&GUESTS.module("reactor"), &[]).finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("has no `_start` function");

    let done = keep_run(&GUESTS.module("not_a_command"), &[]).finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("is a component but not a WASI command")
        .expect_stderr_contains("its exports: answer");

    // A wasi:http service (C, with wit-bindgen's bindings; WASI 0.3) is told apart from a
    // broken command.
    let done = keep_run(&GUESTS.component("http_p3"), &[]).finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains("serve it with `keep serve ")
        .expect_stderr_contains(
            "is a wasi:http service (it exports wasi:http/handler@0.3.0), not a WASI command",
        );
}

/// Runs hello with `config` and checks that Keep refuses before the guest starts.
fn refused_with_config(config: &Path, expected: &str) {
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(config)
        .arg_path(&GUESTS.module("hello"))
        .finish();
    done.expect_code(KEEP_ERROR)
        .expect_stderr_contains(expected);
    assert_eq!(done.stdout_text(), "", "the guest must not start");
}

#[test]
fn bad_configs_name_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        ("args = [\n", ":1:9: unclosed array, expected `]`"),
        (
            "[limits]\nmemory = \"lots\"\n",
            ":2:10: key `limits.memory`: invalid size \"lots\"",
        ),
        (
            "[limits]\nmemroy = \"1MiB\"\n",
            ":2:1: key `limits.memroy`: unknown field `memroy`, expected one of `memory`, `timeout`, `fuel`",
        ),
        (
            "[[files]]\nkind = \"listen\"\nport = 99999\nname = \"x\"\n",
            ":3:8: key `files[0].port`: port 99999 is out of range (0 to 65535)",
        ),
        (
            "[[files]]\nkind = \"fifo\"\n",
            ":2:8: key `files[0].kind`: unknown variant `fifo`, expected one of `null`, `stdin`, `stdout`, `stderr`, `listen`, `connect`",
        ),
    ];
    for (text, expected) in cases {
        let config = write(tmp.path(), "Keep.toml", text);
        let expected = format!("{}{expected}", config.display());
        refused_with_config(&config, &expected);
    }
}

#[test]
fn settings_that_cannot_work_fail_clearly_instead_of_being_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            "steward = \"http://127.0.0.1:1\"\n",
            "Keep.toml:1:11: key `steward`: invalid steward URL \"http://127.0.0.1:1\": a Steward \
             is reached over https:// only",
        ),
        (
            "steward = \"https://h:x\"\n",
            "Keep.toml:1:11: key `steward`: invalid steward URL \"https://h:x\": `x` is not a port",
        ),
        (
            "steward = \"https://127.0.0.1:1\"\n",
            "attestation with the Steward at https://127.0.0.1:1 failed: cannot connect",
        ),
        (
            "[[files]]\nkind = \"stdout\"\n",
            "entry 0 (`stdout`) is `stdout`",
        ),
    ];
    for (text, expected) in cases {
        refused_with_config(&write(tmp.path(), "Keep.toml", text), expected);
    }
}

#[test]
fn bad_flags_are_keep_errors() {
    let hello = GUESTS.module("hello");
    for (flag, value, expected) in [
        ("--max-memory", "lots", "invalid size \"lots\""),
        ("--timeout", "soon", "invalid duration \"soon\""),
        ("--fuel", "ten", "invalid fuel \"ten\""),
        ("--fuel", "0", "fuel must be larger than zero"),
        ("--dir", "::/x", "invalid --dir"),
        ("--backend", "sgx", "invalid value 'sgx'"),
        (
            "--env",
            "KEEP_TEST_SURELY_UNSET_VARIABLE",
            "the host has no such variable",
        ),
    ] {
        let done = Keep::new()
            .args(["run", "-q", flag, value])
            .arg_path(&hello)
            .finish();
        done.expect_code(KEEP_ERROR)
            .expect_stderr_contains(expected);
    }
    let missing_dir = Keep::new()
        .args(["run", "-q", "--dir", "/nonexistent/keep-dir"])
        .arg_path(&hello)
        .finish();
    missing_dir
        .expect_code(KEEP_ERROR)
        .expect_stderr_contains("cannot open directory `/nonexistent/keep-dir`");
    // `nil` is Enarx's name for the process backend.
    Keep::new()
        .args(["run", "-q", "--backend", "nil"])
        .arg_path(&hello)
        .finish()
        .expect_code(0);
}

#[test]
fn the_cache_is_used_verified_and_recompiled_when_corrupt() {
    let cache_home = tempfile::tempdir().unwrap();
    let cache_dir = cache_home.path().join("keep");
    let hello = GUESTS.module("hello");
    let run = || {
        Keep::with_cache(cache_home.path())
            .args(["run", "-q"])
            .arg_path(&hello)
            .finish()
    };
    let first = run();
    first.expect_code(0);
    let entries: Vec<_> = fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one entry after the first run");
    let entry = &entries[0];
    let pristine = fs::read(entry).unwrap();

    let second = run();
    second.expect_code(0);
    assert_eq!(second.stderr, "", "a cache hit is silent");

    // Flip a byte of the compiled code: the entry must be rejected, not executed.
    let mut corrupt = pristine.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0x55;
    fs::write(entry, &corrupt).unwrap();
    let third = run();
    third.expect_code(0).expect_stderr_contains("is unusable");
    assert_eq!(third.stdout_text(), "Hello from a Keep!\n");
    assert_eq!(
        fs::read(entry).unwrap(),
        pristine,
        "the entry was rewritten"
    );

    // A truncated entry, and a foreign file under the entry's name.
    for bad in [
        &pristine[..pristine.len() / 3],
        b"\x7fELF not ours".as_slice(),
    ] {
        fs::write(entry, bad).unwrap();
        let again = run();
        again.expect_code(0).expect_stderr_contains("is unusable");
        assert_eq!(fs::read(entry).unwrap(), pristine);
    }

    // `keep compile` of a cached program is a hit; of a new one it adds an entry.
    let compile = |program: &Path| {
        Keep::with_cache(cache_home.path())
            .args(["compile"])
            .arg_path(program)
            .finish()
    };
    compile(&hello).expect_code(0);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 1);
    let args = GUESTS.component("args");
    let compiled = compile(&args);
    compiled.expect_code(0);
    assert!(
        compiled.stdout_text().starts_with("compiled component `"),
        "{}",
        compiled.stdout_text()
    );
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 2);
    compile(Path::new("/nonexistent.wasm")).expect_code(KEEP_ERROR);

    let info = Keep::with_cache(cache_home.path())
        .args(["cache", "info"])
        .finish();
    info.expect_code(0);
    assert!(
        info.stdout_text()
            .contains(&format!("directory: {}", cache_dir.display()))
    );
    assert!(
        info.stdout_text().contains("entries:   2"),
        "{}",
        info.stdout_text()
    );

    let cleared = Keep::with_cache(cache_home.path())
        .args(["cache", "clear"])
        .finish();
    cleared.expect_code(0);
    assert!(cleared.stdout_text().starts_with("removed 2 entries"));
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 0);

    // --no-cache neither reads nor writes it.
    Keep::with_cache(cache_home.path())
        .args(["run", "-q", "--no-cache"])
        .arg_path(&hello)
        .finish()
        .expect_code(0);
    assert_eq!(fs::read_dir(&cache_dir).unwrap().count(), 0);
}

#[test]
fn help_documents_exit_codes_and_security() {
    let help = Keep::new().args(["run", "--help"]).finish();
    help.expect_code(0);
    let text = help.stdout_text();
    for needle in [
        "--wasmcfgfile",
        "HOST[::GUEST][:ro]",
        "NO confidentiality",
        "137",
        "152",
    ] {
        assert!(text.contains(needle), "run --help lacks {needle:?}");
    }
    Keep::new().args(["run"]).finish().expect_code(KEEP_ERROR);
}

/// A module over the spinner threshold (4 MiB): mostly a data segment, plus enough
/// functions that compiling it takes a moment.
fn large_module(dir: &Path) -> std::path::PathBuf {
    let functions: String = (0..3000)
        .map(|i| format!("(func (export \"f{i}\") (param i32) (result i32) local.get 0 i32.const {i} i32.add)\n"))
        .collect();
    let data = "\\00".repeat(4_500_000);
    write(
        dir,
        "large.wat",
        &format!(
            "(module (memory 100) (data (i32.const 0) \"{data}\")\n{functions}(func (export \"_start\")))"
        ),
    )
}

#[test]
fn compiling_a_large_module_shows_a_spinner_only_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let large = large_module(tmp.path());

    let piped = Keep::new()
        .args(["run", "-q", "--no-cache"])
        .arg_path(&large)
        .finish();
    piped.expect_code(0);
    assert_eq!(piped.stderr, "", "no spinner when stderr is not a terminal");

    // `script` runs keep on a pseudo-terminal and copies what it drew to our stdout.
    let command = format!(
        "{} run -q --no-cache {}",
        env!("CARGO_BIN_EXE_keep"),
        large.display()
    );
    let on_tty = Keep::new()
        .program("script")
        .args(["-qec", &command, "/dev/null"])
        .finish();
    on_tty.expect_code(0);
    assert!(
        on_tty.stdout_text().contains("compiling large.wat ("),
        "no spinner on a terminal: {:?}",
        on_tty.stdout_text()
    );
}
