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
    ///
    /// `program` is the binary that ran: a guest fault in a WASI call is named by the import
    /// the faulting instruction calls.
    pub(crate) fn from_error(
        error: &wasmtime::Error,
        program: &[u8],
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
        if let Some(fault) = error.downcast_ref::<wiggle::GuestError>() {
            return Some(Self::Trapped(guest_fault(fault, error, program)));
        }
        if let Some(fault) = error.downcast_ref::<GuestFault>() {
            let mut report = format!(
                "invalid argument to `wasi_snapshot_preview1::{}`: {fault}",
                fault.call
            );
            if let Some(backtrace) = error.downcast_ref::<wasmtime::WasmBacktrace>() {
                report += &format!("\n{backtrace}");
            }
            return Some(Self::Trapped(report));
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

/// A preview-1 call that Keep serves itself (a socket or a standard stream of `[[files]]`)
/// was handed a pointer or length outside the guest's memory.
#[derive(Debug)]
pub(crate) struct GuestFault {
    /// The `wasi_snapshot_preview1` function.
    pub call: &'static str,
}

impl fmt::Display for GuestFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pointer or length outside the guest's memory")
    }
}

impl std::error::Error for GuestFault {}

/// The report of a guest that handed a WASI call a pointer outside its memory (or
/// misaligned): preview 1 says such a call traps. The call is named from the instruction
/// the innermost frame of the guest's own code stopped at (the preview-1 shim's frames, when
/// the call went through it, are skipped).
fn guest_fault(fault: &wiggle::GuestError, error: &wasmtime::Error, program: &[u8]) -> String {
    let backtrace = error.downcast_ref::<wasmtime::WasmBacktrace>();
    let call = backtrace
        .and_then(|b| {
            b.frames()
                .iter()
                .find(|frame| frame.module().name() != Some(crate::p1::SHIM_NAME))
        })
        .and_then(wasmtime::FrameInfo::module_offset)
        .and_then(|offset| called_import(program, offset));
    let call = match call {
        Some((module, name)) => format!("`{module}::{name}`"),
        None => "a WASI call".to_owned(),
    };
    let mut report = format!("invalid argument to {call}: {fault}");
    if let Some(backtrace) = backtrace {
        report += &format!("\n{backtrace}");
    }
    report
}

/// The import that the `call` instruction at `offset` of a core module calls, if it is one.
fn called_import(module: &[u8], offset: usize) -> Option<(String, String)> {
    let reader = wasmparser::BinaryReader::new(module.get(offset..)?, offset);
    let wasmparser::Operator::Call { function_index } =
        wasmparser::OperatorsReader::new(reader).read().ok()?
    else {
        return None;
    };
    let mut functions = 0;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let wasmparser::Payload::ImportSection(imports) = payload.ok()? else {
            continue;
        };
        for import in imports.into_imports() {
            let import = import.ok()?;
            if matches!(import.ty, wasmparser::TypeRef::Func(_)) {
                if functions == function_index {
                    return Some((import.module.to_owned(), import.name.to_owned()));
                }
                functions += 1;
            }
        }
        return None;
    }
    None
}

fn humantime_like(duration: Duration) -> String {
    keep_config::Timeout(duration).to_string()
}
