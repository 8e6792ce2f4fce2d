//! `build-guest OUT_DIR NAME`: builds the component of the test guest `tests/guests/NAME`
//! (as the test suite does) into `OUT_DIR` and prints its path, for the benchmarks.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out_dir, name] = args.as_slice() else {
        eprintln!("usage: build-guest OUT_DIR NAME");
        return ExitCode::from(2);
    };
    let guests = keep_test_guests::Guests::new(out_dir);
    match guests.try_component(name) {
        Ok(path) => {
            println!("{}", path.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("build-guest: cannot build `{name}`: {error:#}");
            ExitCode::FAILURE
        }
    }
}
