//! Enforcement of the guest's resource limits, with a distinct error so the outcome can name
//! the limit.

use std::fmt;

/// Default most elements a guest's tables may have in all (`[limits] table_elements`).
pub const DEFAULT_TABLE_ELEMENTS: u64 = 1_000_000;
/// Most instances, tables and memories one store may create (a component has one instance
/// per module it embeds; core modules have one).
pub const MAX_INSTANCES: usize = 1000;

/// What a limit bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Bytes of one linear memory.
    Memory,
    /// Elements of one table.
    TableElements,
    /// Bytes written to the host's stdout and stderr, together.
    Output,
}

/// Raised (as a trap) when the guest asks for more than a limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitExceeded {
    /// Which limit.
    pub resource: Resource,
    /// What the guest asked for (bytes or elements; for output, all it tried to write).
    pub requested: u64,
    /// The limit.
    pub limit: u64,
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.resource {
            Resource::Memory => write!(
                f,
                "memory limit exceeded: the guest asked for {} of linear memory; the limit is \
                 {} (raise it with --max-memory or [limits] memory)",
                keep_config::MemorySize(self.requested),
                keep_config::MemorySize(self.limit)
            ),
            Resource::TableElements => write!(
                f,
                "table limit exceeded: the guest asked for a table of {} elements; the limit \
                 is {} (raise it with [limits] table_elements)",
                self.requested, self.limit
            ),
            Resource::Output => write!(
                f,
                "output limit exceeded: the guest wrote {} to stdout and stderr (output is cut \
                 at the limit); the limit is {} (raise it with --max-output or [limits] output)",
                keep_config::MemorySize(self.requested),
                keep_config::MemorySize(self.limit)
            ),
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// A wasmtime resource limiter for one store.
///
/// Growing past a limit traps instead of making `memory.grow` or `table.grow` return -1, so
/// that a runaway guest is stopped with a message that says why, rather than failing later in
/// some unrelated way after `malloc` returned NULL.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimiter {
    /// Largest memory in bytes, if limited.
    pub memory: Option<u64>,
    /// Most elements of one table.
    pub table_elements: u64,
}

impl Default for GuestLimiter {
    fn default() -> Self {
        Self {
            memory: None,
            table_elements: DEFAULT_TABLE_ELEMENTS,
        }
    }
}

fn exceeded(resource: Resource, desired: usize, limit: u64) -> wasmtime::Result<bool> {
    Err(wasmtime::Error::new(LimitExceeded {
        resource,
        requested: u64::try_from(desired).unwrap_or(u64::MAX),
        limit,
    }))
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = self.memory
            && u64::try_from(desired).unwrap_or(u64::MAX) > limit
        {
            return exceeded(Resource::Memory, desired, limit);
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if u64::try_from(desired).unwrap_or(u64::MAX) > self.table_elements {
            return exceeded(Resource::TableElements, desired, self.table_elements);
        }
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}
