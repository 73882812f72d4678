//! The [`Engine`]: wasmtime configured once (pooling allocator, epoch ticker,
//! fuel), the linkers every component is prepared against, and the on-disk
//! compile cache.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};
use crate::host::{self, HostState, ModuleHost};
use crate::runtime::component::{Component, Kind};
use crate::security::signing::{SignedIdentity, TrustPolicy};
use crate::units::hex;

/// How to build an [`Engine`].
///
/// ```
/// use airssys_wasm::EngineConfig;
/// let config = EngineConfig::default().pool_instances(100).cache_dir(None);
/// assert!(config.pooling);
/// ```
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Use the pooling instance allocator (falls back to on-demand allocation,
    /// with a warning, when the address space cannot be reserved).
    pub pooling: bool,
    /// How many instances the pool holds at once.
    pub pool_instances: u32,
    /// Where compiled code is cached (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Meter fuel so that [`ResourceLimits::fuel`](crate::ResourceLimits::fuel) can be
    /// enforced. Off by default, as in wasmtime: metering costs ~100 ns on a
    /// 64-byte `handle-message` call. A fuel limit on an unmetered engine is an
    /// [`Error::Config`](crate::Error::Config).
    pub consume_fuel: bool,
    /// Period of the epoch ticker that enforces timeouts and lets long calls yield.
    pub epoch_tick: Duration,
    /// Maximum guest stack in bytes.
    pub max_wasm_stack: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pooling: true,
            pool_instances: 1000,
            cache_dir: default_cache_dir(),
            consume_fuel: false,
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 512 << 10,
        }
    }
}

impl EngineConfig {
    /// Turns the pooling allocator on or off.
    pub fn pooling(mut self, on: bool) -> Self {
        self.pooling = on;
        self
    }

    /// Sets how many instances the pool holds.
    pub fn pool_instances(mut self, n: u32) -> Self {
        self.pool_instances = n;
        self
    }

    /// Sets (or, with `None`, disables) the compile cache directory.
    pub fn cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// Turns fuel metering on or off.
    pub fn consume_fuel(mut self, on: bool) -> Self {
        self.consume_fuel = on;
        self
    }

    fn wasmtime_config(&self, pooling: bool) -> wasmtime::Config {
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            // Component-model-async costs ~3x per call and nothing here uses it.
            .concurrency_support(false)
            .epoch_interruption(true)
            .consume_fuel(self.consume_fuel)
            .max_wasm_stack(self.max_wasm_stack);
        if pooling {
            let n = self.pool_instances.max(1);
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(n.saturating_mul(8))
                .total_memories(n.saturating_mul(2))
                .total_tables(n.saturating_mul(8))
                .total_stacks(n)
                .max_core_instances_per_component(64)
                .max_memories_per_component(8)
                .max_tables_per_component(32);
            cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        cfg
    }
}

/// Compiles of inputs at least this large are announced (target
/// `airssys_wasm::compile`, level info): what, its size, then how long it took.
pub const LONG_COMPILE_BYTES: usize = 1 << 20;

/// The default compile cache: `$XDG_CACHE_HOME/airssys-wasm` or `~/.cache/airssys-wasm`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("airssys-wasm"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("airssys-wasm"))
}

/// Counters of the compile cache, for observability and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Loads served from the on-disk cache without compiling.
    pub hits: u64,
    /// Loads that compiled the code.
    pub compiles: u64,
}

pub(crate) struct EngineInner {
    pub(crate) wasmtime: wasmtime::Engine,
    pub(crate) linker: wasmtime::component::Linker<HostState>,
    pub(crate) module_linker: wasmtime::Linker<ModuleHost>,
    pub(crate) config: EngineConfig,
    pooling: bool,
    compat: String,
    hits: AtomicU64,
    compiles: AtomicU64,
}

/// A configured wasmtime engine with its linkers, epoch ticker and compile cache.
/// Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("pooling", &self.inner.pooling)
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Engine {
    /// Builds an engine. With pooling on, falls back to on-demand allocation
    /// (and logs a warning) when the pool cannot be reserved.
    pub fn new(config: EngineConfig) -> Result<Engine> {
        let (wasmtime, pooling) = if config.pooling {
            match wasmtime::Engine::new(&config.wasmtime_config(true)) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(
                        pool_instances = config.pool_instances,
                        "pooling allocator unavailable ({e}); falling back to on-demand allocation"
                    );
                    (new_engine(&config.wasmtime_config(false))?, false)
                }
            }
        } else {
            (new_engine(&config.wasmtime_config(false))?, false)
        };
        let linker = host::component_linker(&wasmtime).map_err(config_err)?;
        let module_linker = host::module_linker(&wasmtime).map_err(config_err)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        wasmtime.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());
        spawn_epoch_ticker(&wasmtime, config.epoch_tick);
        Ok(Engine {
            inner: Arc::new(EngineInner {
                wasmtime,
                linker,
                module_linker,
                config,
                pooling,
                compat,
                hits: AtomicU64::new(0),
                compiles: AtomicU64::new(0),
            }),
        })
    }

    /// Whether the pooling allocator is in use.
    pub fn is_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The configuration this engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The underlying wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// Compile cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            compiles: self.inner.compiles.load(Ordering::Relaxed),
        }
    }

    /// Loads a component or core module from a `.wasm` (or `.wat`) file. The
    /// component id is the file stem.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Component> {
        self.load_file_trusted(path, &TrustPolicy::default(), None)
    }

    /// Loads a file after checking its signature (`FILE.sig`) against `trust`
    /// and, when given, the manifest's identity. An unsigned, tampered or
    /// wrongly-signed component is refused before it is compiled; the bytes
    /// verified are the bytes compiled. With an empty `trust`, as
    /// [`Engine::load_file`].
    pub fn load_file_trusted(
        &self,
        path: impl AsRef<Path>,
        trust: &TrustPolicy,
        identity: Option<&SignedIdentity>,
    ) -> Result<Component> {
        let path = path.as_ref();
        let bytes = read_wasm_file(path)?;
        if trust.is_required() {
            trust.verify_bytes(path, &bytes, identity)?;
        }
        let name = component_name(path);
        if wasmtime::Engine::detect_precompiled(&bytes).is_some() {
            return Err(Error::InvalidWasm {
                name: path.display().to_string(),
                reason: "this is precompiled code; load it with Engine::load_precompiled_file"
                    .into(),
            });
        }
        self.load_named(&name, &path.display().to_string(), &bytes)
    }

    /// Loads a component or core module from bytes, naming it `name`.
    /// (The bytes are the caller's: a file is size-checked by the `load_file` family.)
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Component> {
        self.load_named(name, name, bytes)
    }

    fn load_named(&self, name: &str, display: &str, bytes: &[u8]) -> Result<Component> {
        let kind = detect_kind(display, bytes)?;
        let hash = hex(&Sha256::digest(bytes));
        let cache_file = self
            .inner
            .config
            .cache_dir
            .as_ref()
            .map(|d| d.join(format!("{hash}-{}.cwasm", self.inner.compat)));
        if let Some(file) = &cache_file {
            // A hit that then fails to link is reported as it is: compiling
            // again would only fail the same way, slowly.
            if let Some(c) = self.load_cached(name, file, kind, &hash, bytes.len()) {
                return c;
            }
        }
        let invalid = |e: wasmtime::Error| Error::InvalidWasm {
            name: display.to_string(),
            reason: crate::runtime::trap::error_chain(&e),
        };
        let engine = &self.inner.wasmtime;
        let started = std::time::Instant::now();
        let long = bytes.len() >= LONG_COMPILE_BYTES;
        let file_name = display;
        if long {
            tracing::info!(
                target: "airssys_wasm::compile",
                component = name,
                bytes = bytes.len(),
                "compiling {} ({:.1} MiB)…",
                file_name,
                bytes.len() as f64 / (1u64 << 20) as f64
            );
        }
        let compiled = match kind {
            WasmKind::Component => Kind::Component(
                wasmtime::component::Component::new(engine, bytes).map_err(invalid)?,
            ),
            WasmKind::Module => {
                Kind::Module(wasmtime::Module::new(engine, bytes).map_err(invalid)?)
            }
        };
        self.inner.compiles.fetch_add(1, Ordering::Relaxed);
        if long {
            tracing::info!(
                target: "airssys_wasm::compile",
                component = name,
                ms = started.elapsed().as_millis() as u64,
                "compiled {} in {:.1?}{}",
                file_name,
                started.elapsed(),
                if cache_file.is_some() { " (cached for next time)" } else { "" }
            );
        }
        if let Some(file) = &cache_file {
            store_cached(file, &compiled);
        }
        Component::new(self.clone(), name, hash, bytes.len(), compiled)
    }

    fn load_cached(
        &self,
        name: &str,
        file: &Path,
        kind: WasmKind,
        hash: &str,
        size: usize,
    ) -> Option<Result<Component>> {
        let bytes = std::fs::read(file).ok()?;
        // SAFETY: the file is named by the SHA-256 of the source and the engine's
        // compatibility hash and was written by `store_cached` from wasmtime's own
        // `serialize` output, in the user's private cache directory: it is as
        // trusted as this binary. wasmtime additionally checks the header and the
        // engine configuration and rejects a mismatch, which we treat as a miss.
        let compiled = match kind {
            WasmKind::Component => {
                unsafe { wasmtime::component::Component::deserialize(&self.inner.wasmtime, &bytes) }
                    .map(Kind::Component)
            }
            WasmKind::Module => {
                unsafe { wasmtime::Module::deserialize(&self.inner.wasmtime, &bytes) }
                    .map(Kind::Module)
            }
        };
        match compiled {
            Ok(compiled) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(component = name, cache = %file.display(), "compile cache hit");
                Some(Component::new(
                    self.clone(),
                    name,
                    hash.to_string(),
                    size,
                    compiled,
                ))
            }
            Err(e) => {
                tracing::warn!(cache = %file.display(), "ignoring unusable compile cache entry: {e}");
                None
            }
        }
    }

    /// Loads code precompiled by [`Engine::precompile`] (or `airssys-wasm compile`).
    ///
    /// # Safety
    /// As [`wasmtime::component::Component::deserialize_file`]: the file must have
    /// been produced by `precompile` of a compatible engine and not tampered with,
    /// because it is machine code that is run without validation.
    pub unsafe fn load_precompiled_file(&self, path: impl AsRef<Path>) -> Result<Component> {
        // SAFETY: this function's contract is the caller's.
        unsafe { self.load_precompiled_file_trusted(path, &TrustPolicy::default(), None) }
    }

    /// [`Engine::load_precompiled_file`] after checking the file's signature
    /// against `trust`: the file is read once, and the bytes verified are the
    /// bytes loaded (no second read a swapped file could slip into).
    ///
    /// # Safety
    /// As [`Engine::load_precompiled_file`].
    pub unsafe fn load_precompiled_file_trusted(
        &self,
        path: impl AsRef<Path>,
        trust: &TrustPolicy,
        identity: Option<&SignedIdentity>,
    ) -> Result<Component> {
        let path = path.as_ref();
        let bytes = read_wasm_file(path)?;
        if trust.is_required() {
            trust.verify_bytes(path, &bytes, identity)?;
        }
        let display = path.display().to_string();
        let invalid = |e: wasmtime::Error| Error::InvalidWasm {
            name: display.clone(),
            reason: crate::runtime::trap::error_chain(&e),
        };
        let engine = &self.inner.wasmtime;
        // SAFETY: the caller upholds this function's contract, which is exactly
        // wasmtime's `deserialize` contract.
        let compiled = match wasmtime::Engine::detect_precompiled(&bytes) {
            Some(wasmtime::Precompiled::Component) => Kind::Component(
                unsafe { wasmtime::component::Component::deserialize(engine, &bytes) }
                    .map_err(invalid)?,
            ),
            Some(wasmtime::Precompiled::Module) => Kind::Module(
                unsafe { wasmtime::Module::deserialize(engine, &bytes) }.map_err(invalid)?,
            ),
            None => {
                return Err(Error::InvalidWasm {
                    name: display,
                    reason: "not precompiled airssys-wasm/wasmtime code".into(),
                })
            }
        };
        let hash = hex(&Sha256::digest(&bytes));
        Component::new(
            self.clone(),
            &component_name(path),
            hash,
            bytes.len(),
            compiled,
        )
    }

    /// Compiles a component or module ahead of time; the output loads with
    /// [`Engine::load_precompiled_file`].
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        let engine = &self.inner.wasmtime;
        let invalid = |e: wasmtime::Error| Error::InvalidWasm {
            name: name.to_string(),
            reason: crate::runtime::trap::error_chain(&e),
        };
        match detect_kind(name, bytes)? {
            WasmKind::Component => engine.precompile_component(bytes).map_err(invalid),
            WasmKind::Module => engine.precompile_module(bytes).map_err(invalid),
        }
    }
}

fn new_engine(cfg: &wasmtime::Config) -> Result<wasmtime::Engine> {
    wasmtime::Engine::new(cfg).map_err(config_err)
}

fn config_err(e: wasmtime::Error) -> Error {
    Error::Config(crate::runtime::trap::error_chain(&e))
}

/// One thread per engine advances the epoch; it ends when the engine is dropped.
fn spawn_epoch_ticker(engine: &wasmtime::Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("airssys-wasm-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(tick);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, timeouts will not fire: {e}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasmKind {
    Component,
    Module,
}

pub(crate) fn detect_kind(name: &str, bytes: &[u8]) -> Result<WasmKind> {
    // The preamble: magic, then a 16-bit version and a 16-bit layer (0: core, 1: component).
    const CORE: [u8; 8] = *b"\0asm\x01\0\0\0";
    const COMPONENT_LAYER: [u8; 2] = [1, 0];
    if bytes.starts_with(b"\0asm") && bytes.len() >= 8 && bytes[6..8] == COMPONENT_LAYER {
        Ok(WasmKind::Component)
    } else if bytes.starts_with(&CORE) {
        Ok(WasmKind::Module)
    } else if bytes.starts_with(b"\0asm") {
        Err(Error::InvalidWasm {
            name: name.to_string(),
            reason: "unsupported WebAssembly binary version or layer".into(),
        })
    } else if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('(')) {
        // WebAssembly text: wasmtime parses it; it is a component if it says so.
        if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with("(component")) {
            Ok(WasmKind::Component)
        } else {
            Ok(WasmKind::Module)
        }
    } else {
        Err(Error::InvalidWasm {
            name: name.to_string(),
            reason: format!(
                "not a WebAssembly file ({} bytes, missing the \\0asm magic header)",
                bytes.len()
            ),
        })
    }
}

fn store_cached(file: &Path, compiled: &Kind) {
    let bytes = match compiled.serialize() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("cannot serialize compiled code for the cache: {e}");
            return;
        }
    };
    let write = || -> std::io::Result<()> {
        let dir = file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            file.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id()
        ));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, file)
    };
    if let Err(e) = write() {
        tracing::warn!(cache = %file.display(), "cannot write the compile cache: {e}");
    }
}

pub(crate) fn component_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
        .to_string()
}

/// The largest component file the host reads (512 MiB; an 18 MB Python
/// component is among the largest seen).
pub const MAX_COMPONENT_FILE_BYTES: u64 = 512 << 20;

/// Reads a component file: only a regular file (not a device, FIFO or
/// directory, whose reads may never end), and at most
/// [`MAX_COMPONENT_FILE_BYTES`], checked before and while reading.
pub(crate) fn read_wasm_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let invalid = |reason: String| Error::InvalidWasm {
        name: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(invalid(
            "not a regular file (a directory, device or pipe); only regular files are read".into(),
        ));
    }
    let too_large = |n: u64| {
        invalid(format!(
            "{} is larger than the {} limit on component files",
            crate::error::DisplayBytes(n),
            crate::error::DisplayBytes(MAX_COMPONENT_FILE_BYTES)
        ))
    };
    if meta.len() > MAX_COMPONENT_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_COMPONENT_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    if bytes.len() as u64 > MAX_COMPONENT_FILE_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}
