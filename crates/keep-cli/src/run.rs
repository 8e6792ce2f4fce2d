//! `keep run`: merges the config file with the command line and hands over to the runtime.

use anyhow::{Context as _, bail};
use keep_config::Config;
use keep_runtime::{IdentitySource, ModuleCache, RunSpec, StewardSource};

use crate::cli::{Backend, RunArgs};

pub fn run(args: RunArgs) -> anyhow::Result<u8> {
    let config = match &args.config {
        Some(path) => Some(Config::from_path(path)?),
        None => None,
    };
    let spec = merge(&args, config)?;
    if !args.quiet {
        match args.backend {
            Backend::Process => eprintln!(
                "keep: note: backend `process`: the host is protected from the guest, but the \
                 guest has no confidentiality from the host"
            ),
        }
    }
    if args.no_confine {
        eprintln!(
            "keep: warning: --no-confine: the runtime process is not confined; only the Wasm \
             sandbox protects the host"
        );
    }
    let outcome = keep_runtime::run(&spec)?;
    if !matches!(outcome, keep_runtime::Outcome::Exited(_)) {
        eprintln!("keep: {outcome}");
    }
    Ok(outcome.exit_code())
}

/// Where the Keep's TLS identity comes from. With a Steward, the certificate states the
/// workload digest, which covers the program and Keep.toml only: additions on the command
/// line would run something the certificate does not name, so they are refused.
fn identity_source(args: &RunArgs, config: &Config) -> anyhow::Result<IdentitySource> {
    let Some(steward) = &config.steward else {
        return Ok(match &config.tls.identity {
            Some(files) => IdentitySource::Files(files.clone()),
            None => IdentitySource::SelfSigned,
        });
    };
    if config.tls.identity.is_some() {
        bail!(
            "the configuration names a Steward ({}) and [tls] cert/key: the Steward issues the \
             Keep's certificate, remove one of them",
            steward.as_str()
        );
    }
    let additions = [
        (!args.args.is_empty(), "program arguments"),
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
            "{flag} on the command line: with a Steward, the workload is exactly the program and \
             Keep.toml (their digest is what the certificate states); put it in Keep.toml"
        );
    }
    let (program, config_path) = (
        keep_runtime::Program::read(&args.program)?,
        args.config.as_deref(),
    );
    Ok(IdentitySource::Steward(StewardSource {
        url: steward.as_str().to_owned(),
        names: config.tls.names.clone(),
        workload_digest: keep_runtime::workload_digest(&program, config_path)?.0,
    }))
}

/// The run specification: the config file first, then the command line on top.
fn merge(args: &RunArgs, config: Option<Config>) -> anyhow::Result<RunSpec> {
    let config_given = config.is_some();
    let config = config.unwrap_or_default();
    let identity = identity_source(args, &config)?;
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

    let cache = if args.no_cache {
        None
    } else {
        let dir = ModuleCache::default_dir();
        if dir.is_none() {
            tracing::warn!(
                "neither XDG_CACHE_HOME nor HOME is set: compiled modules are not cached"
            );
        }
        dir.map(ModuleCache::new)
    };
    let files = config_given.then(|| config.effective_files());
    Ok(RunSpec {
        program: args.program.clone(),
        args: config
            .args
            .into_iter()
            .chain(args.args.iter().cloned())
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
        identity,
        tls: config.tls,
        network: config.network,
        listen_print: args.listen_print,
        confine: !args.no_confine,
        notices: !args.quiet,
    })
}
