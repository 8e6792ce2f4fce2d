//! Turning a [`Program`] into executable code: from the cache when possible, else by
//! compiling (with a spinner for large programs on a terminal) and storing the result.
//!
//! A run compiles through a [`Compiler`]: wasmtime compiles functions in parallel on a rayon
//! pool that Keep owns, and whose threads are joined before the process confines itself.
//! Landlock and capabilities act on the calling thread and the threads it starts later, so
//! no thread may outlive set-up unconfined; with the pool joined, a cold start uses every
//! core and the guest still starts in a process with a single (confined) thread.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::cache::{CachedArtifact, Lookup, ModuleCache};
use crate::engine;
use crate::program::{Program, ProgramKind};

/// Programs larger than this show a spinner while they compile (on a terminal only).
const SPINNER_THRESHOLD: usize = 4 << 20;

/// Compiled code ready to instantiate.
pub enum Compiled {
    /// A core module.
    Module(Module),
    /// A component.
    Component(Component),
}

/// Compiles on every core, on threads that [`Compiler::finish`] joins.
pub struct Compiler {
    engine: Engine,
    pool: rayon::ThreadPool,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Compiler {
    /// A compiler for `engine` with one thread per available core.
    pub fn new(engine: &Engine) -> anyhow::Result<Self> {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let spawned = threads.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .thread_name(|index| format!("keep-compile-{index}"))
            // rayon's own threads cannot be joined; these can.
            .spawn_handler(move |thread| {
                let mut builder = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    builder = builder.name(name.to_owned());
                }
                let handle = builder.spawn(|| thread.run())?;
                spawned
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(handle);
                Ok(())
            })
            .build()
            .context("cannot start the compiler threads")?;
        Ok(Self {
            engine: engine.clone(),
            pool,
            threads,
        })
    }

    /// The engine code is compiled for.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles `program`, going through `cache` when one is given (see [`compile`]).
    pub fn compile(
        &self,
        program: &Program,
        cache: Option<&ModuleCache>,
    ) -> anyhow::Result<Compiled> {
        self.pool.install(|| compile(&self.engine, program, cache))
    }

    /// Loads `artifact` (compiled code of `program` from an outside store, see
    /// [`crate::RunSpec::precompiled`]); compiles `program` when wasmtime refuses it (made by
    /// another engine configuration or version).
    pub fn load_or_compile(&self, program: &Program, artifact: &[u8]) -> anyhow::Result<Compiled> {
        match deserialize(&self.engine, program.kind, artifact) {
            Ok(compiled) => Ok(compiled),
            Err(e) => {
                tracing::warn!("the stored compiled code is not usable here ({e:#}); compiling");
                self.compile(program, None)
            }
        }
    }

    /// The compiled code of `program`, serialized, without loading it into executable memory.
    pub fn precompile_bytes(&self, program: &Program) -> anyhow::Result<Vec<u8>> {
        self.pool.install(|| {
            with_spinner(program, || match program.kind {
                ProgramKind::Module => self.engine.precompile_module(&program.bytes),
                ProgramKind::Component => self.engine.precompile_component(&program.bytes),
            })
        })
    }

    /// Makes sure `cache` holds the compiled code of `program` (`keep compile`). A miss is
    /// compiled with wasmtime's `precompile_*`, which produces the artifact without loading
    /// the code into executable memory (nothing runs it here).
    pub fn precompile(&self, program: &Program, cache: &ModuleCache) -> anyhow::Result<()> {
        self.pool.install(|| {
            let entry = cache.entry_path(
                &engine::fingerprint(&self.engine),
                program.kind,
                &program.bytes,
            );
            if load_verified(cache, &entry).is_some() {
                return Ok(());
            }
            cache.store(&entry, &self.precompile_bytes(program)?)
        })
    }

    /// Ends the compiler threads and waits until each has exited.
    pub fn finish(self) {
        drop(self.pool);
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            // A compiler thread that panicked has reported it; the compile already failed.
            let _ = thread.join();
        }
    }
}

/// Compiles `program` for `engine`, going through `cache` when one is given. Within
/// [`Compiler::compile`], wasmtime's parallel compilation runs on the compiler's threads.
fn compile(
    engine: &Engine,
    program: &Program,
    cache: Option<&ModuleCache>,
) -> anyhow::Result<Compiled> {
    let Some(cache) = cache else {
        return compile_fresh(engine, program);
    };
    let entry = cache.entry_path(&engine::fingerprint(engine), program.kind, &program.bytes);
    if let Some(artifact) = load_verified(cache, &entry) {
        match deserialize(engine, program.kind, artifact.bytes()) {
            Ok(compiled) => return Ok(compiled),
            Err(e) => {
                tracing::warn!(
                    "cache entry {} rejected by wasmtime ({e:#}); recompiling",
                    entry.display()
                );
                cache.discard(&entry);
            }
        }
    }
    let compiled = compile_fresh(engine, program)?;
    let artifact = match &compiled {
        Compiled::Module(module) => module.serialize(),
        Compiled::Component(component) => component.serialize(),
    };
    // A cache that cannot be written (read-only home, full disk) slows the next start
    // down but must not stop this one.
    match artifact
        .map_err(anyhow::Error::from)
        .and_then(|a| cache.store(&entry, &a))
    {
        Ok(()) => tracing::debug!("cached compiled code at {}", entry.display()),
        Err(e) => tracing::warn!("cannot cache compiled code: {e:#}"),
    }
    Ok(compiled)
}

/// The verified entry at `entry`, if there is one; an unusable entry is reported and removed
/// (the caller recompiles).
fn load_verified(cache: &ModuleCache, entry: &std::path::Path) -> Option<CachedArtifact> {
    match cache.load(entry) {
        Lookup::Hit(artifact) => Some(artifact),
        Lookup::Miss(Some(reason)) => {
            tracing::warn!(
                "cache entry {} is unusable: {reason}; recompiling",
                entry.display()
            );
            cache.discard(entry);
            None
        }
        Lookup::Miss(None) => None,
    }
}

fn deserialize(engine: &Engine, kind: ProgramKind, artifact: &[u8]) -> anyhow::Result<Compiled> {
    // SAFETY: wasmtime requires that the bytes are an artifact produced by `serialize` (or
    // `precompile_*`) of a compatible engine. The bytes come from our cache directory, in an
    // entry whose digest matched, written by `compile` or `Compiler::precompile`; wasmtime itself
    // re-checks the version and engine settings in the artifact header. The cache
    // directory is the user's own, as trusted as the `keep` binary beside it. An artifact of
    // `RunSpec::precompiled` comes from a store its caller vouches for in the same way
    // (containerd's content store, root's, for the shim on the process backend), made by
    // `compile_for_run` for this program.
    let compiled = unsafe {
        match kind {
            ProgramKind::Module => Compiled::Module(Module::deserialize(engine, artifact)?),
            ProgramKind::Component => {
                Compiled::Component(Component::deserialize(engine, artifact)?)
            }
        }
    };
    Ok(compiled)
}

fn compile_fresh(engine: &Engine, program: &Program) -> anyhow::Result<Compiled> {
    with_spinner(program, || match program.kind {
        ProgramKind::Module => Module::new(engine, &program.bytes).map(Compiled::Module),
        ProgramKind::Component => Component::new(engine, &program.bytes).map(Compiled::Component),
    })
}

/// Runs `compile` on `program`, with a spinner for a large program on a terminal, and names
/// the program when wasmtime finds it invalid.
fn with_spinner<T>(
    program: &Program,
    compile: impl FnOnce() -> wasmtime::Result<T>,
) -> anyhow::Result<T> {
    let spinner = (program.bytes.len() > SPINNER_THRESHOLD).then(|| {
        let name = program
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // indicatif draws nothing when stderr is not a terminal.
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} compiling {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(name);
        bar.tick(); // draw at once: a compile may finish before the first steady tick
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    let what = program.kind.as_str();
    let compiled = compile().map_err(anyhow::Error::from).with_context(|| {
        format!(
            "`{}` is not a valid WebAssembly {what}",
            program.path.display()
        )
    });
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    compiled
}
