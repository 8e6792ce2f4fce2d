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
            let names: Vec<String> = secrets.names().map(str::to_owned).collect();
            // A running workload and a Keep about to fetch ask for every secret.
            for fetch in ["", r#","fetch":"registry.example/app:v1""#] {
                let claims = format!(
                    r#"{{"tee":"none","workload_digest":"sha256:00","tcb_status":"not-evaluated","debug":false{fetch}}}"#
                );
                let requester = keep_steward::secrets::Requester {
                    claims: serde_json::from_str(&claims).unwrap(),
                    names: vec!["a.example".to_owned()],
                };
                if let Err(refused) = secrets.release(&requester, &names) {
                    assert!(!refused.to_string().contains("fuzz-secret-value"));
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            assert!(message.contains("secrets.toml"), "{message}");
            assert!(!message.contains("fuzz-secret-value"), "{message}");
        }
    }
});
