//! The Steward's secrets file (`--secrets`): any text gives secrets or an error naming the
//! file, never a panic; no value is ever in the debug form. Inputs that name value files
//! or directories are skipped: reading whatever path the fuzzer makes up (a FIFO, a
//! device) would test the machine, not the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if text.contains("file") || text.contains("path") {
        return;
    }
    let value = || Some(std::ffi::OsString::from("fuzz-secret-value"));
    match keep_steward::secrets::Secrets::parse(
        text,
        std::path::Path::new("secrets.toml"),
        &|_| value(),
    ) {
        Ok(secrets) => {
            assert!(!format!("{secrets:?}").contains("fuzz-secret-value"));
            let _ = secrets.names().count();
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("secrets.toml"), "{message}");
            assert!(!message.contains("fuzz-secret-value"), "{message}");
        }
    }
});
