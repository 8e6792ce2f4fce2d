//! Sealed stores: a header, a commit's plaintext, and whatever the host puts after a valid
//! header in a log are read or refused by name, never a panic.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

/// A witness that knows no store.
struct Nobody;

impl keep_sealed::Witness for Nobody {
    fn current(&self, _: &[u8; 16]) -> Result<Option<u64>, String> {
        Ok(None)
    }
    fn advance(&self, _: &[u8; 16], _: u64) -> Result<(), String> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            let _ = keep_sealed::format::Header::parse(rest);
        }
        1 => {
            let _ = keep_sealed::format::check_commit(rest);
        }
        _ => {
            // A store made by Keep, then the input appended to its log as frames.
            let dir = tempfile::tempdir().unwrap();
            let key = keep_sealed::StoreKey::from_bytes(&[1; 32]).unwrap();
            let store = keep_sealed::Store::open(dir.path(), "/data", &key, Arc::new(Nobody));
            drop(store);
            let log = dir.path().join("keep-sealed.log");
            let mut bytes = std::fs::read(&log).unwrap();
            bytes.extend_from_slice(rest);
            std::fs::write(&log, bytes).unwrap();
            if let Ok(store) =
                keep_sealed::Store::open(dir.path(), "/data", &key, Arc::new(Nobody))
            {
                let _ = store.readdir(keep_sealed::ROOT);
            }
        }
    }
});
