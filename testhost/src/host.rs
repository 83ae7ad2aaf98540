//! The application host: loads `spin.toml`, compiles each component once, and runs every
//! request in a fresh instance as Spin does, concurrently, over real loopback HTTP or in-process.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::SystemTime;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{CallHook, Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::kv::{KvData, SpinState};
use crate::manifest::Manifest;
use crate::outbound::{AllowedHosts, chaining_target};
use crate::routing::{RouteMatch, Router};
use crate::variables::{EnvLookup, Resolver};

/// The client address Spin reports for chained (component-to-component) requests.
const CHAINED_CLIENT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Configures and starts an [`App`].
pub struct HostBuilder {
    manifest: PathBuf,
    overrides: BTreeMap<String, String>,
    env: EnvLookup,
    stores: Vec<String>,
    kv: KvData,
    wasm_dir: Option<PathBuf>,
}

impl HostBuilder {
    /// A host for the manifest at `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            manifest: path.as_ref().to_path_buf(),
            overrides: BTreeMap::new(),
            env: Arc::new(|name| std::env::var(name).ok()),
            stores: vec!["default".into()],
            kv: KvData::default(),
            wasm_dir: None,
        }
    }

    /// Gives the app's stores the semantics of another of Spin's stores (Redis, a faulty
    /// remote store, a host without atomics), with no data yet.
    pub fn store_semantics(mut self, semantics: crate::kv::Semantics) -> Self {
        self.kv = KvData::with(semantics);
        self
    }

    /// Loads every component's `.wasm` from `dir` (same file names), e.g. the builds for
    /// hosts without key-value atomics.
    pub fn wasm_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.wasm_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Gives an application variable a value, ahead of `SPIN_VARIABLE_*` and the default.
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.overrides.insert(name.into(), value.into());
        self
    }

    /// Replaces the environment `SPIN_VARIABLE_*` values are read from.
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Arc::new(lookup);
        self
    }

    /// Defines another key-value store label, as a runtime config file would.
    pub fn key_value_store(mut self, label: &str) -> Self {
        self.stores.push(label.into());
        self
    }

    /// Shares key-value data with another app (a restart over the same SQLite file).
    pub fn key_value_data(mut self, kv: KvData) -> Self {
        self.kv = kv;
        self
    }

    /// Loads the manifest, compiles and links every component, and checks variables.
    pub fn build(self) -> Result<App> {
        let manifest = Manifest::load(&self.manifest)?;
        let resolver = Resolver::new(&manifest, self.overrides, self.env)?;
        let router = Router::build(&manifest.http_base(), manifest.http_triggers())?;
        let engine = engine();
        let mut linker: Linker<HostState> = Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::kv::add_to_linker(&mut linker, |s| &mut s.spin, self.kv.semantics())?;

        let ids: Vec<String> = manifest.components.keys().cloned().collect();
        let defined: HashSet<&str> = self.stores.iter().map(String::as_str).collect();
        let mut components = HashMap::new();
        for (id, c) in &manifest.components {
            for store in &c.key_value_stores {
                if !defined.contains(store.as_str()) {
                    bail!(
                        "component {id:?} uses key-value store {store:?}, which no runtime config defines"
                    );
                }
            }
            let mut path = manifest.source_path(c);
            if let (Some(dir), Some(file)) = (&self.wasm_dir, path.file_name()) {
                path = dir.join(file);
            }
            let component = compile(engine, &path)
                .with_context(|| format!("component {id:?} ({})", path.display()))?;
            let pre = linker.instantiate_pre(&component).map_err(|e| {
                anyhow!("component {id:?} imports something the test host does not provide: {e}")
            })?;
            let pre = ProxyPre::new(pre).map_err(|e| {
                anyhow!("component {id:?} does not export wasi:http/incoming-handler: {e}")
            })?;
            let allowed = AllowedHosts::parse(
                &c.allowed_outbound_hosts,
                |t| resolver.expand_app_template(t),
                &ids,
            )
            .with_context(|| format!("component {id:?}"))?;
            components.insert(
                id.clone(),
                ComponentRuntime {
                    pre,
                    allowed: Arc::new(allowed),
                    stores: Arc::new(c.key_value_stores.iter().cloned().collect()),
                    env: c.environment.clone().into_iter().collect(),
                },
            );
        }
        Ok(App {
            inner: Arc::new(AppInner {
                router,
                components,
                kv: self.kv,
                resolver,
                running: Arc::default(),
                fuel: Mutex::default(),
                logs: crate::logs::LogSink::default(),
            }),
        })
    }
}

struct ComponentRuntime {
    pre: ProxyPre<HostState>,
    allowed: Arc<AllowedHosts>,
    stores: Arc<HashSet<String>>,
    env: Vec<(String, String)>,
}

struct AppInner {
    router: Router,
    components: HashMap<String, ComponentRuntime>,
    kv: KvData,
    resolver: Resolver,
    /// Guest handlers still running (some keep working after they answered).
    running: Arc<Running>,
    /// Per component: handlers run and Wasm fuel they used (`FUNNELHOOKS_FUEL=1`).
    fuel: Mutex<HashMap<String, Fuel>>,
    /// What the components wrote to stderr.
    logs: crate::logs::LogSink,
}

/// Wasm fuel used by one component's handlers: Wasmtime charges about one unit per Wasm
/// instruction, so unlike time it does not move with the machine's load. With it, the calls
/// they made into the host (every WASI and Spin import, resource drops included): each one
/// costs the host more than a Wasm instruction does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fuel {
    /// Handlers that returned or trapped.
    pub handlers: u64,
    /// Fuel they used in all.
    pub used: u64,
    /// Host calls they made in all.
    pub host_calls: u64,
    /// `memory.grow` calls past the initial memory, in all.
    pub memory_grows: u64,
    /// The largest linear memory one of them reached, in bytes.
    pub peak_memory: usize,
}

impl Fuel {
    /// Fuel per handler.
    pub fn per_handler(&self) -> u64 {
        self.used.checked_div(self.handlers).unwrap_or(0)
    }

    /// Host calls per handler.
    pub fn host_calls_per_handler(&self) -> u64 {
        self.host_calls.checked_div(self.handlers).unwrap_or(0)
    }

    /// What was used after `before`.
    pub fn since(&self, before: &Fuel) -> Fuel {
        Fuel {
            handlers: self.handlers - before.handlers,
            used: self.used - before.used,
            host_calls: self.host_calls - before.host_calls,
            memory_grows: self.memory_grows - before.memory_grows,
            peak_memory: self.peak_memory,
        }
    }
}

/// A count of running guest handlers, and a wake-up when it changes.
#[derive(Default)]
struct Running {
    count: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

/// One running handler; counted until dropped.
struct RunningGuard(Arc<Running>);

impl RunningGuard {
    fn new(running: &Arc<Running>) -> Self {
        running
            .count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(running.clone())
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

/// A loaded application. Cheap to clone; every clone serves the same app and data.
#[derive(Clone)]
pub struct App {
    inner: Arc<AppInner>,
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct HostResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: http::HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl App {
    /// The key-value data behind every store of the app.
    pub fn kv(&self) -> &KvData {
        &self.inner.kv
    }

    /// The route a path would take, if any.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.inner.router.route(path)
    }

    /// Handles one request in-process, as if it came from `client` over the network.
    pub async fn handle(
        &self,
        req: http::Request<Bytes>,
        client: SocketAddr,
    ) -> Result<HostResponse> {
        let Some(route) = self.inner.router.route(req.uri().path()) else {
            return Ok(HostResponse {
                status: 404,
                headers: http::HeaderMap::new(),
                body: Bytes::from_static(b"Not Found"),
            });
        };
        self.inner.clone().execute(req, route, client).await
    }

    /// Waits until no guest handler is running, including work a handler does after it
    /// answered (a call event's hooks, a chained delivery): what tests that count store
    /// operations wait for.
    pub async fn idle(&self) {
        let running = &self.inner.running;
        loop {
            let changed = running.changed.notified();
            if running.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            changed.await;
        }
    }

    /// Wasm fuel used so far, per component; empty unless the process runs with
    /// `FUNNELHOOKS_FUEL=1` (benchmarks: counting costs time).
    pub fn fuel(&self) -> HashMap<String, Fuel> {
        self.inner.fuel.lock().unwrap().clone()
    }

    /// The lines the components wrote to stderr so far (their JSON log).
    pub fn logs(&self) -> Vec<String> {
        self.inner.logs.lines()
    }
}

impl AppInner {
    async fn execute(
        self: Arc<Self>,
        req: http::Request<Bytes>,
        route: RouteMatch,
        client: SocketAddr,
    ) -> Result<HostResponse> {
        let runtime = self
            .components
            .get(&route.component)
            .ok_or_else(|| anyhow!("no component {:?}", route.component))?;
        let req = crate::headers::with_spin_headers(req, &route, client)?;

        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stdout()
            .stderr(self.logs.clone())
            .envs(&runtime.env);
        let state = HostState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            spin: SpinState::new(
                self.kv.clone(),
                runtime.stores.clone(),
                route.component.clone(),
                self.resolver.clone(),
            ),
            outbound: Outbound {
                app: Arc::downgrade(&self),
                allowed: runtime.allowed.clone(),
            },
            host_calls: 0,
            memory: MemoryWatch::default(),
        };
        let mut store = Store::new(engine(), state);
        if fuel_counted() {
            store.set_fuel(u64::MAX)?;
            store.limiter(|state| &mut state.memory);
            store.call_hook(|mut cx, hook| {
                if matches!(hook, CallHook::CallingHost) {
                    cx.data_mut().host_calls += 1;
                }
                Ok(())
            });
        }
        let proxy = runtime.pre.instantiate_async(&mut store).await?;

        let (parts, body) = req.into_parts();
        let body = Full::new(body).map_err(|never| -> wasmtime_wasi_http::Error { match never {} });
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, http::Request::from_parts(parts, body))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let outparam = store.data_mut().http().new_response_outparam(tx)?;

        let guard = RunningGuard::new(&self.running);
        let app = self.clone();
        let component = route.component.clone();
        let task = tokio::spawn(async move {
            let _running = guard;
            let handled = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await;
            if fuel_counted() {
                let used = u64::MAX - store.get_fuel().unwrap_or(u64::MAX);
                let mut fuel = app.fuel.lock().unwrap();
                let entry = fuel.entry(component).or_default();
                entry.handlers += 1;
                entry.used += used;
                entry.host_calls += store.data().host_calls;
                entry.memory_grows += store.data().memory.grows;
                entry.peak_memory = entry.peak_memory.max(store.data().memory.peak);
            }
            handled
        });
        match rx.await {
            Ok(Ok(resp)) => {
                let (parts, body) = resp.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| anyhow!("reading the response body: {e:?}"))?
                    .to_bytes();
                // The guest may keep running after its response is complete (a postback that
                // hands a delivery on after answering). Spin has sent the response by then:
                // the caller is not kept waiting, and a later trap is logged, not a 500.
                let component = route.component.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {}
                        Ok(Err(trap)) => {
                            eprintln!("component {component:?} trapped after responding: {trap:?}")
                        }
                        Err(join) => eprintln!("component {component:?} task failed: {join}"),
                    }
                });
                Ok(HostResponse {
                    status: parts.status.as_u16(),
                    headers: parts.headers,
                    body,
                })
            }
            Ok(Err(code)) => Err(anyhow!("component answered with error {code:?}")),
            Err(_) => match task.await? {
                // Spin answers 500 when the guest returns without a response, or traps.
                Ok(()) => Ok(internal_error("component did not set a response")),
                Err(trap) => {
                    eprintln!("component {:?} trapped: {trap:?}", route.component);
                    Ok(internal_error("component trapped"))
                }
            },
        }
    }
}

fn internal_error(msg: &str) -> HostResponse {
    HostResponse {
        status: 500,
        headers: http::HeaderMap::new(),
        body: Bytes::from(msg.to_string()),
    }
}

/// Per-instance host state.
pub struct HostState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    spin: SpinState,
    outbound: Outbound,
    /// Calls from the guest into the host (`FUNNELHOOKS_FUEL=1`).
    host_calls: u64,
    /// How the instance's linear memory grew (`FUNNELHOOKS_FUEL=1`).
    memory: MemoryWatch,
}

/// Counts `memory.grow` past the initial memory and the largest size reached.
#[derive(Default)]
struct MemoryWatch {
    grows: u64,
    peak: usize,
}

impl wasmtime::ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The first call creates the memory at its initial size.
        if current > 0 {
            self.grows += 1;
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Outbound HTTP as Spin sends it: the allow-list first, then chaining to
/// `<component>.spin.internal` in-process, else a real connection (loopback in tests).
struct Outbound {
    app: Weak<AppInner>,
    allowed: Arc<AllowedHosts>,
}

type SendFuture = Box<
    dyn Future<
            Output = wasmtime_wasi_http::Result<(
                http::Response<WasiBody>,
                Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            )>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        _fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> SendFuture {
        use wasmtime_wasi_http::Error as E;
        let uri = request.uri().clone();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let host = uri.host().unwrap_or_default().to_string();
        let is_self = host.is_empty() || host == "self.alt";
        let allowed = if is_self {
            self.allowed.allows_self()
        } else {
            self.allowed.allows(&scheme, &host, uri.port_u16())
        };
        let app = self.app.upgrade();
        Box::new(async move {
            if !allowed {
                return Err(E::HttpRequestDenied);
            }
            let chained = if is_self {
                None
            } else {
                chaining_target(&host).map(str::to_string)
            };
            if is_self || chained.is_some() {
                let app = app.ok_or(E::DestinationUnavailable)?;
                let (mut parts, body) = request.into_parts();
                let body = body
                    .collect()
                    .await
                    .map_err(|e| E::InternalError(Some(format!("{e:?}"))))?
                    .to_bytes();
                // Spin drops a chaining Host header before routing.
                if chained.is_some() {
                    parts.headers.remove(http::header::HOST);
                }
                let path = parts.uri.path().to_string();
                let route = match chained {
                    Some(component) if app.components.contains_key(&component) => {
                        RouteMatch::chained(&component, &path)
                    }
                    Some(_) => return Err(E::DestinationNotFound),
                    None => app.router.route(&path).ok_or(E::DestinationNotFound)?,
                };
                let resp = app
                    .execute(
                        http::Request::from_parts(parts, body),
                        route,
                        CHAINED_CLIENT_ADDR,
                    )
                    .await
                    .map_err(|e| E::InternalError(Some(format!("{e:#}"))))?;
                let mut out = http::Response::new(
                    Full::new(resp.body)
                        .map_err(|never| match never {})
                        .boxed_unsync(),
                );
                *out.status_mut() =
                    http::StatusCode::from_u16(resp.status).map_err(|_| E::HttpProtocolError)?;
                *out.headers_mut() = resp.headers;
                let done: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> =
                    Box::new(async { Ok(()) });
                return Ok((out, done));
            }
            let (resp, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            let io: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send> = Box::new(io);
            Ok((resp.map(BodyExt::boxed_unsync), io))
        })
    }
}

/// One engine per process: compiled code and caches are shared by every test.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // `FUNNELHOOKS_FUEL=1`: count the Wasm instructions each handler runs (benchmarks).
        config.consume_fuel(fuel_counted());
        // `FUNNELHOOKS_PERFMAP=1`: name the compiled Wasm functions for `perf` (benchmarks).
        if std::env::var_os("FUNNELHOOKS_PERFMAP").is_some() {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        Engine::new(&config).expect("wasmtime engine")
    })
}

/// Whether this process counts Wasm fuel (`FUNNELHOOKS_FUEL` set).
fn fuel_counted() -> bool {
    static COUNTED: OnceLock<bool> = OnceLock::new();
    *COUNTED.get_or_init(|| std::env::var_os("FUNNELHOOKS_FUEL").is_some())
}

/// Compiles a `.wasm` once per process (per file version); every test reuses the result.
fn compile(engine: &Engine, path: &Path) -> Result<Component> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, (SystemTime, Component)>>> = OnceLock::new();
    let modified = std::fs::metadata(path)
        .with_context(|| {
            format!(
                "{} is missing: build the components first (scripts/build-wasm)",
                path.display()
            )
        })?
        .modified()?;
    // Held while compiling, so concurrent tests wait for one compilation instead of racing.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some((when, c)) = cache.get(path)
        && *when == modified
    {
        return Ok(c.clone());
    }
    let component = Component::from_file(engine, path)?;
    cache.insert(path.to_path_buf(), (modified, component.clone()));
    Ok(component)
}
