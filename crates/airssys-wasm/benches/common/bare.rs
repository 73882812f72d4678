//! Bare wasmtime 48 running the airssys contract with the settings a careful
//! embedder picks: the baseline the benchmarks compare against.
#![allow(dead_code)]
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "component",
    exports: { default: async },
});

use airssys::component::services::{self, LogLevel};
pub use airssys::component::types::{Error, Message};

pub struct State {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl airssys::component::types::Host for State {}
impl services::Host for State {
    fn log(&mut self, _: LogLevel, _: String, _: Vec<(String, String)>) {}
    fn now_millis(&mut self) -> Result<u64, Error> {
        Ok(0)
    }
    fn monotonic_nanos(&mut self) -> Result<u64, Error> {
        Ok(0)
    }
    fn get_config(&mut self, _: String) -> Result<Option<String>, Error> {
        Ok(None)
    }
}

pub struct Bare {
    pub engine: Engine,
    pub pre: ComponentPre<State>,
    metered: bool,
}

impl Bare {
    pub fn new(path: &std::path::Path, metered: bool) -> Bare {
        let mut cfg = Config::new();
        cfg.concurrency_support(false);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(
            PoolingAllocationConfig::default(),
        ));
        if metered {
            cfg.consume_fuel(true).epoch_interruption(true);
        }
        let engine = Engine::new(&cfg).unwrap();
        let mut linker = Linker::<State>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        airssys::component::types::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)
            .unwrap();
        services::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s).unwrap();
        let component = wasmtime::component::Component::from_file(&engine, path).unwrap();
        let pre = ComponentPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        Bare {
            engine,
            pre,
            metered,
        }
    }

    pub async fn instantiate(&self) -> (Store<State>, Component) {
        let state = State {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        if self.metered {
            store.set_fuel(u64::MAX).unwrap();
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        (store, instance)
    }
}

/// `initialize` with no config.
pub async fn initialize(store: &mut Store<State>, instance: &Component) {
    instance
        .airssys_component_lifecycle()
        .call_initialize(store, &[])
        .await
        .unwrap()
        .unwrap()
}

/// `handle-callback` with a reply.
pub async fn callback(store: &mut Store<State>, instance: &Component, reply: &Message) {
    instance
        .airssys_component_lifecycle()
        .call_handle_callback(store, "1", Ok(reply))
        .await
        .unwrap()
        .unwrap()
}

/// `handle-message`; the reply.
pub async fn call(
    store: &mut Store<State>,
    instance: &Component,
    msg: &Message,
) -> Option<Vec<u8>> {
    instance
        .airssys_component_lifecycle()
        .call_handle_message(store, msg)
        .await
        .unwrap()
        .unwrap()
}
