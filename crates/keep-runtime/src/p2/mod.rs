//! Keep's own pieces of WASI 0.2 for components: `wasi:filesystem`, which serves sealed
//! directories in-process and hands every other descriptor to wasmtime-wasi.

mod filesystem;
mod streams;

pub use filesystem::{Filesystem, SealedPreopen, add_to_linker};
