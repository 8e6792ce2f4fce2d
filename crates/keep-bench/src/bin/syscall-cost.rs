//! What the kernel charges for each confinement mechanism, per system call.
//!
//!     syscall-cost DIR
//!
//! Confinement cannot be undone, so each mechanism is measured in a child process of its own:
//! `none`; `seccomp-floor`, a one-instruction filter that allows everything (the least any
//! seccomp filter costs: the kernel's slower system-call entry); `seccomp`, Keep's allow-list;
//! `landlock`, Keep's rules with DIR granted; and `all`, everything `keep run` applies. Each
//! child times `statx` on an open file and `openat` + `close` of a file in DIR. The children
//! run in interleaved passes and the fastest of each counts (other load only ever adds time);
//! one line of JSON per mechanism:
//! `{"mechanism": ..., "apply_us": ..., "statx_ns": ..., "open_close_ns": ...}`, where
//! `apply_us` is the time taken to put the mechanism in force.

use std::ffi::CString;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use keep_confine::Grants;

const MECHANISMS: [&str; 5] = ["none", "seccomp-floor", "seccomp", "landlock", "all"];
const STATX_CALLS: u32 = 500_000;
const OPENS: u32 = 100_000;
/// Rounds per measurement in one child, and passes over all mechanisms.
const ROUNDS: usize = 3;
const PASSES: usize = 5;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().context("usage: syscall-cost DIR")?);
    match args.next() {
        None => {
            let me = std::env::current_exe()?;
            let mut fastest = [[f64::INFINITY; 3]; MECHANISMS.len()];
            for _ in 0..PASSES {
                for (mechanism, best) in MECHANISMS.iter().zip(&mut fastest) {
                    let out = Command::new(&me).arg(&dir).arg(mechanism).output()?;
                    if !out.status.success() {
                        bail!(
                            "measuring {mechanism} failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                    let text = String::from_utf8(out.stdout)?;
                    let values: Vec<f64> = text
                        .split_whitespace()
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                    if values.len() != best.len() {
                        bail!("a child printed {text:?}, not {} numbers", best.len());
                    }
                    for (best, value) in best.iter_mut().zip(values) {
                        *best = best.min(value);
                    }
                }
            }
            for (mechanism, [apply, statx, open_close]) in MECHANISMS.iter().zip(fastest) {
                println!(
                    "{{\"mechanism\": \"{mechanism}\", \"apply_us\": {apply:.1}, \"statx_ns\": \
                     {statx:.1}, \"open_close_ns\": {open_close:.1}}}"
                );
            }
            Ok(())
        }
        Some(mechanism) => measure(&dir, &mechanism),
    }
}

fn measure(dir: &Path, mechanism: &str) -> anyhow::Result<()> {
    let path = dir.join("syscall-cost");
    std::fs::write(&path, b"x")?;
    let file = std::fs::File::open(&path)?;
    let grants = Grants {
        read_write_dirs: vec![dir.to_owned()],
        max_open_files: 1024,
        ..Grants::default()
    };
    let started = Instant::now();
    let item = match mechanism {
        "none" => None,
        "seccomp-floor" => {
            allow_everything()?;
            None
        }
        "seccomp" => Some(keep_confine::seccomp::apply(false)),
        "landlock" => Some(keep_confine::landlock::apply(&grants)),
        "all" => {
            let report = keep_confine::confine(&grants);
            if !report.is_complete() {
                bail!("confinement is not complete here: {}", report.summary());
            }
            None
        }
        _ => bail!("unknown mechanism {mechanism}"),
    };
    let apply = started.elapsed().as_secs_f64() * 1e6;
    if let Some(item) = item
        && item.status != keep_confine::Status::Active
    {
        bail!("{mechanism} is not active here: {}", item.detail);
    }
    let path = CString::new(path.as_os_str().as_encoded_bytes())?;
    let statx = fastest(|| statx_ns(file.as_raw_fd()))?;
    let open_close = fastest(|| open_close_ns(&path))?;
    println!("{apply} {statx} {open_close}");
    Ok(())
}

fn fastest(mut time: impl FnMut() -> anyhow::Result<f64>) -> anyhow::Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        best = best.min(time()?);
    }
    Ok(best)
}

fn statx_ns(fd: i32) -> anyhow::Result<f64> {
    // SAFETY: an all-zero `statx` is a valid value of the plain C struct.
    let mut stat: libc::statx = unsafe { std::mem::zeroed() };
    let start = Instant::now();
    for _ in 0..STATX_CALLS {
        // SAFETY: the path is a NUL-terminated empty string and `stat` outlives the call.
        let rc = unsafe {
            libc::statx(
                fd,
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_ALL,
                &mut stat,
            )
        };
        if rc != 0 {
            bail!("statx: {}", std::io::Error::last_os_error());
        }
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(STATX_CALLS))
}

fn open_close_ns(path: &CString) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..OPENS {
        // SAFETY: `path` is NUL-terminated and alive for the call.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            bail!("open: {}", std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened here and is closed once.
        unsafe { libc::close(fd) };
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(OPENS))
}

/// Installs a filter of one instruction, `return ALLOW`, as Keep installs its own
/// (no-new-privs first, the same installer): what remains is what seccomp itself costs.
fn allow_everything() -> anyhow::Result<()> {
    const RET_K: u16 = 0x06;
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    rustix::thread::set_no_new_privs(true)?;
    let program = [libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: SECCOMP_RET_ALLOW,
    }];
    keep_confine::seccomp::install(&program)?;
    Ok(())
}
