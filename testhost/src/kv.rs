//! Key-value stores with the semantics of Spin's stores, behind
//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2`.
//!
//! The parts a component can tell apart are kept exactly. Everywhere: a store not granted to
//! the component is `access-denied`; at most 256 open stores per instance; a failed swap hands
//! back a fresh CAS that has already read the value. Per store ([`Semantics`]):
//! - SQLite (Spin's default): `increment` keeps an i64 as 8 little-endian bytes; a CAS
//!   remembers what `current()` read and its `swap` updates only if the value is still that,
//!   but if `current()` saw no value the swap is an upsert (so two creators can both "win");
//!   `get-many` returns the keys that exist.
//! - Redis (Spin 3.x to 4.1): `current()` WATCHes, `swap` applies only if the value did not
//!   change since (an absent key included) and then reports `cas-failed` whatever happened
//!   (Spin sends `UNWATCH key`, which Redis refuses); `increment` is `INCRBY`, the counter is
//!   decimal text; `get-many` is broken (Spin sends `KEYS k1 k2`): an error for two keys or
//!   more, a trap for one key that exists.
//! - Faulty: SQLite's, except that a swap that wins its comparison applies and says so,
//!   applies and reports `cas-failed`, applies and then fails with a store error, or fails
//!   without applying, at random (seeded).
//! - No atomics (Akamai Functions, Fermyon Cloud): `wasi:keyvalue/atomics` is not provided, so
//!   a component importing it does not load.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use funnelhooks_store::Semantics;

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

/// Every store's data, shared by all instances of an app (the SQLite file of `spin up`, or
/// the Redis server), with the semantics of the store it imitates.
#[derive(Clone)]
pub struct KvData {
    inner: Arc<Mutex<Table>>,
    semantics: Semantics,
    rng: Arc<AtomicU64>,
    counts: Arc<OpCounts>,
    outages: Arc<Mutex<Vec<Outage>>>,
}

/// Writes to keys with a prefix that fail: after `skip` more writes, the next `times`.
struct Outage {
    prefix: String,
    skip: u32,
    times: u32,
}

impl Default for KvData {
    fn default() -> Self {
        Self::with(Semantics::Sqlite)
    }
}

/// How many store operations of each kind the app made (every instance, every store).
#[derive(Debug, Default)]
pub struct OpCounts {
    /// `get` (both interfaces) and CAS `current()`.
    pub get: AtomicU64,
    /// `set`.
    pub set: AtomicU64,
    /// `get-many`.
    pub get_many: AtomicU64,
    /// `set-many`.
    pub set_many: AtomicU64,
    /// `delete` and `delete-many`.
    pub delete: AtomicU64,
    /// `increment`.
    pub increment: AtomicU64,
    /// `swap`.
    pub swap: AtomicU64,
    /// `exists` and key listings.
    pub other: AtomicU64,
}

/// A snapshot of [`OpCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpSnapshot {
    /// `get` and CAS `current()`.
    pub get: u64,
    /// `set`.
    pub set: u64,
    /// `get-many`.
    pub get_many: u64,
    /// `set-many`.
    pub set_many: u64,
    /// `delete` and `delete-many`.
    pub delete: u64,
    /// `increment`.
    pub increment: u64,
    /// `swap`.
    pub swap: u64,
    /// `exists` and key listings.
    pub other: u64,
}

impl OpSnapshot {
    /// Every operation: the store round trips.
    pub fn total(&self) -> u64 {
        self.get
            + self.set
            + self.get_many
            + self.set_many
            + self.delete
            + self.increment
            + self.swap
            + self.other
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &OpSnapshot) -> OpSnapshot {
        OpSnapshot {
            get: self.get - earlier.get,
            set: self.set - earlier.set,
            get_many: self.get_many - earlier.get_many,
            set_many: self.set_many - earlier.set_many,
            delete: self.delete - earlier.delete,
            increment: self.increment - earlier.increment,
            swap: self.swap - earlier.swap,
            other: self.other - earlier.other,
        }
    }
}

impl std::fmt::Display for OpSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} round trips: get {}, set {}, get-many {}, set-many {}, delete {}, increment {}, swap {}, other {}",
            self.total(),
            self.get,
            self.set,
            self.get_many,
            self.set_many,
            self.delete,
            self.increment,
            self.swap,
            self.other
        )
    }
}

impl KvData {
    /// Empty stores with the given semantics.
    pub fn with(semantics: Semantics) -> Self {
        let seed = match semantics {
            Semantics::Faulty(seed) => seed | 1,
            _ => 1,
        };
        Self {
            inner: Arc::default(),
            semantics,
            rng: Arc::new(AtomicU64::new(seed)),
            counts: Arc::default(),
            outages: Arc::default(),
        }
    }

    /// Makes the next `times` writes (set, set-many, increment, swap) to keys starting with
    /// `prefix` fail as a store outage would: the app sees an error and nothing is written.
    pub fn fail_writes(&self, prefix: &str, times: u32) {
        self.fail_writes_after(prefix, 0, times);
    }

    /// Like [`KvData::fail_writes`], once `skip` writes to such keys have succeeded.
    pub fn fail_writes_after(&self, prefix: &str, skip: u32, times: u32) {
        self.outages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Outage {
                prefix: prefix.to_string(),
                skip,
                times,
            });
    }

    /// Whether a write to `key` fails now (and counts it against its outage).
    fn outage(&self, key: &str) -> bool {
        let mut outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        let Some(o) = outages
            .iter_mut()
            .find(|o| o.times > 0 && key.starts_with(o.prefix.as_str()))
        else {
            return false;
        };
        if o.skip > 0 {
            o.skip -= 1;
            return false;
        }
        o.times -= 1;
        true
    }

    /// The semantics of the store these imitate.
    pub fn semantics(&self) -> Semantics {
        self.semantics
    }

    /// The operations made so far.
    pub fn ops(&self) -> OpSnapshot {
        let c = &self.counts;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OpSnapshot {
            get: l(&c.get),
            set: l(&c.set),
            get_many: l(&c.get_many),
            set_many: l(&c.set_many),
            delete: l(&c.delete),
            increment: l(&c.increment),
            swap: l(&c.swap),
            other: l(&c.other),
        }
    }

    fn count(&self, which: fn(&OpCounts) -> &AtomicU64) {
        which(&self.counts).fetch_add(1, Ordering::Relaxed);
    }

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

/// Adds the Spin key-value, variables and `wasi:keyvalue` imports to `linker`; on a store
/// without atomics, `wasi:keyvalue/atomics` is left out, so a component that imports it
/// fails to load, naming it.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut SpinState,
    semantics: Semantics,
) -> wasmtime::Result<()> {
    spin_kv::add_to_linker::<T, SpinHost>(linker, get)?;
    spin_vars::add_to_linker::<T, SpinHost>(linker, get)?;
    wasi_kv::add_to_linker::<T, SpinHost>(linker, get)?;
    batch::add_to_linker::<T, SpinHost>(linker, get)?;
    if semantics != Semantics::NoAtomics {
        atomics::add_to_linker::<T, SpinHost>(linker, get)?;
    }
    Ok(())
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

impl SpinState {
    fn kv_get(&self, store: &str, key: &str) -> Option<Vec<u8>> {
        self.data.count(|c| &c.get);
        self.read(store, key)
    }

    fn kv_set(&self, store: &str, key: &str, value: &[u8]) {
        self.data.count(|c| &c.set);
        self.data.set(store, key, value);
    }

    fn kv_delete(&self, store: &str, key: &str) {
        self.data.count(|c| &c.delete);
        self.data
            .lock()
            .remove(&(store.to_string(), key.to_string()));
    }

    fn kv_exists(&self, store: &str, key: &str) -> bool {
        self.data.count(|c| &c.other);
        self.read(store, key).is_some()
    }
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
        Ok(Ok(self.kv_get(&name, &key)))
    }

    async fn set(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        if self.data.outage(&key) {
            return Ok(Err(spin_kv::Error::Other("injected outage".into())));
        }
        self.kv_set(&name, &key, &value);
        Ok(Ok(()))
    }

    async fn delete(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
    ) -> wasmtime::Result<Result<(), spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        self.kv_delete(&name, &key);
        Ok(Ok(()))
    }

    async fn exists(
        &mut self,
        store: Resource<spin_kv::Store>,
        key: String,
    ) -> wasmtime::Result<Result<bool, spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        Ok(Ok(self.kv_exists(&name, &key)))
    }

    async fn get_keys(
        &mut self,
        store: Resource<spin_kv::Store>,
    ) -> wasmtime::Result<Result<Vec<String>, spin_kv::Error>> {
        interleave().await;
        let name = self.store_name(store.rep())?;
        self.data.count(|c| &c.other);
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
        Ok(Ok(self.kv_get(&name, &key)))
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
        if self.data.outage(&key) {
            return Ok(Err(wasi_kv::Error::Other("injected outage".into())));
        }
        self.kv_set(&name, &key, &value);
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
        self.kv_delete(&name, &key);
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
        Ok(Ok(self.kv_exists(&name, &key)))
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
        self.data.count(|c| &c.other);
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
        self.data.count(|c| &c.get_many);
        let data = self.data.lock();
        if self.data.semantics == Semantics::Redis {
            // Spin sends `KEYS k1 k2 ...` and reads the answer as pairs.
            if keys.len() > 1 {
                return Ok(Err(wasi_kv::Error::Other(
                    "An error was signalled by the server - ResponseError: wrong number of arguments for 'keys' command".into(),
                )));
            }
            if keys
                .iter()
                .any(|k| data.contains_key(&(name.clone(), k.clone())))
            {
                wasmtime::bail!("get-many: the Redis client panicked (entered unreachable code)");
            }
            return Ok(Ok(Vec::new()));
        }
        // Like Spin's SQLite `IN (...)` query: only keys that exist come back.
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
        self.data.count(|c| &c.set_many);
        // One transaction, as on Spin's SQLite store: an outage on any key writes none.
        if key_values.iter().any(|(k, _)| self.data.outage(k)) {
            return Ok(Err(wasi_kv::Error::Other("injected outage".into())));
        }
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
        self.data.count(|c| &c.delete);
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
        self.data.count(|c| &c.increment);
        if self.data.outage(&key) {
            return Ok(Err(wasi_kv::Error::Other("injected outage".into())));
        }
        let redis = self.data.semantics == Semantics::Redis;
        let mut data = self.data.lock();
        let entry = (name, key);
        let current = match data.get(&entry) {
            None => 0,
            // Redis: INCRBY on text that is not an integer is an error.
            Some(v) if redis => match std::str::from_utf8(v).ok().and_then(|t| t.parse().ok()) {
                Some(n) => n,
                None => {
                    return Ok(Err(wasi_kv::Error::Other(
                        "ResponseError: value is not an integer or out of range".into(),
                    )));
                }
            },
            // Spin's SQLite store panics on a value that is not 8 bytes; the request fails.
            Some(v) => i64::from_le_bytes(v.as_slice().try_into().map_err(|_| {
                wasmtime::format_err!("increment: stored value is not an 8-byte integer")
            })?),
        };
        let next = current.wrapping_add(delta);
        let stored = if redis {
            next.to_string().into_bytes()
        } else {
            next.to_le_bytes().to_vec()
        };
        data.insert(entry, stored);
        Ok(Ok(next))
    }

    async fn swap(
        &mut self,
        cas: Resource<atomics::Cas>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), atomics::CasError>> {
        interleave().await;
        self.data.count(|c| &c.swap);
        let rep = cas.rep();
        let open = self
            .cas
            .get_mut(rep as usize)
            .and_then(Option::take)
            .ok_or_else(|| wasmtime::format_err!("invalid compare-and-swap handle"))?;
        if self.data.outage(&open.key) {
            return Ok(Err(atomics::CasError::StoreError(wasi_kv::Error::Other(
                "injected outage".into(),
            ))));
        }
        let semantics = self.data.semantics;
        let roll = match semantics {
            Semantics::Faulty(_) => funnelhooks_store::next_random(&self.data.rng) % 4,
            _ => 0,
        };
        enum Told {
            Swapped,
            Failed,
            Error,
        }
        let told = {
            let mut data = self.data.lock();
            let entry = (open.store.clone(), open.key.clone());
            let unchanged = data.get(&entry) == open.seen.as_ref();
            match semantics {
                // Spin: UPDATE ... WHERE value = :old, or INSERT ... ON CONFLICT DO UPDATE
                // (which always changes one row) when current() saw nothing.
                Semantics::Sqlite | Semantics::NoAtomics => {
                    if unchanged || open.seen.is_none() {
                        data.insert(entry, value);
                        Told::Swapped
                    } else {
                        Told::Failed
                    }
                }
                // Spin: MULTI / SET / EXEC under the WATCH of current(), then UNWATCH key,
                // refused: cas-failed whether EXEC applied or aborted.
                Semantics::Redis => {
                    if unchanged {
                        data.insert(entry, value);
                    }
                    Told::Failed
                }
                Semantics::Faulty(_) => {
                    if unchanged && roll < 3 {
                        data.insert(entry, value);
                    }
                    match (unchanged, roll) {
                        (false, _) => Told::Failed,
                        (true, 0) => Told::Swapped,
                        (true, 1) => Told::Failed,
                        _ => Told::Error,
                    }
                }
            }
        };
        match told {
            Told::Swapped => Ok(Ok(())),
            Told::Error => Ok(Err(atomics::CasError::StoreError(wasi_kv::Error::Other(
                "timed out waiting for the store".into(),
            )))),
            Told::Failed => {
                // Spin reads the value for the fresh CAS it hands back: a round trip.
                self.data.count(|c| &c.get);
                let again = self.new_cas(open.bucket_rep, open.key)?;
                self.cas_current(again)?;
                Ok(Err(atomics::CasError::CasFailed(Resource::new_own(again))))
            }
        }
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
        self.data.count(|c| &c.get);
        Ok(Ok(self.cas_current(cas.rep())?))
    }

    async fn drop(&mut self, cas: Resource<atomics::Cas>) -> wasmtime::Result<()> {
        if let Some(slot) = self.cas.get_mut(cas.rep() as usize) {
            *slot = None;
        }
        Ok(())
    }
}
