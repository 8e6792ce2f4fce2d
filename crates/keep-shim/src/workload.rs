//! What a container asks the shim to run: the program and its Keep.toml (from the image's Wasm
//! layers, or from files in its root filesystem), with the container's arguments and
//! environment.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use keep_config::Config;
use keep_runtime::Program;
use sha2::{Digest as _, Sha256};

use crate::precompiled::Precompiled;

/// The name a packaged program is reported under (its layer's title).
const PACKAGED_PROGRAM: &str = "program.wasm";

/// A container's program and configuration, read once.
pub struct Workload {
    /// The program: its bytes are those the workload digest is taken of and that run.
    pub program: WorkloadProgram,
    /// Its Keep.toml, if it has one.
    pub config: Option<Config>,
    /// The container's process arguments (`argv[0]` first), if any.
    pub args: Vec<String>,
    /// The container's environment (`NAME=value`).
    pub env: Vec<String>,
    /// The program's compiled code from containerd's content store, if it has some.
    pub precompiled: Option<Vec<u8>>,
}

impl Workload {
    /// Reads what `ctx` names. A package's layers carry the program and, under
    /// [`keep_oci::media::KEEP_TOML`], its Keep.toml, and under [`keep_oci::media::KEEP_CA`] the
    /// CA files that names; an image's root filesystem holds the
    /// program at `argv[0]` and, if there is one, `Keep.toml` beside it.
    pub fn read(ctx: &impl RuntimeContext) -> anyhow::Result<Self> {
        let entrypoint = ctx.entrypoint();
        let (program, config, precompiled) = match entrypoint.source {
            Source::Oci(layers) => from_layers(layers)?,
            Source::File(path) => {
                let (program, config) = from_file(&path)?;
                (WorkloadProgram::Plain(program), config, None)
            }
        };
        Ok(Self {
            program,
            config,
            precompiled,
            args: ctx.args().to_vec(),
            env: ctx.envs().to_vec(),
        })
    }
}

/// A container's program.
pub enum WorkloadProgram {
    /// In the clear.
    Plain(Program),
    /// Encrypted (a package made with `keep package --encrypt`): decrypted only with the key
    /// the Steward releases after attestation.
    Encrypted {
        /// The program layer.
        ciphertext: Vec<u8>,
        /// How it is encrypted, and the digest of the program it holds.
        encryption: keep_oci::Encryption,
    },
}

/// Whether `layer` is a program in the clear, which runwasi has the shim compile (not a
/// Keep.toml, a CA file or an encrypted program).
pub fn is_compiled(layer: &WasmLayer) -> bool {
    let media_type = layer.config.media_type().to_string();
    ![
        keep_oci::media::KEEP_TOML,
        keep_oci::media::KEEP_CA,
        keep_oci::media::WASM_ENCRYPTED,
    ]
    .contains(&media_type.as_str())
}

/// Whether `layer` is a Keep.toml.
pub fn is_keep_toml(layer: &WasmLayer) -> bool {
    layer.config.media_type().to_string() == keep_oci::media::KEEP_TOML
}

/// The program, Keep.toml and compiled code among an image's layers.
type FromLayers = (WorkloadProgram, Option<Config>, Option<Vec<u8>>);

fn from_layers(layers: &[WasmLayer]) -> anyhow::Result<FromLayers> {
    let mut program = None;
    let mut keep_toml = None;
    let mut ca_files = BTreeMap::new();
    let mut precompiled = None;
    let mut encryption = None;
    for layer in layers {
        let media_type = layer.config.media_type().to_string();
        let content = if layer.precompiled {
            let stored = Precompiled::parse(&layer.layer)?;
            if is_compiled(layer) {
                precompiled = Some(stored.artifact.to_vec());
            }
            stored.program
        } else {
            &layer.layer
        };
        // containerd's content store is on the host's disk: check what it hands over.
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(content)));
        if digest != layer.config.digest().to_string() {
            bail!(
                "the image's layer {} ({media_type}) does not match its digest (it is {digest})",
                layer.config.digest()
            );
        }
        if media_type == keep_oci::media::KEEP_CA {
            let title = layer
                .config
                .annotations()
                .as_ref()
                .and_then(|a| a.get(keep_oci::media::TITLE))
                .with_context(|| {
                    format!(
                        "the image's CA file layer {} has no title",
                        layer.config.digest()
                    )
                })?;
            ca_files.insert(title.clone(), content.to_vec());
            continue;
        }
        if media_type == keep_oci::media::WASM_ENCRYPTED {
            let annotations = layer.config.annotations().clone().unwrap_or_default();
            // The os only names the config's platform; the shim reads none.
            encryption = Some(keep_oci::Encryption::from_annotations(
                annotations.into_iter().collect(),
                "",
            )?);
        }
        let slot = if is_keep_toml(layer) {
            &mut keep_toml
        } else {
            &mut program
        };
        if slot.replace(content).is_some() {
            bail!("the image has two layers of type {media_type}: a Keep runs one program");
        }
    }
    let program = program.context("the image has no Wasm layer")?;
    let program = match encryption {
        Some(encryption) => WorkloadProgram::Encrypted {
            ciphertext: program.to_vec(),
            encryption,
        },
        None => WorkloadProgram::Plain(Program::from_bytes(
            Path::new(PACKAGED_PROGRAM),
            program.to_vec(),
        )?),
    };
    let config = keep_toml
        .map(|bytes| {
            let text = std::str::from_utf8(bytes).context("the image's Keep.toml is not UTF-8")?;
            // Its CA files are in the image; its other paths are the container's, from
            // its root.
            Ok::<_, anyhow::Error>(Config::from_packaged_text(
                text,
                Path::new("Keep.toml (image layer)"),
                Path::new("/"),
                &ca_files,
            )?)
        })
        .transpose()?;
    Ok((program, config, precompiled))
}

fn from_file(path: &Path) -> anyhow::Result<(Program, Option<Config>)> {
    if path.as_os_str().is_empty() {
        bail!("the container names no program: give the .wasm file as its first argument");
    }
    let program = Program::read(path)?;
    let beside = path.parent().unwrap_or(Path::new("/")).join("Keep.toml");
    let config = if beside.exists() {
        Some(Config::from_path(&beside)?)
    } else {
        None
    };
    Ok((program, config))
}
