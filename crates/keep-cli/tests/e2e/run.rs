//! `keep run` end to end: guests built from tests/guests, as modules and as components.

use std::fs;

use crate::common::{GUESTS, Keep, both_forms, keep_run, repo_root};

#[test]
fn hello_world_on_stdout() {
    for (form, wasm) in both_forms("hello") {
        let done = keep_run(&wasm, &[]).finish();
        done.expect_code(0);
        assert_eq!(done.stdout_text(), "Hello from a Keep!\n", "{form}");
        assert_eq!(done.stderr, "", "{form}: -q leaves stderr to the guest");
    }
}

/// A WASI 0.3 command (tests/guests/hello_p3.wat) runs as it is, no flag: detected from its
/// imports and exports; its output is held to the output limit like any other; its compiled
/// code is cached apart from that of 0.2 programs.
#[test]
fn a_wasi_0_3_command_runs_without_a_flag() {
    let program = GUESTS.component("hello_p3");
    let done = keep_run(&program, &[]).finish();
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        "Hello from WASI 0.3!\n",
        "{}",
        done.stderr
    );

    let limited = Keep::new()
        .args(["run", "-q", "--max-output", "8"])
        .arg_path(&program)
        .finish();
    limited.expect_code(137);
    assert_eq!(limited.stdout_text(), "Hello fr");
    assert!(
        limited.stderr.contains("output limit exceeded"),
        "{}",
        limited.stderr
    );

    let cache = tempfile::tempdir().unwrap();
    Keep::with_cache(cache.path())
        .args(["compile"])
        .arg_path(&program)
        .finish()
        .expect_code(0);
    let warm = Keep::with_cache(cache.path())
        .args(["run", "-q"])
        .arg_path(&program)
        .finish();
    warm.expect_code(0);
    assert_eq!(warm.stdout_text(), "Hello from WASI 0.3!\n");
}

/// A WASI 0.3 command on the async ABI (tests/guests/p3_probe.c, no adapter) gets what a
/// 0.2 one gets, through WASI 0.3: arguments, environment, a preopened directory read and
/// written through streams, both clocks, random bytes, and TCP only where `[network]`
/// allows (it prints a line for each, as `wasmtime run -Sp3` does).
#[test]
fn a_wasi_0_3_command_reads_and_writes_files_and_uses_clocks_random_and_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::write(data.join("in.txt"), "from the host\n").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let allowed = listener.local_addr().unwrap();
    let config = dir.path().join("Keep.toml");
    fs::write(&config, format!("[network]\nconnect = [\"{allowed}\"]\n")).unwrap();
    let program = GUESTS.component("p3_probe");
    let run = |target: &str| {
        Keep::new()
            .args(["run", "-q", "-c"])
            .arg_path(&config)
            .args(["--env", "KEEP_GREETING=hi", "--dir"])
            .arg(&format!("{}::/data", data.display()))
            .arg_path(&program)
            .args([target, "two"])
            .finish()
    };
    let done = run(&allowed.to_string());
    done.expect_code(0);
    assert_eq!(
        done.stdout_text(),
        format!(
            "args: {allowed} two\nenv: hi\nread: from the host\nwrote: 20 bytes\nclock: ok\n\
             slept: ok\nrandom: 16 bytes\nconnect {allowed}: ok\n"
        ),
        "{}",
        done.stderr
    );
    assert_eq!(
        fs::read_to_string(data.join("out.txt")).unwrap(),
        "written by WASI 0.3\n"
    );
    // Another port: denied, and Keep says why.
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let denied = other.local_addr().unwrap();
    let done = run(&denied.to_string());
    done.expect_code(0);
    assert!(
        done.stdout_text()
            .ends_with(&format!("connect {denied}: denied\n")),
        "{}",
        done.stdout_text()
    );
    done.expect_stderr_contains(&format!("[network] denied TcpConnect {denied}"));
}

#[test]
fn the_readme_example_runs_from_wat_text() {
    let done = keep_run(&repo_root().join("examples/hello.wat"), &[]).finish();
    done.expect_code(0);
    assert_eq!(done.stdout_text(), "Hello from a Keep (WASI)!\n");
}

#[test]
fn without_quiet_the_process_backend_says_it_gives_no_confidentiality() {
    let done = Keep::new()
        .args(["run"])
        .arg_path(&GUESTS.module("hello"))
        .finish();
    done.expect_code(0)
        .expect_stderr_contains("no confidentiality from the host");
}

#[test]
fn args_reach_the_guest_exactly() {
    // Flags of keep's own (`--help`, `-q`, `--`) after FILE belong to the program too.
    let tricky = ["plain", "with space", "--help", "-q", "--", "ünïcødé", ""];
    for (form, wasm) in both_forms("args") {
        let done = keep_run(&wasm, &tricky).finish();
        done.expect_code(0);
        let mut expected = format!("argc=8\nargv[0]={}\n", wasm.display());
        for (i, arg) in tricky.iter().enumerate() {
            expected.push_str(&format!("argv[{}]={arg}\n", i + 1));
        }
        assert_eq!(done.stdout_text(), expected, "{form}");
    }
}

#[test]
fn nothing_after_file_is_read_by_keep() {
    // Interpreters and compilers are run like this (`python.wasm -c CODE`, `clang -c`): the
    // first argument after FILE, whatever it looks like, is the program's, not Keep's.
    let firsts = [
        "-c",
        "-q",
        "--dir",
        "-V",
        "--help",
        "-h",
        "--",
        "--config=x",
        "--version",
        "run",
    ];
    for (form, wasm) in both_forms("args") {
        for first in firsts {
            let done = keep_run(&wasm, &[first, "x"]).finish();
            done.expect_code(0);
            assert_eq!(
                done.stdout_text(),
                format!(
                    "argc=3\nargv[0]={}\nargv[1]={first}\nargv[2]=x\n",
                    wasm.display()
                ),
                "{form}, {first}"
            );
        }
    }
}

#[test]
fn argv0_is_the_path_as_given_unless_named() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(&config, "argv0 = \"lld\"\nargs = [\"--version\"]\n").unwrap();
    for (form, wasm) in both_forms("args") {
        let argv = |keep: Keep| {
            let done = keep.finish();
            done.expect_code(0);
            done.stdout_text()
        };
        let named = Keep::new()
            .args(["run", "-q", "--argv0", "clang"])
            .arg_path(&wasm);
        assert_eq!(
            argv(named.args(["-c", "a.c"])),
            "argc=3\nargv[0]=clang\nargv[1]=-c\nargv[2]=a.c\n",
            "{form}: --argv0"
        );
        let configured = Keep::new().args(["run", "-q", "-c"]).arg_path(&config);
        assert_eq!(
            argv(configured.arg_path(&wasm)),
            "argc=2\nargv[0]=lld\nargv[1]=--version\n",
            "{form}: argv0 in Keep.toml"
        );
        let both = Keep::new()
            .args(["run", "-q", "--argv0", "ld.lld", "-c"])
            .arg_path(&config)
            .arg_path(&wasm);
        assert_eq!(
            argv(both),
            "argc=2\nargv[0]=ld.lld\nargv[1]=--version\n",
            "{form}: the flag wins"
        );
    }
}

#[test]
fn a_bad_pointer_in_a_wasi_call_is_a_guest_trap() {
    let done = keep_run(&GUESTS.module("badptr"), &[]).finish();
    done.expect_code(134)
        .expect_stderr_contains(
            "keep: the guest trapped: invalid argument to `wasi_snapshot_preview1::fd_write`: \
             Pointer out of bounds",
        )
        .expect_stderr_contains("write_past_the_end");
    // As a component the check is the preview-1 adapter's, which is guest code: it answers
    // with an errno, under Keep as under wasmtime.
    // The same fault on a descriptor Keep serves itself (a `[[files]]` stream past 2).
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(
        &config,
        "[[files]]\nkind = \"stdin\"\n[[files]]\nkind = \"stdout\"\n[[files]]\nkind = \
         \"stderr\"\n[[files]]\nkind = \"stdout\"\nname = \"log\"\n",
    )
    .unwrap();
    Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("badptr_fd3"))
        .finish()
        .expect_code(134)
        .expect_stderr_contains(
            "keep: the guest trapped: invalid argument to `wasi_snapshot_preview1::fd_write`: a \
             pointer or length outside the guest's memory",
        )
        .expect_stderr_contains("write_past_the_end");
    // And on wasmtime-wasi's descriptor 1 reached through Keep's preview-1 shim: the call is
    // named from the guest's own frame, not the shim's.
    Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("badptr"))
        .finish()
        .expect_code(134)
        .expect_stderr_contains("invalid argument to `wasi_snapshot_preview1::fd_write`");
}

#[test]
fn env_reaches_the_guest_exactly_and_host_values_only_on_request() {
    for (form, wasm) in both_forms("printenv") {
        let done = Keep::new()
            .env("KEEP_TEST_HOST_VALUE", "from the host")
            .env("KEEP_TEST_NOT_PASSED", "secret")
            .args(["run", "-q", "--env", "A=1", "--env", "EMPTY=", "--env"])
            .args(["KEEP_TEST_HOST_VALUE", "--env", "EQ=a=b"])
            .arg_path(&wasm)
            .finish();
        done.expect_code(0);
        let mut lines: Vec<String> = done.stdout_text().lines().map(str::to_owned).collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "A=1",
                "EMPTY=",
                "EQ=a=b",
                "KEEP_TEST_HOST_VALUE=from the host"
            ],
            "{form}: exactly the requested environment"
        );
    }
}

#[test]
fn two_mib_of_binary_stdin_are_echoed_byte_exact() {
    // Deterministic bytes covering every value, NUL and CR/LF included.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let input: Vec<u8> = (0..2 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    for (form, wasm) in both_forms("cat") {
        let done = keep_run(&wasm, &[]).stdin(&input).finish();
        done.expect_code(0);
        assert!(done.stdout == input, "{form}: stdout differs from stdin");
        assert_eq!(done.stderr, "copied 2097152 bytes\n", "{form}");
    }
}

/// `keep run -q --dir GRANT PROGRAM ARGS...`
fn run_with_dir(program: &std::path::Path, grant: &str, args: &[&str]) -> crate::common::Finished {
    Keep::new()
        .args(["run", "-q", "--dir", grant])
        .arg_path(program)
        .args(args)
        .finish()
}

#[test]
fn preopened_dir_reads_and_writes_but_nothing_outside() {
    for (form, wasm) in both_forms("fsops") {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(data.join("in.txt"), "input file\n").unwrap();
        fs::write(tmp.path().join("secret.txt"), "host secret\n").unwrap();
        let grant = format!("{}::/data", data.display());
        let fsops = |args: &[&str]| run_with_dir(&wasm, &grant, args);

        let read = fsops(&["read", "/data/in.txt"]);
        read.expect_code(0);
        assert_eq!(read.stdout_text(), "input file\n", "{form}");

        fsops(&["write", "/data/out.txt", "written by the guest"]).expect_code(0);
        assert_eq!(
            fs::read_to_string(data.join("out.txt")).unwrap(),
            "written by the guest"
        );

        fsops(&["mkdir", "/data/sub"]).expect_code(0);
        assert!(data.join("sub").is_dir(), "{form}");

        for outside in [
            "/data/../secret.txt",
            "/secret.txt",
            "/etc/passwd",
            "../secret.txt",
        ] {
            let denied = fsops(&["read", outside]);
            denied.expect_code(1);
            assert_eq!(
                denied.stdout_text(),
                "",
                "{form}: {outside} must not be read"
            );
            denied.expect_stderr_contains(&format!("error: read {outside}:"));
        }
        let escape = fsops(&["write", "/data/../escaped.txt", "x"]);
        escape.expect_code(1);
        assert!(
            !tmp.path().join("escaped.txt").exists(),
            "{form}: wrote outside the preopen"
        );
    }
}

#[test]
fn read_only_dir_refuses_every_write() {
    for (form, wasm) in both_forms("fsops") {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("keep.txt"), "original").unwrap();
        let grant = format!("{}::/ro:ro", tmp.path().display());
        let fsops = |args: &[&str]| run_with_dir(&wasm, &grant, args);
        let read = fsops(&["read", "/ro/keep.txt"]);
        read.expect_code(0);
        assert_eq!(read.stdout_text(), "original", "{form}");
        for attempt in [
            vec!["write", "/ro/new.txt", "x"],
            vec!["write", "/ro/keep.txt", "changed"],
            vec!["append", "/ro/keep.txt", "more"],
            vec!["mkdir", "/ro/sub"],
            vec!["remove", "/ro/keep.txt"],
        ] {
            let refused = fsops(&attempt);
            refused.expect_code(1);
            refused.expect_stderr_contains(&format!("error: {} ", attempt[0]));
        }
        assert_eq!(
            fs::read_to_string(tmp.path().join("keep.txt")).unwrap(),
            "original"
        );
        assert!(!tmp.path().join("new.txt").exists(), "{form}");
        assert!(!tmp.path().join("sub").exists(), "{form}");
    }
}

#[test]
fn exit_codes_propagate() {
    let module = GUESTS.module("exit");
    for code in [0, 1, 42, 125] {
        keep_run(&module, &[&code.to_string()])
            .finish()
            .expect_code(code);
    }
    // WASI 0.2's `exit` carries only success or failure, and the preview-1 adapter maps
    // every non-zero status to failure: a component reports 1 (as under wasmtime).
    let component = GUESTS.component("exit");
    for (status, code) in [(0, 0), (1, 1), (42, 1)] {
        keep_run(&component, &[&status.to_string()])
            .finish()
            .expect_code(code);
    }
}

#[test]
fn a_trap_reports_reason_backtrace_and_its_own_code() {
    for (form, wasm) in both_forms("trap") {
        let done = keep_run(&wasm, &[]).finish();
        done.expect_code(134)
            .expect_stderr_contains(
                "keep: the guest trapped: wasm trap: wasm `unreachable` instruction executed",
            )
            .expect_stderr_contains("crash_here")
            .expect_stderr_contains("main");
        assert_eq!(done.stdout_text(), "about to trap\n", "{form}");
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_timeout() {
    for (form, wasm) in both_forms("spin") {
        let started = std::time::Instant::now();
        let done = Keep::new()
            .args(["run", "-q", "--timeout", "300ms"])
            .arg_path(&wasm)
            .finish();
        done.expect_code(142)
            .expect_stderr_contains("keep: timeout: the guest ran longer than 300ms");
        assert_eq!(done.stdout_text(), "spinning\n", "{form}");
        // Not a benchmark: only proof that the loop was cut short rather than finishing.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{form}"
        );
    }
}

#[test]
fn the_timeout_also_ends_a_guest_blocked_in_a_host_call() {
    for (form, wasm) in both_forms("cat") {
        let done = Keep::new()
            .args(["run", "-q", "--timeout", "300ms"])
            .arg_path(&wasm)
            .hold_stdin_open()
            .finish();
        done.expect_code(142)
            .expect_stderr_contains("keep: timeout: the guest ran longer than 300ms");
        assert_eq!(done.stdout_text(), "", "{form}");
    }
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    for (form, wasm) in both_forms("membomb") {
        let done = Keep::new()
            .args(["run", "-q", "--max-memory", "32MiB"])
            .arg_path(&wasm)
            .finish();
        done.expect_code(137)
            .expect_stderr_contains("keep: memory limit exceeded:")
            .expect_stderr_contains("the limit is 32 MiB");
        assert!(
            !done.stdout_text().contains("malloc failed"),
            "{form}: the bomb went off"
        );
    }
}

#[test]
fn fuel_exhaustion_stops_a_busy_guest() {
    for (form, wasm) in both_forms("spin") {
        let done = Keep::new()
            .args(["run", "-q", "--fuel", "5000000"])
            .arg_path(&wasm)
            .finish();
        done.expect_code(152).expect_stderr_contains(
            "keep: fuel exhausted: the guest used all of its 5000000 units",
        );
        assert_eq!(done.stdout_text(), "spinning\n", "{form}");
    }
    // Enough fuel lets a finite program finish normally.
    let hello = GUESTS.module("hello");
    Keep::new()
        .args(["run", "-q", "--fuel", "100000000"])
        .arg_path(&hello)
        .finish()
        .expect_code(0);
}

#[test]
fn limits_come_from_the_config_file_and_flags_override_them() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    fs::write(&config, "[limits]\nfuel = 5000000\ntimeout = \"20s\"\n").unwrap();
    let spin = GUESTS.module("spin");
    let run = |extra: &[&str]| {
        Keep::new()
            .args(["run", "-q", "-c"])
            .arg_path(&config)
            .args(extra)
            .arg_path(&spin)
            .finish()
    };
    run(&[]).expect_code(152);
    run(&["--timeout", "200ms", "--fuel", "100000000000"]).expect_code(142);
}
