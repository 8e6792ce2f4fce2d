//! `keep`: runs WebAssembly programs as Keeps.

mod attest;
mod cli;
mod oci;
mod run;
mod serve;
mod steward;

use std::process::ExitCode;

use clap::Parser as _;
use keep_runtime::{ModuleCache, exit_code};

use crate::cli::{CacheCommand, Cli, Command, StewardCommand};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are not errors.
            let code = if e.use_stderr() {
                exit_code::KEEP_ERROR
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // The Steward logs every decision (info); elsewhere only warnings show by default.
    init_logging(if matches!(cli.command, Command::Steward { .. }) {
        "info"
    } else {
        "warn"
    });
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("keep: error: {e:#}");
            ExitCode::from(exit_code::KEEP_ERROR)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::serve(args),
        Command::Package(args) => oci::package(args),
        Command::Push(args) => oci::push(args),
        Command::Pull(args) => oci::pull(args),
        Command::Sign(args) => oci::sign(args),
        Command::GenerateKeyPair(args) => oci::generate_key_pair(args),
        Command::Compile { program } => {
            let cache = default_cache()?;
            let program = keep_runtime::Program::read(&program)?;
            keep_runtime::precompile(&program, &cache)?;
            println!(
                "compiled {} `{}` into {}",
                program.kind.as_str(),
                program.path.display(),
                cache.dir().display()
            );
            Ok(0)
        }
        Command::Digest { program, config } => {
            let config = config
                .map(|path| keep_config::Config::from_path(&path))
                .transpose()?;
            let program = keep_runtime::Program::read(&program)?;
            println!(
                "{}",
                keep_runtime::workload_digest(&program, config.as_ref())
            );
            Ok(0)
        }
        Command::Attest { command } => attest::attest(command),
        Command::Platform { command } => attest::platform(command),
        Command::Steward {
            command: StewardCommand::Serve(args),
        } => steward::serve(args),
        Command::Verify(args) => steward::verify(args),
        Command::Cache { command } => {
            let cache = default_cache()?;
            match command {
                CacheCommand::Info => {
                    let stats = cache.stats()?;
                    println!("directory: {}", stats.dir.display());
                    println!("entries:   {}", stats.entries);
                    println!("size:      {}", keep_config::MemorySize(stats.bytes));
                    let packages = keep_oci::Store::new(cache.dir().join("packages"));
                    let (blobs, bytes) = packages.stats()?;
                    println!(
                        "packages:  {blobs} blobs, {} in {}",
                        keep_config::MemorySize(bytes),
                        packages.dir().display()
                    );
                }
                CacheCommand::Clear => {
                    let removed = cache.clear()?;
                    println!(
                        "removed {removed} entr{} from {}",
                        if removed == 1 { "y" } else { "ies" },
                        cache.dir().display()
                    );
                }
            }
            Ok(0)
        }
    }
}

fn default_cache() -> anyhow::Result<ModuleCache> {
    ModuleCache::default_dir()
        .map(ModuleCache::new)
        .ok_or_else(|| anyhow::anyhow!("no cache directory: set XDG_CACHE_HOME or HOME"))
}

/// Keep's own diagnostics go to stderr, filtered by `KEEP_LOG` (default: `default`).
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEEP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
}
