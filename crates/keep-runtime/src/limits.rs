//! Enforcement of the memory limit, with a distinct error so the outcome can name it.

use std::fmt;

/// Raised (as a trap) when the guest asks for more linear memory than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimitExceeded {
    /// The size the guest asked for, in bytes.
    pub requested: u64,
    /// The limit, in bytes.
    pub limit: u64,
}

impl fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the guest asked for {} of linear memory; the limit is {}",
            keep_config::MemorySize(self.requested),
            keep_config::MemorySize(self.limit)
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// A wasmtime resource limiter for one store.
///
/// Growing past the limit traps instead of making `memory.grow` return -1, so that a
/// runaway guest is stopped with a message that says why, rather than failing later in
/// some unrelated way after `malloc` returned NULL.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestLimiter {
    /// Largest memory in bytes, if limited.
    pub memory: Option<u64>,
}

impl wasmtime::ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let desired = u64::try_from(desired).unwrap_or(u64::MAX);
        if let Some(limit) = self.memory
            && desired > limit
        {
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                requested: desired,
                limit,
            }));
        }
        Ok(maximum.is_none_or(|max| desired <= u64::try_from(max).unwrap_or(u64::MAX)))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}
