//! Collecting evidence inside a confidential VM: Linux configfs-tsm
//! (`/sys/kernel/config/tsm/report`, Linux ≥ 6.7, SEV-SNP and TDX guests) and, for SEV-SNP
//! guests on older kernels, the `/dev/sev-guest` ioctl.
//!
//! The configfs-tsm protocol (kernel `Documentation/ABI/testing/configfs-tsm-report`):
//! create an entry directory, write the 64 bytes of report data to `inblob`, read the
//! evidence from `outblob` (and certificates from `auxblob` where the provider has them).
//! `generation` counts writes to the entry: if it is not exactly one more than before our
//! write when `outblob` has been read, another writer raced us and the evidence may answer
//! their request, so Keep tries again.
//!
//! # Report data
//!
//! [`report_data`] binds the Keep's public key and its workload: SHA-512 over
//! `"keep-report-data-v1\0"`, the length of the key's DER SubjectPublicKeyInfo as a
//! big-endian u32, that DER, and the 32-byte SHA-256 workload digest. SHA-512 fills the
//! 64 bytes that SEV-SNP, TDX and SGX all offer.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha512};

/// Where configfs-tsm reports live.
pub const DEFAULT_TSM_ROOT: &str = "/sys/kernel/config/tsm/report";

/// How many times a raced request is retried.
const ATTEMPTS: usize = 3;

/// The report data binding a Keep's key (DER SubjectPublicKeyInfo) and workload digest.
pub fn report_data(public_key_spki_der: &[u8], workload_digest: &[u8; 32]) -> [u8; 64] {
    let mut hasher = Sha512::new();
    hasher.update(b"keep-report-data-v1\0");
    hasher.update((public_key_spki_der.len() as u32).to_be_bytes());
    hasher.update(public_key_spki_der);
    hasher.update(workload_digest);
    hasher.finalize().into()
}

/// The TEE behind a configfs-tsm provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `sev_guest`: an SEV-SNP attestation report.
    SevGuest,
    /// `tdx_guest`: a TDX quote.
    TdxGuest,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Self::SevGuest => "sev_guest",
            Self::TdxGuest => "tdx_guest",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        match name {
            "sev_guest" => Some(Self::SevGuest),
            "tdx_guest" => Some(Self::TdxGuest),
            _ => None,
        }
    }
}

/// Evidence collected from the platform.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Who produced it.
    pub provider: Provider,
    /// The report (SEV-SNP) or quote (TDX).
    pub evidence: Vec<u8>,
    /// Certificates the provider returned (SEV-SNP: the VCEK chain, when the host
    /// supplies it), empty otherwise.
    pub auxblob: Vec<u8>,
}

/// Why collection failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Neither configfs-tsm nor `/dev/sev-guest` is there.
    #[error(
        "no attestation interface: {tsm} does not exist (Linux ≥ 6.7 in an SEV-SNP or TDX guest, \
         with configfs mounted at /sys/kernel/config) and /dev/sev-guest cannot be opened"
    )]
    Unavailable {
        /// The configfs-tsm root that was tried.
        tsm: String,
    },
    /// The platform is not the TEE the caller expected.
    #[error("configfs-tsm provider is `{found}`, but {expected} was expected")]
    ProviderMismatch {
        /// The provider file's content.
        found: String,
        /// The expected provider.
        expected: &'static str,
    },
    /// Other writers kept changing the entry.
    #[error("configfs-tsm entry {0} kept changing under concurrent writers ({ATTEMPTS} attempts)")]
    Raced(PathBuf),
    /// The kernel answered with evidence that does not carry our report data.
    #[error("the evidence from {0} does not carry the requested report data")]
    WrongReportData(&'static str),
    /// A file operation failed.
    // Not `source`: the message already carries it, and a chained source would repeat it.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        error: std::io::Error,
    },
    /// The `/dev/sev-guest` ioctl failed.
    #[error("/dev/sev-guest: {0}")]
    SevGuest(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CollectError + '_ {
    move |error| CollectError::Io {
        path: path.to_owned(),
        error,
    }
}

/// The file operations of configfs-tsm; a simulated kernel in the tests.
pub(crate) trait Configfs {
    /// Creates the entry directory (the kernel populates it).
    fn create(&self, entry: &Path) -> std::io::Result<()>;
    /// Writes an attribute.
    fn write(&self, file: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Reads an attribute.
    fn read(&self, file: &Path) -> std::io::Result<Vec<u8>>;
    /// Removes the entry.
    fn remove(&self, entry: &Path) -> std::io::Result<()>;
}

/// The real configfs.
struct Kernel;

impl Configfs for Kernel {
    fn create(&self, entry: &Path) -> std::io::Result<()> {
        std::fs::create_dir(entry)
    }
    fn write(&self, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
        std::fs::write(file, bytes)
    }
    fn read(&self, file: &Path) -> std::io::Result<Vec<u8>> {
        std::fs::read(file)
    }
    fn remove(&self, entry: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(entry)
    }
}

/// Collects evidence carrying `report_data`: configfs-tsm under `tsm_root` when it exists,
/// else `/dev/sev-guest`. With `expected`, a different provider is an error.
pub fn collect(
    tsm_root: &Path,
    report_data: &[u8; 64],
    expected: Option<Provider>,
) -> Result<Collected, CollectError> {
    if tsm_root.is_dir() {
        return collect_configfs(&Kernel, tsm_root, report_data, expected);
    }
    if expected.is_none_or(|p| p == Provider::SevGuest) && Path::new("/dev/sev-guest").exists() {
        return collect_sev_guest(report_data);
    }
    Err(CollectError::Unavailable {
        tsm: tsm_root.display().to_string(),
    })
}

pub(crate) fn collect_configfs(
    fs: &dyn Configfs,
    root: &Path,
    report_data: &[u8; 64],
    expected: Option<Provider>,
) -> Result<Collected, CollectError> {
    let entry = root.join(format!("keep-{}", std::process::id()));
    fs.create(&entry).map_err(io(&entry))?;
    let result = request(fs, &entry, report_data, expected);
    // The entry is ours; leaving it would leak kernel memory until reboot.
    let _ = fs.remove(&entry);
    result
}

fn request(
    fs: &dyn Configfs,
    entry: &Path,
    report_data: &[u8; 64],
    expected: Option<Provider>,
) -> Result<Collected, CollectError> {
    let file = |name: &str| entry.join(name);
    let read_text = |name: &str| -> Result<String, CollectError> {
        let path = file(name);
        let bytes = fs.read(&path).map_err(io(&path))?;
        Ok(String::from_utf8_lossy(&bytes).trim().to_owned())
    };
    let generation = || -> Result<u64, CollectError> {
        let text = read_text("generation")?;
        text.parse().map_err(|_| CollectError::Io {
            path: file("generation"),
            error: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("`{text}` is not a number"),
            ),
        })
    };
    let provider_name = read_text("provider")?;
    let provider = Provider::from_name(&provider_name);
    if let Some(expected) = expected
        && provider != Some(expected)
    {
        return Err(CollectError::ProviderMismatch {
            found: provider_name,
            expected: expected.name(),
        });
    }
    let Some(provider) = provider else {
        return Err(CollectError::ProviderMismatch {
            found: provider_name,
            expected: "sev_guest or tdx_guest",
        });
    };
    for _ in 0..ATTEMPTS {
        let before = generation()?;
        fs.write(&file("inblob"), report_data)
            .map_err(io(&file("inblob")))?;
        let evidence = fs.read(&file("outblob")).map_err(io(&file("outblob")))?;
        let auxblob = fs.read(&file("auxblob")).unwrap_or_default();
        if generation()? != before + 1 {
            continue;
        }
        if !carries(provider, &evidence, report_data) {
            return Err(CollectError::WrongReportData(provider.name()));
        }
        return Ok(Collected {
            provider,
            evidence,
            auxblob,
        });
    }
    Err(CollectError::Raced(entry.to_owned()))
}

/// Whether the evidence carries `report_data` where its format puts it.
fn carries(provider: Provider, evidence: &[u8], report_data: &[u8; 64]) -> bool {
    let range = match provider {
        // ATTESTATION_REPORT.REPORT_DATA
        Provider::SevGuest => 0x50..0x90,
        // Quote v4 header (48) + TD report: REPORT_DATA at 520 within it.
        Provider::TdxGuest => 48 + 520..48 + 584,
    };
    evidence.get(range).is_some_and(|data| data == report_data)
}

fn collect_sev_guest(report_data: &[u8; 64]) -> Result<Collected, CollectError> {
    let mut firmware = sev::firmware::guest::Firmware::open()
        .map_err(|e| CollectError::SevGuest(e.to_string()))?;
    let evidence = firmware
        .get_report(None, Some(*report_data), Some(0))
        .map_err(|e| CollectError::SevGuest(e.to_string()))?;
    if !carries(Provider::SevGuest, &evidence, report_data) {
        return Err(CollectError::WrongReportData("/dev/sev-guest"));
    }
    Ok(Collected {
        provider: Provider::SevGuest,
        evidence,
        auxblob: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    //! configfs-tsm against a simulated kernel: a real directory tree whose attribute
    //! writes are answered as the kernel does, returning a real SEV-SNP report.

    use std::cell::Cell;

    use super::*;

    /// A kernel that answers every `inblob` write with `outblob` and bumps `generation`
    /// by one, or by more while `racing_writers` is above zero (other writers in between).
    struct SimulatedKernel {
        provider: &'static str,
        outblob: Vec<u8>,
        racing_writers: Cell<u32>,
    }

    impl Configfs for SimulatedKernel {
        fn create(&self, entry: &Path) -> std::io::Result<()> {
            std::fs::create_dir(entry)?;
            std::fs::write(entry.join("provider"), format!("{}\n", self.provider))?;
            std::fs::write(entry.join("generation"), "0\n")
        }
        fn write(&self, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
            std::fs::write(file, bytes)?;
            let entry = file.parent().unwrap_or(Path::new("."));
            let generation: u64 = std::fs::read_to_string(entry.join("generation"))?
                .trim()
                .parse()
                .unwrap_or(0);
            let others = self.racing_writers.get();
            self.racing_writers.set(others.saturating_sub(1));
            let bump = 1 + u64::from(others.min(1));
            std::fs::write(entry.join("generation"), format!("{}\n", generation + bump))?;
            std::fs::write(entry.join("outblob"), &self.outblob)
        }
        fn read(&self, file: &Path) -> std::io::Result<Vec<u8>> {
            std::fs::read(file)
        }
        fn remove(&self, entry: &Path) -> std::io::Result<()> {
            std::fs::remove_dir_all(entry)
        }
    }

    fn vector_report() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/vectors/sev-snp/trustee/test-report.bin");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn kernel(provider: &'static str, racing_writers: u32) -> SimulatedKernel {
        SimulatedKernel {
            provider,
            outblob: vector_report(),
            racing_writers: Cell::new(racing_writers),
        }
    }

    fn data_of(report: &[u8]) -> [u8; 64] {
        report[0x50..0x90].try_into().unwrap()
    }

    #[test]
    fn round_trip_returns_the_report_and_removes_the_entry() {
        let root = tempfile::tempdir().unwrap();
        let kernel = kernel("sev_guest", 0);
        let data = data_of(&kernel.outblob);
        let collected =
            collect_configfs(&kernel, root.path(), &data, Some(Provider::SevGuest)).unwrap();
        assert_eq!(collected.provider, Provider::SevGuest);
        assert_eq!(collected.evidence, kernel.outblob);
        assert_eq!(
            std::fs::read_dir(root.path()).unwrap().count(),
            0,
            "entry left behind"
        );
        // The real report verifies as evidence.
        crate::snp::Report::from_bytes(&collected.evidence).unwrap();
    }

    #[test]
    fn a_generation_change_by_another_writer_is_retried() {
        let root = tempfile::tempdir().unwrap();
        let kernel = kernel("sev_guest", 1);
        let data = data_of(&kernel.outblob);
        collect_configfs(&kernel, root.path(), &data, None).unwrap();
        // Writers racing on every attempt: give up with a clear error.
        let kernel = SimulatedKernel {
            racing_writers: Cell::new(u32::MAX),
            ..kernel
        };
        let error = collect_configfs(&kernel, root.path(), &data, None).unwrap_err();
        assert!(matches!(error, CollectError::Raced(_)), "{error}");
    }

    #[test]
    fn a_provider_mismatch_and_foreign_report_data_are_errors() {
        let root = tempfile::tempdir().unwrap();
        let kernel = kernel("tdx_guest", 0);
        let data = data_of(&kernel.outblob);
        let error =
            collect_configfs(&kernel, root.path(), &data, Some(Provider::SevGuest)).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("provider is `tdx_guest`, but sev_guest was expected"),
            "{error}"
        );
        let kernel = SimulatedKernel {
            provider: "sev_guest",
            ..kernel
        };
        let error = collect_configfs(&kernel, root.path(), &[7; 64], None).unwrap_err();
        assert!(matches!(error, CollectError::WrongReportData(_)), "{error}");
    }

    #[test]
    fn report_data_binds_key_and_workload() {
        let a = report_data(b"key-a", &[1; 32]);
        assert_ne!(a, report_data(b"key-b", &[1; 32]));
        assert_ne!(a, report_data(b"key-a", &[2; 32]));
        // The length prefix keeps key and digest apart.
        assert_ne!(report_data(b"ab", &[0; 32]), report_data(b"a", &[0; 32]));
    }
}
