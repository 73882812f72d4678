//! The [`Engine`]: wasmtime configured once (pooling allocator, epoch ticker,
//! fuel), the linkers every component is prepared against, the counters of the
//! on-disk compile cache, and the stores instances run in. Loading and
//! compiling code is in `load.rs`; the engine knows nothing of what it loads.

use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::error::{Error, Result};
use crate::host::{self, HasRunState, HostState, ModuleHost};
use crate::sandbox::limits::DeadlineExceeded;

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
    pub(crate) compat: String,
    pub(crate) hits: AtomicU64,
    pub(crate) compiles: AtomicU64,
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
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when wasmtime refuses the configuration (for example a pool too large
    /// for the address space).
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

    /// A store with the limiter installed and the epoch callback that enforces
    /// the call's deadline and otherwise yields to the executor at every tick.
    pub(crate) fn store<T: HasRunState>(&self, mut data: T) -> wasmtime::Store<T> {
        data.run().metered = self.inner.config.consume_fuel;
        let mut store = wasmtime::Store::new(&self.inner.wasmtime, data);
        store.limiter(|d| &mut d.run().limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| match cx.data_mut().run().deadline {
            Some(deadline) if std::time::Instant::now() >= deadline => {
                Err(wasmtime::Error::new(DeadlineExceeded))
            }
            _ => Ok(wasmtime::UpdateDeadline::Yield(1)),
        });
        store
    }
}

fn new_engine(cfg: &wasmtime::Config) -> Result<wasmtime::Engine> {
    wasmtime::Engine::new(cfg).map_err(config_err)
}

fn config_err(e: wasmtime::Error) -> Error {
    Error::Config(crate::error::error_chain(&e))
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
