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
    /// Print the workload digest of a program and its configuration: the name attestation
    /// policies, certificates and verifiers use for what a Keep runs.
    #[command(long_about = DIGEST_LONG_ABOUT)]
    Digest {
        /// The program: a .wasm module or component, or .wat text.
        #[arg(value_name = "FILE")]
        program: PathBuf,
        /// The Keep.toml it runs with (the digest covers it).
        #[arg(short = 'c', long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Inspect and verify attestation evidence: AMD SEV-SNP reports, Intel TDX and SGX quotes.
    #[command(after_help = ATTEST_EXIT_HELP)]
    Attest {
        #[command(subcommand)]
        command: AttestCommand,
    },
    /// Describe this host: which TEE it is or has, and which backends Keep can use here.
    Platform {
        #[command(subcommand)]
        command: PlatformCommand,
    },
}

const DIGEST_LONG_ABOUT: &str = "\
Print the workload digest of a program and its configuration: the name attestation policies, \
certificates and verifiers use for what a Keep runs (sha256:<64 hex digits>).

It covers the program as WebAssembly binary (a .wat file and the .wasm it compiles to have the \
same digest) and the configuration's content (comments, formatting and key order do not \
matter), except what only locates things on one host: `steward`, `[[dirs]] host`, `[tls] cert` \
and `key`. CA files (`[tls] ca`, `client_ca`) count by their content. See docs/attestation.md.";

const ATTEST_EXIT_HELP: &str = "\
Exit status:
  0    the evidence verifies (and the policy, if any, accepts it)
  1    the evidence is rejected: malformed, not authentic, expired, or refused by the policy
  126  Keep could not do the job (unreadable file, invalid policy, bad arguments)";

#[derive(Debug, Subcommand)]
pub enum AttestCommand {
    /// Show what evidence states (its kind and fields) WITHOUT verifying it.
    Inspect {
        /// The evidence: an SEV-SNP report (binary or hex text) or a DCAP quote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify evidence to the vendor's root and print its claims; optionally judge them
    /// with a policy.
    #[command(long_about = VERIFY_LONG_ABOUT, after_help = ATTEST_EXIT_HELP)]
    Verify {
        /// The evidence: an SEV-SNP report (binary or hex text) or a DCAP quote.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Directory of endorsements: certificates (*.pem, *.crt, *.cer, *.der: the VCEK or
        /// VLEK and ASK/ASVK for SEV-SNP) and Intel collateral (tcb_info.json,
        /// qe_identity.json, tcb_signing_chain.pem, root_ca_crl.der, pck_crl.der,
        /// pck_chain.pem).
        #[arg(long, value_name = "DIR")]
        collateral: Option<PathBuf>,
        /// Attestation policy (TOML) the claims must satisfy; see docs/attestation.md.
        #[arg(long, value_name = "FILE")]
        policy: Option<PathBuf>,
        /// Verify as of this time (RFC 3339, e.g. 2024-06-01T00:00:00Z) instead of now.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<std::time::SystemTime>,
        /// The report data the evidence must carry (128 hex digits), for policies with
        /// `require_report_data`.
        #[arg(long, value_name = "HEX")]
        report_data: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

const VERIFY_LONG_ABOUT: &str = "\
Verify evidence to the vendor's root and print its claims; optionally judge them with a policy.

SEV-SNP reports are verified to AMD's built-in roots (Milan, Genoa, Turin) through the VCEK or \
VLEK found in --collateral, and the key's TCB must be the report's. DCAP quotes are verified to \
the Intel SGX Root CA through the PCK chain in the quote; with Intel collateral in --collateral \
the TCB status and advisories are evaluated too. Nothing is fetched from the network.";

#[derive(Debug, Subcommand)]
pub enum PlatformCommand {
    /// Show this host's TEE, its attestation interfaces, and which backends can run here
    /// (with the remedy for what is missing).
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_time(text: &str) -> Result<std::time::SystemTime, String> {
    humantime::parse_rfc3339_weak(text)
        .map_err(|e| format!("{e} (expected RFC 3339, e.g. 2024-06-01T00:00:00Z)"))
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
