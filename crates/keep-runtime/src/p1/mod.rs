//! The preview-1 descriptor layer: Keep's sockets (and streams past descriptor 2) next to
//! wasmtime-wasi's files, without forking wasmtime-wasi.
//!
//! wasmtime-wasi's preview-1 implementation is private and answers `ENOTSOCK` to every
//! `sock_*` call. Keep therefore links its own host function for every preview-1 function
//! that names a descriptor ([`functions::FD_FUNCTIONS`]). Each looks the guest's descriptor
//! up in Keep's table: a descriptor Keep owns is served here ([`serve`], [`poll`]); any
//! other is translated to wasmtime-wasi's number and forwarded through the *shim*, a tiny
//! core module generated at start-up that imports the guest's memory, re-exports it as
//! `memory` and calls wasmtime-wasi's function. (A host function cannot call wasmtime-wasi's
//! linked functions directly: wasmtime-wasi finds the guest memory through its caller's
//! `memory` export, and a call from the host has no caller instance.)
//!
//! Numbering: descriptors 0–2 are `[[files]]` 0–2, the preopened directories follow where
//! wasmtime-wasi puts them (wasi-libc scans upwards from 3 and stops at the first `EBADF`),
//! then `[[files]]` 3 and up. Programs without Keep descriptors are linked to wasmtime-wasi
//! directly and pay nothing.

pub(crate) mod abi;
mod functions;
mod poll;
mod sealed;
mod serve;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use wasmtime::{Caller, Engine, Func, Instance, Linker, Memory, Module, Store, Val};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::limits::GuestLimiter;
use crate::net::KeepFile;
use crate::output::OutputLimits;
use abi::errno;
use functions::{FD_FUNCTIONS, FdFunction, OnKeep, Op};
pub use sealed::SealedFd;

/// The preview-1 module namespace.
const WASI: &str = "wasi_snapshot_preview1";

/// Store data of a preview-1 module.
pub struct ModuleHost {
    /// wasmtime-wasi's preview-1 context (files, directories, clocks, ...).
    pub wasi: WasiP1Ctx,
    /// Memory and table limits.
    pub limiter: GuestLimiter,
    /// Keep's descriptor table; empty when the program has no Keep descriptors.
    pub fds: Descriptors,
    /// What the guest may still write to the host's stdout and stderr, and how fast
    /// (`[limits] output`, `output_rate`).
    pub output: Option<Arc<OutputLimits>>,
}

/// What a guest descriptor is.
pub enum Descriptor {
    /// wasmtime-wasi's descriptor with this number.
    Wasi(u32),
    /// A socket or stream Keep serves.
    Keep(KeepDescriptor),
    /// A sealed directory, or a file or directory in one, which Keep serves.
    Sealed(SealedFd),
}

impl Descriptor {
    /// A socket or stream of Keep's, blocking.
    pub fn keep(file: KeepFile) -> Self {
        Self::Keep(KeepDescriptor {
            file,
            nonblocking: false,
        })
    }
}

/// A descriptor Keep serves, with its flags.
pub struct KeepDescriptor {
    /// The socket or stream.
    pub file: KeepFile,
    /// `fdflags.nonblock`.
    pub nonblocking: bool,
}

/// The shim module's name (in its name section), so that a backtrace through it can be told
/// from the guest's own frames.
pub(crate) const SHIM_NAME: &str = "keep_preview1_shim";

/// The guest's descriptor table.
#[derive(Default)]
pub struct Descriptors {
    table: BTreeMap<u32, Descriptor>,
    /// The shim's forwarders, in [`FD_FUNCTIONS`] order.
    shim: Vec<Func>,
    memory: Option<Memory>,
    /// The origin of the guest's monotonic clock (for absolute `poll_oneoff` deadlines).
    monotonic_origin: Option<Instant>,
}

impl Descriptors {
    /// A table with Keep's descriptors at their guest numbers and wasmtime-wasi's
    /// `wasi_count` descriptors (stdio and preopens) everywhere else from 0.
    pub fn new(
        mut keep: Vec<(u32, Descriptor)>,
        wasi_count: u32,
        monotonic_origin: Instant,
    ) -> Self {
        keep.sort_by_key(|(fd, _)| *fd);
        let mut table = BTreeMap::new();
        let mut next_wasi = 0..wasi_count;
        let mut keep = keep.into_iter().peekable();
        let mut guest = 0;
        loop {
            if let Some((_, descriptor)) = keep.next_if(|(fd, _)| *fd == guest) {
                table.insert(guest, descriptor);
            } else if let Some(wasi) = next_wasi.next() {
                table.insert(guest, Descriptor::Wasi(wasi));
            } else if keep.peek().is_none() {
                break;
            }
            guest += 1;
        }
        Self {
            table,
            shim: Vec::new(),
            memory: None,
            monotonic_origin: Some(monotonic_origin),
        }
    }

    /// Whether Keep serves any descriptor (otherwise wasmtime-wasi is linked directly).
    pub fn is_active(&self) -> bool {
        self.table
            .values()
            .any(|d| !matches!(d, Descriptor::Wasi(_)))
    }

    /// The lowest free guest descriptor number.
    fn allocate(&self) -> u32 {
        let mut candidate = 0;
        for &fd in self.table.keys() {
            if fd != candidate {
                break;
            }
            candidate += 1;
        }
        candidate
    }

    fn keep_mut(&mut self, fd: u32) -> Option<&mut KeepDescriptor> {
        match self.table.get_mut(&fd) {
            Some(Descriptor::Keep(keep)) => Some(keep),
            _ => None,
        }
    }
}

/// The guest's monotonic clock, with an origin Keep knows (absolute `poll_oneoff` deadlines
/// on sockets are measured against it).
pub struct GuestMonotonicClock {
    origin: Instant,
}

impl GuestMonotonicClock {
    /// A clock reading zero at `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin }
    }
}

impl wasmtime_wasi::HostMonotonicClock for GuestMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Replaces wasmtime-wasi's descriptor functions in `linker` by Keep's.
pub fn shadow(
    linker: &mut Linker<ModuleHost>,
    store: &mut Store<ModuleHost>,
) -> anyhow::Result<()> {
    let reference = wasi_linker(store.engine())?;
    linker.allow_shadowing(true);
    for (index, function) in FD_FUNCTIONS.iter().enumerate() {
        let ty = wasi_type(&reference, store, function.name)?;
        linker
            .func_new(WASI, function.name, ty, move |caller, params, results| {
                dispatch(caller, index, params, results)
            })
            .map_err(anyhow::Error::from)?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Compiles the shim (through the module cache: its text only changes with wasmtime-wasi's
/// preview-1 types, so after the first run it is a cache hit).
pub fn compile_shim(
    store: &mut Store<ModuleHost>,
    compiler: &crate::compile::Compiler,
    cache: Option<&crate::ModuleCache>,
) -> anyhow::Result<Module> {
    let text = shim_text(store)?;
    let program =
        crate::Program::from_bytes(std::path::Path::new("<preview-1 shim>"), text.into_bytes())?;
    match compiler
        .compile(&program, cache)
        .context("cannot compile the preview-1 shim")?
    {
        crate::compile::Compiled::Module(module) => Ok(module),
        crate::compile::Compiled::Component(_) => bail!("the preview-1 shim is not a core module"),
    }
}

/// Instantiates the shim against the guest's memory; called once the guest is
/// instantiated and before it runs.
pub fn attach(
    store: &mut Store<ModuleHost>,
    guest: &Instance,
    shim: &Module,
) -> anyhow::Result<()> {
    let memory = guest
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| anyhow!("the program exports no `memory`, which WASI requires"))?;
    let ty = memory.ty(&*store);
    if ty.is_64() || ty.is_shared() {
        bail!("sockets in [[files]] need a 32-bit, unshared guest memory");
    }
    let mut linker = wasi_linker(store.engine())?;
    linker
        .define(&mut *store, "env", "memory", memory)
        .map_err(anyhow::Error::from)?;
    let instance = linker
        .instantiate(&mut *store, shim)
        .map_err(anyhow::Error::from)
        .context("cannot instantiate the preview-1 shim")?;
    let mut funcs = Vec::with_capacity(FD_FUNCTIONS.len());
    for function in FD_FUNCTIONS {
        funcs.push(
            instance
                .get_func(&mut *store, function.name)
                .ok_or_else(|| anyhow!("shim lacks `{}`", function.name))?,
        );
    }
    let fds = &mut store.data_mut().fds;
    fds.shim = funcs;
    fds.memory = Some(memory);
    Ok(())
}

/// The type wasmtime-wasi gives the preview-1 function `name`.
fn wasi_type(
    linker: &Linker<ModuleHost>,
    store: &mut Store<ModuleHost>,
    name: &str,
) -> anyhow::Result<wasmtime::FuncType> {
    linker
        .get(&mut *store, WASI, name)
        .ok()
        .and_then(|e| e.into_func())
        .map(|f| f.ty(&*store))
        .ok_or_else(|| anyhow!("wasmtime-wasi lacks `{name}`"))
}

fn wasi_linker(engine: &Engine) -> anyhow::Result<Linker<ModuleHost>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |host: &mut ModuleHost| &mut host.wasi)?;
    Ok(linker)
}

/// The shim's text: one forwarder per descriptor function, with wasmtime-wasi's types.
fn shim_text(store: &mut Store<ModuleHost>) -> anyhow::Result<String> {
    let reference = wasi_linker(store.engine())?;
    let mut imports = String::new();
    let mut forwarders = String::new();
    for (index, function) in FD_FUNCTIONS.iter().enumerate() {
        let ty = wasi_type(&reference, store, function.name)?;
        let params: Vec<String> = ty.params().map(|t| t.to_string()).collect();
        let results: Vec<String> = ty.results().map(|t| t.to_string()).collect();
        let signature = format!(
            "(param {}) (result {})",
            params.join(" "),
            results.join(" ")
        );
        writeln!(
            imports,
            "(import \"{WASI}\" \"{}\" (func $f{index} {signature}))",
            function.name
        )?;
        write!(
            forwarders,
            "(func (export \"{}\") {signature}",
            function.name
        )?;
        for param in 0..params.len() {
            write!(forwarders, " local.get {param}")?;
        }
        writeln!(forwarders, " call $f{index})")?;
    }
    Ok(format!(
        "(module ${SHIM_NAME}\n{imports}(import \"env\" \"memory\" (memory 0))\n(export \"memory\" (memory 0))\n{forwarders})"
    ))
}

fn arg(params: &[Val], index: usize) -> u32 {
    // The types are wasmtime-checked against the function's signature; a missing value
    // becomes an impossible descriptor, which is answered with EBADF.
    params
        .get(index)
        .and_then(Val::i32)
        .map_or(u32::MAX, |v| v as u32)
}

fn dispatch(
    mut caller: Caller<'_, ModuleHost>,
    index: usize,
    params: &[Val],
    results: &mut [Val],
) -> wasmtime::Result<()> {
    let function = &FD_FUNCTIONS[index];
    // Keep answers EFAULT only for a pointer or length outside the guest's memory, which
    // preview 1 says traps (as wasmtime-wasi does): a guest fault, named by its call.
    let fault = |errno: i32| match errno {
        errno::FAULT => Err(wasmtime::Error::new(crate::outcome::GuestFault {
            call: function.name,
        })),
        errno => Ok(errno),
    };
    let errno = match function.on_keep {
        OnKeep::Serve(Op::Renumber) => renumber(&mut caller, arg(params, 0), arg(params, 1))?,
        OnKeep::Serve(Op::Poll) => fault(poll::poll_oneoff(&mut caller, index, params)?)?,
        on_keep => {
            let mut args = params.to_vec();
            let mut keep = None;
            let mut sealed = false;
            let mut bad = false;
            for &p in function.fds {
                match caller.data().fds.table.get(&arg(params, p)) {
                    Some(Descriptor::Wasi(wasi)) => args[p] = Val::I32(*wasi as i32),
                    Some(Descriptor::Keep(_)) => keep = Some(arg(params, p)),
                    Some(Descriptor::Sealed(_)) => sealed = true,
                    None => bad = true,
                }
            }
            match (bad, keep, on_keep) {
                (true, _, _) => errno::BADF,
                _ if sealed => fault(sealed::serve(&mut caller, function.name, params)?)?,
                (false, Some(_), OnKeep::Fail(errno)) => errno,
                (false, Some(fd), OnKeep::Serve(op)) => {
                    fault(serve::serve(&mut caller, op, fd, params)?)?
                }
                (false, None, _) => forward(&mut caller, index, function, params, &args)?,
            }
        }
    };
    if let Some(result) = results.first_mut() {
        *result = Val::I32(errno);
    }
    Ok(())
}

/// Calls wasmtime-wasi through the shim and keeps the table in step with what it did.
fn forward(
    caller: &mut Caller<'_, ModuleHost>,
    index: usize,
    function: &FdFunction,
    guest_args: &[Val],
    wasi_args: &[Val],
) -> wasmtime::Result<i32> {
    let errno = call_shim(caller, index, wasi_args)?;
    if errno != errno::SUCCESS {
        return Ok(errno);
    }
    if function.name == "fd_close" {
        caller.data_mut().fds.table.remove(&arg(guest_args, 0));
    }
    if let Some(at) = function.returns_fd {
        let pointer = arg(guest_args, at);
        let Some(memory) = caller.data().fds.memory else {
            return Ok(errno::FAULT);
        };
        let (data, host) = memory.data_and_store_mut(&mut *caller);
        let mut memory = abi::Memory(data);
        let Some(wasi) = memory.u32(pointer) else {
            return Ok(errno::FAULT);
        };
        let guest = host.fds.allocate();
        host.fds.table.insert(guest, Descriptor::Wasi(wasi));
        memory.put_u32(pointer, guest);
    }
    Ok(errno)
}

fn call_shim(
    caller: &mut Caller<'_, ModuleHost>,
    index: usize,
    args: &[Val],
) -> wasmtime::Result<i32> {
    let func = caller
        .data()
        .fds
        .shim
        .get(index)
        .copied()
        .ok_or_else(|| wasmtime::format_err!("preview-1 call before the program started"))?;
    let mut out = [Val::I32(0)];
    func.call(&mut *caller, args, &mut out)?;
    Ok(out[0].i32().unwrap_or(errno::IO))
}

fn shim_index(name: &str) -> usize {
    FD_FUNCTIONS
        .iter()
        .position(|f| f.name == name)
        .unwrap_or_else(|| unreachable!("`{name}` is in FD_FUNCTIONS"))
}

/// `fd_renumber` with wasmtime-wasi's rules (both descriptors must exist; the target is
/// closed first), across Keep's and wasmtime-wasi's descriptors.
fn renumber(caller: &mut Caller<'_, ModuleHost>, from: u32, to: u32) -> wasmtime::Result<i32> {
    let table = &caller.data().fds.table;
    let (Some(source), Some(target)) = (table.get(&from), table.get(&to)) else {
        return Ok(errno::BADF);
    };
    if from == to {
        return Ok(errno::SUCCESS);
    }
    match (source, target) {
        (Descriptor::Wasi(source), Descriptor::Wasi(target)) => {
            let (source, target) = (*source, *target);
            let errno = call_shim(
                caller,
                shim_index("fd_renumber"),
                &[Val::I32(source as i32), Val::I32(target as i32)],
            )?;
            if errno == errno::SUCCESS {
                let table = &mut caller.data_mut().fds.table;
                table.remove(&from);
                table.insert(to, Descriptor::Wasi(target));
            }
            Ok(errno)
        }
        (_, target) => {
            if let Descriptor::Wasi(target) = target {
                let target = *target;
                call_shim(caller, shim_index("fd_close"), &[Val::I32(target as i32)])?;
            }
            let table = &mut caller.data_mut().fds.table;
            if let Some(source) = table.remove(&from) {
                table.insert(to, source);
            }
            Ok(errno::SUCCESS)
        }
    }
}
