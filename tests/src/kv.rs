//! Key-value stores with the semantics of Spin's default (SQLite) store, behind
//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`.
//!
//! The parts a component can tell apart are kept exactly: a store not granted to the component
//! is `access-denied`; at most 256 open stores per instance; `increment` keeps an i64 as 8
//! little-endian bytes; a CAS remembers what `current()` read and its `swap` updates only if the
//! value is still that, but if `current()` saw no value the swap is an upsert (so two creators
//! can both "win"), and a failed swap hands back a fresh CAS that has already read the value.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Resource};

wasmtime::component::bindgen!({
    path: "wit",
    world: "funnelhooks:test-host/spin-imports",
    imports: { default: async | trappable },
});

use fermyon::spin::key_value as spin_kv;
use fermyon::spin::variables as spin_vars;
use wasi::keyvalue::{atomics, batch, store as wasi_kv};

/// Most stores one instance may hold open, as in Spin.
const STORE_TABLE_CAPACITY: usize = 256;

/// Values by (store label, key).
type Table = BTreeMap<(String, String), Vec<u8>>;

/// Every store's data, shared by all instances of an app (the SQLite file of `spin up`).
#[derive(Clone, Default)]
pub struct KvData {
    inner: Arc<Mutex<Table>>,
}

impl KvData {
    /// A value, read from outside the app (for test assertions).
    pub fn get(&self, store: &str, key: &str) -> Option<Vec<u8>> {
        self.lock().get(&(store.into(), key.into())).cloned()
    }

    /// Writes a value from outside the app (for test set-up).
    pub fn set(&self, store: &str, key: &str, value: &[u8]) {
        self.lock()
            .insert((store.into(), key.into()), value.to_vec());
    }

    /// Every key of a store, sorted.
    pub fn keys(&self, store: &str) -> Vec<String> {
        self.lock()
            .keys()
            .filter(|(s, _)| s == store)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// How many keys all stores hold.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no store holds anything.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panicking test must not poison the store for the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct OpenCas {
    store: String,
    key: String,
    seen: Option<Vec<u8>>,
    bucket_rep: u32,
}

/// One instance's view of the Spin imports: its granted stores, its open handles, its variables.
pub struct SpinState {
    data: KvData,
    allowed_stores: Arc<HashSet<String>>,
    stores: Vec<Option<String>>,
    cas: Vec<Option<OpenCas>>,
    component: String,
    resolver: crate::variables::Resolver,
}

impl SpinState {
    /// State for one instance of `component`.
    pub fn new(
        data: KvData,
        allowed_stores: Arc<HashSet<String>>,
        component: String,
        resolver: crate::variables::Resolver,
    ) -> Self {
        Self {
            data,
            allowed_stores,
            stores: Vec::new(),
            cas: Vec::new(),
            component,
            resolver,
        }
    }

    fn open_store(&mut self, name: &str) -> Result<u32, OpenError> {
        if !self.allowed_stores.contains(name) {
            return Err(OpenError::AccessDenied);
        }
        if self.stores.iter().filter(|s| s.is_some()).count() >= STORE_TABLE_CAPACITY {
            return Err(OpenError::TableFull);
        }
        let slot = match self.stores.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.stores.push(None);
                self.stores.len() - 1
            }
        };
        self.stores[slot] = Some(name.to_string());
        Ok(slot as u32)
    }

    fn store_name(&self, rep: u32) -> wasmtime::Result<String> {
        self.stores
            .get(rep as usize)
            .and_then(Clone::clone)
            .ok_or_else(|| wasmtime::format_err!("invalid store handle"))
    }

    fn read(&self, store: &str, key: &str) -> Option<Vec<u8>> {
        self.data.get(store, key)
    }

    fn new_cas(&mut self, bucket_rep: u32, key: String) -> wasmtime::Result<u32> {
        let store = self.store_name(bucket_rep)?;
        let cas = OpenCas {
            store,
            key,
            seen: None,
            bucket_rep,
        };
        let slot = match self.cas.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.cas.push(None);
                self.cas.len() - 1
            }
        };
        self.cas[slot] = Some(cas);
        Ok(slot as u32)
    }

    fn cas_current(&mut self, rep: u32) -> wasmtime::Result<Option<Vec<u8>>> {
        let cas = self
            .cas
            .get_mut(rep as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| wasmtime::format_err!("invalid compare-and-swap handle"))?;
        let value = self.data.get(&cas.store, &cas.key);
        cas.seen.clone_from(&value);
        Ok(value)
    }
}

enum OpenError {
    AccessDenied,
    TableFull,
}

/// Marker type wiring [`SpinState`] into a linker.
pub struct SpinHost;

impl HasData for SpinHost {
    type Data<'a> = &'a mut SpinState;
}

/// Adds the Spin key-value, variables and `wasi:keyvalue` imports to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut SpinState,
) -> wasmtime::Result<()> {
    SpinImports::add_to_linker::<T, SpinHost>(linker, get)
}

fn spin_error(e: OpenError) -> spin_kv::Error {
    match e {
        OpenError::AccessDenied => spin_kv::Error::AccessDenied,
        OpenError::TableFull => spin_kv::Error::StoreTableFull,
    }
}

/// Lets other requests run before a store operation, as Spin's async stores do (SQLite in a
/// blocking task, Redis over the network): without it a component's read-then-write would
/// never interleave with another request's and races could not show up in tests.
async fn interleave() {
    tokio::task::yield_now().await;
}

impl spin_kv::Host for SpinState {}

impl spin_kv::HostStore for SpinState {
    async fn open(
        &mut self,
        label: String,
    ) -> wasmtime::Result<Result<Resource<spin_kv::Store>, spin_kv::Error>> {
        interleave().await;
        Ok(self
            .open_store(&label)
            .map(Resource::new_own)
            .map_err(spin_error))
    }

    async fn get(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        Ok(Ok(self.read(&name, &key)))
    }

    async fn set(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        self.data.set(&name, &key, &value);
        Ok(Ok(()))
    }

    async fn delete(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        self.data.lock().remove(&(name, key));
        Ok(Ok(()))
    }

    async fn exists(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        Ok(Ok(self.read(&name, &key).is_some()))
    }

    async fn get_keys(
        &mut self,
        store: Resource<spin_kv::Store>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        Ok(Ok(self.data.keys(&name)))
    }

    async fn drop(&mut self, store: Resource<spin_kv::Store>) -> wasmtime::Result<()> {
        if let Some(slot) = self.stores.get_mut(store.rep() as usize) {
            *slot = None;
        }
        Ok(())
    }
}

impl spin_vars::Host for SpinState {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, spin_vars::Error>> {
        interleave().await;
        use crate::variables::VariableError as E;
        Ok(self
            .resolver
            .get(&self.component, &name)
            .map_err(|e| match e {
                E::InvalidName(m) => spin_vars::Error::InvalidName(m),
                E::Undefined(m) => spin_vars::Error::Undefined(m),
                E::Provider(m) => spin_vars::Error::Provider(m),
            }))
    }
}

impl wasi_kv::Host for SpinState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<wasi_kv::Bucket>, wasi_kv::Error>> {
        interleave().await;
        Ok(self
            .open_store(&identifier)
            .map(Resource::new_own)
            .map_err(|e| match e {
                OpenError::AccessDenied => wasi_kv::Error::AccessDenied,
                OpenError::TableFull => wasi_kv::Error::Other("store table full".into()),
            }))
    }
}

impl wasi_kv::HostBucket for SpinState {
    async fn get(
        &mut self,
        bucket: Resource<wasi_kv::Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        Ok(Ok(self.read(&name, &key)))
    }

    async fn set(
        &mut self,
        bucket: Resource<wasi_kv::Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        self.data.set(&name, &key, &value);
        Ok(Ok(()))
    }

    async fn delete(
        &mut self,
        bucket: Resource<wasi_kv::Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        self.data.lock().remove(&(name, key));
        Ok(Ok(()))
    }

    async fn exists(
        &mut self,
        bucket: Resource<wasi_kv::Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        Ok(Ok(self.read(&name, &key).is_some()))
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<wasi_kv::Bucket>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        if cursor.is_some() {
            return Ok(Err(wasi_kv::Error::Other(
                "list_keys: cursor not supported".into(),
            )));
        }
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        Ok(Ok(wasi_kv::KeyResponse {
            keys: self.data.keys(&name),
            cursor: None,
        }))
    }

    async fn drop(&mut self, bucket: Resource<wasi_kv::Bucket>) -> wasmtime::Result<()> {
        if let Some(slot) = self.stores.get_mut(bucket.rep() as usize) {
            *slot = None;
        }
        Ok(())
    }
}

impl batch::Host for SpinState {
    async fn get_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        // Like Spin's SQLite `IN (...)` query: only keys that exist come back.
        let data = self.data.lock();
        Ok(Ok(keys
            .into_iter()
            .filter_map(|k| {
                let v = data.get(&(name.clone(), k.clone()))?.clone();
                Some((k, Some(v)))
            })
            .collect()))
    }

    async fn set_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        let mut data = self.data.lock();
        for (k, v) in key_values {
            data.insert((name.clone(), k), v);
        }
        Ok(Ok(()))
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<batch::Bucket>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        let mut data = self.data.lock();
        for k in keys {
            data.remove(&(name.clone(), k));
        }
        Ok(Ok(()))
    }
}

impl atomics::Host for SpinState {
    async fn increment(
        &mut self,
        bucket: Resource<atomics::Bucket>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        interleave().await;
        let Ok(name) = self.store_name(bucket.rep()) else {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        };
        let mut data = self.data.lock();
        let entry = (name, key);
        let current = match data.get(&entry) {
            None => 0,
            // Spin's SQLite store panics on a value that is not 8 bytes; the request fails.
            Some(v) => i64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                wasmtime::format_err!("increment: stored value is not an 8-byte integer")
            })?),
        };
        let next = current.wrapping_add(delta);
        data.insert(entry, next.to_le_bytes().to_vec());
        Ok(Ok(next))
    }

    async fn swap(
        &mut self,
        cas: Resource<atomics::Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        interleave().await;
        let rep = cas.rep();
        let open = self
            .cas
            .get_mut(rep as usize)
            .and_then(Option::take)
            .ok_or_else(|| wasmtime::format_err!("invalid compare-and-swap handle"))?;
        let swapped = {
            let mut data = self.data.lock();
            let entry = (open.store.clone(), open.key.clone());
            match &open.seen {
                // Spin: UPDATE ... WHERE value = :old
                Some(old) => {
                    if data.get(&entry) == Some(old) {
                        data.insert(entry, value);
                        true
                    } else {
                        false
                    }
                }
                // Spin: INSERT ... ON CONFLICT DO UPDATE, which always changes one row.
                None => {
                    data.insert(entry, value);
                    true
                }
            }
        };
        if swapped {
            return Ok(Ok(()));
        }
        let again = self.new_cas(open.bucket_rep, open.key)?;
        self.cas_current(again)?;
        Ok(Err(atomics::CasError::CasFailed(Resource::new_own(again))))
    }
}

impl atomics::HostCas for SpinState {
    async fn new(
        &mut self,
        bucket: Resource<atomics::Bucket>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<atomics::Cas>, wasi_kv::Error>> {
        if self.store_name(bucket.rep()).is_err() {
            return Ok(Err(wasi_kv::Error::NoSuchStore));
        }
        Ok(Ok(Resource::new_own(self.new_cas(bucket.rep(), key)?)))
    }

    async fn current(
        &mut self,
        cas: Resource<atomics::Cas>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        interleave().await;
        Ok(Ok(self.cas_current(cas.rep())?))
    }

    async fn drop(&mut self, cas: Resource<atomics::Cas>) -> wasmtime::Result<()> {
        if let Some(slot) = self.cas.get_mut(cas.rep() as usize) {
            *slot = None;
        }
        Ok(())
    }
}
