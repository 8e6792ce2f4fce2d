//! What the tests of sealed stores share: a witness in memory.

use std::collections::HashMap;
use std::sync::Mutex;

use keep_sealed::Witness;

/// A witness in memory, as the Steward holds versions.
#[derive(Default)]
pub struct Versions(Mutex<HashMap<[u8; 16], u64>>);

impl Witness for Versions {
    fn current(&self, id: &[u8; 16]) -> Result<Option<u64>, String> {
        Ok(self.0.lock().unwrap().get(id).copied())
    }
    fn advance(&self, id: &[u8; 16], version: u64) -> Result<(), String> {
        let mut versions = self.0.lock().unwrap();
        let held = versions.entry(*id).or_insert(0);
        *held = (*held).max(version);
        Ok(())
    }
}
