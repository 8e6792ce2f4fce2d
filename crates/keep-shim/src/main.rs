//! `containerd-shim-keep-v1`: the containerd shim (runtime `io.containerd.keep.v1`) that runs
//! Wasm images and Keep packages as Keeps.
//!
//! containerd starts it with the shim v2 protocol's arguments; runwasi's `containerd-shim-wasm`
//! handles the protocol and the container (youki's libcontainer: namespaces, cgroups, the
//! image's root filesystem), and calls [`sandbox::KeepSandbox`] inside the container to run
//! the Wasm program with Keep's runtime.

mod defaults;
mod precompiled;
mod sandbox;
mod workload;

use containerd_shim_wasm::shim::{Cli as _, Compiler, Shim, Version, version};

/// The shim, for runwasi.
struct KeepShim;

impl Shim for KeepShim {
    type Sandbox = sandbox::KeepSandbox;

    fn name() -> &'static str {
        "keep"
    }

    fn version() -> Version {
        version!()
    }

    fn supported_layers_types() -> &'static [&'static str] {
        sandbox::LAYER_TYPES
    }

    async fn compiler() -> Option<impl Compiler> {
        Some(precompiled::KeepCompiler)
    }
}

fn main() {
    // Read before runwasi forks its zygote, which later forks every container's process: the
    // defaults (and the CA files they name) are then in memory inside the container, where
    // the host's files are out of reach.
    if let Err(e) = defaults::load() {
        eprintln!("containerd-shim-keep-v1: error: {e:#}");
        std::process::exit(1);
    }
    KeepShim::run(None);
}
