//! The store data of one request's instance: WASI, `wasi:http` with outgoing requests
//! sent as `[network]` allows ([`crate::outgoing`]), and the instance's resource limits.

use std::path::PathBuf;

use anyhow::Context as _;
use keep_runtime::net::http::{Outgoing, OutgoingHooks};
use keep_runtime::secrets::ConfigValues;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Table elements an instance may grow a table to (as `keep run`'s default).
const TABLE_ELEMENTS: usize = 1_000_000;

/// The store data of one request's instance.
pub(crate) struct RequestHost {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutgoingHooks,
    limits: StoreLimits,
    /// Epoch ticks seen while the guest ran.
    ticks: u32,
    config: ConfigValues,
}

/// What each request's instance sees besides its request.
#[derive(Debug, Clone, Default)]
pub struct GuestContext {
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// Directories preopened read-only: the host path, and where the guest sees it (the
    /// in-memory directory of secret files).
    pub read_only_dirs: Vec<(PathBuf, String)>,
    /// `wasi:config/store` values (secrets with a config key), shared with every instance
    /// so that values replaced at renewal reach the next request.
    pub config: ConfigValues,
}

impl RequestHost {
    /// A guest that sees `guest`, whose memories may grow to `memory` bytes each, and
    /// whose outgoing requests go through `outgoing`.
    pub(crate) fn new(
        guest: &GuestContext,
        memory: Option<u64>,
        outgoing: Outgoing,
    ) -> anyhow::Result<Self> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&guest.env).inherit_stdout().inherit_stderr();
        for (host, path) in &guest.read_only_dirs {
            wasi.preopened_dir(host, path, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot preopen {path} for the guest"))?;
        }
        let mut limits = StoreLimitsBuilder::new().table_elements(TABLE_ELEMENTS);
        if let Some(memory) = memory {
            limits = limits.memory_size(usize::try_from(memory).unwrap_or(usize::MAX));
        }
        Ok(Self {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutgoingHooks::from(outgoing),
            limits: limits.build(),
            ticks: 0,
            config: guest.config.clone(),
        })
    }

    /// The `wasi:config/store` values of the guest.
    pub(crate) fn config(&mut self) -> &mut ConfigValues {
        &mut self.config
    }

    /// Counts an epoch tick seen by the running guest; returns how many it has seen.
    pub(crate) fn tick(&mut self) -> u32 {
        self.ticks = self.ticks.saturating_add(1);
        self.ticks
    }

    /// The limiter wasmtime consults when the instance grows a memory or a table.
    pub(crate) fn limits(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }
}

impl WasiView for RequestHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for RequestHost {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
