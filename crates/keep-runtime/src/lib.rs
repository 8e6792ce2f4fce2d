//! The wasmtime embedding that runs a Keep.
//!
//! [`run`] takes a [`RunSpec`] (what to run, with which arguments, environment, descriptors,
//! directories and limits), compiles the program through the [`ModuleCache`], builds its
//! WASI context and runs it to an [`Outcome`]. WASI preview-1 core modules and WASI 0.2
//! command components are both supported; the kind is detected from the file.

#![warn(missing_docs)]

pub mod attestation;
mod cache;
mod compile;
pub mod confinement;
mod engine;
mod limits;
pub mod net;
mod outcome;
mod output;
mod p1;
mod program;
mod wasi;
pub mod workload;

use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context as _, bail};
use keep_config::{DirGrant, File, FileKind, Limits, NetworkPolicy, Protocol, Tls};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_tls::{WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsCtxView, WasiTlsView};

pub use cache::{CacheStats, ModuleCache};
pub use engine::EngineOptions;
pub use limits::{LimitExceeded, Resource};
pub use net::BoundListener;
pub use net::tls::{IdentitySource, StewardSource};
pub use outcome::{Outcome, exit_code};
pub use program::{Program, ProgramError, ProgramKind};
pub use workload::{WorkloadDigest, workload_digest};

use crate::compile::Compiled;
use crate::limits::GuestLimiter;
use crate::net::tls::{Identity, LiveIdentity, TlsSetup};
use crate::output::OutputLimits;
use crate::p1::{Descriptors, ModuleHost};

/// After a timeout, how long a guest blocked in a host call (reading stdin, say) gets to
/// notice the interruption before the whole process is ended.
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// Everything a run needs, already merged from `Keep.toml` and the command line.
#[derive(Debug, Clone, Default)]
pub struct RunSpec {
    /// The program file (`.wasm` module or component, or `.wat` text).
    pub program: PathBuf,
    /// Arguments after `argv[0]` (which is the program path, as with wasmtime).
    pub args: Vec<String>,
    /// Environment of the guest.
    pub env: Vec<(String, String)>,
    /// Descriptors from `[[files]]`, exported as `FD_COUNT`/`FD_NAMES`. `None` gives the
    /// guest the host's stdin, stdout and stderr and no `FD_*` variables, as wasmtime does.
    pub files: Option<Vec<File>>,
    /// Preopened directories.
    pub dirs: Vec<DirGrant>,
    /// Resource limits.
    pub limits: Limits,
    /// Compiled-module cache; `None` compiles every time.
    pub cache: Option<ModuleCache>,
    /// `[tls]`: trust anchors and protocol policy of `tls` sockets.
    pub tls: Tls,
    /// Where the certificate of `tls` listeners (and client certificate of `tls`
    /// connects) comes from.
    pub identity: IdentitySource,
    /// `[network]`: what a component may do with `wasi:sockets`.
    pub network: NetworkPolicy,
    /// Print `keep: listening NAME PROT ADDRESS` on stderr for each listener once bound.
    pub listen_print: bool,
    /// Confine the runtime process before the guest starts ([`confinement`]).
    pub confine: bool,
    /// Print Keep's notices (such as the confinement line) on stderr.
    pub notices: bool,
}

/// Runs the program of `spec` to its end.
///
/// `Ok` carries how the guest ended (including traps and limits); `Err` means Keep could
/// not run it at all (unreadable or invalid program, missing imports, bad directory...).
pub fn run(spec: &RunSpec) -> anyhow::Result<Outcome> {
    let program = Program::read(&spec.program)?;
    let options = EngineOptions {
        fuel: spec.limits.fuel.is_some(),
        epoch_interruption: spec.limits.timeout.is_some(),
        serial_compilation: spec.confine,
    };
    let engine = options.build()?;
    let compiled = compile::compile(&engine, &program, spec.cache.as_ref())?;
    // Attestation comes before any descriptor is opened: a Keep the Steward refuses never
    // starts its workload.
    let attested = match &spec.identity {
        IdentitySource::Steward(source) => Some(attestation::attest(source, &spec.tls)?),
        _ => None,
    };
    let identity = attested.as_ref().map(|a| &a.identity);
    let argv0 = spec.program.to_string_lossy();
    let is_component = matches!(compiled, Compiled::Component(_));
    let output = OutputLimits::new(
        spec.limits.output.map(|size| size.0),
        spec.limits.output_rate.map(|rate| rate.0),
    );
    let mut wasi = wasi::builder(spec, &argv0, is_component, output.as_ref())?;
    let limiter = GuestLimiter {
        memory: spec.limits.memory.map(|m| m.0),
        table_elements: spec
            .limits
            .table_elements
            .unwrap_or(limits::DEFAULT_TABLE_ELEMENTS),
    };
    let timeout = spec.limits.timeout.map(|t| t.0);
    let fuel = spec.limits.fuel.map(|f| f.0);

    let result = match compiled {
        Compiled::Module(module) => {
            let origin = std::time::Instant::now();
            wasi.monotonic_clock(p1::GuestMonotonicClock::new(origin));
            let fds = Descriptors::new(
                open_keep_files(spec, identity)?,
                3 + spec.dirs.len() as u32,
                origin,
            );
            let host = ModuleHost {
                wasi: wasi.build_p1(),
                limiter,
                fds,
                output,
            };
            let mut store = new_store(&engine, host, fuel, timeout)?;
            store.limiter(|host| &mut host.limiter);
            let start = prepare_module(&engine, &module, &mut store, spec)?;
            let _renewal = start_guest_threads(spec, attested.as_ref())?;
            let _watchdog = timeout.map(|t| Watchdog::start(&engine, t));
            start(&mut store)
        }
        Compiled::Component(component) => {
            let host = ComponentHost {
                ctx: wasi.build(),
                table: ResourceTable::new(),
                limiter,
                tls: component_tls(&engine, &component, spec, identity)?,
            };
            let mut store = new_store(&engine, host, fuel, timeout)?;
            store.limiter(|host| &mut host.limiter);
            let command = prepare_component(&engine, &component, spec)?;
            let _renewal = start_guest_threads(spec, attested.as_ref())?;
            let _watchdog = timeout.map(|t| Watchdog::start(&engine, t));
            command(&mut store)
        }
    };
    match result {
        Ok(()) => Ok(Outcome::Exited(0)),
        Err(error) => Outcome::from_error(&error, timeout, fuel).ok_or_else(|| error.into()),
    }
}

/// Compiles the program at `path` into `cache` for runs without fuel or timeout, so that
/// the next `keep run` of it starts warm. Returns the program's kind.
pub fn precompile(path: &std::path::Path, cache: &ModuleCache) -> anyhow::Result<ProgramKind> {
    let program = Program::read(path)?;
    let engine = EngineOptions::default().build()?;
    compile::compile(&engine, &program, Some(cache))?;
    Ok(program.kind)
}

/// Opens the descriptors Keep serves itself (sockets, and `[[files]]` past descriptor 2),
/// at their guest descriptor numbers: listeners are bound and connects established here,
/// before the guest starts.
fn open_keep_files(
    spec: &RunSpec,
    identity: Option<&Arc<LiveIdentity>>,
) -> anyhow::Result<Vec<(u32, net::KeepFile)>> {
    let Some(files) = &spec.files else {
        return Ok(Vec::new());
    };
    let tls = tls_setup(spec, files, identity)?;
    let mut opened = Vec::new();
    for (index, file) in files.iter().enumerate() {
        if !wasi::is_keep_file(index, file) {
            continue;
        }
        let keep_file = net::open(index, file, tls.as_ref())?;
        if let net::KeepFile::Listener(listener) = &keep_file {
            let addr = listener
                .local_addr()
                .with_context(|| format!("listener `{}`", file.name))?;
            let prot = match file.kind {
                FileKind::Listen {
                    prot: Protocol::Tls,
                    ..
                } => "tls",
                _ => "tcp",
            };
            tracing::info!("listener `{}` ({prot}) bound to {addr}", file.name);
            if spec.listen_print {
                eprintln!("keep: listening {} {prot} {addr}", file.name);
            }
        }
        opened.push((wasi::guest_fd(index, spec.dirs.len()), keep_file));
    }
    Ok(opened)
}

/// The end of set-up: the process confines itself while it is still single-threaded, then
/// starts the threads that run beside the guest (certificate renewal).
fn start_guest_threads(
    spec: &RunSpec,
    attested: Option<&attestation::AttestedIdentity>,
) -> anyhow::Result<Option<attestation::Renewal>> {
    confinement::enter(spec);
    attested
        .map(attestation::AttestedIdentity::start_renewal)
        .transpose()
}

/// The TLS set-up when some socket uses TLS, presenting `attested` or else the identity
/// from `spec`; warns when listeners present a self-signed certificate.
fn tls_setup(
    spec: &RunSpec,
    files: &[File],
    attested: Option<&Arc<LiveIdentity>>,
) -> anyhow::Result<Option<TlsSetup>> {
    let is_tls = |file: &&File| {
        matches!(
            file.kind,
            FileKind::Listen {
                prot: Protocol::Tls,
                ..
            } | FileKind::Connect {
                prot: Protocol::Tls,
                ..
            }
        )
    };
    if !files.iter().any(|f| is_tls(&f)) {
        return Ok(None);
    }
    if let Some(identity) = attested {
        return TlsSetup::new(&spec.tls, identity.clone()).map(Some);
    }
    let identity = Identity::obtain(&spec.identity)?;
    let has_tls_listener = files.iter().any(|f| {
        matches!(
            f.kind,
            FileKind::Listen {
                prot: Protocol::Tls,
                ..
            }
        )
    });
    if identity.self_signed && has_tls_listener {
        eprintln!(
            "keep: warning: no [tls] cert and key configured: tls listeners present a fresh \
             self-signed certificate (SHA-256 {}) that clients cannot verify",
            identity.fingerprint()
        );
    }
    TlsSetup::new(&spec.tls, LiveIdentity::new(&identity)?).map(Some)
}

/// Store data of a component.
struct ComponentHost {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    tls: WasiTlsCtx,
}

impl WasiTlsView for ComponentHost {
    fn tls(&mut self) -> WasiTlsCtxView<'_> {
        WasiTlsCtxView {
            ctx: &mut self.tls,
            table: &mut self.table,
        }
    }
}

/// The `wasi:tls` context of a component: Keep's `[tls]` configuration when the component
/// imports `wasi:tls`, otherwise an unused default (so programs without TLS pay nothing).
fn component_tls(
    engine: &Engine,
    component: &Component,
    spec: &RunSpec,
    attested: Option<&Arc<LiveIdentity>>,
) -> anyhow::Result<WasiTlsCtx> {
    let imports_tls = component
        .component_type()
        .imports(engine)
        .any(|(name, _)| name.starts_with("wasi:tls/"));
    if !imports_tls {
        return Ok(WasiTlsCtxBuilder::new().build());
    }
    let identity = match attested {
        Some(identity) => identity.clone(),
        None => LiveIdentity::new(&Identity::obtain(&spec.identity)?)?,
    };
    let setup = TlsSetup::new(&spec.tls, identity)?;
    Ok(net::wasi_tls::context(&setup))
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn new_store<T>(
    engine: &Engine,
    host: T,
    fuel: Option<u64>,
    timeout: Option<Duration>,
) -> anyhow::Result<Store<T>> {
    let mut store = Store::new(engine, host);
    if let Some(fuel) = fuel {
        store
            .set_fuel(fuel)
            .map_err(anyhow::Error::from)
            .context("cannot set fuel")?;
    }
    if timeout.is_some() {
        // The watchdog bumps the epoch once, when the timeout expires.
        store.set_epoch_deadline(1);
        store.epoch_deadline_trap();
    }
    Ok(store)
}

type Entry<T> = Box<dyn FnOnce(&mut Store<T>) -> wasmtime::Result<()>>;

/// Links a preview-1 module and returns its `_start`, or says what is missing.
fn prepare_module(
    engine: &Engine,
    module: &Module,
    store: &mut Store<ModuleHost>,
    spec: &RunSpec,
) -> anyhow::Result<Entry<ModuleHost>> {
    let path = &spec.program;
    let mut linker: Linker<ModuleHost> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |host| &mut host.wasi)?;
    let shim = if store.data().fds.is_active() {
        p1::shadow(&mut linker, store)?;
        Some(p1::compile_shim(store, spec.cache.as_ref())?)
    } else {
        None
    };
    let missing: Vec<String> = module
        .imports()
        .filter(|import| linker.get_by_import(&mut *store, import).is_none())
        .map(|import| {
            format!(
                "  `{}::{}` ({})",
                import.module(),
                import.name(),
                extern_kind(&import.ty())
            )
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "`{}` imports what Keep does not provide:\n{}\nKeep provides WASI preview 1 \
             (`wasi_snapshot_preview1`) to core modules and WASI 0.2 to components",
            path.display(),
            missing.join("\n")
        );
    }
    let has_start = module
        .exports()
        .any(|e| e.name() == "_start" && matches!(e.ty(), wasmtime::ExternType::Func(_)));
    if !has_start {
        bail!(
            "`{}` has no `_start` function: it is not a WASI command (a library or reactor \
             module cannot be run)",
            path.display()
        );
    }
    let pre = linker
        .instantiate_pre(module)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot link `{}`", path.display()))?;
    Ok(Box::new(move |store| {
        let instance = pre.instantiate(&mut *store)?;
        if let Some(shim) = &shim {
            p1::attach(store, &instance, shim).map_err(wasmtime::Error::from_anyhow)?;
        }
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        start.call(&mut *store, ())
    }))
}

/// Links a `wasi:cli/command` component and returns its `run`, or says why it cannot be.
fn prepare_component(
    engine: &Engine,
    component: &Component,
    spec: &RunSpec,
) -> anyhow::Result<Entry<ComponentHost>> {
    let path = &spec.program;
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if !exports
        .iter()
        .any(|name| name.starts_with("wasi:cli/run@0.2"))
    {
        bail!(
            "`{}` is a component but not a WASI command: it does not export `wasi:cli/run@0.2.x` \
             (its exports: {})",
            path.display(),
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        );
    }
    let mut linker = wasmtime::component::Linker::<ComponentHost>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    net::policy::refuse_socket_creation(&mut linker, &spec.network)?;
    let mut tls_options = wasmtime_wasi_tls::p2::LinkOptions::default();
    tls_options.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(&mut linker, &tls_options)?;
    let pre = linker
        .instantiate_pre(component)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "`{}` imports what Keep does not provide (Keep provides WASI 0.2: wasi:cli, \
             wasi:clocks, wasi:filesystem, wasi:io, wasi:random, wasi:sockets, and wasi:tls \
             0.2.0-draft)",
                path.display()
            )
        })?;
    Ok(Box::new(move |store| {
        let instance = pre.instantiate(&mut *store)?;
        let command = Command::new(&mut *store, &instance)?;
        match command.wasi_cli_run().call_run(&mut *store)? {
            Ok(()) => Ok(()),
            Err(()) => Err(wasmtime_wasi::I32Exit(1).into()),
        }
    }))
}

fn extern_kind(ty: &wasmtime::ExternType) -> &'static str {
    match ty {
        wasmtime::ExternType::Func(_) => "function",
        wasmtime::ExternType::Global(_) => "global",
        wasmtime::ExternType::Table(_) => "table",
        wasmtime::ExternType::Memory(_) => "memory",
        wasmtime::ExternType::Tag(_) => "tag",
    }
}

/// Interrupts the guest when the timeout expires; ends the process if the guest is stuck in
/// a host call and cannot be interrupted. Dropping it (the run ended) stops it.
struct Watchdog {
    done: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(engine: &Engine, timeout: Duration) -> Self {
        let (done, finished) = mpsc::channel::<()>();
        let engine = engine.clone();
        let thread = std::thread::spawn(move || {
            if finished.recv_timeout(timeout) != Err(mpsc::RecvTimeoutError::Timeout) {
                return;
            }
            engine.increment_epoch();
            if finished.recv_timeout(TIMEOUT_GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
                // The guest is blocked in the host (e.g. reading an idle stdin) where an
                // epoch cannot reach it. Report and end the process as a timeout.
                eprintln!("keep: {}", Outcome::TimedOut(timeout));
                std::process::exit(i32::from(exit_code::TIMEOUT));
            }
        });
        Self {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
