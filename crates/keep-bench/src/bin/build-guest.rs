//! `build-guest OUT_DIR NAME`: builds the component of the test guest `tests/guests/NAME`
//! (as the test suite does) into `OUT_DIR` and prints its path, for the benchmarks.
//! `build-guest --wrap OUT_DIR MODULE`: wraps the preview-1 command module `MODULE` into a
//! component the same way (for the benchmarks' own kernels).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (built, what) = match args.as_slice() {
        [wrap, out_dir, module] if wrap == "--wrap" => (
            keep_test_guests::Guests::new(out_dir).wrap_command(Path::new(module)),
            module,
        ),
        [out_dir, name] => (
            keep_test_guests::Guests::new(out_dir).try_component(name),
            name,
        ),
        _ => {
            eprintln!("usage: build-guest OUT_DIR NAME | build-guest --wrap OUT_DIR MODULE");
            return ExitCode::from(2);
        }
    };
    match built {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("build-guest: cannot build `{what}`: {error:#}");
            ExitCode::FAILURE
        }
    }
}
