//! The guest's WASI context, built from the run specification: arguments, environment,
//! standard streams mapped from `[[files]]`, and preopened directories.
//!
//! Keep uses wasmtime-wasi for both preview 1 and WASI 0.2, so that it follows wasmtime
//! releases (the legacy `wasi-common` crate stopped at wasmtime 46). wasmtime-wasi holds
//! descriptors 0–2 and the preopens; sockets and `[[files]]` past descriptor 2 are Keep's
//! own (see the `p1` module).

use std::sync::Arc;

use anyhow::{Context as _, bail};
use keep_config::{DirGrant, File, FileKind};
use wasmtime_wasi::cli::StdoutStream;
use wasmtime_wasi::p2::pipe::{ClosedInputStream, ClosedOutputStream};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::RunSpec;
use crate::output::{Limited, OutputLimits};

/// Builds the WASI context of a run with the preopened directories `dirs` (the spec's,
/// then Keep's own). `component` says whether it is for a WASI 0.2 component (which gets
/// sockets through `wasi:sockets`, not `[[files]]`). Writes to the host's stdout and stderr
/// are charged to `output`, if given.
pub fn builder(
    spec: &RunSpec,
    dirs: &[DirGrant],
    component: bool,
    output: Option<&Arc<OutputLimits>>,
) -> anyhow::Result<WasiCtxBuilder> {
    let mut wasi = WasiCtxBuilder::new();
    // Keep's host calls run on the guest's thread; blocking there is what a synchronous
    // preview-1 program expects and avoids a thread hop per call (wasmtime's CLI does too).
    wasi.allow_blocking_current_thread(true);
    wasi.arg(&spec.argv0);
    wasi.args(&spec.args);
    wasi.envs(&spec.env);
    if let Some(files) = &spec.files {
        if component {
            refuse_for_components(files)?;
        }
        let names = fd_names(files, dirs);
        wasi.env("FD_COUNT", names.len().to_string());
        wasi.env("FD_NAMES", names.join(":"));
        map_standard_descriptors(&mut wasi, files, output)?;
    } else {
        wasi.inherit_stdin();
        wasi.stdout(host_output(wasmtime_wasi::cli::stdout(), output));
        wasi.stderr(host_output(wasmtime_wasi::cli::stderr(), output));
    }
    if component {
        crate::net::policy::apply(&mut wasi, &spec.network);
    }
    for dir in dirs {
        if dir.sealed.is_some() {
            // Served by Keep (`sealed::SealedStore`); mounted ones are plain directories
            // here.
            continue;
        }
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

/// The guest's descriptor names in descriptor order: `[[files]]` 0–2, the preopened
/// directories (under their guest paths), then `[[files]]` 3 and up.
pub fn fd_names<'a>(files: &'a [File], dirs: &'a [DirGrant]) -> Vec<&'a str> {
    let standard = files.len().min(3);
    files[..standard]
        .iter()
        .map(|f| f.name.as_str())
        .chain(dirs.iter().map(|d| d.guest.as_str()))
        .chain(files[standard..].iter().map(|f| f.name.as_str()))
        .collect()
}

/// The guest descriptor number of `[[files]]` entry `index`.
pub fn guest_fd(index: usize, dirs: usize) -> u32 {
    let fd = if index < 3 { index } else { index + dirs };
    u32::try_from(fd).unwrap_or(u32::MAX)
}

/// Whether `[[files]]` entry `index` is served by Keep rather than wasmtime-wasi: every
/// socket, and every entry past the three standard descriptors.
pub fn is_keep_file(index: usize, file: &File) -> bool {
    index >= 3
        || matches!(
            file.kind,
            FileKind::Listen { .. } | FileKind::Connect { .. }
        )
}

fn refuse_for_components(files: &[File]) -> anyhow::Result<()> {
    for (index, file) in files.iter().enumerate() {
        if is_keep_file(index, file) {
            bail!(
                "[[files]] entry {index} (`{}`, kind `{}`): a WASI 0.2 component gets exactly \
                 stdin, stdout and stderr from [[files]]; components open their own sockets \
                 through wasi:sockets, allowed by the [network] table of Keep.toml",
                file.name,
                file.kind.as_str()
            );
        }
    }
    Ok(())
}

/// Connects descriptors 0, 1 and 2 as `[[files]]` says; missing ones and sockets (which
/// Keep serves) are closed on wasmtime-wasi's side.
fn map_standard_descriptors(
    wasi: &mut WasiCtxBuilder,
    files: &[File],
    output: Option<&Arc<OutputLimits>>,
) -> anyhow::Result<()> {
    let stdout = || host_output(wasmtime_wasi::cli::stdout(), output);
    let stderr = || host_output(wasmtime_wasi::cli::stderr(), output);
    wasi.stdin(ClosedInputStream);
    wasi.stdout(ClosedOutputStream);
    wasi.stderr(ClosedOutputStream);
    for (fd, file) in files.iter().enumerate().take(3) {
        match (fd, &file.kind) {
            (_, FileKind::Listen { .. } | FileKind::Connect { .. }) => {}
            (0, FileKind::Stdin) => {
                wasi.stdin(wasmtime_wasi::cli::stdin());
            }
            (0, FileKind::Null) => {
                wasi.stdin(std::io::empty());
            }
            (1, FileKind::Stdout) => {
                wasi.stdout(stdout());
            }
            (1, FileKind::Stderr) => {
                wasi.stdout(stderr());
            }
            (1, FileKind::Null) => {
                wasi.stdout(std::io::empty());
            }
            (2, FileKind::Stdout) => {
                wasi.stderr(stdout());
            }
            (2, FileKind::Stderr) => {
                wasi.stderr(stderr());
            }
            (2, FileKind::Null) => {
                wasi.stderr(std::io::empty());
            }
            _ => bail!(
                "[[files]] entry {fd} (`{}`) is `{}`: descriptor 0 reads (`stdin` or `null`) \
                 and descriptors 1 and 2 write (`stdout`, `stderr` or `null`)",
                file.name,
                file.kind.as_str()
            ),
        }
    }
    Ok(())
}

/// One of the host's output streams, charged to `output` when there is an output limit.
fn host_output<S: StdoutStream + Sync + 'static>(
    stream: S,
    output: Option<&Arc<OutputLimits>>,
) -> Box<dyn StdoutStream + Sync> {
    match output {
        Some(budget) => Box::new(Limited::new(stream, budget.clone())),
        None => Box::new(stream),
    }
}
