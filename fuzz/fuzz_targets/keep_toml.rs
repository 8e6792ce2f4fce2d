//! `Keep.toml` parsing: any text gives a config or a positioned error, never a panic; a
//! config that parses has a canonical form (what the workload digest covers), which is JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match keep_config::Config::parse(text, std::path::Path::new("fuzz.toml")) {
        Ok(config) => {
            let _ = config.fd_names();
            let canonical = config.canonical();
            assert!(serde_json::from_str::<serde_json::Value>(&canonical).is_ok());
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
