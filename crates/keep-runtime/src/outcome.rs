//! How a guest ended, and the exit status `keep` reports for it.
//!
//! Guests exit with 0–125 (WASI reserves the rest). Keep's own statuses are above that,
//! following the shell's `128 + signal` convention where one fits, so a script can tell a
//! guest's failure from Keep's.

use std::fmt;
use std::time::Duration;

use crate::limits::LimitExceeded;

/// Exit statuses of `keep` that are not the guest's own.
pub mod exit_code {
    /// Keep could not run the program: bad usage, file, configuration or module.
    pub const KEEP_ERROR: u8 = 126;
    /// The guest trapped (same as the wasmtime CLI: 128 + SIGABRT).
    pub const TRAP: u8 = 134;
    /// The guest exceeded the memory, table or output limit (128 + SIGKILL, as for the OOM
    /// killer).
    pub const LIMIT_EXCEEDED: u8 = 137;
    /// The guest ran past its timeout (128 + SIGALRM).
    pub const TIMEOUT: u8 = 142;
    /// The guest used all its fuel (128 + SIGXCPU, "CPU limit exceeded").
    pub const FUEL_EXHAUSTED: u8 = 152;
}

/// The end of a guest's run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest exited with this status (0–125).
    Exited(u8),
    /// The guest trapped; the text holds the reason and the Wasm backtrace.
    Trapped(String),
    /// The memory or table limit stopped the guest.
    LimitExceeded(LimitExceeded),
    /// The timeout stopped the guest.
    TimedOut(Duration),
    /// The guest ran out of fuel.
    FuelExhausted(u64),
}

impl Outcome {
    /// The exit status `keep` ends with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Exited(code) => *code,
            Self::Trapped(_) => exit_code::TRAP,
            Self::LimitExceeded(_) => exit_code::LIMIT_EXCEEDED,
            Self::TimedOut(_) => exit_code::TIMEOUT,
            Self::FuelExhausted(_) => exit_code::FUEL_EXHAUSTED,
        }
    }

    /// Classifies the error a guest's run ended with. `None` means the error is not the
    /// guest's doing (a failure of Keep or of the host) and should be reported as such.
    pub(crate) fn from_error(
        error: &wasmtime::Error,
        timeout: Option<Duration>,
        fuel: Option<u64>,
    ) -> Option<Self> {
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            // WASI only produces 0..126; anything else is clamped to a generic failure.
            return Some(Self::Exited(u8::try_from(exit.0).unwrap_or(1).min(125)));
        }
        if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
            return Some(Self::LimitExceeded(*limit));
        }
        let trap = error.downcast_ref::<wasmtime::Trap>()?;
        Some(match (trap, timeout, fuel) {
            (wasmtime::Trap::Interrupt, Some(timeout), _) => Self::TimedOut(timeout),
            (wasmtime::Trap::OutOfFuel, _, Some(fuel)) => Self::FuelExhausted(fuel),
            _ => Self::Trapped(match error.downcast_ref::<wasmtime::WasmBacktrace>() {
                Some(backtrace) => format!("{trap}\n{backtrace}"),
                None => trap.to_string(),
            }),
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exited(code) => write!(f, "the guest exited with status {code}"),
            Self::Trapped(report) => write!(f, "the guest trapped: {report}"),
            Self::LimitExceeded(limit) => write!(f, "{limit}"),
            Self::TimedOut(timeout) => write!(
                f,
                "timeout: the guest ran longer than {} and was stopped (--timeout or [limits] timeout)",
                humantime_like(*timeout)
            ),
            Self::FuelExhausted(fuel) => write!(
                f,
                "fuel exhausted: the guest used all of its {fuel} units of fuel (--fuel or [limits] fuel)"
            ),
        }
    }
}

fn humantime_like(duration: Duration) -> String {
    keep_config::Timeout(duration).to_string()
}
