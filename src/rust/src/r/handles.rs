//! Handles: R holds small integer ids; the objects live here. An R finalizer
//! (and `dbx_disconnect()`) releases them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// A table of live objects of one type, keyed by id.
pub struct Registry<T> {
    name: &'static str,
    items: OnceLock<Mutex<(i32, HashMap<i32, Arc<T>>)>>,
}

impl<T> Registry<T> {
    pub const fn new(name: &'static str) -> Self {
        Registry { name, items: OnceLock::new() }
    }

    fn table(&self) -> &Mutex<(i32, HashMap<i32, Arc<T>>)> {
        self.items.get_or_init(|| Mutex::new((0, HashMap::new())))
    }

    pub fn insert(&self, item: T) -> i32 {
        let mut t = self.table().lock().unwrap_or_else(|p| p.into_inner());
        t.0 += 1;
        let id = t.0;
        t.1.insert(id, Arc::new(item));
        id
    }

    pub fn get(&self, id: i32) -> Result<Arc<T>> {
        let t = self.table().lock().unwrap_or_else(|p| p.into_inner());
        t.1.get(&id).cloned().ok_or_else(|| {
            Error::input(format!("this {} has been closed", self.name))
                .hint("create a new one (e.g. with `dbx_connect()` or `local_cluster()`)")
        })
    }

    pub fn remove(&self, id: i32) -> Option<Arc<T>> {
        let mut t = self.table().lock().unwrap_or_else(|p| p.into_inner());
        t.1.remove(&id)
    }

    pub fn ids(&self) -> Vec<i32> {
        let t = self.table().lock().unwrap_or_else(|p| p.into_inner());
        t.1.keys().copied().collect()
    }
}
