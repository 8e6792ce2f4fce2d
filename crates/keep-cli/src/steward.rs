//! `keep steward serve` and `keep verify`: the Steward service and its relying-party check.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use keep_attest::TeeKind;
use keep_attest::certificate::{AttestedClaims, Expectations};
use keep_attest::{Endorsements, Policy};
use keep_steward::{CertificateAuthority, Metrics, Steward};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::cli::{ServeArgs, TeeArg, VerifyArgs};

/// Trust anchors from a PEM file given as `flag`.
fn extra_roots(flag: &str, path: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = path {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("{flag} {}: {e}", path.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("{flag} {}: not a usable CA", path.display()))?;
        }
    }
    Ok(roots)
}

/// Where fetched collateral is kept: beside the compiled-module cache (`keep cache clear`
/// removes only compiled modules).
fn collateral_cache(args: &ServeArgs) -> Option<std::path::PathBuf> {
    args.collateral_cache
        .clone()
        .or_else(|| keep_runtime::ModuleCache::default_dir().map(|dir| dir.join("collateral")))
}

/// Exit status when the certificate or an expectation fails.
const REJECTED: u8 = 1;

pub fn serve(args: ServeArgs) -> anyhow::Result<u8> {
    let ca = match (&args.ca_cert, &args.ca_key, &args.generate_ca) {
        (Some(cert), Some(key), _) => CertificateAuthority::load(cert, key)?,
        (_, _, Some(dir)) => CertificateAuthority::generate_or_load(dir)?,
        _ => anyhow::bail!("give --ca-cert and --ca-key, or --generate-ca DIR"),
    };
    let mut names = args.names.clone();
    if names.is_empty() {
        names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        if !args.listen.ip().is_unspecified() {
            names.push(args.listen.ip().to_string());
        }
    }
    let tls = ca.server_config(&names)?;
    let mut builder = Steward::builder()
        .insecure_accept_none(args.insecure_accept_none)
        .validity(args.validity);
    if let Some(path) = &args.policy {
        builder = builder.policy(Policy::load(path).map_err(|e| anyhow!("--policy: {e}"))?);
    }
    let mut endorsements = match &args.collateral {
        Some(dir) => Endorsements::from_dir(dir)
            .with_context(|| format!("--collateral {}", dir.display()))?,
        None => Endorsements::default(),
    };
    if let Some(dir) = &args.insecure_test_roots {
        let roots = keep_attest::TestRoots::from_dir(dir)
            .with_context(|| format!("--insecure-test-roots {}", dir.display()))?;
        endorsements.test_roots = Some(Arc::new(roots));
    }
    let test_roots = endorsements.test_roots.clone();
    builder = builder.endorsements(endorsements);
    if !args.offline {
        let kds = keep_steward::kds::Kds::new(
            &args.kds_url,
            extra_roots("--kds-ca", args.kds_ca.as_deref())?,
            collateral_cache(&args),
        )
        .context("--kds-url")?;
        let pcs = keep_steward::pcs::Pcs::new(
            &args.pcs_url,
            extra_roots("--pcs-ca", args.pcs_ca.as_deref())?,
            collateral_cache(&args),
        )
        .context("--pcs-url")?;
        builder = builder.kds(kds).pcs(pcs);
    }
    let mut watched = None;
    if let Some(path) = &args.secrets {
        let secrets =
            keep_steward::secrets::Secrets::load(path).map_err(|e| anyhow!("--secrets: {e}"))?;
        eprintln!(
            "keep steward: releasing secrets [{}] to Keeps as {} says",
            secrets.names().collect::<Vec<_>>().join(", "),
            path.display()
        );
        watched = Some(secrets.sources().clone());
        builder = builder.secrets(secrets);
    }
    if let Some(path) = &args.sealed_versions {
        let versions = keep_steward::versions::SealedVersions::load(path)
            .map_err(|e| anyhow!("--sealed-versions: {e}"))?;
        builder = builder.sealed_versions(versions);
    }
    let steward = Arc::new(builder.build(ca));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let address = listener.local_addr()?;
        // Before the address is announced: from then on a SIGHUP reloads, never kills.
        if let (Some(path), Some(sources)) = (args.secrets.clone(), watched) {
            reload_secrets_when_changed(path, sources, steward.clone())?;
        }
        eprintln!("keep steward: listening on https://{address}");
        if let Some(roots) = &test_roots {
            eprintln!(
                "keep steward: warning: --insecure-test-roots {}: evidence signed under the \
                 TEST roots {} is accepted; certificates issued on it state \
                 `insecure_test_root` and prove nothing about real hardware",
                roots.dir().display(),
                roots.describe()
            );
        }
        if args.insecure_accept_none {
            eprintln!(
                "keep steward: warning: --insecure-accept-none: Keeps without a TEE are \
                 certified; their certificates state `tee: none` and prove nothing about them"
            );
        }
        keep_steward::server::serve(
            listener,
            Arc::new(tls),
            steward,
            Arc::new(Metrics::default()),
        )
        .await
    })?;
    Ok(0)
}

/// How often the secrets' files are looked at. A change is acted on once the files have
/// stayed the same for one period, so that a value written in several steps is read whole.
const SECRETS_POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads the secrets file again on SIGHUP, and when it, a value file or a directory of
/// secrets changes: changed values, new secrets and revoked rules apply to the next release.
/// A file that no longer loads leaves the current secrets in place.
///
/// Changes are found by looking at the files' identity, size and times every
/// [`SECRETS_POLL`], not by inotify: a Kubernetes secret volume swaps a symbolic link above
/// the files, network filesystems send no events, and a few `stat` calls a second cost
/// nothing. The signals are taken on a thread of their own; both threads live as long as
/// the Steward.
fn reload_secrets_when_changed(
    path: std::path::PathBuf,
    mut sources: keep_steward::secrets::Sources,
    steward: Arc<Steward>,
) -> anyhow::Result<()> {
    let mut hangups = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("cannot watch for SIGHUP")?;
    let (reload, reloads) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sighup".into())
        .spawn(move || {
            for _ in hangups.forever() {
                if reload.send(()).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the SIGHUP thread")?;
    std::thread::Builder::new()
        .name("secrets-watch".into())
        .spawn(move || {
            let mut loaded = sources.state();
            let mut last_seen = loaded.clone();
            loop {
                let why = match reloads.recv_timeout(SECRETS_POLL) {
                    Ok(()) => "SIGHUP",
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                        let now = sources.state();
                        let settled = now != loaded && now == last_seen;
                        last_seen = now;
                        if !settled {
                            continue;
                        }
                        "a change to its files"
                    }
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                };
                match keep_steward::secrets::Secrets::load(&path) {
                    Ok(secrets) => {
                        eprintln!(
                            "keep steward: secrets reloaded from {} after {why}: [{}]",
                            path.display(),
                            secrets.names().collect::<Vec<_>>().join(", ")
                        );
                        sources = secrets.sources().clone();
                        steward.replace_secrets(secrets);
                    }
                    Err(e) => eprintln!(
                        "keep steward: warning: the secrets were not reloaded after {why} (the \
                         previous ones stay): {e}"
                    ),
                }
                loaded = sources.state();
                last_seen = loaded.clone();
            }
        })
        .context("cannot start the secrets watch thread")?;
    Ok(())
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<u8> {
    let anchors = CertificateDer::pem_file_iter(&args.ca)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("--ca {}: {e}", args.ca.display()))?;
    if anchors.is_empty() {
        anyhow::bail!("--ca {}: no PEM certificate in the file", args.ca.display());
    }
    let chain = peer_chain(&args.target)?;
    let claims =
        match keep_attest::certificate::verify_certificate(&chain, &anchors, SystemTime::now()) {
            Ok(claims) => claims,
            Err(e) => {
                eprintln!("keep: {}: {e}", args.target);
                return Ok(REJECTED);
            }
        };
    let expectations = Expectations {
        workload_digest: args.workload_digest.clone(),
        tee: args.tee.map(|tee| match tee {
            TeeArg::Snp => TeeKind::SevSnp,
            TeeArg::Tdx => TeeKind::Tdx,
            TeeArg::Sgx => TeeKind::Sgx,
            TeeArg::None => TeeKind::None,
        }),
        measurement: args.measurement.clone(),
        signers: args
            .signer
            .iter()
            .map(|path| {
                keep_attest::signer::SignerKey::load(path)
                    .map(|key| key.fingerprint())
                    .map_err(|e| anyhow!("--signer {e}"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if claims.insecure_test_root {
        eprintln!(
            "keep: {}: warning: the Keep's evidence chained to a TEST root \
             (steward --insecure-test-roots), not to AMD's or Intel's: it proves nothing \
             about real hardware",
            args.target
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&claims)?);
    } else {
        print!("{}", render(&args.target, &claims));
    }
    let unmet = expectations.unmet(&claims);
    for failure in &unmet {
        eprintln!("keep: {}: expectation failed: {failure}", args.target);
    }
    Ok(if unmet.is_empty() { 0 } else { REJECTED })
}

/// The chain from a PEM file, or from the TLS listener at HOST:PORT.
fn peer_chain(target: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    if Path::new(target).is_file() {
        return CertificateDer::pem_file_iter(target)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| anyhow!("{target}: {e}"));
    }
    let (host, port) = target
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .ok_or_else(|| anyhow!("{target}: neither a file nor HOST:PORT"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    keep_identity::peer::peer_certificates(host, port)
}

fn render(target: &str, claims: &AttestedClaims) -> String {
    let mut text = format!("{target}: certificate valid, issued by the Steward's CA\n");
    text += &format!("  tee:             {}\n", claims.tee);
    if claims.tee == TeeKind::None {
        text += "                   (no TEE: the host can read and change this Keep)\n";
    }
    text += &format!("  workload digest: {}\n", claims.workload_digest);
    for (name, value) in claims.measurements.iter().chain(&claims.signers) {
        text += &format!("  {name}: {value}\n");
    }
    text += &format!("  tcb status:      {}\n", claims.tcb_status);
    for (component, svn) in &claims.tcb {
        text += &format!("  tcb.{component}: {svn}\n");
    }
    if let Some(package) = &claims.package {
        text += &format!(
            "  package:         {}@{}\n",
            package.repository, package.manifest_digest
        );
        if package.signers.is_empty() {
            text += "  signed by:       none of the Steward's keys\n";
        }
        for signer in &package.signers {
            text += &format!("  signed by:       {signer}\n");
        }
    }
    text += &format!("  debug:           {}\n", claims.debug);
    if claims.insecure_test_root {
        text += "  WARNING: the evidence chained to a TEST root the Steward was told to trust \
                 (--insecure-test-roots), not to AMD's or Intel's: this proves nothing about \
                 real hardware\n";
    }
    if !claims.advisories.is_empty() {
        text += &format!("  advisories:      {}\n", claims.advisories.join(", "));
    }
    text
}
