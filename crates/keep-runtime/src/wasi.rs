//! The guest's WASI context, built from the run specification: arguments, environment,
//! standard streams mapped from `[[files]]`, and preopened directories.
//!
//! Keep uses wasmtime-wasi for both preview 1 and WASI 0.2, so that it follows wasmtime
//! releases (the legacy `wasi-common` crate stopped at wasmtime 46). wasmtime-wasi gives
//! preview-1 guests exactly three standard descriptors followed by the preopens, so in this
//! version `[[files]]` may only describe descriptors 0–2 with the kinds that fit them;
//! sockets and further descriptors are refused with a clear message rather than ignored.

use anyhow::{Context as _, bail};
use keep_config::{File, FileKind};
use wasmtime_wasi::p2::pipe::{ClosedInputStream, ClosedOutputStream};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::RunSpec;

/// Builds the WASI context of a run. `argv0` is the guest's `argv[0]`.
pub fn builder(spec: &RunSpec, argv0: &str) -> anyhow::Result<WasiCtxBuilder> {
    let mut wasi = WasiCtxBuilder::new();
    // Keep's host calls run on the guest's thread; blocking there is what a synchronous
    // preview-1 program expects and avoids a thread hop per call (wasmtime's CLI does too).
    wasi.allow_blocking_current_thread(true);
    wasi.arg(argv0);
    wasi.args(&spec.args);
    wasi.envs(&spec.env);
    if let Some(files) = &spec.files {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        wasi.env("FD_COUNT", files.len().to_string());
        wasi.env("FD_NAMES", names.join(":"));
        map_standard_descriptors(&mut wasi, files)?;
    } else {
        wasi.inherit_stdio();
    }
    for dir in &spec.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(&dir.host, &dir.guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "cannot open directory `{}` for the guest (--dir or [[dirs]])",
                    dir.host.display()
                )
            })?;
    }
    Ok(wasi)
}

/// Connects descriptors 0, 1 and 2 as `[[files]]` says; missing ones are closed.
fn map_standard_descriptors(wasi: &mut WasiCtxBuilder, files: &[File]) -> anyhow::Result<()> {
    wasi.stdin(ClosedInputStream);
    wasi.stdout(ClosedOutputStream);
    wasi.stderr(ClosedOutputStream);
    for (fd, file) in files.iter().enumerate() {
        match (fd, &file.kind) {
            (_, FileKind::Listen { .. } | FileKind::Connect { .. }) => bail!(
                "[[files]] entry {fd} (`{}`) is a `{}` socket: network descriptors are not yet \
                 supported by this version of Keep",
                file.name,
                file.kind.as_str()
            ),
            (0, FileKind::Stdin) => {
                wasi.stdin(wasmtime_wasi::cli::stdin());
            }
            (0, FileKind::Null) => {
                wasi.stdin(std::io::empty());
            }
            (1, FileKind::Stdout) => {
                wasi.stdout(wasmtime_wasi::cli::stdout());
            }
            (1, FileKind::Stderr) => {
                wasi.stdout(wasmtime_wasi::cli::stderr());
            }
            (1, FileKind::Null) => {
                wasi.stdout(std::io::empty());
            }
            (2, FileKind::Stdout) => {
                wasi.stderr(wasmtime_wasi::cli::stdout());
            }
            (2, FileKind::Stderr) => {
                wasi.stderr(wasmtime_wasi::cli::stderr());
            }
            (2, FileKind::Null) => {
                wasi.stderr(std::io::empty());
            }
            _ => bail!(
                "[[files]] entry {fd} (`{}`) is `{}`: this version of Keep places only \
                 `stdin` or `null` at descriptor 0 and `stdout`, `stderr` or `null` at \
                 descriptors 1 and 2",
                file.name,
                file.kind.as_str()
            ),
        }
    }
    Ok(())
}
