//! Program loading: any bytes are classified (module, component, text) or refused with a
//! named reason; what is classified then validates or fails to compile cleanly.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;

static ENGINE: LazyLock<wasmtime::Engine> =
    LazyLock::new(|| keep_runtime::EngineOptions::default().build().expect("engine"));

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz.wasm");
    let Ok(program) = keep_runtime::Program::from_bytes(path, data.to_vec()) else {
        return;
    };
    let result = match program.kind {
        keep_runtime::ProgramKind::Module => wasmtime::Module::validate(&ENGINE, &program.bytes),
        keep_runtime::ProgramKind::Component => {
            wasmtime::component::Component::new(&ENGINE, &program.bytes).map(|_| ())
        }
    };
    let _ = result;
});
