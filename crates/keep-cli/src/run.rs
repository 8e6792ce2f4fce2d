//! `keep run`: reads the program and the config file once, merges them with the command
//! line, and hands over to the runtime; prints what the runtime reports.

use anyhow::{Context as _, bail};
use keep_config::Config;
use keep_runtime::{
    Event, EventSink, IdentitySource, ModuleCache, Outcome, Program, RenewalEvent, RunSpec,
    StewardSource, exit_code,
};

use keep_attest::TeeKind;
use keep_attest::collect::Provider;
use keep_attest::platform::Platform;
use keep_runtime::PlatformEvidence;

use crate::attest::platform_root;
use crate::cli::{Backend, RunArgs};
use crate::oci::PackagedProgram;

pub fn run(mut args: RunArgs) -> anyhow::Result<u8> {
    let backend = choose_backend(
        args.backend,
        &keep_attest::platform::detect(&platform_root()),
    )?;
    // What is fetched after attestation is not the host's: nothing compiled from it goes to
    // the host's disk either.
    args.no_cache |= args.fetch.fetch_steward.is_some();
    let config = match &args.config {
        Some(path) => Some(Config::from_path(path)?),
        None => None,
    };
    // The one read of the program: its digest, its compiled code and its run all come from
    // these bytes.
    let mut attested = None;
    let (program, config, package) =
        match args.program().to_str().filter(|p| p.starts_with("oci://")) {
            Some(reference) => {
                let fetched = match &args.fetch.fetch_steward {
                    Some(steward) => {
                        if matches!(backend, Chosen::Process { .. }) {
                            eprintln!(
                                "keep: warning: backend `process`: the host can read this \
                                 Keep's memory, and with it the registry credentials and the \
                                 package it fetches"
                            );
                        }
                        crate::oci::fetch_after_attestation(
                            reference,
                            steward,
                            &args,
                            config.as_ref(),
                            backend.evidence(),
                        )?
                    }
                    None => crate::oci::fetch_for_run(
                        reference,
                        &args.registry,
                        &args.signatures,
                        config.as_ref(),
                    )?,
                };
                if config.is_some() && fetched.config.is_some() {
                    bail!(
                        "{reference} carries its own Keep.toml (its workload digest covers \
                         it): run it without -c"
                    );
                }
                let config = fetched.config.or(config);
                let program = match fetched.program {
                    PackagedProgram::Plain(program) => program,
                    PackagedProgram::Encrypted {
                        name,
                        ciphertext,
                        encryption,
                    } => {
                        let sealed = keep_runtime::SealedProgram {
                            name: &name,
                            sha256: encryption.program_digest.bytes(),
                            package: fetched.package.clone().map(Box::new),
                        };
                        let (program, identity) = decrypt_after_attestation(
                            &args,
                            &backend,
                            config.as_ref(),
                            sealed,
                            ciphertext,
                            &encryption,
                        )?;
                        attested = Some(identity);
                        program
                    }
                };
                (program, config, fetched.package)
            }
            None if args.fetch.fetch_steward.is_some() => {
                bail!("--fetch-steward fetches an oci:// program; this one is a file")
            }
            None => (Program::read(args.program())?, config, None),
        };
    let mut spec = merge(&args, &backend, program, config)?;
    // The package is stated only when its Keep.toml (which names the Steward) is the one run.
    if let IdentitySource::Steward(source) = &mut spec.identity {
        source.package = package.map(Box::new);
    }
    if !args.quiet {
        print_backend_note(&backend);
    }
    if let (Chosen::Process { .. }, keep_runtime::IdentitySource::Steward(source)) =
        (&backend, &spec.identity)
    {
        warn_secrets_readable(source);
    }
    if args.no_confine {
        eprintln!(
            "keep: warning: --no-confine: the runtime process is not confined; only the Wasm \
             sandbox protects the host"
        );
    }
    let outcome = match attested {
        Some(attested) => keep_runtime::run_attested(&spec, attested)?,
        None => keep_runtime::run(&spec)?,
    };
    if !matches!(outcome, Outcome::Exited(_)) {
        eprintln!("keep: {outcome}");
    }
    Ok(outcome.exit_code())
}

/// The program of an encrypted package (`reference`), decrypted with the key the Keep's
/// Steward released after attestation, and the Keep's identity.
fn decrypt_after_attestation(
    args: &RunArgs,
    backend: &Chosen,
    config: Option<&Config>,
    sealed: keep_runtime::SealedProgram<'_>,
    ciphertext: Vec<u8>,
    encryption: &keep_oci::Encryption,
) -> anyhow::Result<(Program, keep_identity::AttestedIdentity)> {
    refuse_additions(args)?;
    let events = event_printer(args.quiet, args.listen_print);
    keep_runtime::open_after_attestation(sealed, config, backend.evidence(), &events, |key| {
        let key = keep_oci::encryption::private_key(key).map_err(anyhow::Error::msg)?;
        Ok(encryption.decrypt(ciphertext, &key)?)
    })
}

/// The start-up note on what `backend` protects.
pub(crate) fn print_backend_note(backend: &Chosen) {
    match backend {
        Chosen::Process { why } => eprintln!(
            "keep: note: backend `process` ({why}): the host is protected from the guest, \
             but the guest has no confidentiality from the host"
        ),
        Chosen::Cvm { note, .. } => eprintln!(
            "keep: note: backend `cvm`: {note}; compiled code is not cached (the disk \
             belongs to the host)"
        ),
    }
}

/// On the process backend: says (even when quiet, for it is about who can read them) that
/// the host can read the secrets of `source`, if it asks for any.
pub(crate) fn warn_secrets_readable(source: &StewardSource) {
    if !source.secrets.is_empty() {
        eprintln!(
            "keep: warning: backend `process`: the host can read this Keep's memory, and with \
             it the secrets it receives ({})",
            source
                .secrets
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

/// The backend a run uses, and why.
pub(crate) enum Chosen {
    /// An ordinary process.
    Process { why: &'static str },
    /// Inside a confidential VM.
    Cvm {
        /// What the platform gives (for the start-up line).
        note: String,
        /// Where its evidence comes from.
        evidence: PlatformEvidence,
    },
}

impl Chosen {
    /// Where the backend's attestation evidence comes from (`None`: the process backend's
    /// evidence of kind `none`).
    fn evidence(&self) -> Option<PlatformEvidence> {
        match self {
            Chosen::Process { .. } => None,
            Chosen::Cvm { evidence, .. } => Some(evidence.clone()),
        }
    }
}

/// Resolves `--backend` on this `platform`: `auto` takes `cvm` where it is usable; `cvm`
/// where it is not is refused with what is missing and the remedy.
pub(crate) fn choose_backend(asked: Backend, platform: &Platform) -> anyhow::Result<Chosen> {
    let cvm = platform.backends.iter().find(|b| b.name == "cvm");
    let usable = cvm.filter(|b| b.usable);
    let provider = match platform.tee {
        TeeKind::SevSnp => Some(Provider::SevGuest),
        TeeKind::Tdx => Some(Provider::TdxGuest),
        _ => None,
    };
    let cvm_here = usable.zip(provider).map(|(backend, provider)| Chosen::Cvm {
        note: backend.note.clone(),
        evidence: PlatformEvidence {
            tsm_root: platform_root().join("sys/kernel/config/tsm/report"),
            provider,
            sev_guest: platform_root().join("dev/sev-guest"),
        },
    });
    Ok(match (asked, cvm_here) {
        (Backend::Process, _) => Chosen::Process { why: "asked for" },
        (Backend::Auto, Some(cvm)) | (Backend::Cvm, Some(cvm)) => cvm,
        (Backend::Auto, None) => Chosen::Process {
            why: "auto: not in a confidential VM with an attestation interface",
        },
        (Backend::Cvm, None) => bail!(
            "--backend cvm cannot run here: {}",
            cvm.map_or("this host offers no confidential VM", |b| b.note.as_str())
        ),
    })
}

/// What `keep run` shows of a run's events.
pub(crate) fn event_printer(quiet: bool, listen_print: bool) -> EventSink {
    EventSink::new(move |event| match event {
        Event::Attested {
            steward,
            workload,
            tee,
            insecure_test_root,
            not_after,
        } => {
            eprintln!(
                "keep: attested by the Steward at {steward}: certificate for workload {workload} \
                 in TEE {tee}, valid until {}",
                humantime::format_rfc3339_seconds(not_after)
            );
            if insecure_test_root {
                eprintln!(
                    "keep: warning: the Steward accepted this Keep's evidence under a TEST root \
                     (--insecure-test-roots): its certificate proves nothing about real hardware"
                );
            }
        }
        Event::Renewal(RenewalEvent::Renewed { not_after }) => tracing::info!(
            "renewed the Keep's certificate: valid until {}",
            humantime::format_rfc3339_seconds(not_after)
        ),
        Event::Renewal(RenewalEvent::Failed { error, expires_in }) => eprintln!(
            "keep: warning: renewing the certificate failed ({error:#}); the current one \
             expires in {}s, retrying",
            expires_in.as_secs()
        ),
        Event::Renewal(RenewalEvent::SecretsChanged { names }) => eprintln!(
            "keep: secrets [{}] changed or were withdrawn at the Steward: the guest's files and \
             config values follow (environment variables keep those of the start)",
            names.join(", ")
        ),
        Event::Renewal(RenewalEvent::SecretsFailed { error }) => eprintln!(
            "keep: warning: the secrets were not asked for again with the renewed \
             certificate ({error:#}); the guest keeps those it has"
        ),
        Event::SecretFiles { dir, noswap } => {
            if noswap {
                tracing::info!("secret files served from memory at {dir}, kept out of swap");
            } else {
                eprintln!(
                    "keep: warning: secret files at {dir} are served from memory that the \
                     kernel may write to swap (tmpfs `noswap` needs Linux 6.4)"
                );
            }
        }
        Event::ListenerBound { name, prot, addr } if listen_print => {
            eprintln!("keep: listening {name} {prot} {addr}");
        }
        Event::SelfSignedCertificate { fingerprint } => eprintln!(
            "keep: warning: no [tls] cert and key configured: tls listeners present a fresh \
             self-signed certificate (SHA-256 {fingerprint}) that clients cannot verify"
        ),
        Event::Confined(report) if !quiet => eprintln!("keep: confined: {}", report.summary()),
        // Even quiet: the guest saw only EIO.
        Event::SealedFailure { dir, error } => {
            eprintln!("keep: error: sealed directory {dir}: {error}");
        }
        Event::Unresponsive { timeout } => {
            // The guest is blocked in the host (reading an idle stdin, say) where the
            // interruption cannot reach it: end the process as a timeout.
            eprintln!("keep: {}", Outcome::TimedOut(timeout));
            std::process::exit(i32::from(exit_code::TIMEOUT));
        }
        _ => {}
    })
}

/// Where the Keep's TLS identity comes from. With a Steward, the certificate states the
/// workload digest, which covers the program and Keep.toml only: additions on the command
/// line would run something the certificate does not name, so they are refused.
fn identity_source(
    args: &RunArgs,
    backend: &Chosen,
    program: &Program,
    config: Option<&Config>,
) -> anyhow::Result<IdentitySource> {
    let identity = keep_runtime::identity_source(config, program, backend.evidence())?;
    if matches!(identity, IdentitySource::Steward(_)) {
        refuse_additions(args)?;
    }
    Ok(identity)
}

/// With a Steward, the certificate states the workload digest, which covers the program and
/// Keep.toml only: additions on the command line are refused.
fn refuse_additions(args: &RunArgs) -> anyhow::Result<()> {
    let additions = [
        (args.program_and_args.len() > 1, "program arguments"),
        (args.argv0.is_some(), "--argv0"),
        (!args.env.is_empty(), "--env"),
        (!args.dirs.is_empty(), "--dir"),
        (args.max_memory.is_some(), "--max-memory"),
        (args.timeout.is_some(), "--timeout"),
        (args.fuel.is_some(), "--fuel"),
        (args.max_output.is_some(), "--max-output"),
        (args.max_output_rate.is_some(), "--max-output-rate"),
    ];
    if let Some((_, flag)) = additions.iter().find(|(given, _)| *given) {
        bail!(
            "{flag} on the command line: with a Steward, the workload is exactly the program \
             and Keep.toml (their digest is what the certificate states); put it in Keep.toml"
        );
    }
    Ok(())
}

/// What a Keep running `program` with `config` on `backend` tells its Steward (at
/// `steward`).
pub(crate) fn steward_source(
    config: &Config,
    steward: &keep_config::StewardUrl,
    digest: keep_runtime::WorkloadDigest,
    backend: &Chosen,
) -> StewardSource {
    keep_runtime::steward_source(config, steward, digest, backend.evidence())
}

/// The compiled-module cache a run on `backend` uses, unless `no_cache`.
pub(crate) fn module_cache(no_cache: bool, backend: &Chosen) -> Option<ModuleCache> {
    // In a confidential VM the disk belongs to the host, which could plant code in a cache
    // entry: nothing compiled is read from or written to it there.
    if no_cache || matches!(backend, Chosen::Cvm { .. }) {
        return None;
    }
    let dir = ModuleCache::default_dir();
    if dir.is_none() {
        tracing::warn!("neither XDG_CACHE_HOME nor HOME is set: compiled modules are not cached");
    }
    dir.map(ModuleCache::new)
}

/// The run specification: the config file first, then the command line on top.
fn merge(
    args: &RunArgs,
    backend: &Chosen,
    program: Program,
    config: Option<Config>,
) -> anyhow::Result<RunSpec> {
    let identity = identity_source(args, backend, &program, config.as_ref())?;
    let config_given = config.is_some();
    let config = config.unwrap_or_default();
    let mut env: Vec<(String, String)> = config
        .env
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    for item in &args.env {
        let (name, value) = match item.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => {
                let value = std::env::var(item).with_context(|| {
                    format!("--env {item}: the host has no such variable (or it is not UTF-8)")
                })?;
                (item.clone(), value)
            }
        };
        name.parse::<keep_config::EnvName>()
            .map_err(|e| anyhow::anyhow!("--env {item}: {e}"))?;
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    }
    let mut limits = config.limits.clone();
    limits.memory = args.max_memory.or(limits.memory);
    limits.timeout = args.timeout.or(limits.timeout);
    limits.fuel = args.fuel.or(limits.fuel);
    limits.output = args.max_output.or(limits.output);
    limits.output_rate = args.max_output_rate.or(limits.output_rate);

    let cache = module_cache(args.no_cache, backend);
    let files = config_given.then(|| config.effective_files());
    let argv0 = args
        .argv0
        .clone()
        .or(config.argv0)
        .unwrap_or_else(|| args.program().to_string_lossy().into_owned());
    Ok(RunSpec {
        program,
        argv0,
        args: config
            .args
            .into_iter()
            .chain(args.program_args()?)
            .collect(),
        env,
        files,
        dirs: config
            .dirs
            .into_iter()
            .chain(args.dirs.iter().cloned())
            .collect(),
        limits,
        cache,
        precompiled: None,
        identity,
        tls: config.tls,
        network: config.network,
        confine: !args.no_confine,
        events: event_printer(args.quiet, args.listen_print),
    })
}
