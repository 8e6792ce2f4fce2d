//! `keep package`, `keep push`, `keep pull`, and the `oci://` programs of `keep run`:
//! packages as OCI artifacts (crate `keep-oci`), kept in a content-addressed store beside
//! the compiled-module cache.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::Args;
use keep_attest::request::{CosignSignature, PackageStatement};
use keep_config::Config;
use keep_oci::signature::Signed;
use keep_oci::store::Stored;
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
            credentials,
            ..self.transport(reference, config)?
        })
    }

    /// How to reach `reference`'s registry, without credentials.
    fn transport(
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
        Ok(RegistryOptions {
            plain_http: self.registry_plain_http,
            ca_pems,
            credentials: None,
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
    /// `artifact`: the CNCF Wasm OCI artifact (config `application/vnd.wasm.config.v0+json`)
    /// that Wasm tools (ORAS, wkg) pull. `image`: the same layers under an OCI image config
    /// for the `wasm` platform, which containerd (`ctr run`, Kubernetes) runs with Keep's
    /// shim, `containerd-shim-keep-v1`. `keep run oci://` runs both.
    #[arg(long, value_enum, default_value_t = PackageFormat::Artifact)]
    pub format: PackageFormat,
    /// Encrypt the program to this recipient's public key (PEM, P-256), in ocicrypt's
    /// format (what `skopeo copy --encryption-key jwe:FILE` writes): the registry and the host
    /// see only ciphertext. Repeatable. The Keep.toml must name, in `[package] key`, the
    /// Steward secret holding a recipient's private key: a Keep decrypts the program only
    /// after its Steward certified it and released that key.
    #[arg(long, value_name = "FILE")]
    pub encrypt: Vec<PathBuf>,
    /// The program: a .wasm module or component, or .wat text.
    #[arg(value_name = "FILE")]
    pub program: PathBuf,
}

/// `keep package --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PackageFormat {
    /// A Wasm OCI artifact.
    Artifact,
    /// An OCI image for the wasm platform (for containerd).
    Image,
}

impl From<PackageFormat> for keep_oci::Format {
    fn from(format: PackageFormat) -> Self {
        match format {
            PackageFormat::Artifact => Self::Artifact,
            PackageFormat::Image => Self::Image,
        }
    }
}

/// `keep push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// The Keep.toml the package carries (when SOURCE is a program).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Encrypt the program (when SOURCE is a program) to this recipient's public
    /// key (PEM, P-256), in ocicrypt's format (what `skopeo copy --encryption-key jwe:FILE` writes): the registry and the host
    /// see only ciphertext. Repeatable. The Keep.toml must name, in `[package] key`, the
    /// Steward secret holding a recipient's private key: a Keep decrypts the program only
    /// after its Steward certified it and released that key.
    #[arg(long, value_name = "FILE")]
    pub encrypt: Vec<PathBuf>,
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
    #[command(flatten)]
    pub signatures: SignatureArgs,
    /// What to pull: `HOST[:PORT]/REPOSITORY[:TAG]` or `HOST[:PORT]/REPOSITORY@sha256:DIGEST`.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
}

/// The package of `program` (a file) and `config`, with the parsed Keep.toml: each file is
/// read once, so that the package holds exactly the bytes the workload digest is taken of.
/// With `recipients` (public key files), its program is encrypted to them.
fn package_of(
    program: &Path,
    config: Option<&Path>,
    format: keep_oci::Format,
    recipients: &[PathBuf],
) -> anyhow::Result<(Package, Program, Option<Config>)> {
    let read = Program::read(program)?;
    let (keep_toml, parsed) = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new("."));
            let parsed = Config::from_text(&text, path, base)?;
            (Some(text.into_bytes()), Some(parsed))
        }
        None => (None, None),
    };
    let package = Package {
        program: read.bytes.clone(),
        encryption: None,
        keep_toml,
        // Carried, so that the package's digest (and its signature) covers every trust
        // anchor the workload uses.
        ca_files: parsed.as_ref().map(Config::ca_contents).unwrap_or_default(),
        format,
    };
    if recipients.is_empty() {
        return Ok((package, read, parsed));
    }
    if parsed
        .as_ref()
        .and_then(|c| c.package.as_ref()?.key.as_ref())
        .is_none()
    {
        bail!(
            "--encrypt: the Keep.toml (-c) must name the Steward secret that holds the private \
             key in `[package] key`: without it no Keep could decrypt the program"
        );
    }
    let keys = recipients
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("--encrypt {}", path.display()))?;
            keep_oci::encryption::public_key(&pem)
                .map_err(|e| anyhow::anyhow!("--encrypt {}: {e}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((package.encrypt(&keys)?, read, parsed))
}

pub fn package(args: PackageArgs) -> anyhow::Result<u8> {
    let (package, program, config) = package_of(
        &args.program,
        args.config.as_deref(),
        args.format.into(),
        &args.encrypt,
    )?;
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
        if args.config.is_some() || !args.encrypt.is_empty() {
            bail!(
                "{} is a package already: its Keep.toml is in it (-c and --encrypt are for a \
                 program)",
                args.source.display()
            );
        }
        (keep_oci::layout::read(&args.source, None)?.1, None)
    } else {
        let (package, _, config) = package_of(
            &args.source,
            args.config.as_deref(),
            keep_oci::Format::Artifact,
            &args.encrypt,
        )?;
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
    let keys = args.signatures.keys(None)?;
    let (stored, signer, _) = pull_into_store(&reference, &args.registry, &keys, None)?;
    let (program, config) = runnable(&reference, stored.package)?;
    println!("pulled {reference}@{}", stored.digest);
    if let Some(signer) = signer {
        println!("signed by {}", signer.display());
    }
    if let PackagedProgram::Encrypted { .. } = program {
        println!("encrypted: the program is decrypted by a Keep its Steward certified");
    }
    println!("workload {}", program.workload_digest(config.as_ref()));
    Ok(0)
}

/// `--verify-key`: the keys a package must be signed by.
#[derive(Debug, Args, Default, Clone)]
pub struct SignatureArgs {
    /// Run (or pull) the package only if it carries a valid cosign signature by this public
    /// key (PEM), for its manifest digest and repository. Repeatable: any one of the keys
    /// will do.
    #[arg(long, value_name = "FILE")]
    pub verify_key: Vec<PathBuf>,
}

/// Public keys, each with the file it came from.
type Keys = Vec<(PathBuf, p256::ecdsa::VerifyingKey)>;

impl SignatureArgs {
    /// The keys of `--verify-key` and of `config`'s `[package] signers` (the Keep.toml given
    /// with -c).
    fn keys(&self, config: Option<&Config>) -> anyhow::Result<Keys> {
        let given = self.verify_key.iter().map(|path| (path, "--verify-key"));
        let configured = config
            .and_then(|c| c.package.as_ref())
            .into_iter()
            .flat_map(|p| &p.signers)
            .map(|path| (path, "[package] signers"));
        given
            .chain(configured)
            .map(|(path, what)| {
                let pem = std::fs::read_to_string(path)
                    .with_context(|| format!("{what}: {}", path.display()))?;
                let key = keep_oci::signing_key::verifying_key(&pem)
                    .with_context(|| format!("{what}: {}", path.display()))?;
                Ok((path.clone(), key))
            })
            .collect()
    }
}

/// The file of the key that signed `digest` in `reference`'s repository among `signed`.
fn check_signatures(
    reference: &PackageRef,
    digest: &keep_oci::Digest,
    signed: &[keep_oci::signature::Signed],
    keys: &Keys,
) -> anyhow::Result<PathBuf> {
    if signed.is_empty() {
        return Err(keep_oci::signature::SignatureError::Unsigned {
            tag: format!(
                "{}:{}",
                reference.repository(),
                keep_oci::signature::signature_tag(digest)
            ),
        }
        .into());
    }
    let verifying: Vec<_> = keys.iter().map(|(_, key)| *key).collect();
    let index = keep_oci::signature::verify(signed, &verifying, &reference.repository(), digest)?;
    Ok(keys[index].0.clone())
}

/// The package store: `packages/` in the compiled-module cache's directory.
fn store() -> anyhow::Result<Store> {
    ModuleCache::default_dir()
        .map(|dir| Store::new(dir.join("packages")))
        .ok_or_else(|| anyhow::anyhow!("no directory for packages: set XDG_CACHE_HOME or HOME"))
}

/// Pulls `reference`, checks its signatures when `keys` are given, and saves it in the
/// store (whole, or not at all: nothing is stored for a package that fails). Returns it,
/// the file of the key that signed it, and the signatures checked.
fn pull_into_store(
    reference: &PackageRef,
    registry: &RegistryArgs,
    keys: &Keys,
    config: Option<&Config>,
) -> anyhow::Result<(Stored, Option<PathBuf>, Option<Vec<Signed>>)> {
    let client = Registry::new(reference, &registry.options(reference, config)?);
    let runtime = runtime()?;
    let (package, built) = runtime.block_on(client.pull(reference))?;
    let store = store()?;
    let (signer, signed) = if keys.is_empty() {
        (None, None)
    } else {
        let signed = runtime.block_on(client.signatures(reference, &built.digest))?;
        let signer = check_signatures(reference, &built.digest, &signed, keys)?;
        store.save_signatures(&built.digest, &signed)?;
        (Some(signer), Some(signed))
    };
    store.save(reference, &built)?;
    let stored = Stored {
        package,
        manifest: built.manifest,
        digest: built.digest,
    };
    Ok((stored, signer, signed))
}

/// A package's program as `keep run` reads it.
pub enum PackagedProgram {
    /// In the clear.
    Plain(Program),
    /// Encrypted: to decrypt once the Steward released its key.
    Encrypted {
        /// The name the program is reported under.
        name: PathBuf,
        /// The program layer.
        ciphertext: Vec<u8>,
        /// How it is encrypted, and the digest of the program it holds.
        encryption: keep_oci::Encryption,
    },
}

impl PackagedProgram {
    /// The workload digest of this program run with `config`: for an encrypted program, by
    /// the digest its package states, which decryption checks.
    pub fn workload_digest(&self, config: Option<&Config>) -> keep_runtime::WorkloadDigest {
        match self {
            Self::Plain(program) => keep_runtime::workload_digest(program, config),
            Self::Encrypted { encryption, .. } => {
                keep_runtime::workload_digest_of(&encryption.program_digest.bytes(), config)
            }
        }
    }
}

/// The program and Keep.toml of a package, as `keep run` reads them.
fn runnable(
    reference: &PackageRef,
    package: Package,
) -> anyhow::Result<(PackagedProgram, Option<Config>)> {
    let name = PathBuf::from(format!("oci://{reference}"));
    let config = package
        .keep_toml
        .as_ref()
        .map(|bytes| {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("the Keep.toml of {reference} is not UTF-8"))?;
            // Its CA files are in the package; its other relative paths are this host's,
            // from here.
            Ok::<_, anyhow::Error>(Config::from_packaged_text(
                text,
                &name.join("Keep.toml"),
                Path::new("."),
                &package.ca_files,
            )?)
        })
        .transpose()?;
    if config
        .as_ref()
        .and_then(|c| c.package.as_ref())
        .is_some_and(|p| !p.signers.is_empty())
    {
        bail!(
            "the Keep.toml of {reference} names `[package] signers`: a package cannot vouch for \
             itself; give them in the Keep.toml given with -c, or with --verify-key"
        );
    }
    let program = match package.encryption {
        Some(encryption) => PackagedProgram::Encrypted {
            name,
            ciphertext: package.program,
            encryption,
        },
        None => PackagedProgram::Plain(Program::from_bytes(&name, package.program)?),
    };
    Ok((program, config))
}

/// What `keep run oci://REFERENCE` runs.
pub struct Fetched {
    /// The package's program.
    pub program: PackagedProgram,
    /// The Keep.toml it carries, if any.
    pub config: Option<Config>,
    /// When that Keep.toml names a Steward: the package, stated to the Steward, whose
    /// policy may judge the workload by who signed it.
    pub package: Option<PackageStatement>,
}

/// The program and Keep.toml `keep run oci://REFERENCE` runs: from the store when it holds
/// the package (no network), otherwise pulled into it first (trusting `config`'s `[tls]`
/// anchors too, the Keep.toml given with -c). With `--verify-key`, only a package signed
/// by one of the keys runs (the signatures are kept in the store with it). A package whose
/// Keep.toml names a Steward is stated to it with the signatures found for it.
pub fn fetch_for_run(
    text: &str,
    registry: &RegistryArgs,
    signatures: &SignatureArgs,
    config: Option<&Config>,
) -> anyhow::Result<Fetched> {
    let reference = PackageRef::parse(text)?;
    let keys = signatures.keys(config)?;
    let store = store()?;
    let fetch_signatures = |digest: &keep_oci::Digest| -> anyhow::Result<Vec<Signed>> {
        let client = Registry::new(&reference, &registry.options(&reference, config)?);
        let signed = runtime()?.block_on(client.signatures(&reference, digest))?;
        store.save_signatures(digest, &signed)?;
        Ok(signed)
    };
    let (stored, signed) = match store.load(&reference)? {
        Some(stored) => {
            let mut signed = store.signatures(&stored.digest)?;
            if !keys.is_empty() {
                let found = match signed {
                    Some(found) => found,
                    None => fetch_signatures(&stored.digest)?,
                };
                check_signatures(&reference, &stored.digest, &found, &keys)?;
                signed = Some(found);
            }
            (stored, signed)
        }
        None => {
            let (stored, _, signed) = pull_into_store(&reference, registry, &keys, config)?;
            (stored, signed)
        }
    };
    let Stored {
        package, manifest, ..
    } = stored;
    fetched(&reference, package, manifest, signed, fetch_signatures)
}

/// What runs of `package` (its `manifest` as pulled), from `reference`: its program and
/// Keep.toml, and, when that Keep.toml names a Steward, the statement of the package with
/// its signatures (`signed` when known, or else from `fetch_signatures`).
fn fetched(
    reference: &PackageRef,
    package: Package,
    manifest: Vec<u8>,
    signed: Option<Vec<Signed>>,
    fetch_signatures: impl FnOnce(&keep_oci::Digest) -> anyhow::Result<Vec<Signed>>,
) -> anyhow::Result<Fetched> {
    let digest = keep_oci::Digest::of(&manifest);
    let (program, config) = runnable(reference, package)?;
    let package = match config.as_ref().and_then(|c| c.steward.as_ref()) {
        Some(steward) => {
            let signed = match signed {
                Some(signed) => signed,
                None => fetch_signatures(&digest).with_context(|| {
                    format!("the signatures of {reference}, which its Steward ({steward}) judges")
                })?,
            };
            Some(PackageStatement {
                manifest,
                repository: reference.repository(),
                signatures: signed
                    .into_iter()
                    .take(keep_attest::request::MAX_PACKAGE_SIGNATURES)
                    .map(|s| CosignSignature {
                        payload: s.payload,
                        signature: s.signature,
                    })
                    .collect(),
            })
        }
        None => None,
    };
    Ok(Fetched {
        program,
        config,
        package,
    })
}

/// Attesting before fetching an `oci://` program (`keep run --fetch-steward`).
#[derive(Debug, Args, Default, Clone)]
pub struct FetchArgs {
    /// Attest to the Steward at URL before fetching the oci:// program, and pull it with the
    /// registry credentials that Steward then releases (see --registry-secret): this host
    /// needs none. The package stays in memory: nothing of it, compiled or not, is written
    /// to this host's disk. Its Keep.toml, if it names a Steward, is attested to afterwards
    /// as with any package.
    #[arg(long, value_name = "URL", conflicts_with = "registry_user")]
    pub fetch_steward: Option<keep_config::StewardUrl>,
    /// Trust this CA (PEM) for the certificate of the --fetch-steward Steward. Repeatable.
    #[arg(long, value_name = "FILE", requires = "fetch_steward")]
    pub fetch_steward_ca: Vec<PathBuf>,
    /// The secret, released by the --fetch-steward Steward, that holds the registry
    /// credentials as `USER:PASSWORD`.
    #[arg(long, value_name = "NAME", default_value = "registry")]
    pub registry_secret: String,
}

/// The program and Keep.toml of `oci://REFERENCE`, pulled into memory with the registry
/// credentials the Steward at `steward` releases to this Keep once it has
/// attested, on `platform`, that it is about to fetch `reference`. With `--verify-key` (or
/// `[package] signers` in `config`, the Keep.toml given with -c), only a package signed by
/// one of the keys runs.
pub fn fetch_after_attestation(
    text: &str,
    steward: &keep_config::StewardUrl,
    args: &crate::cli::RunArgs,
    config: Option<&Config>,
    platform: Option<keep_runtime::PlatformEvidence>,
) -> anyhow::Result<Fetched> {
    let fetch = &args.fetch;
    let reference = PackageRef::parse(text)?;
    let keys = args.signatures.keys(config)?;
    let stated = reference.to_string();
    let secret = keep_config::SecretRef {
        name: fetch.registry_secret.clone(),
        env: None,
        file: None,
        config: None,
        optional: false,
    };
    let source = keep_identity::StewardSource {
        url: steward.clone(),
        names: Vec::new(),
        workload_digest: keep_attest::request::fetch_digest(&stated),
        platform,
        secrets: vec![secret],
        secrets_dir: keep_config::DEFAULT_SECRETS_DIR.to_owned(),
        package: None,
        fetch: Some(stated),
    };
    let tls = keep_config::Tls {
        ca: fetch
            .fetch_steward_ca
            .iter()
            .map(|path| {
                let mut ca = keep_config::CaFile::new(path);
                ca.pem = std::fs::read(path)
                    .with_context(|| format!("--fetch-steward-ca {}", path.display()))?;
                Ok(ca)
            })
            .collect::<anyhow::Result<_>>()?,
        ..keep_config::Tls::default()
    };
    let attested = keep_identity::attested::attest(&source, &tls)
        .with_context(|| format!("attestation to fetch {reference}"))?;
    if !args.quiet {
        eprintln!(
            "keep: attested by the Steward at {steward} in TEE {}: fetching {reference} with \
             the registry credentials it released",
            attested.statement().tee
        );
    }
    let value = attested
        .secrets()
        .iter()
        .find(|s| s.reference.name == fetch.registry_secret)
        .map(|s| &s.value)
        .with_context(|| {
            format!(
                "the Steward at {steward} released no secret `{}` (the registry credentials)",
                fetch.registry_secret
            )
        })?;
    // oci-client takes the credentials as plain strings; they live as long as this pull.
    let credentials = std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim_end().split_once(':'))
        .map(|(user, password)| (user.to_owned(), password.to_owned()))
        .with_context(|| {
            format!(
                "secret `{}` holds no registry credentials: it must be USER:PASSWORD (UTF-8)",
                fetch.registry_secret
            )
        })?;
    // The Steward's credentials, not this host's (docker's and podman's are not read).
    let options = RegistryOptions {
        credentials: Some(credentials),
        ..args.registry.transport(&reference, config)?
    };
    let client = Registry::new(&reference, &options);
    let runtime = runtime()?;
    let (package, built) = runtime.block_on(client.pull(&reference))?;
    let fetch_signatures = |digest: &keep_oci::Digest| -> anyhow::Result<Vec<Signed>> {
        runtime.block_on(client.signatures(&reference, digest))
    };
    let signed = if keys.is_empty() {
        None
    } else {
        let signed = fetch_signatures(&built.digest)?;
        check_signatures(&reference, &built.digest, &signed, &keys)?;
        Some(signed)
    };
    fetched(
        &reference,
        package,
        built.manifest,
        signed,
        fetch_signatures,
    )
}

/// `keep sign`.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The private key: cosign's encrypted key (its passphrase in --passphrase-file or
    /// COSIGN_PASSWORD), or an unencrypted PKCS#8 PEM.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// A file whose first line is the key's passphrase (else COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// The package to sign: `HOST[:PORT]/REPOSITORY[:TAG]` or `...@sha256:DIGEST`.
    #[arg(value_name = "REFERENCE")]
    pub reference: String,
}

/// `keep generate-key-pair`.
#[derive(Debug, Args)]
pub struct GenerateKeyPairArgs {
    /// A file whose first line is the passphrase that seals the private key (else
    /// COSIGN_PASSWORD).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_prefix: PathBuf,
}

/// The passphrase of a key: the first line of `file`, or COSIGN_PASSWORD.
fn passphrase(file: Option<&Path>) -> anyhow::Result<zeroize::Zeroizing<String>> {
    match file {
        Some(path) => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("--passphrase-file {}", path.display()))?,
            );
            Ok(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or_default().to_owned(),
            ))
        }
        None => std::env::var("COSIGN_PASSWORD")
            .map(zeroize::Zeroizing::new)
            .map_err(|_| {
                anyhow::anyhow!(
                    "the key's passphrase: give it with --passphrase-file FILE or in \
                     COSIGN_PASSWORD (empty for none)"
                )
            }),
    }
}

pub fn sign(args: SignArgs) -> anyhow::Result<u8> {
    let reference = PackageRef::parse(&args.reference)?;
    let pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(&args.key)
            .with_context(|| format!("--key {}", args.key.display()))?,
    );
    let pass = passphrase(args.passphrase_file.as_deref())?;
    let key = keep_oci::signing_key::signing_key(&pem, pass.as_bytes())
        .with_context(|| format!("--key {}", args.key.display()))?;
    let client = Registry::new(&reference, &args.registry.options(&reference, None)?);
    let runtime = runtime()?;
    let digest = runtime.block_on(client.manifest_digest(&reference))?;
    let signed = keep_oci::signature::sign(&key, &reference.repository(), &digest);
    runtime.block_on(client.attach(&reference, &digest, &signed))?;
    println!(
        "signed {}@{digest} (signature at {}:{})",
        reference.repository(),
        reference.repository(),
        keep_oci::signature::signature_tag(&digest)
    );
    Ok(0)
}

pub fn generate_key_pair(args: GenerateKeyPairArgs) -> anyhow::Result<u8> {
    let pass = passphrase(args.passphrase_file.as_deref())?;
    let mut private_path = args.output_prefix.clone().into_os_string();
    private_path.push(".key");
    let mut public_path = args.output_prefix.into_os_string();
    public_path.push(".pub");
    let (private_path, public_path) = (PathBuf::from(private_path), PathBuf::from(public_path));
    for path in [&private_path, &public_path] {
        if path.exists() {
            bail!("{} exists: Keep does not overwrite a key", path.display());
        }
    }
    let (private, public) = keep_oci::signing_key::generate(pass.as_bytes())?;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&private_path)
        .and_then(|mut file| file.write_all(private.as_bytes()))
        .with_context(|| format!("cannot write {}", private_path.display()))?;
    std::fs::write(&public_path, public)
        .with_context(|| format!("cannot write {}", public_path.display()))?;
    println!(
        "private key {} (encrypted), public key {}",
        private_path.display(),
        public_path.display()
    );
    Ok(0)
}
