//! Compiled code in containerd's content store.
//!
//! runwasi asks the shim to compile an image's Wasm layers once, stores what it returns in
//! containerd's content store (labelled for this shim's compiler) and hands it back in place
//! of the layer on later starts. The workload digest and the layer's digest are of the
//! program, not of native code, so what Keep stores carries both:
//!
//! ```text
//! "KEEPCW-C1" ‖ program length (u64, little endian) ‖ program ‖ wasmtime's artifact
//! ```
//!
//! At start the program is checked against the layer's digest as an original layer is, and the
//! artifact is used only if wasmtime accepts it for the run's engine.

use std::hash::Hash;

use anyhow::{Context as _, bail};
use containerd_shim_wasm::sandbox::context::WasmLayer;
use containerd_shim_wasm::shim::Compiler;
use keep_config::Config;
use keep_runtime::Program;

use crate::workload::{is_compiled, is_keep_toml};

const MAGIC: &[u8] = b"KEEPCW-C1";

/// A program and its compiled code, as stored.
pub struct Precompiled<'a> {
    /// The program's bytes.
    pub program: &'a [u8],
    /// wasmtime's serialized artifact.
    pub artifact: &'a [u8],
}

impl<'a> Precompiled<'a> {
    /// Reads a stored entry.
    pub fn parse(stored: &'a [u8]) -> anyhow::Result<Self> {
        let rest = stored
            .strip_prefix(MAGIC)
            .context("not compiled code stored by this shim")?;
        let (length, rest) = rest
            .split_first_chunk::<8>()
            .context("stored compiled code is truncated")?;
        let length = usize::try_from(u64::from_le_bytes(*length))
            .ok()
            .filter(|length| *length <= rest.len())
            .context("stored compiled code is truncated")?;
        let (program, artifact) = rest.split_at(length);
        Ok(Self { program, artifact })
    }

    /// The stored form of `program` and its `artifact`.
    fn encode(program: &[u8], artifact: &[u8]) -> Vec<u8> {
        let mut stored = Vec::with_capacity(MAGIC.len() + 8 + program.len() + artifact.len());
        stored.extend_from_slice(MAGIC);
        stored.extend_from_slice(&(program.len() as u64).to_le_bytes());
        stored.extend_from_slice(program);
        stored.extend_from_slice(artifact);
        stored
    }
}

/// Compiles an image's program as its run will (with the engine its Keep.toml's limits ask
/// for).
pub struct KeepCompiler;

impl Compiler for KeepCompiler {
    fn cache_key(&self) -> impl Hash {
        // The artifact's header names wasmtime's version and settings, and a refused one is
        // compiled again; the key only keeps apart entries of different shim builds.
        concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"))
    }

    async fn compile(&self, layers: &[WasmLayer]) -> anyhow::Result<Vec<Option<Vec<u8>>>> {
        let keep_toml = layers.iter().find(|layer| is_keep_toml(layer));
        // Only the limits matter here (they choose the engine); files the Keep.toml names
        // are read in the container, where its paths lead.
        let limits = match keep_toml {
            Some(layer) => {
                let text = std::str::from_utf8(&layer.layer)
                    .context("the image's Keep.toml is not UTF-8")?;
                Config::parse(text, std::path::Path::new("Keep.toml (image layer)"))?.limits
            }
            None => keep_config::Limits::default(),
        };
        // Compiling uses every core on threads of its own, off runwasi's runtime.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    layers
                        .iter()
                        .map(|layer| {
                            if !is_compiled(layer) {
                                // Stored too (with no code): runwasi compiles an image again
                                // on every start while any of its layers has no entry. An
                                // encrypted program is never compiled here: its code would
                                // be the program, in the clear, on the host's disk.
                                return Ok(Some(Precompiled::encode(&layer.layer, &[])));
                            }
                            let program = Program::from_bytes(
                                std::path::Path::new("program.wasm"),
                                layer.layer.clone(),
                            )?;
                            let artifact = keep_runtime::compile_for_run(&program, &limits)?;
                            Ok(Some(Precompiled::encode(&layer.layer, &artifact)))
                        })
                        .collect()
                })
                .join()
                .unwrap_or_else(|_| bail!("the compiler's thread panicked"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_reads_back_and_a_damaged_one_is_refused() {
        let stored = Precompiled::encode(b"\0asm", b"native");
        let read = Precompiled::parse(&stored).unwrap();
        assert_eq!(
            (read.program, read.artifact),
            (&b"\0asm"[..], &b"native"[..])
        );
        assert!(Precompiled::parse(&stored[..MAGIC.len() + 3]).is_err());
        let mut long = stored.clone();
        long[MAGIC.len()] = 0xff;
        assert!(Precompiled::parse(&long).is_err());
        assert!(Precompiled::parse(b"\0asm\x01\0\0\0").is_err());
    }
}
