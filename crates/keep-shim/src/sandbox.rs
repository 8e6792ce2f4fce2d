//! Running a container's workload with Keep's runtime, inside the container runwasi set up.

use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::RuntimeContext;
use keep_runtime::{Event, EventSink, IdentitySource, Outcome, RunSpec, exit_code};

use crate::workload::{Workload, WorkloadProgram};

/// The image layers the shim reads from containerd: a program (either Wasm media type the
/// field uses), Keep's Keep.toml and the CA files it names.
pub const LAYER_TYPES: &[&str] = &[
    keep_oci::media::WASM,
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
    keep_oci::media::KEEP_TOML,
    keep_oci::media::KEEP_CA,
    keep_oci::media::WASM_ENCRYPTED,
];

/// Runs one container's Keep.
#[derive(Default)]
pub struct KeepSandbox;

impl Sandbox for KeepSandbox {
    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> anyhow::Result<i32> {
        stop_on_termination_signals()?;
        // runwasi exits 137 on an error and logs it to the shim's log only; the container's
        // owner reads its stderr, so the error goes there, with Keep's status for it.
        let code = match Workload::read(ctx).and_then(run) {
            Ok(outcome) => {
                if !matches!(outcome, Outcome::Exited(_)) {
                    eprintln!("keep: {outcome}");
                }
                outcome.exit_code()
            }
            Err(e) => {
                eprintln!("keep: error: {e:#}");
                exit_code::KEEP_ERROR
            }
        };
        Ok(i32::from(code))
    }
}

/// Ends the Keep on SIGTERM and SIGINT, with the status a process killed by the signal has.
/// The runtime is the container's first process (PID 1 of its namespace), for which the
/// kernel ignores signals it has no handler for: without this, `ctr task kill` and a
/// Kubernetes pod's termination would wait for SIGKILL.
fn stop_on_termination_signals() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("keep-signals".to_owned())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                eprintln!("keep: stopped by signal {signal}");
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

/// Runs `workload` to its end; an encrypted program once the Steward released its key.
fn run(workload: Workload) -> anyhow::Result<Outcome> {
    // The runtime (and the attestation) drive their own event loops; runwasi calls this from
    // within its tokio runtime, where another cannot start: the run gets a thread of its own.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let config = crate::defaults::apply(workload.config);
                let (program, attested) = match workload.program {
                    WorkloadProgram::Plain(program) => (program, None),
                    WorkloadProgram::Encrypted {
                        ciphertext,
                        encryption,
                    } => {
                        let sealed = keep_runtime::SealedProgram {
                            name: std::path::Path::new("program.wasm"),
                            sha256: encryption.program_digest.bytes(),
                            package: None,
                        };
                        let (program, attested) = keep_runtime::open_after_attestation(
                            sealed,
                            config.as_ref(),
                            None,
                            &events(),
                            |key| {
                                let key = keep_oci::encryption::private_key(key)
                                    .map_err(anyhow::Error::msg)?;
                                Ok(encryption.decrypt(ciphertext, &key)?)
                            },
                        )?;
                        (program, Some(attested))
                    }
                };
                let spec = run_spec(
                    program,
                    config,
                    workload.args,
                    workload.env,
                    workload.precompiled,
                )?;
                match attested {
                    Some(attested) => keep_runtime::run_attested(&spec, attested),
                    None => keep_runtime::run(&spec),
                }
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the runtime's thread panicked"))?
    })
}

/// The run specification of `program`: its Keep.toml `config` (the shim's Steward applied),
/// then the container's `args` and `env`, except under a Steward, whose certificate names
/// exactly the program and Keep.toml; with the `precompiled` code containerd kept.
fn run_spec(
    program: keep_runtime::Program,
    config: Option<keep_config::Config>,
    args: Vec<String>,
    env: Vec<String>,
    precompiled: Option<Vec<u8>>,
) -> anyhow::Result<RunSpec> {
    let identity = keep_runtime::identity_source(config.as_ref(), &program, None)?;
    if let IdentitySource::Steward(source) = &identity {
        eprintln!(
            "keep: workload {} attests to the Steward at {}",
            keep_runtime::WorkloadDigest(source.workload_digest),
            source.url
        );
    }
    let attested = matches!(identity, IdentitySource::Steward(_));
    let files = config.as_ref().map(|c| c.effective_files());
    let config = config.unwrap_or_default();
    let mut guest_env: Vec<(String, String)> = config
        .env
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    let (argv0, guest_args) = match args.split_first() {
        Some((argv0, rest)) if !attested => (argv0.clone(), rest.to_vec()),
        _ => (
            config
                .argv0
                .clone()
                .unwrap_or_else(|| program.path.to_string_lossy().into_owned()),
            Vec::new(),
        ),
    };
    if attested {
        if args.len() > 1 {
            eprintln!(
                "keep: note: the container's arguments are not passed to a Keep with a Steward \
                 (its certificate names the program and Keep.toml only): put them in Keep.toml"
            );
        }
    } else {
        for item in &env {
            let (name, value) = item.split_once('=').unwrap_or((item, ""));
            guest_env.retain(|(k, _)| k != name);
            guest_env.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(RunSpec {
        program,
        argv0,
        args: config.args.iter().cloned().chain(guest_args).collect(),
        env: guest_env,
        files,
        dirs: config.dirs.clone(),
        limits: config.limits.clone(),
        // The shim runs the process backend, where containerd's content store (root's) is as
        // trusted as the shim's binary: its compiled code is loaded.
        cache: None,
        precompiled,
        tls: config.tls.clone(),
        identity,
        network: config.network.clone(),
        // The container (namespaces, cgroups, its own root) confines the runtime here; Keep's
        // Landlock and seccomp need a process with one thread, and runwasi's has several.
        confine: false,
        events: events(),
    })
}

/// What the container's stderr (containerd's log) shows of a run's events.
fn events() -> EventSink {
    EventSink::new(|event| match event {
        Event::Attested {
            steward,
            workload,
            tee,
            insecure_test_root,
            ..
        } => {
            eprintln!(
                "keep: attested by the Steward at {steward}: workload {workload} in TEE {tee}"
            );
            if insecure_test_root {
                eprintln!(
                    "keep: warning: the Steward accepted this Keep's evidence under a TEST root"
                );
            }
        }
        Event::ListenerBound { name, prot, addr } => {
            eprintln!("keep: listening {name} {prot} {addr}");
        }
        Event::SelfSignedCertificate { fingerprint } => eprintln!(
            "keep: warning: no [tls] cert and key configured: tls listeners present a fresh \
             self-signed certificate (SHA-256 {fingerprint})"
        ),
        Event::Unresponsive { timeout } => {
            eprintln!("keep: {}", Outcome::TimedOut(timeout));
            std::process::exit(i32::from(exit_code::TIMEOUT));
        }
        _ => {}
    })
}
