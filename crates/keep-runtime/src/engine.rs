//! The wasmtime engine a Keep runs on, configured from what the run needs.

use std::hash::{Hash, Hasher};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

/// Engine settings that change generated code, and so the compiled-module cache key.
///
/// Fuel metering and epoch interruption cost a little on every loop iteration; they are
/// switched on only when a run asks for fuel or a timeout, so that an unlimited run is as
/// fast as plain wasmtime.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Instrument code to count fuel (`--fuel`).
    pub fuel: bool,
    /// Instrument code to check the epoch (`--timeout`).
    pub epoch_interruption: bool,
    /// Allocate instances from a pool reserved at start, for this many component instances
    /// at once (`keep serve`, which instantiates for every request): wasmtime's pooling
    /// allocator, which reuses memory slots instead of mapping fresh memory each time.
    pub pooled_instances: Option<u32>,
    /// The component model's async features, which WASI 0.3 components need (and only they
    /// get: the features are new, and what a program does not need stays off).
    pub component_model_async: bool,
}

/// Per pooled component instance, the core instances, memories and tables reserved: a C
/// program wrapped with the preview-1 adapter has a handful of each (the program, the
/// adapter, and the shims between them).
const POOL_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const POOL_MEMORIES_PER_COMPONENT: u32 = 4;
const POOL_TABLES_PER_COMPONENT: u32 = 16;

impl EngineOptions {
    /// Builds an engine with these options on top of wasmtime's defaults.
    pub fn build(&self) -> anyhow::Result<wasmtime::Engine> {
        let mut config = wasmtime::Config::new();
        config
            .consume_fuel(self.fuel)
            .epoch_interruption(self.epoch_interruption)
            // In parallel on the pool of the `Compiler` compiling (see `compile.rs`).
            .parallel_compilation(true);
        // wasmtime turns concurrency (and with it the async component-model features, and
        // per-store state for them) on by default once compiled in: only 0.3 programs get it.
        config.concurrency_support(self.component_model_async);
        if self.component_model_async {
            config
                .wasm_component_model_async(true)
                .wasm_component_model_async_stackful(true)
                .wasm_component_model_more_async_builtins(true);
        }
        if let Some(instances) = self.pooled_instances {
            let mut pool = wasmtime::PoolingAllocationConfig::new();
            pool.total_component_instances(instances)
                .total_core_instances(instances.saturating_mul(POOL_CORE_INSTANCES_PER_COMPONENT))
                .total_memories(instances.saturating_mul(POOL_MEMORIES_PER_COMPONENT))
                .total_tables(instances.saturating_mul(POOL_TABLES_PER_COMPONENT))
                .total_stacks(instances)
                .table_elements(
                    usize::try_from(crate::limits::DEFAULT_TABLE_ELEMENTS).unwrap_or(usize::MAX),
                );
            config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        }
        wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot configure the WebAssembly engine")
    }
}

/// A digest of everything about `engine` that makes compiled code incompatible: wasmtime's
/// version, the target and every code-generation setting.
pub fn fingerprint(engine: &wasmtime::Engine) -> [u8; 32] {
    let mut hasher = Sha256Hasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().into()
}

/// Feeds `Hash` output into SHA-256 so the fingerprint is stable across processes
/// (std's `DefaultHasher` is randomly keyed).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_depends_on_options() {
        let plain = EngineOptions::default().build().unwrap();
        let again = EngineOptions::default().build().unwrap();
        let fuel = EngineOptions {
            fuel: true,
            ..Default::default()
        }
        .build()
        .unwrap();
        assert_eq!(fingerprint(&plain), fingerprint(&again));
        assert_ne!(fingerprint(&plain), fingerprint(&fuel));
    }
}
