//! `wasi:config/store` for components: the secrets Keep.toml delivers under config keys.
//!
//! Keep implements the host side itself rather than with `wasmtime-wasi-config`: that crate
//! holds its variables as plain `String`s, never zeroed, fixed when the store is made, while
//! secrets must be zeroed when dropped and must change when the certificate is renewed. The
//! interface is two functions.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use wasmtime::component::{HasData, Linker};
use zeroize::Zeroizing;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/config",
        world: "wasi:config/imports",
        imports: { default: trappable },
    });
}

use bindings::wasi::config::store;

/// The values a component reads through `wasi:config/store`, shared with the thread that
/// renews the certificate (which replaces them).
#[derive(Debug, Default, Clone)]
pub struct ConfigValues(Arc<RwLock<BTreeMap<String, Zeroizing<String>>>>);

impl ConfigValues {
    /// Sets `key` to `value`; returns whether it changed.
    pub fn put(&self, key: &str, value: Zeroizing<String>) -> bool {
        let mut values = self.0.write().unwrap_or_else(|e| e.into_inner());
        let changed = values.get(key) != Some(&value);
        values.insert(key.to_owned(), value);
        changed
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&self, key: &str) -> bool {
        let mut values = self.0.write().unwrap_or_else(|e| e.into_inner());
        values.remove(key).is_some()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Zeroizing<String>>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl store::Host for ConfigValues {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.read().get(&key).map(|value| value.to_string())))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .read()
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect()))
    }
}

struct HasConfig;

impl HasData for HasConfig {
    type Data<'a> = &'a mut ConfigValues;
}

/// Links `wasi:config/store` to the values `values` finds in the store's data.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    values: fn(&mut T) -> &mut ConfigValues,
) -> anyhow::Result<()> {
    store::add_to_linker::<T, HasConfig>(linker, values).map_err(anyhow::Error::from)
}
