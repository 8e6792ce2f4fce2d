//! `Keep.toml` parsing: any text gives a config or a positioned error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match keep_config::Config::parse(text, std::path::Path::new("fuzz.toml")) {
        Ok(config) => {
            let _ = config.fd_names();
        }
        Err(error) => {
            // Every error renders, and a position (when given) lies within the text.
            let _ = error.to_string();
            if let Some(line) = error.line {
                assert!(line <= text.lines().count() + 1);
            }
        }
    }
});
