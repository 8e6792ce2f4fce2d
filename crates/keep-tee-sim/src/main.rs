//! `keep-tee-sim`: a simulated confidential VM for Keep's tests. There is no TEE on the test
//! machines, so this plays the hardware, AMD and Intel: it makes test PKIs, serves a
//! configfs-tsm tree over FUSE whose SEV-SNP reports or TDX quotes those PKIs sign, and
//! serves their collateral under the KDS and PCS URL layouts. The `keep` binary reads the tree exactly as it reads the kernel's; a Steward
//! trusts the PKI only with `--insecure-test-roots`.

mod collateral;
mod configfs;
mod pki;
mod sev_guest;
mod snp;
mod tdx;

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::{Parser, Subcommand};

use crate::pki::{SnpPki, Tcb};

#[derive(Debug, Parser)]
#[command(name = "keep-tee-sim", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate test PKIs (SEV-SNP: ARK, ASK; Intel: root, PCK platform CA, PCK) in DIR:
    /// DIR/roots/ is what a Steward may be told to trust (--insecure-test-roots DIR/roots),
    /// DIR/keys/ is the simulator's.
    Pki {
        /// Where to write it.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The AMD product line the SEV-SNP PKI imitates.
        #[arg(long, default_value = "Genoa")]
        product: String,
    },
    /// Mount a configfs-tsm report directory at MOUNT and answer it as an SEV-SNP or TDX
    /// guest's kernel would, until standard input closes. Prints `ready` once mounted.
    Serve(ServeArgs),
    /// Serve the PKIs' collateral over HTTPS, until standard input closes: VCEKs, the chain
    /// and CRLs under AMD's KDS URL layout, and the TDX platform's TCB info, QE identity and
    /// CRLs under Intel's PCS layout (a PCCS's). Prints `listening on https://ADDR` once bound.
    Collateral(collateral::CollateralArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The PKI directory (from `keep-tee-sim pki`).
    #[arg(long, value_name = "DIR")]
    pki: PathBuf,
    /// Where to mount the report directory (an empty directory), normally
    /// ROOT/sys/kernel/config/tsm/report.
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// The TEE the guest is in.
    #[arg(long, value_enum, default_value = "snp")]
    tee: Tee,
    /// The simulated chip; its chip ID is derived from the name.
    #[arg(long, default_value = "chip-0")]
    chip: String,
    /// The platform TCB: BOOTLOADER,TEE,SNP,MICROCODE.
    #[arg(long, default_value = "9,0,23,72")]
    tcb: Tcb,
    /// The VM's launch measurement (48 bytes, hex): SEV-SNP MEASUREMENT, TDX MRTD.
    #[arg(long, value_name = "HEX", default_value = DEFAULT_MEASUREMENT)]
    measurement: String,
    /// HOST_DATA given at launch (32 bytes, hex).
    #[arg(long, value_name = "HEX")]
    host_data: Option<String>,
    /// The guest policy (hex); bit 17 is always set.
    #[arg(long, value_name = "HEX", default_value = "0x30000")]
    policy: String,
    /// Launch the guest with debugging allowed (SEV-SNP policy bit 19, TDX attribute bit 0).
    #[arg(long)]
    debug: bool,
    /// The host hands out no certificates (auxblob is empty): the verifier must fetch the
    /// VCEK from the KDS.
    #[arg(long)]
    no_certs: bool,
    /// The host hands out the VCEK of another chip (a hostile or misconfigured host).
    #[arg(long, value_name = "CHIP")]
    foreign_vcek: Option<String>,
    /// Play a hostile host that answers every request with a report it recorded earlier, for
    /// other report data (another key): a replay.
    #[arg(long)]
    replay: bool,
    /// Also write the chip's VCEK (DER) here.
    #[arg(long, value_name = "FILE")]
    vcek_out: Option<PathBuf>,
    /// Also mount, at DIR (an empty directory, normally ROOT/dev), a directory holding
    /// `sev-guest`, the SEV-SNP guest device, answering SNP_GET_DERIVED_KEY with keys bound to
    /// the chip and the launch.
    #[arg(long, value_name = "DIR")]
    sev_guest: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Tee {
    /// AMD SEV-SNP: provider `sev_guest`, attestation reports and a certificate table.
    Snp,
    /// Intel TDX: provider `tdx_guest`, version-4 quotes carrying their PCK chain.
    Tdx,
}

const DEFAULT_MEASUREMENT: &str = "5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de\
                                   5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de5ee5c0de";

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keep-tee-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pki { out, product } => {
            SnpPki::generate(&out, &product)?;
            tdx::generate_pki(&out)
        }
        Command::Serve(args) => serve(args),
        Command::Collateral(args) => collateral::run(args),
    }
}

fn hex_array<const N: usize>(text: &str, what: &str) -> anyhow::Result<[u8; N]> {
    let bytes = hex::decode(text.trim_start_matches("0x")).with_context(|| format!("--{what}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow!("--{what}: {} bytes, expected {N}", b.len()))
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let measurement = hex_array(&args.measurement, "measurement")?;
    if args.tee == Tee::Tdx {
        if args.no_certs
            || args.foreign_vcek.is_some()
            || args.replay
            || args.vcek_out.is_some()
            || args.sev_guest.is_some()
        {
            anyhow::bail!(
                "--no-certs, --foreign-vcek, --replay, --vcek-out and --sev-guest are SEV-SNP's"
            );
        }
        // TD_ATTRIBUTES, little-endian: SEPT_VE_DISABLE (bit 28) as Linux guests launch,
        // DEBUG (bit 0) when asked.
        let mut td_attributes = (1u64 << 28).to_le_bytes();
        if args.debug {
            td_attributes[0] |= 1;
        }
        let launch = tdx::Launch {
            mrtd: measurement,
            td_attributes,
        };
        return mount_until_stdin_closes(
            tdx::Platform::load(&args.pki, launch)?,
            &args.mount,
            None,
        );
    }
    let pki = SnpPki::load(&args.pki)?;
    let mut policy = u64::from_str_radix(args.policy.trim_start_matches("0x"), 16)
        .with_context(|| format!("--policy {}", args.policy))?;
    if args.debug {
        policy |= 1 << 19;
    }
    let launch = snp::Launch {
        measurement,
        host_data: match &args.host_data {
            Some(text) => hex_array(text, "host-data")?,
            None => [0; 32],
        },
        policy,
        tcb: args.tcb,
        chip_id: pki::chip_id(&args.chip),
    };
    let (ark, ask) = pki.chain_der()?;
    let holder = match &args.foreign_vcek {
        Some(other) => pki::chip_id(other),
        None => launch.chip_id,
    };
    let handed_out = der::Encode::to_der(&pki.vcek(&holder, args.tcb)?.certificate)?;
    let table = if args.no_certs {
        Vec::new()
    } else {
        vec![("VCEK", handed_out), ("ASK", ask), ("ARK", ark)]
    };
    let device = args
        .sev_guest
        .as_ref()
        .map(|dir| (sev_guest::SevGuest::new(launch.clone()), dir.as_path()));
    let mut firmware = snp::Firmware::new(launch, &pki, &table)?;
    if args.replay {
        firmware = firmware.replaying()?;
    }
    if let Some(path) = &args.vcek_out {
        std::fs::write(path, firmware.vcek_der()?).with_context(|| path.display().to_string())?;
    }
    mount_until_stdin_closes(firmware, &args.mount, device)
}

/// Serves `evidence` at `mount`, and the SEV-SNP guest device where asked, until standard
/// input closes (or the process that started us dies), then unmounts.
fn mount_until_stdin_closes(
    evidence: impl configfs::Evidence,
    mount: &std::path::Path,
    device: Option<(sev_guest::SevGuest, &std::path::Path)>,
) -> anyhow::Result<()> {
    let config = |subtype: &str| {
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("keep-tee-sim".into()),
            fuser::MountOption::Subtype(subtype.into()),
            fuser::MountOption::DefaultPermissions,
        ];
        config.acl = fuser::SessionACL::All;
        config
    };
    let session = fuser::spawn_mount(
        configfs::TsmReport::new(evidence),
        mount,
        &config("configfs-tsm"),
    )
    .with_context(|| format!("mounting FUSE at {}", mount.display()))?;
    let device_session = match device {
        Some((device, dir)) => Some((
            fuser::spawn_mount(device, dir, &config("sev-guest"))
                .with_context(|| format!("mounting FUSE at {}", dir.display()))?,
            dir,
        )),
        None => None,
    };
    println!("ready");
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    if let Some((device_session, dir)) = device_session {
        device_session
            .umount_and_join()
            .with_context(|| format!("unmounting {}", dir.display()))?;
    }
    session
        .umount_and_join()
        .with_context(|| format!("unmounting {}", mount.display()))
}
