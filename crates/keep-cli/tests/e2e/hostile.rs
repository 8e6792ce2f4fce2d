//! Hostile guests: each attack is contained with the message and exit status documented in
//! docs/runtime.md ("Hostile guests"), and Keep itself stays healthy. (Loops, fuel and
//! memory bombs are in run.rs.)

use std::io::Read as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{GUESTS, Keep, both_forms};

/// `keep run -q --dir DATA::/data [extra] PROGRAM ARGS`.
fn run_with_data(
    program: &Path,
    data: &Path,
    extra: &[&str],
    args: &[&str],
) -> crate::common::Finished {
    Keep::new()
        .args(["run", "-q", "--dir"])
        .arg(&format!("{}::/data", data.display()))
        .args(extra)
        .arg_path(program)
        .args(args)
        .finish()
}

#[test]
fn path_escapes_from_a_preopen_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let secret = tmp.path().join("secret");
    std::fs::write(&secret, "the host's secret").unwrap();
    // A symlink inside the preopen that points outside it, made on the host.
    std::os::unix::fs::symlink(&secret, data.join("link")).unwrap();
    std::os::unix::fs::symlink("../secret", data.join("relative-link")).unwrap();
    let secret_path = secret.to_str().unwrap().to_owned();
    for (form, program) in both_forms("hostile") {
        for target in [
            "/data/../secret",
            "../secret",
            "/data/link",
            "/data/relative-link",
            &secret_path,
            "/proc/self/mem",
            "/etc/shadow",
            "/etc/passwd",
        ] {
            let done = run_with_data(&program, &data, &[], &["read", target]);
            let stdout = done.stdout_text();
            assert!(
                !stdout.contains("ESCAPED") && stdout.contains("contained: open"),
                "{form} {target}: {stdout}{}",
                done.stderr
            );
            done.expect_code(0);
        }
    }
}

#[test]
fn deep_recursion_traps_on_stack_exhaustion() {
    // On the WebAssembly call stack: wasmtime's stack limit.
    let done = Keep::new()
        .args(["run", "-q"])
        .arg_path(&GUESTS.module("recursion"))
        .finish();
    done.expect_code(134)
        .expect_stderr_contains("keep: the guest trapped: wasm trap: call stack exhausted");
    // On C's stack in linear memory: it runs off the bottom of memory.
    let done = Keep::new()
        .args(["run", "-q"])
        .arg_path(&GUESTS.module("hostile"))
        .arg("recurse")
        .finish();
    done.expect_code(134)
        .expect_stderr_contains("keep: the guest trapped: wasm trap: out of bounds memory access");
}

#[test]
fn a_table_growth_bomb_is_stopped_by_the_table_limit() {
    let done = Keep::new()
        .args(["run", "-q"])
        .arg_path(&GUESTS.module("tablebomb"))
        .finish();
    done.expect_code(137).expect_stderr_contains(
        "keep: table limit exceeded: the guest asked for a table of 1100000 elements; the \
         limit is 1000000 (raise it with [limits] table_elements)",
    );
    // The limit comes from the config file.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(&config, "[limits]\ntable_elements = 250000\n").unwrap();
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("tablebomb"))
        .finish();
    done.expect_code(137)
        .expect_stderr_contains("a table of 300000 elements; the limit is 250000");
}

#[test]
fn thousands_of_open_files_hit_the_descriptor_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("file"), "x").unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(&config, "[limits]\nopen_files = 300\n").unwrap();
    for (extra, limit) in [(vec![], 1024), (vec!["-c", config.to_str().unwrap()], 300)] {
        let done = run_with_data(
            &GUESTS.module("hostile"),
            &data,
            &extra,
            &["files", "/data/file"],
        );
        done.expect_code(0);
        let stdout = done.stdout_text();
        let opened: usize = stdout
            .strip_prefix("contained: ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{stdout}{}", done.stderr));
        // The process's own descriptors (stdio, the program, the engine) count too.
        assert!(opened > limit - 64 && opened < limit, "{stdout}");
        assert!(stdout.contains("then: "), "{stdout}");
    }
}

#[test]
fn a_stdout_flood_into_a_closed_pipe_ends_cleanly() {
    let mut child = crate::common::keep_command()
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("keep-hostile-tests-cache"),
        )
        .args(["run", "-q"])
        .arg(GUESTS.module("hostile"))
        .arg("flood")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = vec![0; 64 * 1024];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = crate::common::child::wait_with_deadline(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("keep kept flooding a closed pipe"));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    // WASI reports the broken pipe to the guest as an I/O error; Keep is not killed by
    // SIGPIPE and the guest ends on its own.
    assert!(
        stderr.contains("contained: output failed after") && stderr.contains("I/O error"),
        "{stderr}"
    );
}

/// Bytes of the flood (`#`) in `text`.
fn flooded(text: &[u8]) -> usize {
    text.iter().filter(|b| **b == b'#').count()
}

#[test]
fn an_output_flood_is_cut_at_the_output_limit() {
    const LIMIT: usize = 100 * 1024 + 10;
    for (form, program) in both_forms("hostile") {
        let done = Keep::new()
            .args(["run", "-q", "--max-output", &LIMIT.to_string()])
            .arg_path(&program)
            .arg("flood")
            .finish();
        done.expect_code(137);
        assert_eq!(
            done.stdout.len(),
            LIMIT,
            "{form}: output is cut at the limit"
        );
        assert_eq!(flooded(&done.stdout), LIMIT, "{form}");
        assert!(
            done.stderr.contains(
                "keep: output limit exceeded: the guest wrote 104 KiB to stdout and stderr \
                 (output is cut at the limit); the limit is 102410 bytes (raise it with \
                 --max-output or [limits] output)"
            ),
            "{form}: {}",
            done.stderr
        );
    }
}

#[test]
fn an_output_rate_holds_a_flood_back_until_the_timeout() {
    const RATE: usize = 64 * 1024;
    for (form, program) in both_forms("hostile") {
        let started = Instant::now();
        let done = Keep::new()
            .args(["run", "-q", "--timeout", "2s", "--max-output-rate", "64KiB"])
            .arg_path(&program)
            .arg("flood")
            .finish();
        let elapsed = started.elapsed().as_secs_f64();
        done.expect_code(142);
        // One second's worth at once, then at most the rate for as long as it ran (the
        // guest was stopped at its 2 s timeout, or 2 s later inside a write). Unthrottled,
        // the same flood writes gigabytes in that time.
        let written = flooded(&done.stdout);
        assert!(written >= RATE, "{form}: {written} bytes");
        assert!(
            written as f64 <= RATE as f64 * (1.0 + elapsed) + 4096.0,
            "{form}: {written} bytes in {elapsed:.1} s"
        );
        assert!(
            done.stderr.contains("keep: timeout"),
            "{form}: {}",
            done.stderr
        );
    }
}

#[test]
fn the_output_limit_counts_stdout_stderr_and_streams_placed_by_files_together() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("Keep.toml");
    std::fs::write(
        &config,
        r#"
[limits]
output = "64KiB"

[[files]]
kind = "null"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

[[files]]
name = "log"
kind = "stdout"
"#,
    )
    .unwrap();
    let done = Keep::new()
        .args(["run", "-q", "-c"])
        .arg_path(&config)
        .arg_path(&GUESTS.module("hostile"))
        .args(["flood", "1", "2", "3"])
        .finish();
    done.expect_code(137);
    let to_stdout = flooded(&done.stdout);
    let to_stderr = flooded(done.stderr.as_bytes());
    assert_eq!(to_stdout + to_stderr, 64 * 1024, "{}", done.stderr);
    // Descriptors 1 and 3 both reach the host's stdout, 2 its stderr: a third of the blocks.
    assert_eq!(to_stderr, 5 * 4096, "{}", done.stderr);
    assert!(
        done.stderr.contains("the limit is 64 KiB (raise it with"),
        "{}",
        done.stderr
    );
    // Writes to `null` cost nothing.
    let quiet = tmp.path().join("Quiet.toml");
    std::fs::write(
        &quiet,
        "[limits]\noutput = \"1KiB\"\n[[files]]\nkind = \"null\"\n[[files]]\nkind = \"null\"\n",
    )
    .unwrap();
    Keep::new()
        .args(["run", "-q", "--timeout", "1s", "-c"])
        .arg_path(&quiet)
        .arg_path(&GUESTS.module("hostile"))
        .args(["flood", "1"])
        .finish()
        .expect_code(142);
}

#[test]
fn the_start_up_line_says_which_confinement_is_active() {
    let hello = GUESTS.module("hello");
    let done = Keep::new().args(["run"]).arg_path(&hello).finish();
    done.expect_code(0);
    let line = done
        .stderr
        .lines()
        .find(|l| l.starts_with("keep: confined: "))
        .unwrap_or_else(|| panic!("no confinement line:\n{}", done.stderr));
    // Each mechanism is named, with its state when it is not simply active.
    for name in [
        "rlimits",
        "capabilities",
        "no-new-privs",
        "landlock",
        "seccomp",
    ] {
        assert!(line.contains(name), "{line}");
    }
    assert!(!line.contains("FAILED"), "{line}");
    // The cache was empty: the program was compiled on compiler threads, which were all
    // joined before confinement (per-thread mechanisms would otherwise be "partial").
    assert!(!line.contains("not covered"), "{line}");
    let done = Keep::new()
        .args(["run", "--no-confine"])
        .arg_path(&hello)
        .finish();
    done.expect_code(0)
        .expect_stderr_contains("keep: warning: --no-confine: the runtime process is not confined");
    assert!(!done.stderr.contains("keep: confined:"), "{}", done.stderr);
}
