//! `keep package`, `keep push`, `keep pull`, and the `oci://` programs of `keep run`:
//! packages as OCI artifacts (crate `keep-oci`), kept in a content-addressed store beside
//! the compiled-module cache.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use keep_config::Config;
use keep_oci::{Package, PackageRef, Registry, RegistryOptions, Store};
use keep_runtime::{ModuleCache, Program};

/// How Keep reaches a registry (for `keep push`, `keep pull` and `keep run oci://`).
#[derive(Debug, Args, Default, Clone)]
pub struct RegistryArgs {
    /// Trust this CA (PEM) for the registry's certificate, besides the system's roots and
    /// the `[tls] ca` of the Keep.toml given with -c. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub registry_ca: Vec<PathBuf>,
    /// Speak plain HTTP to the registry: nothing protects the package or the credentials
    /// on the way. For a registry on this machine or a test.
    #[arg(long)]
    pub registry_plain_http: bool,
    /// The registry user (the password is then read from stdin, see
    /// --registry-password-stdin). Without it, the credentials docker or podman stored
    /// for the registry are used, if any.
    #[arg(long, value_name = "NAME", requires = "registry_password_stdin")]
    pub registry_user: Option<String>,
    /// Read the registry password from stdin (its first line).
    #[arg(long, requires = "registry_user")]
    pub registry_password_stdin: bool,
}

impl RegistryArgs {
    /// How to reach `reference`'s registry; `config`'s `[tls] ca` anchors are trusted for
    /// it too.
    fn options(
        &self,
        reference: &PackageRef,
        config: Option<&Config>,
    ) -> anyhow::Result<RegistryOptions> {
        if self.registry_plain_http && !reference.is_loopback() {
            eprintln!(
                "keep: warning: --registry-plain-http: {} is not on this machine, and plain \
                 HTTP protects neither the package nor the credentials",
                reference.registry()
            );
        }
        let mut ca_pems: Vec<Vec<u8>> = self
            .registry_ca
            .iter()
            .map(|path| {
                std::fs::read(path).with_context(|| format!("--registry-ca {}", path.display()))
            })
            .collect::<anyhow::Result<_>>()?;
        ca_pems.extend(
            config
                .into_iter()
                .flat_map(|config| config.tls.ca.iter().map(|ca| ca.pem.clone())),
        );
        let credentials = match &self.registry_user {
            Some(user) => {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("--registry-password-stdin: cannot read stdin")?;
                let password = password.lines().next().unwrap_or_default().to_owned();
                Some((user.clone(), password))
            }
            None => keep_oci::auth::stored_credentials(reference.registry())?,
        };
        Ok(RegistryOptions {
            plain_http: self.registry_plain_http,
            ca_pems,
            credentials,
        })
    }
}

/// `keep package`.
#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The Keep.toml the package carries (its workload digest covers it).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The directory to write the OCI image layout into (it must not exist).
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub output: PathBuf,
    /// The tag of the manifest in the layout.
    #[arg(long, default_value = "latest")]
    pub tag: String,
    /// The program: a .wasm module or component, or .wat text.
    #[arg(value_name = "FILE")]
    pub program: PathBuf,
}

/// `keep push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The Keep.toml the package carries (when SOURCE is a program).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// A program, or an OCI image layout `keep package` (or skopeo) wrote.
    #[arg(value_name = "SOURCE")]
    pub source: PathBuf,
    /// Where to push: `HOST[:PORT]/REPOSITORY[:TAG]`.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
}

/// `keep pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// What to pull: `HOST[:PORT]/REPOSITORY[:TAG]` or `HOST[:PORT]/REPOSITORY@sha256:DIGEST`.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
}

/// The package of `program` (a file) and `config`, with the parsed Keep.toml.
fn package_of(
    program: &Path,
    config: Option<&Path>,
) -> anyhow::Result<(Package, Program, Option<Config>)> {
    let read = Program::read(program)?;
    let (keep_toml, parsed) = match config {
        Some(path) => (
            Some(std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?),
            Some(Config::from_path(path)?),
        ),
        None => (None, None),
    };
    Ok((
        Package {
            program: read.bytes.clone(),
            keep_toml,
        },
        read,
        parsed,
    ))
}

pub fn package(args: PackageArgs) -> anyhow::Result<u8> {
    let (package, program, config) = package_of(&args.program, args.config.as_deref())?;
    let built = package.build();
    keep_oci::layout::write(&args.output, &built, &args.tag)?;
    println!("manifest {}", built.digest);
    println!(
        "workload {}",
        keep_runtime::workload_digest(&program, config.as_ref())
    );
    Ok(0)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn push(args: PushArgs) -> anyhow::Result<u8> {
    let reference = PackageRef::parse(&args.reference)?;
    let (built, config) = if keep_oci::layout::is_layout(&args.source) {
        if args.config.is_some() {
            bail!(
                "{} is a package already: its Keep.toml is in it (-c is for a program)",
                args.source.display()
            );
        }
        (keep_oci::layout::read(&args.source, None)?.1, None)
    } else {
        let (package, _, config) = package_of(&args.source, args.config.as_deref())?;
        (package.build(), config)
    };
    let registry = Registry::new(
        &reference,
        &args.registry.options(&reference, config.as_ref())?,
    );
    let digest = runtime()?.block_on(registry.push(&reference, &built))?;
    println!("pushed {reference}@{digest}");
    Ok(0)
}

pub fn pull(args: PullArgs) -> anyhow::Result<u8> {
    let reference = PackageRef::parse(&args.reference)?;
    let (package, digest) = pull_into_store(&reference, &args.registry, None)?;
    let (program, config) = runnable(&reference, package)?;
    println!("pulled {reference}@{digest}");
    println!(
        "workload {}",
        keep_runtime::workload_digest(&program, config.as_ref())
    );
    Ok(0)
}

/// The package store: `packages/` in the compiled-module cache's directory.
fn store() -> anyhow::Result<Store> {
    ModuleCache::default_dir()
        .map(|dir| Store::new(dir.join("packages")))
        .ok_or_else(|| anyhow::anyhow!("no directory for packages: set XDG_CACHE_HOME or HOME"))
}

/// Pulls `reference` and saves it in the store (whole, or not at all).
fn pull_into_store(
    reference: &PackageRef,
    registry: &RegistryArgs,
    config: Option<&Config>,
) -> anyhow::Result<(Package, keep_oci::Digest)> {
    let client = Registry::new(reference, &registry.options(reference, config)?);
    let (package, built) = runtime()?.block_on(client.pull(reference))?;
    store()?.save(reference, &built)?;
    Ok((package, built.digest))
}

/// The program and Keep.toml of a package, as `keep run` reads them.
fn runnable(reference: &PackageRef, package: Package) -> anyhow::Result<(Program, Option<Config>)> {
    let name = PathBuf::from(format!("oci://{reference}"));
    let program = Program::from_bytes(&name, package.program)?;
    let config = package
        .keep_toml
        .map(|bytes| {
            let text = String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("the Keep.toml of {reference} is not UTF-8"))?;
            // Relative paths in a packaged Keep.toml are the user's: from here.
            Ok::<_, anyhow::Error>(Config::from_text(
                &text,
                &name.join("Keep.toml"),
                Path::new("."),
            )?)
        })
        .transpose()?;
    Ok((program, config))
}

/// The program and Keep.toml `keep run oci://REFERENCE` runs: from the store when it holds
/// the package (no network), otherwise pulled into it first (trusting `config`'s `[tls]`
/// anchors too, the Keep.toml given with -c).
pub fn fetch_for_run(
    text: &str,
    registry: &RegistryArgs,
    config: Option<&Config>,
) -> anyhow::Result<(Program, Option<Config>)> {
    let reference = PackageRef::parse(text)?;
    let package = match store()?.load(&reference)? {
        Some((package, _)) => package,
        None => pull_into_store(&reference, registry, config)?.0,
    };
    runnable(&reference, package)
}
