//! The command line, as clap definitions. `--help` text is the user's manual: keep it exact.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};
use keep_config::{DirGrant, Fuel, MemorySize, Timeout};

const EXIT_STATUS_HELP: &str = "\
Exit status:
  0-125  the guest's own exit status
  126    Keep could not run the program (usage, file, configuration, module)
  134    the guest trapped (reason and Wasm backtrace on stderr)
  137    the guest exceeded a limit (memory, table elements, output)
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

const SERVE_LONG_ABOUT: &str = "\
Serve a wasi:http component (one that exports `wasi:http/incoming-handler@0.2.x`, the \
`wasi:http/proxy` world that `wasmtime serve` runs, or `wasi:http/handler@0.3.x`, the WASI \
0.3 `wasi:http/service` world, detected with no flag) over HTTP/1.1 and HTTP/2 (negotiated \
by ALPN over TLS; with prior knowledge over plain HTTP). Every request gets a fresh instance \
of the component.

TLS by default. With `steward` in Keep.toml, the Keep attests before it listens and serves \
the certificate the Steward issues (which states the workload digest), renewed while \
connections stay open; otherwise the certificate and key of Keep.toml's [tls] cert and key. \
Plain HTTP only with --plain-http or [http] tls = false.

Keep.toml's [http] sets the address, client certificates (client_auth, client_ca), the \
concurrency limit and its queue (then 503), body and header limits, the header timeout and \
the drain timeout; [limits] memory, fuel and timeout apply to each request's instance. The \
guests see [env] and the secrets the Steward releases (variables, files, \
wasi:config/store). An access log line per request goes to stdout. SIGTERM or SIGINT stops accepting and lets requests in \
flight finish (up to [http] drain_timeout).

Outgoing requests from the component go only where [network] connect allows, verified with \
[tls] ca, presenting the Keep's certificate when asked.

[http] admin serves Prometheus metrics (GET /metrics) on an address of its own.";

const PACKAGE_LONG_ABOUT: &str = "\
Package a program and its Keep.toml as an OCI artifact, written as an OCI image layout \
directory (oci-layout, index.json, blobs/) that `keep push` and skopeo (oci:DIR:TAG) read.

The layout is the Wasm OCI artifact's: an image manifest whose config is \
application/vnd.wasm.config.v0+json and whose program is an application/wasm layer, so that \
other Wasm tooling can pull it; Keep.toml is a layer of its own, \
application/vnd.keep.config.v1+toml, and so is each CA file it names \
(application/vnd.keep.ca.v1+pem), so that the package's digest and signature cover every \
trust anchor. The same program and Keep.toml always make the same package (same manifest \
digest; not with --encrypt, whose keys are fresh each time), and its workload digest is `keep digest`'s of the two.

With --encrypt, the program layer is encrypted (ocicrypt's format, \
application/wasm+encrypted): the registry and the host see only ciphertext, and only a Keep \
its Steward certified gets the key (`[package] key` in Keep.toml). See docs/oci.md.

Prints the manifest digest and the workload digest.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a WASI program (preview-1 module, WASI 0.2 or 0.3 component, or .wat text).
    #[command(after_help = EXIT_STATUS_HELP, long_about = RUN_LONG_ABOUT)]
    Run(RunArgs),
    /// Serve a wasi:http component (WASI 0.2 or 0.3) over HTTP/1.1 and HTTP/2.
    #[command(long_about = SERVE_LONG_ABOUT)]
    Serve(HttpServeArgs),
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
    /// Package a program and its Keep.toml as an OCI artifact (an OCI image layout
    /// directory): the Wasm OCI artifact layout, with Keep.toml as a layer of its own.
    #[command(long_about = PACKAGE_LONG_ABOUT)]
    Package(crate::oci::PackageArgs),
    /// Push a program (with -c, its Keep.toml) or a package to an OCI registry.
    Push(crate::oci::PushArgs),
    /// Pull a package from an OCI registry into the local store (`keep run oci://...` then
    /// needs no network).
    Pull(crate::oci::PullArgs),
    /// Sign a package in a registry with a cosign key (cosign's signature format, attached
    /// as `sha256-DIGEST.sig`), for `keep run --verify-key` and cosign or skopeo to check.
    Sign(crate::oci::SignArgs),
    /// Make a signing key pair in cosign's format (PREFIX.key, encrypted; PREFIX.pub).
    GenerateKeyPair(crate::oci::GenerateKeyPairArgs),
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
    /// Run the Steward: the attestation service that certifies Keeps.
    Steward {
        #[command(subcommand)]
        command: StewardCommand,
    },
    /// Check a Keep's certificate: that it chains to the Steward's CA, what it states (TEE,
    /// measurements, workload digest, TCB), and that this is what you expect.
    #[command(long_about = KEEP_VERIFY_LONG_ABOUT, after_help = KEEP_VERIFY_EXIT_HELP)]
    Verify(VerifyArgs),
}

#[derive(Debug, Subcommand)]
pub enum StewardCommand {
    /// Serve HTTPS: POST /v1/attest (a PKCS#10 request with evidence in, a certificate chain
    /// out), GET /healthz, GET /metrics.
    #[command(long_about = STEWARD_SERVE_LONG_ABOUT)]
    Serve(ServeArgs),
}

const STEWARD_SERVE_LONG_ABOUT: &str = "\
Serve HTTPS: POST /v1/attest (a PKCS#10 request with evidence in, a certificate chain out), \
GET /healthz, GET /metrics (Prometheus).

For each request the Steward checks the request's signature, verifies the evidence to the \
vendor's root with the certificates it carries, --collateral, and what it fetches (SEV-SNP \
VCEKs and CRLs from AMD's KDS, Intel TCB collateral from the PCS; cached, and nothing with \
--offline), checks that the evidence's report data binds the request's key and workload digest, and applies the policy: allowed TEEs, measurements, minimum TCB, \
debug, workload digests and the names each workload may have. It then issues a short-lived \
certificate whose id-pe-cmw extension (1.3.6.1.5.5.7.1.35) states the TEE, measurements, TCB \
status and workload digest. Every decision is logged with its reason (KEEP_LOG, default \
info).

Without --policy, SEV-SNP, TDX and SGX evidence is accepted with the default rules (no debug, \
TCB not revoked), for any workload and under no name. Evidence of kind `none` (Keeps on the \
process backend, which have no TEE) proves nothing and is refused unless \
--insecure-accept-none is given.

The Steward's own HTTPS certificate is issued at start by its CA, for --name; Keeps trust the \
Steward by listing the CA certificate in [tls] ca. See docs/steward.md.";

/// `keep steward serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub listen: std::net::SocketAddr,
    /// The CA certificate (PEM) that signs Keeps' certificates.
    #[arg(
        long,
        value_name = "FILE",
        requires = "ca_key",
        conflicts_with = "generate_ca"
    )]
    pub ca_cert: Option<PathBuf>,
    /// The CA's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Use the CA in DIR (ca.pem, ca-key.pem), generating it first when DIR has none. An
    /// existing CA is never overwritten.
    #[arg(long, value_name = "DIR", required_unless_present = "ca_cert")]
    pub generate_ca: Option<PathBuf>,
    /// Attestation policy (TOML); see docs/attestation.md and docs/steward.md.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
    /// Directory of collateral used for every request: certificates, AMD CRLs, Intel TCB
    /// collateral (as for `keep attest verify --collateral`).
    #[arg(long, value_name = "DIR")]
    pub collateral: Option<PathBuf>,
    /// Where SEV-SNP VCEKs that neither a request nor --collateral carries are fetched: AMD's
    /// Key Distribution Service, or a mirror with its layout (`/vcek/v1/PRODUCT/HWID?...`).
    #[arg(long, value_name = "URL", default_value = keep_steward::kds::DEFAULT_URL)]
    pub kds_url: String,
    /// Extra trust anchors (PEM) for the KDS's TLS certificate (a private mirror).
    #[arg(long, value_name = "FILE")]
    pub kds_ca: Option<PathBuf>,
    /// Where Intel TCB collateral (TCB info, QE identity, CRLs) for quotes is fetched when
    /// --collateral has none: Intel's PCS, or a PCCS (`/sgx/certification/v4/...` layout).
    #[arg(long, value_name = "URL", default_value = keep_steward::pcs::DEFAULT_URL)]
    pub pcs_url: String,
    /// Extra trust anchors (PEM) for the PCS's or PCCS's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub pcs_ca: Option<PathBuf>,
    /// Where fetched collateral is kept across restarts (default:
    /// $XDG_CACHE_HOME/keep/collateral or ~/.cache/keep/collateral).
    #[arg(long, value_name = "DIR")]
    pub collateral_cache: Option<PathBuf>,
    /// Never fetch collateral (neither VCEKs from the KDS nor Intel collateral from the
    /// PCS): a request whose VCEK is missing is refused, naming what is missing and where it
    /// is served; a quote without --collateral is verified without TCB evaluation.
    #[arg(long)]
    pub offline: bool,
    /// Secrets to release to attested Keeps (TOML: `[[secret]]` name and file or env,
    /// `[[directory]]`, `[[release]]` rules of who gets which; see docs/secrets.md). Keeps ask
    /// for them at POST /v1/secrets over mTLS with the certificate this Steward issued them.
    /// A change to the file or to a value file, or SIGHUP, reloads it (changed values, new
    /// secrets, revoked rules).
    #[arg(long, value_name = "FILE")]
    pub secrets: Option<PathBuf>,
    /// Witness the versions of sealed stores (`[[dirs]] sealed = true`) in FILE (a journal
    /// of JSON lines, created when missing, each version synced before it is acknowledged):
    /// a Keep opening a store older than the version recorded here refuses it. Keeps read
    /// and advance versions at POST /v1/sealed over mTLS: for stores whose key secret is
    /// released to them, and for their own workload's stores keyed by their TEE alone
    /// (`hardware_key`, which needs no --secrets). Keep FILE where Keeps' hosts cannot write
    /// it.
    #[arg(long, value_name = "FILE")]
    pub sealed_versions: Option<PathBuf>,
    /// Accept evidence of kind `none` from Keeps without a TEE. It proves nothing about the
    /// Keep: for development only.
    #[arg(long)]
    pub insecure_accept_none: bool,
    /// Also trust the test roots in DIR (snp-ark.pem and snp-ask.pem, intel-root.pem), as
    /// made by a simulated TEE (`keep-tee-sim pki`). Certificates issued on evidence that
    /// chains to them say so and prove nothing about real hardware: for tests only.
    #[arg(long, value_name = "DIR")]
    pub insecure_test_roots: Option<PathBuf>,
    /// Lifetime of issued certificates, e.g. 8h, 30m, 90s.
    #[arg(long, value_name = "DURATION", default_value = "8h", value_parser = humantime::parse_duration)]
    pub validity: std::time::Duration,
    /// DNS name or IP address on the Steward's own HTTPS certificate. Repeatable; default:
    /// localhost, 127.0.0.1, ::1 and the --listen address.
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
}

const KEEP_VERIFY_LONG_ABOUT: &str = "\
Check a Keep's certificate, as a relying party: connect to HOST:PORT (or read a PEM file), \
verify that the certificate chains to the Steward's CA and is valid now, and print what it \
states: the TEE, the measurements, the TCB status and the workload digest (compare with \
`keep digest`). Expectations given with --workload-digest and --tee must hold.

A certificate of TEE `none` comes from a Keep on the process backend: the host can read and \
change that Keep.";

const KEEP_VERIFY_EXIT_HELP: &str = "\
Exit status:
  0    the certificate is valid and every expectation holds
  1    the certificate is invalid, or an expectation fails
  126  Keep could not do the job (unreachable host, unreadable file, bad arguments)";

/// `keep verify`
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The Steward's CA certificate(s), PEM.
    #[arg(long, value_name = "FILE")]
    pub ca: PathBuf,
    /// The workload digest the Keep must run (`sha256:<hex>`, as `keep digest` prints).
    #[arg(long, value_name = "DIGEST")]
    pub workload_digest: Option<String>,
    /// The TEE the Keep must run in.
    #[arg(long, value_enum, value_name = "TEE")]
    pub tee: Option<TeeArg>,
    /// The launch measurement the Keep's VM or enclave must have (hex): SEV-SNP
    /// `measurement`, TDX `mrtd`, SGX `mrenclave`. See docs/cvm.md for computing it.
    #[arg(long, value_name = "HEX")]
    pub measurement: Option<String>,
    /// A cosign public key (PEM) that must have signed the Keep's package: the certificate
    /// must state it among the package's signers (which the Steward checked). Repeatable:
    /// any one of the keys will do.
    #[arg(long, value_name = "FILE")]
    pub signer: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// HOST:PORT of a Keep's TLS listener, or a PEM file with its certificate chain.
    #[arg(value_name = "HOST:PORT|FILE")]
    pub target: String,
}

/// A TEE kind on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TeeArg {
    /// AMD SEV-SNP.
    #[value(alias = "sev-snp")]
    Snp,
    /// Intel TDX.
    Tdx,
    /// Intel SGX.
    Sgx,
    /// No TEE (the process backend).
    None,
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
    /// Show the cache directory, its number of entries and their size, and the package
    /// store's (`keep pull`, `keep run oci://`).
    Info,
    /// Delete every compiled module in the cache (pulled packages stay: remove the package
    /// store's directory to drop them).
    Clear,
}

/// Where the Keep runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// `cvm` inside an AMD SEV-SNP or Intel TDX guest with an attestation interface,
    /// `process` elsewhere.
    Auto,
    /// An ordinary process: the Wasm sandbox protects the host from the guest, but nothing
    /// protects the guest from the host (no confidentiality, evidence `none`).
    #[value(alias = "nil")]
    Process,
    /// Inside a confidential VM (AMD SEV-SNP, Intel TDX): the hardware protects the VM's
    /// memory, the Keep's included, from the host; evidence from configfs-tsm (or
    /// /dev/sev-guest). Compiled code is not cached (the disk belongs to the host).
    Cvm,
}

const RUN_LONG_ABOUT: &str = "\
Run a WASI program (preview-1 module, WASI 0.2 or 0.3 component, or .wat text).

The kind of program is detected from the file; a WASI 0.3 component (wasi:cli@0.3) runs with \
the component model's async features, which other programs do not get. Keep's options go before FILE: everything after \
FILE is the program's own arguments, passed unread (`keep run python.wasm -c 'print(1)'`), as \
with `wasmtime run`. Settings come from the config file given with --config (never picked up \
implicitly); command-line flags add to it (--dir, --env, ARGS) or override it (limits).

The program, the config file and the CA files it names are read once: what runs, what is \
cached and what a Steward certifies come from the same bytes.

The backend (--backend, default `auto`) is `cvm` inside an AMD SEV-SNP or Intel TDX guest with \
an attestation interface and `process` elsewhere; a start-up line says which and why. On both, \
the host is protected from the guest by the Wasm sandbox and, before the guest's first \
instruction, by confinement of the runtime process itself: no-new-privs, Landlock (only the \
preopened directories stay reachable), a seccomp allow-list (no exec, no new processes, \
sockets only when [network] or a Steward needs them), no core dumps, and no capabilities when \
run as root. A start-up line says which are active; `keep platform info` says what this host \
offers.

On `process` the guest has NO confidentiality from the host: anyone who controls the host can \
read and change its memory, and its evidence is `none`. On `cvm` the hardware protects the \
VM's memory from the host, the Keep attests with the platform's evidence, and compiled code is \
not cached (the disk belongs to the host).";

/// `keep run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Keep.toml (or Enarx.toml) with `args`, `env`, `[[files]]`, `[[dirs]]`, `[limits]`,
    /// `[tls]` and `[network]`.
    #[arg(
        short = 'c',
        long = "config",
        visible_alias = "wasmcfgfile",
        env = "KEEP_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Preopen a host directory: `HOST[::GUEST][:ro]`. Repeatable.
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

    /// Stop the guest once it has written this much to stdout and stderr together, e.g.
    /// 100MiB; the write that crosses the limit is cut at it.
    #[arg(long, value_name = "SIZE")]
    pub max_output: Option<MemorySize>,

    /// Let the guest write at most this much per second to stdout and stderr together, e.g.
    /// 1MiB; a faster guest waits in its writes (nothing is dropped).
    #[arg(long, value_name = "SIZE")]
    pub max_output_rate: Option<MemorySize>,

    /// Print `keep: listening NAME tcp|tls ADDRESS` on stderr for each `[[files]]` listener
    /// once it is bound (useful with port = 0).
    #[arg(long)]
    pub listen_print: bool,

    /// Compile the program without reading or writing the compiled-module cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Where the Keep runs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,

    /// Do not confine the runtime process (no Landlock, seccomp, no-new-privs, capability
    /// drop). Only the Wasm sandbox then protects the host: for debugging.
    #[arg(long)]
    pub no_confine: bool,

    /// Do not print Keep's notices (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// The program's `argv[0]` (default: FILE as given). Multi-call programs (busybox-style
    /// tools, one binary for all LLVM tools) choose what to be from it.
    #[arg(long, value_name = "NAME")]
    pub argv0: Option<String>,

    /// How to reach the registry of an `oci://` program.
    #[command(flatten)]
    pub registry: crate::oci::RegistryArgs,

    /// Attesting before fetching an `oci://` program.
    #[command(flatten)]
    pub fetch: crate::oci::FetchArgs,

    /// The keys an `oci://` program must be signed by.
    #[command(flatten)]
    pub signatures: crate::oci::SignatureArgs,

    /// The program (a .wasm module or component, .wat text, or a package
    /// `oci://HOST/REPOSITORY[:TAG|@DIGEST]`), then its arguments (after the config file's
    /// `args`). Everything after FILE belongs to the program and is never
    /// read by Keep, whatever it looks like (`-c`, `--help`, `--`): put Keep's options
    /// before FILE.
    #[arg(
        value_name = "FILE [ARGS]",
        required = true,
        trailing_var_arg = true,
        num_args = 1..
    )]
    pub program_and_args: Vec<OsString>,
}

impl RunArgs {
    /// The program file (the first of [`Self::program_and_args`]).
    pub fn program(&self) -> &Path {
        // clap guarantees at least one value (`required`, `num_args = 1..`).
        Path::new(self.program_and_args.first().map_or(OsStr::new(""), |p| p))
    }

    /// The program's arguments, which WASI passes as UTF-8 strings.
    pub fn program_args(&self) -> anyhow::Result<Vec<String>> {
        self.program_and_args
            .iter()
            .enumerate()
            .skip(1)
            .map(|(index, arg)| {
                arg.to_str().map(str::to_owned).ok_or_else(|| {
                    anyhow::anyhow!(
                        "argument {index} of the program ({}) is not valid UTF-8; WASI \
                         passes arguments as UTF-8 text",
                        arg.to_string_lossy()
                    )
                })
            })
            .collect()
    }
}

/// `keep serve`.
#[derive(Debug, Args)]
pub struct HttpServeArgs {
    /// The address to listen on, instead of `[http]` addr and port (default 127.0.0.1:8080;
    /// port 0: any free port; the one chosen is printed).
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: Option<std::net::SocketAddr>,
    /// Serve plain HTTP: nothing protects the traffic, and clients cannot tell what answers.
    #[arg(long)]
    pub plain_http: bool,
    /// Keep.toml: `[http]`, `[limits]`, `[env]`, `[tls]`, `[network]`, `steward` and
    /// `[[secrets]]`.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the Keep runs.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Compile the component without reading or writing the compiled-module cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not confine the runtime process (no Landlock, seccomp, no-new-privs, capability
    /// drop). Only the Wasm sandbox then protects the host: for debugging.
    #[arg(long)]
    pub no_confine: bool,
    /// Print neither Keep's notices nor the access log (errors and warnings still are).
    #[arg(short, long)]
    pub quiet: bool,
    /// The wasi:http component.
    #[arg(value_name = "FILE")]
    pub program: PathBuf,
}
