//! Builds the test suite's guest programs from the repository's own sources in
//! `tests/guests/`: C with Debian's clang and wasi-libc, WAT with the `wat` crate, and
//! components from those modules with `wit-component` and wasmtime's preview-1 adapter
//! (so no Rust wasm target is needed). C guests of a WIT world (`wasi:http` services) get
//! their bindings from `wit-bindgen`'s C generator, run as a library at build time.
//!
//! Outputs are rebuilt when their source is newer, and written atomically, so parallel
//! tests and test binaries can share them.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, bail};
use wasi_preview1_component_adapter_provider as adapters;

/// Serialises builds within one test process (outputs are also written atomically, so
/// concurrent processes are safe too).
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// The directory of guest sources: `<repo>/tests/guests`.
pub fn sources_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests")
}

/// Builds guests into an output directory.
#[derive(Debug, Clone)]
pub struct Guests {
    out_dir: PathBuf,
}

impl Guests {
    /// Guests built into `out_dir` (created if needed).
    pub fn new(out_dir: impl Into<PathBuf>) -> Self {
        Self {
            out_dir: out_dir.into().join("keep-guests"),
        }
    }

    /// The core module for `tests/guests/NAME.c` or `NAME.wat`.
    pub fn module(&self, name: &str) -> PathBuf {
        self.try_module(name)
            .unwrap_or_else(|e| panic!("cannot build guest `{name}`: {e:#}"))
    }

    /// The component for `tests/guests/NAME.c` or `NAME.wat`: a module with a sibling
    /// `NAME.wit` is a native WASI 0.2 guest, encoded with that file's world; any other
    /// module is wrapped with the preview-1 command adapter.
    pub fn component(&self, name: &str) -> PathBuf {
        self.try_component(name)
            .unwrap_or_else(|e| panic!("cannot build component `{name}`: {e:#}"))
    }

    fn try_module(&self, name: &str) -> anyhow::Result<PathBuf> {
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let c = sources_dir().join(format!("{name}.c"));
        let wat = sources_dir().join(format!("{name}.wat"));
        let out = self.out_dir.join(format!("{name}.wasm"));
        if c.exists() {
            // A C guest also depends on the shared headers next to it.
            let headers = std::fs::read_dir(sources_dir())?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|ext| ext == "h"));
            if std::iter::once(c.clone())
                .chain(headers)
                .all(|source| is_fresh(&out, &source))
            {
                return Ok(out);
            }
            let kind = CGuest::of(&c);
            let bindings = match &kind {
                CGuest::WasiHttp => Some(self.bindings("wit", "http-service")?),
                CGuest::WasiP3 { world } => Some(self.bindings("wit-p3", world)?),
                CGuest::Command | CGuest::Reactor | CGuest::Sqlite => None,
            };
            let tmp = self.temp_path(&out);
            let mut clang = Command::new("clang");
            clang.args([
                "--target=wasm32-wasi",
                "--sysroot=/usr",
                "-O2",
                "-Wall",
                "-Werror",
            ]);
            if !matches!(kind, CGuest::Command | CGuest::Sqlite) {
                clang.arg("-mexec-model=reactor");
            }
            if kind == CGuest::Sqlite {
                let dir = Path::new(env!("KEEP_SQLITE_AMALGAMATION"));
                // SQLite's code is not ours: its warnings are not gates.
                clang
                    .arg("-I")
                    .arg(dir)
                    .arg("-Wno-error")
                    .args([
                        "-DSQLITE_THREADSAFE=0",
                        "-DSQLITE_OMIT_WAL",
                        "-DSQLITE_OMIT_LOAD_EXTENSION",
                        "-DSQLITE_TEMP_STORE=3",
                        "-DLONGDOUBLE_TYPE=double",
                        "-D_WASI_EMULATED_MMAN",
                        "-D_WASI_EMULATED_GETPID",
                        "-D_WASI_EMULATED_SIGNAL",
                        "-D_WASI_EMULATED_PROCESS_CLOCKS",
                    ])
                    .arg(dir.join("sqlite3.c"))
                    .args([
                        "-lwasi-emulated-mman",
                        "-lwasi-emulated-getpid",
                        "-lwasi-emulated-signal",
                        "-lwasi-emulated-process-clocks",
                    ]);
            }
            if let Some(bindings) = &bindings {
                // The generated C is wit-bindgen's, not ours: its warnings are not gates.
                clang.arg("-I").arg(&bindings.dir).arg("-Wno-error");
            }
            let status = clang
                .arg("-o")
                .arg(&tmp)
                .arg(&c)
                .args(bindings.iter().flat_map(|b| [&b.source, &b.component_type]))
                .status()
                .context(
                    "cannot start clang (install clang, lld, wasi-libc, libclang-rt-dev-wasm32)",
                )?;
            if !status.success() {
                bail!("clang failed on {} ({status})", c.display());
            }
            std::fs::rename(&tmp, &out)?;
            return Ok(out);
        }
        if wat.exists() {
            if is_fresh(&out, &wat) {
                return Ok(out);
            }
            let binary = wat::parse_file(&wat)?;
            self.write_atomically(&out, &binary)?;
            return Ok(out);
        }
        bail!("no source {} or {}", c.display(), wat.display())
    }

    /// [`Self::component`], with the error instead of a panic.
    pub fn try_component(&self, name: &str) -> anyhow::Result<PathBuf> {
        let module_path = self.try_module(name)?;
        let _guard = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let out = self.out_dir.join(format!("{name}.component.wasm"));
        let wit = sources_dir().join(format!("{name}.wit"));
        if is_fresh(&out, &module_path) && (!wit.exists() || is_fresh(&out, &wit)) {
            return Ok(out);
        }
        let mut module = std::fs::read(&module_path)?;
        if wit.exists() {
            embed_world(&mut module, &wit)?;
        }
        // A C guest speaks preview 1 (wasi-libc), which the adapter turns into WASI 0.2;
        // its WIT world, if any, adds what preview 1 lacks. A WAT guest speaks WASI 0.2
        // itself.
        let c = sources_dir().join(format!("{name}.c"));
        let adapter = if c.exists() {
            match CGuest::of(&c) {
                CGuest::Command | CGuest::Sqlite => {
                    Some(adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER)
                }
                CGuest::Reactor | CGuest::WasiHttp => {
                    Some(adapters::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
                }
                // It calls no preview-1 function, so there is nothing to adapt.
                CGuest::WasiP3 { .. } => None,
            }
        } else {
            None
        };
        self.write_atomically(&out, &encode(&module, adapter)?)?;
        Ok(out)
    }

    /// Wraps the preview-1 command module `module` (built anywhere, for example a
    /// benchmark's) into a WASI 0.2 component with wasmtime's command adapter; returns its
    /// path in the output directory.
    pub fn wrap_command(&self, module: &Path) -> anyhow::Result<PathBuf> {
        let stem = module.file_stem().unwrap_or_default().to_string_lossy();
        let out = self.out_dir.join(format!("{stem}.component.wasm"));
        let bytes = std::fs::read(module).with_context(|| format!("{}", module.display()))?;
        let component = encode(
            &bytes,
            Some(adapters::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER),
        )?;
        self.write_atomically(&out, &component)?;
        Ok(out)
    }

    fn temp_path(&self, out: &Path) -> PathBuf {
        let _ = std::fs::create_dir_all(&self.out_dir);
        let mut name = out.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{}.tmp", std::process::id()));
        self.out_dir.join(name)
    }

    fn write_atomically(&self, out: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = self.temp_path(out);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, out)?;
        Ok(())
    }
}

/// The component of `module`, with the preview-1 `adapter` if it calls preview 1.
fn encode(module: &[u8], adapter: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
    let mut encoder = wit_component::ComponentEncoder::default().module(module)?;
    if let Some(adapter) = adapter {
        encoder = encoder.adapter(adapters::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter)?;
    }
    encoder.validate(true).encode()
}

/// Embeds the world of the WIT file `wit` (its first package's only world) into `module`
/// as the component-type custom section that `wit-component` encodes from.
fn embed_world(module: &mut Vec<u8>, wit: &Path) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(wit)?;
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_source(&wit.display().to_string(), &source)
        .with_context(|| format!("cannot parse {}", wit.display()))?;
    let world = resolve.select_world(&[package], None)?;
    wit_component::embed_component_metadata(
        module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
}

/// How a C guest is built, as a line `// keep-guest: KIND` in it says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CGuest {
    /// A preview-1 command with `main` (no marker).
    Command,
    /// `reactor`: exports `wasi:cli/run` itself instead of having `main`. A guest whose
    /// imports return strings needs it: in a command, wasm-ld wraps every export,
    /// `cabi_realloc` included, in a call of the constructors, and wasi-libc's constructors
    /// call WASI, which the component model forbids inside `cabi_realloc` ("cannot leave
    /// component instance").
    Reactor,
    /// `wasi-http`: a `wasi:http/proxy` service (world `http-service` of
    /// `tests/guests/wit`), a reactor built with wit-bindgen's C bindings and wrapped with
    /// the reactor adapter (the proxy adapter gives the guest no environment variables, and
    /// services read their configuration and secrets there; `wasmtime serve` and
    /// `keep serve` both provide the `wasi:cli` imports this adds).
    WasiHttp,
    /// `wasi-p3 WORLD`: a WASI 0.3 guest of a world of `tests/guests/wit-p3` (a
    /// `wasi:http/service` or a `wasi:cli/command`), a reactor built with wit-bindgen's C
    /// bindings (async ABI) that calls no preview-1 function, so its component is WASI 0.3
    /// alone.
    WasiP3 { world: String },
    /// `sqlite`: a command linked with SQLite (the amalgamation libsqlite3-sys ships, built
    /// with the flags libsqlite3-sys uses for WASI targets, and without WAL, which needs
    /// shared memory). WASI has no file locks: the guest opens its database with SQLite's
    /// `unix-none` file system layer.
    Sqlite,
}

impl CGuest {
    fn of(c: &Path) -> Self {
        let text = std::fs::read_to_string(c).unwrap_or_default();
        match text
            .lines()
            .find_map(|line| line.strip_prefix("// keep-guest: "))
        {
            Some("reactor") => Self::Reactor,
            Some("wasi-http") => Self::WasiHttp,
            Some("sqlite") => Self::Sqlite,
            Some(marker) if marker.starts_with("wasi-p3 ") => Self::WasiP3 {
                world: marker["wasi-p3 ".len()..].trim().to_owned(),
            },
            _ => Self::Command,
        }
    }
}

/// C bindings of a WIT world, generated by wit-bindgen.
struct Bindings {
    /// The directory holding the header.
    dir: PathBuf,
    /// The generated C source.
    source: PathBuf,
    /// The object file that carries the world's component type (for wit-component).
    component_type: PathBuf,
}

impl Guests {
    /// The C bindings of `world` in `tests/guests/WIT_DIR`, generated unless they are
    /// newer than every WIT file. Called with the build lock held.
    fn bindings(&self, wit_dir: &str, world: &str) -> anyhow::Result<Bindings> {
        let wit = sources_dir().join(wit_dir);
        let dir = self.out_dir.join("bindings").join(world);
        let stem = world.replace('-', "_");
        let bindings = Bindings {
            source: dir.join(format!("{stem}.c")),
            component_type: dir.join(format!("{stem}_component_type.o")),
            dir: dir.clone(),
        };
        let header = dir.join(format!("{stem}.h"));
        let wit_files = std::fs::read_dir(&wit)?
            .chain(std::fs::read_dir(wit.join("deps"))?)
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "wit"));
        if wit_files
            .into_iter()
            .all(|source| is_fresh(&header, &source))
        {
            return Ok(bindings);
        }
        use wit_bindgen_core::wit_parser::Resolve;
        let mut resolve = Resolve::default();
        let (package, _) = resolve
            .push_path(&wit)
            .with_context(|| format!("cannot parse {}", wit.display()))?;
        let world_id = resolve.select_world(&[package], Some(world))?;
        let mut files = wit_bindgen_core::Files::default();
        wit_bindgen_c::Opts::default()
            .build()
            .generate(&mut resolve, world_id, &mut files)?;
        std::fs::create_dir_all(&dir)?;
        // The header last: its time says the set is complete.
        let mut generated: Vec<(&str, &[u8])> = files.iter().collect();
        generated.sort_by_key(|(name, _)| name.ends_with(".h"));
        for (name, contents) in generated {
            self.write_atomically(&dir.join(name), contents)?;
        }
        Ok(bindings)
    }
}

/// True when `out` exists and is at least as new as `source`.
fn is_fresh(out: &Path, source: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(out), modified(source)) {
        (Some(out), Some(source)) => out >= source,
        _ => false,
    }
}
