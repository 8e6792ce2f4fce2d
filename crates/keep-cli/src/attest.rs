//! `keep attest` and `keep platform`: thin wrappers over keep-attest.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use keep_attest::{Claims, Endorsements, Policy};

use crate::cli::{AttestCommand, PlatformCommand};

/// Exit status of rejected evidence.
const REJECTED: u8 = 1;

/// Overrides `/` where `keep platform info` and `keep run --backend` look for the TEE's
/// interfaces (tests, and containers that mount the host's /dev, /sys and /proc elsewhere).
const PLATFORM_ROOT_VAR: &str = "KEEP_PLATFORM_ROOT";

/// The root under which the TEE's interfaces are looked for.
pub fn platform_root() -> PathBuf {
    std::env::var_os(PLATFORM_ROOT_VAR).map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

pub fn attest(command: AttestCommand) -> anyhow::Result<u8> {
    match command {
        AttestCommand::Inspect { file, json } => {
            let bytes = read(&file)?;
            match keep_attest::inspect(&bytes) {
                Ok((kind, claims)) => {
                    if json {
                        println!("{}", claims.to_json());
                    } else {
                        println!("{}: {} (NOT verified)", file.display(), kind.describe());
                        print!("{}", render(&claims));
                    }
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("keep: {}: {e}", file.display());
                    Ok(REJECTED)
                }
            }
        }
        AttestCommand::Verify {
            file,
            collateral,
            policy,
            at,
            report_data,
            json,
        } => {
            let bytes = read(&file)?;
            let policy = policy
                .map(|path| Policy::load(&path).map_err(|e| anyhow!("{e}")))
                .transpose()?;
            let expected = report_data
                .map(|hex_text| {
                    hex::decode(hex_text.trim())
                        .ok()
                        .filter(|bytes| bytes.len() == 64)
                        .ok_or_else(|| anyhow!("--report-data: expected 128 hex digits"))
                })
                .transpose()?;
            let endorsements = match &collateral {
                Some(dir) => Endorsements::from_dir(dir)
                    .with_context(|| format!("--collateral {}", dir.display()))?,
                None => Endorsements::default(),
            };
            let claims = match keep_attest::verify(
                &bytes,
                &endorsements,
                at.unwrap_or_else(SystemTime::now),
            ) {
                Ok(claims) => claims,
                Err(e) => {
                    let hint = match (&e, &collateral) {
                        (keep_attest::Error::MissingCollateral(_), None) => {
                            " (put it in a directory given with --collateral DIR)"
                        }
                        _ => "",
                    };
                    eprintln!("keep: {}: rejected: {e}{hint}", file.display());
                    return Ok(REJECTED);
                }
            };
            let verdict = policy
                .as_ref()
                .map(|p| p.evaluate(&claims, expected.as_deref()));
            if json {
                println!("{}", claims.to_json());
            } else {
                println!("{}: verified", file.display());
                print!("{}", render(&claims));
            }
            match verdict {
                Some(Err(rejection)) => {
                    eprintln!("keep: {}: {rejection}", file.display());
                    Ok(REJECTED)
                }
                Some(Ok(())) => {
                    eprintln!("keep: {}: accepted by the policy", file.display());
                    Ok(0)
                }
                None => Ok(0),
            }
        }
    }
}

pub fn platform(command: PlatformCommand) -> anyhow::Result<u8> {
    let PlatformCommand::Info { json } = command;
    let platform = keep_attest::platform::detect(&platform_root());
    // What the `process` backend's confinement can use on this kernel.
    let confinement = keep_confine::probe();
    if json {
        let mut value = serde_json::to_value(&platform)?;
        value["auto"] = platform.auto_backend().into();
        value["confinement"] = serde_json::to_value(&confinement.items)?;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("tee:        {}", platform.tee);
    println!(
        "interfaces: {}",
        if platform.interfaces.is_empty() {
            "none".to_owned()
        } else {
            platform.interfaces.join(", ")
        }
    );
    println!("backends:");
    for backend in &platform.backends {
        println!(
            "  {:<8} {:<10} {}",
            backend.name,
            if backend.usable {
                "usable"
            } else {
                "not usable"
            },
            backend.note
        );
    }
    println!("auto picks: {}", platform.auto_backend());
    println!("confinement of the process backend:");
    print!("{confinement}");
    Ok(0)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Claims as aligned `name: value` lines.
fn render(claims: &Claims) -> String {
    let mut lines = vec![
        ("tee".to_owned(), claims.tee.to_string()),
        ("debug".to_owned(), claims.debug.to_string()),
        ("tcb_status".to_owned(), claims.tcb_status.to_string()),
    ];
    lines.extend(
        claims
            .measurements
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    lines.extend(claims.signers.iter().map(|(k, v)| (k.clone(), v.clone())));
    lines.push(("report_data".to_owned(), claims.report_data.clone()));
    if let Some(host_data) = &claims.host_data {
        lines.push(("host_data".to_owned(), host_data.clone()));
    }
    lines.push((
        "tcb".to_owned(),
        claims
            .tcb
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
    ));
    if !claims.advisories.is_empty() {
        lines.push(("advisories".to_owned(), claims.advisories.join(", ")));
    }
    lines.extend(claims.details.iter().map(|(k, v)| (k.clone(), v.clone())));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    lines
        .into_iter()
        .map(|(k, v)| format!("  {:<width$} {v}\n", format!("{k}:")))
        .collect()
}
