//! The command line, as clap definitions. `--help` text is the user's manual: keep it exact.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keep_config::{DirGrant, Fuel, MemorySize, Timeout};

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0-125  the guest's own exit status
  126    Keep could not run the program (usage, file, configuration, module)
  134    the guest trapped (reason and Wasm backtrace on stderr)
  137    the guest exceeded the memory limit
  142    the guest ran past the timeout
  152    the guest ran out of fuel";

/// Keep runs WebAssembly (WASI) programs as Keeps: sandboxed from the host, and on TEE
/// backends protected from it.
#[derive(Debug, Parser)]
#[command(name = "keep", version, after_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a WASI program (preview-1 module, WASI 0.2 component, or .wat text).
    #[command(after_help = EXIT_STATUS_HELP, long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),
    /// Compile a program into the cache so that the next `keep run` of it starts warm.
    ///
    /// The cached code serves runs without --fuel and --timeout (those need instrumented
    /// code, compiled and cached on their first run).
    Compile {
        /// The program: a .wasm module or component, or .wat text.
        #[arg(value_name = "FILE")]
        program: PathBuf,
    },
    /// Inspect or clear the compiled-module cache ($XDG_CACHE_HOME/keep or ~/.cache/keep).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Show the cache directory, its number of entries and their size.
    Info,
    /// Delete every compiled module in the cache.
    Clear,
}

/// Where the Keep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// An ordinary process: the Wasm sandbox protects the host from the guest, but nothing
    /// protects the guest from the host (no confidentiality, no attestation).
    #[value(alias = "nil")]
    Process,
}

const RUN_LONG_ABOUT: &str = "\
Run a WASI program (preview-1 module, WASI 0.2 component, or .wat text).

The kind of program is detected from the file. Settings come from the config file given with \
--config (never picked up implicitly); command-line flags add to it (--dir, --env, ARGS) or \
override it (limits).

With the default `process` backend the host is protected from the guest by the Wasm sandbox, \
but the guest has NO confidentiality from the host: anyone who controls the host can read and \
change its memory.";

/// `keep run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Keep.toml (or Enarx.toml) with args, env, [[files]], [[dirs]], [limits], [tls] and
    /// [network].
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "wasmcfgfile",
        env = "KEEP_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Preopen a host directory: HOST[::GUEST][:ro]. Repeatable.
    #[arg(long = "dir", value_name = "HOST[::GUEST][:ro]")]
    pub dirs: Vec<DirGrant>,

    /// Set a guest environment variable; NAME alone passes the host's value. Repeatable.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub env: Vec<String>,

    /// Largest linear memory the guest may use, e.g. 256MiB.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<MemorySize>,

    /// Stop the guest after this wall-clock time, e.g. 30s, 5m, 250ms.
    #[arg(long, value_name = "DURATION")]
    pub timeout: Option<Timeout>,

    /// Stop the guest after it consumes this much fuel (about one unit per Wasm instruction).
    #[arg(long, value_name = "N")]
    pub fuel: Option<Fuel>,

    /// Print `keep: listening NAME tcp|tls ADDRESS` on stderr for each [[files]] listener
    /// once it is bound (useful with port = 0).
    #[arg(long)]
    pub listen_print: bool,

    /// Compile the program without reading or writing the compiled-module cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Where the Keep runs.
    #[arg(long, value_enum, default_value_t = Backend::Process)]
    pub backend: Backend,

    /// Do not print Keep's notices (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// The program: a .wasm module or component, or .wat text.
    #[arg(value_name = "FILE")]
    pub program: PathBuf,

    /// Arguments for the program (after the config file's `args`).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}
