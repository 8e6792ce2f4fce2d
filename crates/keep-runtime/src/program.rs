//! Reading a program file and telling what it is: a core module, a component, WebAssembly
//! text, or something that is not WebAssembly at all (named, so the user knows why).

use std::path::{Path, PathBuf};

/// What kind of WebAssembly a program is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProgramKind {
    /// A core module (WASI preview 1).
    Module,
    /// A component (WASI 0.2 `wasi:cli/command`).
    Component,
}

impl ProgramKind {
    /// A short name for messages and cache keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Module => "module",
            Self::Component => "component",
        }
    }
}

/// A program read from disk, as WebAssembly binary.
#[derive(Debug, Clone)]
pub struct Program {
    /// Where it came from.
    pub path: PathBuf,
    /// Module or component.
    pub kind: ProgramKind,
    /// The binary encoding (text input has been converted).
    pub bytes: Vec<u8>,
}

/// Why a file cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The file cannot be read.
    #[error("cannot read `{path}`")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A native executable was given instead of WebAssembly.
    #[error(
        "`{path}` is a native {format} executable, not WebAssembly; compile the program for \
         WASI (for example `clang --target=wasm32-wasi` or `cargo build --target wasm32-wasip1`)"
    )]
    NativeExecutable {
        /// The file.
        path: PathBuf,
        /// ELF, PE or Mach-O.
        format: &'static str,
    },
    /// A WebAssembly binary header with a version Keep does not know.
    #[error("`{path}` has an unsupported WebAssembly version or layer ({version:02x?})")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Bytes 4..8 of the file.
        version: Vec<u8>,
    },
    /// Text that is not valid WebAssembly text format.
    #[error("`{path}` is neither a WebAssembly binary nor valid WebAssembly text:\n{message}")]
    InvalidText {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Bytes that are not WebAssembly in any form.
    #[error(
        "`{path}` is not WebAssembly (it starts with bytes {start:02x?}; a module starts with 00 61 73 6d)"
    )]
    NotWasm {
        /// The file.
        path: PathBuf,
        /// The first bytes, for the message.
        start: Vec<u8>,
    },
}

impl Program {
    /// Reads `path` and classifies it.
    pub fn read(path: &Path) -> Result<Self, ProgramError> {
        let bytes = std::fs::read(path).map_err(|source| ProgramError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(path, bytes)
    }

    /// Classifies `bytes` that came from `path`.
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, ProgramError> {
        let path = path.to_owned();
        if bytes.starts_with(b"\0asm") {
            let kind = if wasmparser::Parser::is_core_wasm(&bytes) {
                ProgramKind::Module
            } else if wasmparser::Parser::is_component(&bytes) {
                ProgramKind::Component
            } else {
                let version = bytes.get(4..8).unwrap_or(&bytes[4..]).to_vec();
                return Err(ProgramError::UnsupportedVersion { path, version });
            };
            return Ok(Self { path, kind, bytes });
        }
        if let Some(format) = native_format(&bytes) {
            return Err(ProgramError::NativeExecutable { path, format });
        }
        let Ok(text) = std::str::from_utf8(&bytes) else {
            let start = bytes.iter().take(8).copied().collect();
            return Err(ProgramError::NotWasm { path, start });
        };
        let mut wat_error = match wat::parse_str(text) {
            Ok(binary) => return Self::from_bytes(&path, binary),
            Err(e) => e,
        };
        wat_error.set_path(&path);
        Err(ProgramError::InvalidText {
            path,
            message: wat_error.to_string(),
        })
    }
}

impl Program {
    /// Whether the program is a WASI 0.3 component: one whose own imports or exports name a
    /// `wasi:` interface at version 0.3 (which needs the component model's async features).
    /// Only the top level counts: nested modules and components name their own things.
    pub fn is_wasi_p3(&self) -> bool {
        if self.kind != ProgramKind::Component {
            return false;
        }
        let is_p3 = |name: &str| name.starts_with("wasi:") && name.contains("@0.3");
        let mut depth = 0usize;
        for payload in wasmparser::Parser::new(0).parse_all(&self.bytes) {
            // A malformed component is not a 0.3 one: compiling it reports what is wrong.
            let Ok(payload) = payload else {
                return false;
            };
            match payload {
                wasmparser::Payload::Version { .. } => depth += 1,
                wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
                wasmparser::Payload::ComponentImportSection(imports)
                    if depth == 1
                        && imports
                            .clone()
                            .into_iter()
                            .flatten()
                            .any(|import| is_p3(import.name.name)) =>
                {
                    return true;
                }
                wasmparser::Payload::ComponentExportSection(exports)
                    if depth == 1
                        && exports
                            .clone()
                            .into_iter()
                            .flatten()
                            .any(|export| is_p3(export.name.name)) =>
                {
                    return true;
                }
                _ => {}
            }
        }
        false
    }
}

/// Recognises the executable formats people most often pass by mistake.
fn native_format(bytes: &[u8]) -> Option<&'static str> {
    const MACHO_MAGICS: [[u8; 4]; 4] = [
        [0xfe, 0xed, 0xfa, 0xce],
        [0xfe, 0xed, 0xfa, 0xcf],
        [0xce, 0xfa, 0xed, 0xfe],
        [0xcf, 0xfa, 0xed, 0xfe],
    ];
    if bytes.starts_with(b"\x7fELF") {
        Some("ELF")
    } else if bytes.starts_with(b"MZ") {
        Some("PE (Windows)")
    } else if MACHO_MAGICS.iter().any(|m| bytes.starts_with(m)) {
        Some("Mach-O")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasi_0_3_is_told_by_the_components_own_imports_and_exports() {
        let program =
            |text: &str| Program::from_bytes(Path::new("x.wat"), text.as_bytes().to_vec()).unwrap();
        assert!(program(r#"(component (import "wasi:cli/stdout@0.3.0" (instance)))"#).is_wasi_p3());
        assert!(
            !program(r#"(component (import "wasi:cli/stdout@0.2.6" (instance)))"#).is_wasi_p3()
        );
        assert!(!program("(module)").is_wasi_p3());
        // A nested component's imports are its own business.
        assert!(
            !program(r#"(component (component (import "wasi:cli/stdout@0.3.0" (instance))))"#)
                .is_wasi_p3()
        );
    }

    fn classify(bytes: &[u8]) -> Result<ProgramKind, ProgramError> {
        Program::from_bytes(Path::new("x"), bytes.to_vec()).map(|p| p.kind)
    }

    #[test]
    fn kinds_are_detected() {
        assert_eq!(classify(b"\0asm\x01\0\0\0").unwrap(), ProgramKind::Module);
        assert_eq!(
            classify(b"\0asm\x0d\0\x01\0").unwrap(),
            ProgramKind::Component
        );
        assert_eq!(classify(b"(module)").unwrap(), ProgramKind::Module);
        assert_eq!(classify(b"(component)").unwrap(), ProgramKind::Component);
    }

    #[test]
    fn non_wasm_is_named() {
        assert!(matches!(
            classify(b"\x7fELF\x02\x01\x01"),
            Err(ProgramError::NativeExecutable { format: "ELF", .. })
        ));
        assert!(matches!(
            classify(b"\0asm\x02\0"),
            Err(ProgramError::UnsupportedVersion { .. })
        ));
        assert!(matches!(
            classify(b"\0as"),
            Err(ProgramError::InvalidText { .. })
        ));
        assert!(matches!(
            classify(&[0xff, 0xfe, 0x00]),
            Err(ProgramError::NotWasm { .. })
        ));
        let err = classify(b"(module (func (foo)))").unwrap_err().to_string();
        assert!(err.contains("x:1:"), "{err}");
    }
}
