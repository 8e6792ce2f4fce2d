//! Sealed directories (`[[dirs]] sealed = true`): each store opened with the key its
//! Steward released after attestation, or the key its TEE derived, or both; its versions
//! witnessed by that Steward; served to the guest as an ordinary preopened directory, and
//! committed when the guest ends.
//!
//! A preview-1 module's and a WASI 0.2 component's sealed directories are Keep's own
//! descriptors, served on the guest's thread from a [`SealedStore`] (by `p1::sealed` and
//! `p2::filesystem`). A WASI 0.3 component's are mounted through FUSE and preopened by
//! wasmtime-wasi, whose `wasi:filesystem` serves only host directories.

mod path;
mod served;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use keep_attest::collect::Provider;
use keep_attest::derived_key::{self, DerivedKeyError, Fields, KeyRequest, RootKey};
use keep_config::{DirGrant, HardwareKey, SealedKey};
use keep_identity::AttestedIdentity;
use keep_identity::steward::StewardSession;
use keep_sealed::mount::Mounted;
use keep_sealed::{FsError, Store, StoreKey, Witness};

use crate::p1::{Descriptor, SealedFd};
use crate::{Event, EventSink};
pub use served::{OpenRequest, READ_PIECE, SealedStore, WriteAt, now_ns};

/// The Steward, as the witness of a store's versions: asked over mTLS with the Keep's
/// current certificate, for the store sealed with `secret` (`None`: the workload's own
/// store), on a connection kept open.
struct StewardWitness {
    secret: Option<String>,
    session: Mutex<StewardSession>,
}

impl StewardWitness {
    fn ask(&self, id: &[u8; 16], advance: Option<u64>) -> Result<Option<u64>, String> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        keep_identity::steward::sealed_version(&mut session, self.secret.as_deref(), id, advance)
            .map_err(|e| e.to_string())
    }
}

impl Witness for StewardWitness {
    fn current(&self, id: &[u8; 16]) -> Result<Option<u64>, String> {
        self.ask(id, None)
    }

    fn advance(&self, id: &[u8; 16], version: u64) -> Result<(), String> {
        match self.ask(id, Some(version))? {
            Some(held) if held >= version => Ok(()),
            held => Err(format!(
                "the Steward holds version {held:?} after being told of version {version}"
            )),
        }
    }
}

/// The sealed directories of a run, opened.
#[derive(Default)]
pub struct SealedDirs {
    /// Those mounted (a WASI 0.3 component's), by guest path.
    mounted: Vec<(String, Mounted)>,
    /// Those Keep serves, by guest path.
    served: Vec<(String, Arc<SealedStore>)>,
}

impl SealedDirs {
    /// Opens every sealed directory of `dirs`, with the keys `attested` holds, to be served
    /// by Keep or (`mount`) mounted; failures the guest sees as `EIO` are reported to
    /// `events`.
    pub fn open(
        dirs: &[DirGrant],
        attested: Option<&AttestedIdentity>,
        events: &EventSink,
        mount: bool,
    ) -> anyhow::Result<Self> {
        let mut sealed = Self::default();
        for grant in dirs {
            let Some(key) = &grant.sealed else { continue };
            let guest = &grant.guest;
            let attested = attested.with_context(|| {
                format!(
                    "sealed directory {guest}: a Steward witnesses its versions (set `steward`)"
                )
            })?;
            let store_key = store_key(guest, key, attested)?;
            let witness = Arc::new(StewardWitness {
                secret: key.secret.clone(),
                session: Mutex::new(StewardSession::new(
                    attested.steward(),
                    attested.steward_client()?,
                )?),
            });
            let store = Store::open(&grant.host, guest, &store_key, witness)
                .with_context(|| format!("sealed directory {guest}"))?;
            let (events, dir) = (events.clone(), guest.clone());
            let report = Arc::new(move |error: &keep_sealed::SealedError| {
                events.report(Event::SealedFailure { dir: &dir, error });
            });
            if !mount {
                let served = SealedStore::new(store, report, grant.read_only);
                sealed.served.push((guest.clone(), Arc::new(served)));
                continue;
            }
            // Mounted for a moment on an empty directory of its own, then detached.
            let scratch = tempfile::Builder::new()
                .prefix("keep-sealed-")
                .tempdir()
                .context("a scratch directory to mount a sealed store on")?;
            let mounted = keep_sealed::mount::mount(store, scratch.path(), report, {
                let store_dir = grant.host.clone();
                Box::new(move || confine_serving_threads(store_dir))
            })
            .with_context(|| format!("sealed directory {guest}: mounting it"))?;
            sealed.mounted.push((guest.clone(), mounted));
        }
        Ok(sealed)
    }

    /// The sealed directories Keep serves among `dirs` (the guest's preopened
    /// directories): each one's place among them, guest path and store.
    fn served_among<'a>(
        &'a self,
        dirs: &'a [DirGrant],
    ) -> impl Iterator<Item = (usize, &'a String, &'a Arc<SealedStore>)> + 'a {
        dirs.iter()
            .enumerate()
            .filter(|(_, grant)| grant.sealed.is_some())
            .filter_map(|(position, grant)| {
                let (guest, store) = self
                    .served
                    .iter()
                    .find(|(guest, _)| *guest == grant.guest)?;
                Some((position, guest, store))
            })
    }

    /// The preopens of a module's sealed directories among `dirs`: at descriptor 3 and
    /// up, where `dirs` are preopened.
    pub fn preopens(&self, dirs: &[DirGrant]) -> Vec<(u32, Descriptor)> {
        self.served_among(dirs)
            .map(|(position, guest, store)| {
                let preopen = SealedFd::preopen(store.clone(), guest.clone());
                (3 + position as u32, Descriptor::Sealed(preopen))
            })
            .collect()
    }

    /// A component's sealed directories among `dirs`.
    pub fn component_preopens(&self, dirs: &[DirGrant]) -> Vec<crate::p2::SealedPreopen> {
        self.served_among(dirs)
            .map(|(position, guest, store)| crate::p2::SealedPreopen {
                position,
                guest: guest.clone(),
                store: store.clone(),
            })
            .collect()
    }

    /// `dirs` with each mounted sealed directory made a plain directory at its mount.
    pub fn grants(&self, dirs: &[DirGrant]) -> Vec<DirGrant> {
        dirs.iter()
            .map(|grant| {
                let mount = self
                    .mounted
                    .iter()
                    .find(|(guest, _)| grant.sealed.is_some() && *guest == grant.guest)
                    .and_then(|(_, mounted)| mounted.root_path());
                match mount {
                    Some(root) => DirGrant {
                        host: root,
                        sealed: None,
                        ..grant.clone()
                    },
                    None => grant.clone(),
                }
            })
            .collect()
    }

    /// Commits what the guest left unsynced and unmounts; the guest's descriptors must be
    /// closed.
    pub fn close(self) -> anyhow::Result<()> {
        let mut failed = Vec::new();
        for (guest, served) in self.served {
            if let Err(e) = served.lock().commit() {
                let error = match e {
                    FsError::Sealed(error) => error.to_string(),
                    FsError::Errno(errno) => errno.to_string(),
                };
                failed.push(format!(
                    "sealed directory {guest}: its last changes: {error}"
                ));
            }
        }
        for (guest, mounted) in self.mounted {
            if let Err(e) = mounted.close() {
                failed.push(format!("sealed directory {guest}: its last changes: {e}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            anyhow::bail!("{}", failed.join("; "))
        }
    }
}

/// The key of the sealed directory `guest`: the Steward secret's, the TEE's, or both mixed.
fn store_key(
    guest: &str,
    key: &SealedKey,
    attested: &AttestedIdentity,
) -> anyhow::Result<StoreKey> {
    let from_secret = match &key.secret {
        Some(name) => {
            let secret = attested
                .secrets()
                .iter()
                .find(|s| s.reference.name == *name)
                .with_context(|| {
                    format!(
                        "sealed directory {guest}: the Steward released no secret `{name}` (its key)"
                    )
                })?;
            Some(StoreKey::from_secret(&secret.value).with_context(|| {
                format!(
                    "sealed directory {guest}: secret `{name}` holds {} bytes; a store's key needs \
                     at least {}",
                    secret.value.len(),
                    StoreKey::MIN_SECRET
                )
            })?)
        }
        None => None,
    };
    let hardware = match key.hardware {
        Some(kind) => Some(
            hardware_key(kind, attested)
                .with_context(|| format!("sealed directory {guest}: hardware_key = \"{kind}\""))?,
        ),
        None => None,
    };
    match (from_secret, hardware) {
        (Some(secret), Some(hardware)) => Ok(secret.bound_to_hardware(&hardware)),
        (Some(secret), None) => Ok(secret),
        (None, Some(hardware)) => Ok(StoreKey::from_hardware(
            &hardware,
            attested.workload_digest(),
        )),
        (None, None) => anyhow::bail!("sealed directory {guest}: no `key` and no `hardware_key`"),
    }
}

/// The key the TEE derives for this VM.
fn hardware_key(
    kind: HardwareKey,
    attested: &AttestedIdentity,
) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    match kind {
        HardwareKey::SevSnp => {
            let platform = match attested.platform() {
                Some(platform) if platform.provider == Provider::SevGuest => platform,
                Some(_) => anyhow::bail!(
                    "this Keep runs in an Intel TDX guest, which derives no keys for its guest; \
                     an SEV-SNP key needs an AMD SEV-SNP guest"
                ),
                None => anyhow::bail!(
                    "this Keep runs on the process backend, which has no TEE to derive a key; \
                     run it with --backend cvm in an AMD SEV-SNP guest"
                ),
            };
            snp_key(&platform.sev_guest)
        }
    }
}

/// MSG_KEY_REQ from the chip's VCEK, mixing in the launch measurement and the guest policy,
/// at the VMPL this Keep runs at: the lowest one the firmware accepts (a VMPL below the
/// caller's is refused), so that the same VM always gets the same key.
fn snp_key(device: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<[u8; 32]>> {
    let mut vmpl = 0;
    loop {
        let request = KeyRequest {
            root: RootKey::Vcek,
            fields: Fields::MEASUREMENT.and(Fields::GUEST_POLICY),
            vmpl,
            guest_svn: 0,
            tcb_version: 0,
        };
        match derived_key::derive(device, &request) {
            Err(DerivedKeyError::Refused { .. }) if vmpl < 3 => vmpl += 1,
            result => return Ok(result?),
        }
    }
}

/// Confines the three threads that serve a sealed directory (they start before the runtime
/// confines itself): no file but the store's directory (where a compaction writes the new
/// log beside the old), sockets for the Steward.
fn confine_serving_threads(store_dir: std::path::PathBuf) {
    let grants = keep_confine::Grants {
        read_write_dirs: vec![store_dir],
        read_only_paths: crate::confinement::NAME_RESOLUTION
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        sockets: true,
        ..keep_confine::Grants::default()
    };
    for item in keep_confine::confine_helper(&grants, keep_sealed::mount::SERVING_THREADS) {
        if item.status == keep_confine::Status::Failed {
            tracing::warn!("sealed directory threads: {}: {}", item.name, item.detail);
        }
    }
}
