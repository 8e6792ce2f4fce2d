//! The wasmtime embedding that runs a Keep.
//!
//! [`run`] takes a [`RunSpec`] (what to run, with which arguments, environment, descriptors,
//! directories and limits), compiles the program through the [`ModuleCache`], builds its
//! WASI context and runs it to an [`Outcome`]. WASI preview-1 core modules and WASI 0.2
//! command components are both supported; the kind is detected from the file.

#![warn(missing_docs)]

mod cache;
mod compile;
pub mod confinement;
mod engine;
mod events;
mod limits;
pub mod net;
mod outcome;
mod output;
mod p1;
mod p2;
mod program;
mod sealed;
pub mod secrets;
mod thread;
mod wasi;
pub mod workload;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use anyhow::{Context as _, bail};
use keep_config::{DirGrant, File, FileKind, Limits, NetworkPolicy, Protocol, Tls};
use keep_identity::{AttestedIdentity, Identity, LiveIdentity, TlsSetup};
use secrets::{ConfigValues, SecretDelivery};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::filesystem::WasiFilesystemCtxView;
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};
use wasmtime_wasi_tls::{WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsCtxView, WasiTlsView};

pub use cache::{CacheStats, ModuleCache};
pub use engine::EngineOptions;
pub use events::{Event, EventSink};
pub use keep_identity::{IdentitySource, PlatformEvidence, RenewalEvent, StewardSource};
pub use limits::{LimitExceeded, Resource};
pub use net::BoundListener;
pub use outcome::{Outcome, exit_code};
pub use program::{Program, ProgramError, ProgramKind};
pub use thread::StoppingThread;
pub use workload::{WorkloadDigest, workload_digest, workload_digest_of};

use crate::compile::{Compiled, Compiler};
use crate::limits::GuestLimiter;
use crate::net::http::OutgoingHooks;
use crate::output::OutputLimits;
use crate::p1::{Descriptors, ModuleHost};

/// After a timeout, how long a guest blocked in a host call (reading stdin, say) gets to
/// notice the interruption before it is reported [`Event::Unresponsive`].
const TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// Everything a run needs, already merged from `Keep.toml` and the command line.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// The program, already read: these bytes are compiled and run (and are the bytes a
    /// workload digest was computed from), whatever the file holds by now.
    pub program: Program,
    /// The guest's `argv[0]`.
    pub argv0: String,
    /// Arguments after `argv[0]`.
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
    /// Compiled code of `program` that an outside store kept ([`compile_for_run`]'s output,
    /// from containerd's content store for the shim); used instead of `cache` when wasmtime
    /// accepts it for this run's engine, else the program is compiled. It is loaded as native
    /// code: only code from a store as trusted as Keep's binary may be given here.
    pub precompiled: Option<Vec<u8>>,
    /// `[tls]`: trust anchors and protocol policy of `tls` sockets.
    pub tls: Tls,
    /// Where the certificate of `tls` listeners (and client certificate of `tls`
    /// connects) comes from.
    pub identity: IdentitySource,
    /// `[network]`: what a component may do with `wasi:sockets`.
    pub network: NetworkPolicy,
    /// Confine the runtime process before the guest starts ([`confinement`]).
    pub confine: bool,
    /// Where events of the run are reported.
    pub events: EventSink,
}

/// Runs the program of `spec` to its end.
///
/// `Ok` carries how the guest ended (including traps and limits); `Err` means Keep could
/// not run it at all (invalid program, missing imports, bad directory, refused attestation).
pub fn run(spec: &RunSpec) -> anyhow::Result<Outcome> {
    run_with(spec, None)
}

/// [`run`] for a Keep that attested before its program could be read (an encrypted package,
/// whose key is one of `attested`'s secrets): `attested` is its identity, and the Steward
/// is not asked again at start.
pub fn run_attested(spec: &RunSpec, attested: AttestedIdentity) -> anyhow::Result<Outcome> {
    run_with(spec, Some(attested))
}

fn run_with(spec: &RunSpec, attested: Option<AttestedIdentity>) -> anyhow::Result<Outcome> {
    let engine = run_engine_options(&spec.program, &spec.limits).build()?;
    let compiler = Compiler::new(&engine)?;
    let compiled = match &spec.precompiled {
        Some(artifact) => compiler.load_or_compile(&spec.program, artifact)?,
        None => compiler.compile(&spec.program, spec.cache.as_ref())?,
    };
    if let (Compiled::Module(_), IdentitySource::Steward(source)) = (&compiled, &spec.identity)
        && let Some(secret) = source.secrets.iter().find(|s| s.config.is_some())
    {
        bail!(
            "secret `{}`: config key `{}` needs a component (wasi:config/store); `{}` is a \
             preview-1 module: use `env` or `file`",
            secret.name,
            secret.config.as_deref().unwrap_or_default(),
            spec.program.path.display()
        );
    }
    // Attestation comes before any descriptor is opened: a Keep the Steward refuses never
    // starts its workload.
    let attested = match (attested, &spec.identity) {
        (Some(attested), _) => Some(attested),
        (None, IdentitySource::Steward(source)) => Some(attest(source, &spec.tls, &spec.events)?),
        (None, _) => None,
    };
    let identity = attested.as_ref().map(|a| &a.identity);
    let is_component = matches!(compiled, Compiled::Component(_));
    // wasmtime-wasi serves a WASI 0.3 component's files: its sealed directories are mounted.
    let mount_sealed = is_component && spec.program.is_wasi_p3();
    let output = OutputLimits::new(
        spec.limits.output.map(|size| size.0),
        spec.limits.output_rate.map(|rate| rate.0),
    );
    let delivery = match (&attested, &spec.identity) {
        (Some(attested), IdentitySource::Steward(source)) if !source.secrets.is_empty() => {
            Some(Arc::new(SecretDelivery::new(
                &source.secrets,
                &source.secrets_dir,
                attested.secrets(),
            )?))
        }
        _ => None,
    };
    if let Some((grant, noswap)) = delivery
        .as_ref()
        .and_then(|d| Some((d.dir_grant()?, d.noswap()?)))
    {
        spec.events.report(Event::SecretFiles {
            dir: &grant.guest,
            noswap,
        });
    }
    // Sealed directories are opened (with keys only attestation gives) and mounted before
    // any other descriptor.
    let sealed =
        sealed::SealedDirs::open(&spec.dirs, attested.as_ref(), &spec.events, mount_sealed)?;
    // The guest's directories: the spec's (sealed ones at their mounts), then the secrets'
    // (after them, so that the spec's keep their descriptor numbers).
    let dirs: Vec<DirGrant> = sealed
        .grants(&spec.dirs)
        .into_iter()
        .chain(delivery.as_ref().and_then(|d| d.dir_grant()))
        .collect();
    let mut wasi = wasi::builder(spec, &dirs, is_component, output.as_ref())?;
    let component_sealed = if is_component {
        sealed.component_preopens(&dirs)
    } else {
        Vec::new()
    };
    if let Some(attested) = &attested {
        secrets::set_environment(&mut wasi, attested.secrets())?;
    }
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
            let keep_files = open_keep_files(spec, dirs.len(), identity)?;
            let sealed_preopens = sealed.preopens(&dirs);
            // wasmtime-wasi preopens the directories Keep does not serve.
            let wasi_count = 3 + (dirs.len() - sealed_preopens.len()) as u32;
            let keep = keep_files
                .into_iter()
                .map(|(fd, file)| (fd, p1::Descriptor::keep(file)))
                .chain(sealed_preopens)
                .collect();
            let fds = Descriptors::new(keep, wasi_count, origin);
            let host = ModuleHost {
                wasi: wasi.build_p1(),
                limiter,
                fds,
                output,
            };
            let mut store = new_store(&engine, host, fuel, timeout)?;
            let start = prepare_module(&compiler, &module, &mut store, spec)?;
            let guest = Guest {
                spec,
                dirs: &dirs,
                attested: attested.as_ref(),
                delivery,
            };
            run_guest(compiler, guest, store, start)?
        }
        Compiled::Component(component) => {
            let (tls, http_hooks) = component_network(&engine, &component, spec, identity)?;
            let host = ComponentHost {
                ctx: wasi.build(),
                table: ResourceTable::new(),
                limiter,
                tls,
                http: WasiHttpCtx::new(),
                http_hooks,
                config: delivery
                    .as_ref()
                    .map(|d| d.config().clone())
                    .unwrap_or_default(),
                sealed: component_sealed,
            };
            let store = new_store(&engine, host, fuel, timeout)?;
            let run = prepare_component(&engine, &component, spec, output.clone())?;
            let guest = Guest {
                spec,
                dirs: &dirs,
                attested: attested.as_ref(),
                delivery,
            };
            run_guest(compiler, guest, store, run)?
        }
    };
    // The guest's descriptors are closed (its store is gone): what it left unsynced in
    // sealed directories is committed now.
    sealed.close()?;
    match result {
        Ok(()) => Ok(Outcome::Exited(0)),
        Err(error) => Outcome::from_error(&error, &spec.program.bytes, timeout, fuel)
            .ok_or_else(|| error.into()),
    }
}

/// Store data that carries the guest's resource limiter.
trait HasLimiter: 'static {
    fn limiter(&mut self) -> &mut GuestLimiter;
}

impl HasLimiter for ModuleHost {
    fn limiter(&mut self) -> &mut GuestLimiter {
        &mut self.limiter
    }
}

impl HasLimiter for ComponentHost {
    fn limiter(&mut self) -> &mut GuestLimiter {
        &mut self.limiter
    }
}

/// What a guest runs with, besides its store.
struct Guest<'a> {
    spec: &'a RunSpec,
    /// Its preopened directories, as opened (sealed ones at their mounts).
    dirs: &'a [DirGrant],
    attested: Option<&'a AttestedIdentity>,
    delivery: Option<Arc<SecretDelivery>>,
}

/// The end of set-up, the same for modules and components: the compiler threads are joined,
/// the process confines itself while it has a single thread, then starts the threads that
/// run beside the guest (certificate renewal, the timeout watchdog), then runs `entry`. The
/// helper threads are stopped and joined when the guest ends.
fn run_guest<T: HasLimiter>(
    compiler: Compiler,
    guest: Guest<'_>,
    mut store: Store<T>,
    entry: Entry<T>,
) -> anyhow::Result<wasmtime::Result<()>> {
    let Guest {
        spec,
        dirs,
        attested,
        delivery,
    } = guest;
    let engine = compiler.engine().clone();
    compiler.finish();
    confinement::enter(spec, dirs, delivery.as_ref().and_then(|d| d.writable_dir()));
    let _renewal = attested
        .map(|attested| {
            let events = spec.events.clone();
            StoppingThread::spawn(
                "keep-renewal",
                attested.renewal(
                    move |event| events.report(Event::Renewal(event)),
                    move |renewed| match &delivery {
                        Some(delivery) => delivery.update(renewed),
                        None => Ok(Vec::new()),
                    },
                ),
            )
            .context("cannot start the certificate renewal thread")
        })
        .transpose()?;
    let _watchdog = spec
        .limits
        .timeout
        .map(|timeout| {
            let (engine, events) = (engine.clone(), spec.events.clone());
            StoppingThread::spawn("keep-watchdog", move |stop| {
                watchdog(&engine, timeout.0, stop, &events)
            })
            .context("cannot start the timeout watchdog")
        })
        .transpose()?;
    Ok(entry(&mut store))
}

/// Interrupts the guest when the timeout expires; reports [`Event::Unresponsive`] when the
/// guest is stuck in a host call (reading an idle stdin, say) where the epoch cannot reach
/// it. Returns early when the run ends (`stop` is disconnected).
fn watchdog(engine: &Engine, timeout: Duration, stop: &mpsc::Receiver<()>, events: &EventSink) {
    if stop.recv_timeout(timeout) != Err(mpsc::RecvTimeoutError::Timeout) {
        return;
    }
    engine.increment_epoch();
    if stop.recv_timeout(TIMEOUT_GRACE) == Err(mpsc::RecvTimeoutError::Timeout) {
        events.report(Event::Unresponsive { timeout });
    }
}

/// The engine a run of `program` under `limits` uses.
fn run_engine_options(program: &Program, limits: &Limits) -> EngineOptions {
    EngineOptions {
        fuel: limits.fuel.is_some(),
        epoch_interruption: limits.timeout.is_some(),
        // One instance per run: nothing to pool.
        pooled_instances: None,
        component_model_async: program.is_wasi_p3(),
    }
}

/// The compiled code a run of `program` under `limits` would compile, for an outside store
/// to keep and hand back as [`RunSpec::precompiled`]. Compiled on threads that are joined
/// before this returns.
pub fn compile_for_run(program: &Program, limits: &Limits) -> anyhow::Result<Vec<u8>> {
    let compiler = Compiler::new(&run_engine_options(program, limits).build()?)?;
    let artifact = compiler.precompile_bytes(program);
    compiler.finish();
    artifact
}

/// Compiles `program` into `cache` for runs without fuel or timeout, so that the next
/// `keep run` of it starts warm.
pub fn precompile(program: &Program, cache: &ModuleCache) -> anyhow::Result<()> {
    let options = EngineOptions {
        component_model_async: program.is_wasi_p3(),
        ..EngineOptions::default()
    };
    let compiler = Compiler::new(&options.build()?)?;
    let stored = compiler.precompile(program, cache);
    compiler.finish();
    stored
}

/// Where a Keep running `program` with `config` gets its TLS identity: from the Steward
/// `config` names (with evidence from `platform`; `None` on the process backend), else from
/// `[tls]` cert/key files, else a fresh self-signed certificate. A configuration naming both a
/// Steward and cert/key files is refused.
pub fn identity_source(
    config: Option<&keep_config::Config>,
    program: &Program,
    platform: Option<PlatformEvidence>,
) -> anyhow::Result<IdentitySource> {
    let Some((config, steward)) = config.and_then(|c| Some((c, c.steward.as_ref()?))) else {
        return Ok(match config.and_then(|c| c.tls.identity.as_ref()) {
            Some(files) => IdentitySource::Files(files.clone()),
            None => IdentitySource::SelfSigned,
        });
    };
    if config.tls.identity.is_some() {
        bail!(
            "the configuration names a Steward ({steward}) and [tls] cert/key: the Steward \
             issues the Keep's certificate, remove one of them"
        );
    }
    Ok(IdentitySource::Steward(Box::new(steward_source(
        config,
        steward,
        workload_digest(program, Some(config)),
        platform,
    ))))
}

/// What a Keep running the workload `digest` with `config` tells its Steward (at
/// `steward`): the digest, the names and secrets `config` asks for (and the key of its
/// package, which goes nowhere in the guest), and where its evidence comes from
/// (`platform`; `None` on the process backend).
pub fn steward_source(
    config: &keep_config::Config,
    steward: &keep_config::StewardUrl,
    digest: WorkloadDigest,
    platform: Option<PlatformEvidence>,
) -> StewardSource {
    // Keys the Keep uses itself and never hands to the guest: the package's, and those of
    // sealed directories.
    let own_keys = config
        .package
        .iter()
        .flat_map(|p| &p.key)
        .chain(
            config
                .dirs
                .iter()
                .filter_map(|d| d.sealed.as_ref()?.secret.as_ref()),
        )
        .map(|key| keep_config::SecretRef {
            name: key.clone(),
            env: None,
            file: None,
            config: None,
            optional: false,
        });
    StewardSource {
        url: steward.clone(),
        names: config.tls.names.clone(),
        workload_digest: digest.0,
        platform,
        secrets: config.secrets.iter().cloned().chain(own_keys).collect(),
        secrets_dir: config
            .secrets_dir
            .clone()
            .unwrap_or_else(|| keep_config::DEFAULT_SECRETS_DIR.to_owned()),
        // Stated by whoever read the workload from a package.
        package: None,
        fetch: None,
    }
}

/// A program known by its digest before its bytes: an encrypted package's.
pub struct SealedProgram<'a> {
    /// The name it is reported under.
    pub name: &'a std::path::Path,
    /// The SHA-256 of the program, as its package states it.
    pub sha256: [u8; 32],
    /// The package it came from, stated to the Steward.
    pub package: Option<Box<keep_attest::request::PackageStatement>>,
}

/// Opens `sealed` with `config` (its Keep.toml, naming a Steward and, in `[package] key`, the
/// secret that opens it): attests with the workload digest of the stated program and
/// `config` (evidence from `platform`, events to `events`), then `decrypt`s with the
/// secret's value and checks the program against the attested digest. Returns the program
/// and the Keep's identity for [`run_attested`].
pub fn open_after_attestation(
    sealed: SealedProgram<'_>,
    config: Option<&keep_config::Config>,
    platform: Option<PlatformEvidence>,
    events: &EventSink,
    decrypt: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Program, AttestedIdentity)> {
    let name = sealed.name.display();
    let (Some(config), Some(steward), Some(key)) = (
        config,
        config.and_then(|c| c.steward.as_ref()),
        config.and_then(|c| c.package.as_ref()?.key.as_ref()),
    ) else {
        bail!(
            "{name} is encrypted: only a Keep its Steward certified gets the key, so its \
             Keep.toml must name a `steward` and, in `[package] key`, the secret that holds it"
        );
    };
    let digest = workload_digest_of(&sealed.sha256, Some(config));
    let mut source = steward_source(config, steward, digest, platform);
    source.package = sealed.package;
    let attested = attest(&source, &config.tls, events)?;
    let released = attested
        .secrets()
        .iter()
        .find(|secret| secret.reference.name == *key)
        .with_context(|| format!("the Steward released no secret `{key}` (the package key)"))?;
    let plain = decrypt(&released.value)
        .with_context(|| format!("cannot decrypt {name} with the key in secret `{key}`"))?;
    let program = Program::from_bytes(sealed.name, plain)?;
    if workload_digest(&program, Some(config)) != digest {
        bail!("{name}: the decrypted program is not the one its workload digest names");
    }
    Ok((program, attested))
}

/// Obtains the Keep's certificate from the Steward of `source` (trusted through `tls`) and
/// reports it to `events` ([`Event::Attested`]).
pub fn attest(
    source: &StewardSource,
    tls: &Tls,
    events: &EventSink,
) -> anyhow::Result<AttestedIdentity> {
    let attested = keep_identity::attested::attest(source, tls)?;
    events.report(Event::Attested {
        steward: attested.steward(),
        workload: WorkloadDigest(source.workload_digest),
        tee: attested.statement().tee.as_str(),
        insecure_test_root: attested.statement().insecure_test_root,
        not_after: attested.not_after(),
    });
    Ok(attested)
}

/// Compiles the component `program` for `engine`, through `cache` when one is given, on
/// compiler threads that are joined before this returns (so that the caller can confine
/// itself afterwards: see [`confinement`]). `keep serve` compiles its service this way.
pub fn compile_component(
    engine: &Engine,
    program: &Program,
    cache: Option<&ModuleCache>,
) -> anyhow::Result<Component> {
    if program.kind != ProgramKind::Component {
        bail!(
            "`{}` is a preview-1 module, not a component",
            program.path.display()
        );
    }
    let compiler = Compiler::new(engine)?;
    let compiled = compiler.compile(program, cache);
    compiler.finish();
    match compiled? {
        Compiled::Component(component) => Ok(component),
        Compiled::Module(_) => bail!("internal: a component compiled into a module"),
    }
}

/// Opens the descriptors Keep serves itself (sockets, and `[[files]]` past descriptor 2),
/// at their guest descriptor numbers: listeners are bound and connects established here,
/// before the guest starts.
fn open_keep_files(
    spec: &RunSpec,
    dir_count: usize,
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
            spec.events.report(Event::ListenerBound {
                name: &file.name,
                prot,
                addr,
            });
        }
        opened.push((wasi::guest_fd(index, dir_count), keep_file));
    }
    Ok(opened)
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
        spec.events.report(Event::SelfSignedCertificate {
            fingerprint: identity.fingerprint(),
        });
    }
    TlsSetup::new(&spec.tls, LiveIdentity::new(&identity)?).map(Some)
}

/// Store data of a component.
struct ComponentHost {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: GuestLimiter,
    tls: WasiTlsCtx,
    http: WasiHttpCtx,
    /// Where the guest's `wasi:http` requests go.
    http_hooks: OutgoingHooks,
    /// The `wasi:config/store` values (secrets Keep.toml gives config keys).
    config: ConfigValues,
    /// Its sealed directories, which Keep's `wasi:filesystem` serves.
    sealed: Vec<p2::SealedPreopen>,
}

impl ComponentHost {
    /// What serves `wasi:filesystem`.
    fn filesystem(&mut self) -> p2::Filesystem<'_> {
        p2::Filesystem {
            wasi: WasiFilesystemCtxView {
                ctx: self.ctx.filesystem(),
                table: &mut self.table,
            },
            sealed: &self.sealed,
        }
    }
}

impl WasiHttpView for ComponentHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_hooks,
        }
    }
}

impl WasiTlsView for ComponentHost {
    fn tls(&mut self) -> WasiTlsCtxView<'_> {
        WasiTlsCtxView {
            ctx: &mut self.tls,
            table: &mut self.table,
        }
    }
}

/// The `wasi:tls` context and the `wasi:http` sender of a component: with Keep's `[tls]`
/// configuration (and `[network]` for HTTP) when the component imports `wasi:tls` or
/// `wasi:http`, otherwise unused defaults (so programs without them pay nothing).
fn component_network(
    engine: &Engine,
    component: &Component,
    spec: &RunSpec,
    attested: Option<&Arc<LiveIdentity>>,
) -> anyhow::Result<(WasiTlsCtx, OutgoingHooks)> {
    let imports = |prefix: &str| {
        component
            .component_type()
            .imports(engine)
            .any(|(name, _)| name.starts_with(prefix))
    };
    let (imports_tls, imports_http) = (imports("wasi:tls/"), imports("wasi:http/"));
    if !imports_tls && !imports_http {
        return Ok((WasiTlsCtxBuilder::new().build(), OutgoingHooks::default()));
    }
    let identity = match attested {
        Some(identity) => identity.clone(),
        None => LiveIdentity::new(&Identity::obtain(&spec.identity)?)?,
    };
    let setup = TlsSetup::new(&spec.tls, identity)?;
    let hooks = if imports_http {
        OutgoingHooks::from(net::http::Outgoing::new(&spec.network, setup.client()))
    } else {
        OutgoingHooks::default()
    };
    Ok((net::wasi_tls::context(&setup), hooks))
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

fn new_store<T: HasLimiter>(
    engine: &Engine,
    host: T,
    fuel: Option<u64>,
    timeout: Option<Duration>,
) -> anyhow::Result<Store<T>> {
    let mut store = Store::new(engine, host);
    store.limiter(|host| host.limiter());
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
    compiler: &Compiler,
    module: &Module,
    store: &mut Store<ModuleHost>,
    spec: &RunSpec,
) -> anyhow::Result<Entry<ModuleHost>> {
    let path = &spec.program.path;
    let mut linker: Linker<ModuleHost> = Linker::new(compiler.engine());
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |host| &mut host.wasi)?;
    let shim = if store.data().fds.is_active() {
        p1::shadow(&mut linker, store)?;
        Some(p1::compile_shim(store, compiler, spec.cache.as_ref())?)
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
    output: Option<Arc<OutputLimits>>,
) -> anyhow::Result<Entry<ComponentHost>> {
    let path = &spec.program.path;
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if spec.program.is_wasi_p3()
        && exports
            .iter()
            .any(|name| name.starts_with("wasi:cli/run@0.3"))
    {
        return prepare_component_p3(engine, component, spec, output);
    }
    if !exports
        .iter()
        .any(|name| name.starts_with("wasi:cli/run@0.2"))
    {
        if let Some(handler) = exports.iter().find(|name| {
            name.starts_with("wasi:http/incoming-handler@")
                || name.starts_with("wasi:http/handler@")
        }) {
            bail!(
                "`{}` is a wasi:http service (it exports {handler}), not a WASI command: \
                 `keep run` runs commands, which export `wasi:cli/run`; serve it with \
                 `keep serve {}`",
                path.display(),
                path.display()
            );
        }
        bail!(
            "`{}` is a component but not a WASI command: it does not export `wasi:cli/run@0.2.x` \
             or `wasi:cli/run@0.3.x` (its exports: {})",
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
    p2::add_to_linker(&mut linker, ComponentHost::filesystem)?;
    net::policy::refuse_socket_creation(&mut linker, &spec.network)?;
    let mut tls_options = wasmtime_wasi_tls::p2::LinkOptions::default();
    tls_options.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(&mut linker, &tls_options)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)?;
    secrets::add_to_linker(&mut linker, |host| &mut host.config)?;
    let pre = link(
        &linker,
        component,
        &spec.program,
        "WASI 0.2: wasi:cli, wasi:clocks, wasi:filesystem, wasi:io, wasi:random, wasi:sockets, \
         wasi:http (outgoing), wasi:tls 0.2.0-draft and wasi:config 0.2.0-rc.1",
    )?;
    Ok(Box::new(move |store| {
        let instance = pre.instantiate(&mut *store)?;
        let command = Command::new(&mut *store, &instance)?;
        match command.wasi_cli_run().call_run(&mut *store)? {
            Ok(()) => Ok(()),
            Err(()) => Err(wasmtime_wasi::I32Exit(1).into()),
        }
    }))
}

/// Resolves the imports of `component` (the compiled `program`) in `linker`, or says that
/// the program imports what Keep does not provide, and what it does (`provided`).
fn link(
    linker: &wasmtime::component::Linker<ComponentHost>,
    component: &Component,
    program: &Program,
    provided: &str,
) -> anyhow::Result<wasmtime::component::InstancePre<ComponentHost>> {
    linker
        .instantiate_pre(component)
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "`{}` imports what Keep does not provide (Keep provides {provided})",
                program.path.display()
            )
        })
}

/// Links a WASI 0.3 command and returns its `run`, called in an async store (0.3's
/// functions are async) on a single-threaded runtime of its own. A 0.3 guest sees a write
/// over the output limit fail as a stream error (where a 0.2 guest traps) and may carry on:
/// the run still ends as over the limit.
fn prepare_component_p3(
    engine: &Engine,
    component: &Component,
    spec: &RunSpec,
    output: Option<Arc<OutputLimits>>,
) -> anyhow::Result<Entry<ComponentHost>> {
    let mut linker = wasmtime::component::Linker::<ComponentHost>::new(engine);
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    secrets::add_to_linker(&mut linker, |host| &mut host.config)?;
    let pre = link(
        &linker,
        component,
        &spec.program,
        "WASI 0.3: wasi:cli, wasi:clocks, wasi:filesystem, wasi:random, wasi:sockets, \
         wasi:http (wasi:http/client); and wasi:config 0.2.0-rc.1",
    )?;
    Ok(Box::new(move |store| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(wasmtime::Error::from)?;
        runtime.block_on(async {
            let instance = pre.instantiate_async(&mut *store).await?;
            let command = wasmtime_wasi::p3::bindings::Command::new(&mut *store, &instance)?;
            let ran = store
                .run_concurrent(async |store| command.wasi_cli_run().call_run(store).await)
                .await??;
            if let Some(exceeded) = output.as_ref().and_then(|o| o.exceeded()) {
                return Err(wasmtime::Error::new(exceeded));
            }
            match ran {
                Ok(()) => Ok(()),
                Err(()) => Err(wasmtime_wasi::I32Exit(1).into()),
            }
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> keep_config::Config {
        keep_config::Config::parse(text, std::path::Path::new("Keep.toml")).unwrap()
    }

    #[test]
    fn the_identity_comes_from_the_steward_else_the_files_else_is_self_signed() {
        let program =
            Program::from_bytes(std::path::Path::new("p.wasm"), b"\0asm\x01\0\0\0".to_vec())
                .unwrap();
        let steward = "steward = \"https://steward.example\"\n";
        let files = "[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n";
        assert!(matches!(
            identity_source(None, &program, None).unwrap(),
            IdentitySource::SelfSigned
        ));
        assert!(matches!(
            identity_source(Some(&config(files)), &program, None).unwrap(),
            IdentitySource::Files(_)
        ));
        let with_steward = config(steward);
        match identity_source(Some(&with_steward), &program, None).unwrap() {
            IdentitySource::Steward(source) => assert_eq!(
                source.workload_digest,
                workload_digest(&program, Some(&with_steward)).0
            ),
            _ => panic!("a Steward is named"),
        }
        let error = identity_source(Some(&config(&format!("{steward}{files}"))), &program, None)
            .map(|_| ())
            .expect_err("a Steward and cert/key files are refused");
        assert!(error.to_string().contains("remove one of them"), "{error}");
    }
}
