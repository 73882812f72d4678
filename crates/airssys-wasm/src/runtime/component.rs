//! A loaded [`Component`]: compiled code (a component or a WASI p1 core module)
//! linked once against the host into an `InstancePre`.

use std::sync::Arc;

use wasmtime::component::InstancePre;

use crate::bindings::{self, LIFECYCLE_INTERFACE};
use crate::error::error_chain;
use crate::error::{Error, Result};
use crate::host::{self, wasi, HostState, ModuleHost};
use crate::runtime::engine::Engine;
use crate::runtime::instance::Instance;
use crate::sandbox::context::ExecutionContext;

/// Compiled code before linking.
pub(crate) enum Compiled {
    Component(wasmtime::component::Component),
    Module(wasmtime::Module),
}

impl Compiled {
    pub(crate) fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        match self {
            Compiled::Component(c) => c.serialize(),
            Compiled::Module(m) => m.serialize(),
        }
    }
}

/// Whether a [`Component`] is a component-model component or a core module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    /// A component-model component.
    Component,
    /// A core WebAssembly module (run as a WASI p1 command).
    Module,
}

pub(crate) enum Prepared {
    Component {
        pre: InstancePre<HostState>,
        /// Present when the component exports the airssys lifecycle.
        lifecycle: std::result::Result<bindings::LifecyclePre<HostState>, String>,
        /// Present when it exports `wasi:http/incoming-handler` (a `wasi:http/proxy`).
        http: Option<wasmtime_wasi_http::p2::bindings::ProxyPre<HostState>>,
    },
    Module {
        pre: wasmtime::InstancePre<ModuleHost>,
    },
}

struct Inner {
    engine: Engine,
    name: String,
    hash: String,
    size: usize,
    prepared: Prepared,
    /// The identity its signature carried, when it was loaded with one verified.
    signed: std::sync::OnceLock<crate::security::signing::SignedIdentity>,
}

/// A compiled and linked component (or core module), ready to instantiate many
/// times. Cheap to clone.
///
/// Load one with [`Engine::load_file`] or [`Engine::load`]; create instances with
/// [`Component::instantiate`] (lifecycle components) or
/// [`Component::run_command`] (WASI commands).
#[derive(Clone)]
pub struct Component {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("name", &self.inner.name)
            .field("kind", &self.kind())
            .field("hash", &self.inner.hash)
            .finish()
    }
}

impl Component {
    pub(crate) fn new(
        engine: Engine,
        name: &str,
        hash: String,
        size: usize,
        kind: Compiled,
    ) -> Result<Self> {
        let link = |e: wasmtime::Error| Error::Link {
            component: name.to_string(),
            reason: error_chain(&e),
        };
        let prepared = match kind {
            Compiled::Component(c) => {
                let pre = engine.inner.linker.instantiate_pre(&c).map_err(link)?;
                let lifecycle = bindings::LifecyclePre::new(&pre).map_err(|e| {
                    format!(
                        "does not implement {LIFECYCLE_INTERFACE} (nor an earlier contract's, {}): {}",
                        bindings::v0_1::LIFECYCLE_INTERFACE,
                        error_chain(&e)
                    )
                });
                let http = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre.clone()).ok();
                Prepared::Component {
                    pre,
                    lifecycle,
                    http,
                }
            }
            Compiled::Module(m) => Prepared::Module {
                pre: engine
                    .inner
                    .module_linker
                    .instantiate_pre(&m)
                    .map_err(link)?,
            },
        };
        Ok(Component {
            inner: Arc::new(Inner {
                engine,
                name: name.to_string(),
                hash,
                size,
                prepared,
                signed: std::sync::OnceLock::new(),
            }),
        })
    }

    /// The component's name (the file stem, or the name given to [`Engine::load`]).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The identity (name and version) its signature carried, when it was
    /// loaded with a signature verified ([`Engine::load_file_trusted`] under a
    /// policy that requires one, or [`Engine::load_signed`]).
    ///
    /// [`Engine::load_file_trusted`]: crate::Engine::load_file_trusted
    /// [`Engine::load_signed`]: crate::Engine::load_signed
    pub fn signed(&self) -> Option<&crate::security::signing::SignedIdentity> {
        self.inner.signed.get()
    }

    pub(crate) fn signed_as(self, identity: crate::security::signing::SignedIdentity) -> Self {
        // A component is fresh from its load here: the cell is empty.
        let _ = self.inner.signed.set(identity);
        self
    }

    /// SHA-256 of the bytes it was loaded from, in hex.
    pub fn content_hash(&self) -> &str {
        &self.inner.hash
    }

    /// Size in bytes of what it was loaded from.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Component or core module.
    pub fn kind(&self) -> ComponentKind {
        match self.inner.prepared {
            Prepared::Component { .. } => ComponentKind::Component,
            Prepared::Module { .. } => ComponentKind::Module,
        }
    }

    /// Whether it exports the airssys lifecycle (`airssys:component/lifecycle`).
    pub fn is_lifecycle(&self) -> bool {
        matches!(
            &self.inner.prepared,
            Prepared::Component {
                lifecycle: Ok(_),
                ..
            }
        )
    }

    /// The version of the airssys contract its lifecycle was built against:
    /// `"0.2"` (this host's, any 0.2.x), `"0.1.0"` (the first, adapted by the
    /// host), or `None` when it exports no lifecycle.
    pub fn contract(&self) -> Option<&'static str> {
        match &self.inner.prepared {
            Prepared::Component {
                lifecycle: Ok(pre), ..
            } => Some(pre.contract()),
            _ => None,
        }
    }

    /// Whether it exports `wasi:http/incoming-handler` (the `wasi:http/proxy`
    /// world), so that [`HttpHandler`](crate::serve::HttpHandler) can serve it.
    pub fn is_http_handler(&self) -> bool {
        matches!(
            &self.inner.prepared,
            Prepared::Component { http: Some(_), .. }
        )
    }

    /// The engine it was loaded into.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn prepared(&self) -> &Prepared {
        &self.inner.prepared
    }

    /// Creates an instance of a lifecycle component under `ctx`'s limits and
    /// capabilities. Call [`Instance::initialize`] next.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] when the component does not export the lifecycle,
    /// [`Error::MemoryLimit`] when its initial memory alone exceeds the limit,
    /// [`Error::Config`] when a granted directory cannot be opened, and a trap
    /// in the component's start.
    pub async fn instantiate(&self, ctx: &ExecutionContext) -> Result<Instance> {
        self.instantiate_with_mailroom(ctx, None).await
    }

    /// A store for one instance under `ctx`: its WASI grants, its stdout and
    /// stderr kept as a tail (to name a trap), its host interfaces'
    /// contexts, and `mailroom` for its messaging (none outside an actor).
    pub(crate) fn store_for(
        &self,
        ctx: &ExecutionContext,
        mailroom: Option<Box<dyn host::messaging::Mailroom>>,
    ) -> Result<wasmtime::Store<HostState>> {
        let output = wasi::TailBuffer::new(4096);
        let resolved = host::sockets::Resolved::default();
        let wasi_ctx = wasi::builder(
            ctx,
            &[ctx.component_id().to_string()],
            wasi::Stdio::Capture(output.clone()),
            &resolved,
        )?
        .build();
        Ok(self.inner.engine.store(HostState::new(
            ctx,
            wasi_ctx,
            resolved,
            Some(output),
            mailroom,
        )))
    }

    /// [`Component::instantiate`] with the [`Mailroom`](host::messaging::Mailroom)
    /// its messaging interface asks (an actor's tie to its actor system).
    pub(crate) async fn instantiate_with_mailroom(
        &self,
        ctx: &ExecutionContext,
        mailroom: Option<Box<dyn host::messaging::Mailroom>>,
    ) -> Result<Instance> {
        let pre = match &self.inner.prepared {
            Prepared::Component {
                lifecycle: Ok(pre), ..
            } => pre,
            Prepared::Component {
                lifecycle: Err(reason),
                ..
            } => {
                return Err(Error::Unsupported {
                    component: ctx.component_id().to_string(),
                    reason: reason.clone(),
                })
            }
            Prepared::Module { .. } => {
                return Err(Error::Unsupported {
                    component: ctx.component_id().to_string(),
                    reason: format!(
                        "is a core module; only components implement {LIFECYCLE_INTERFACE}"
                    ),
                })
            }
        };
        let mut store = self.store_for(ctx, mailroom)?;
        crate::runtime::instance::prepare_call(&mut store, ctx, std::time::Instant::now())?;
        let bindings = match pre.instantiate_async(&mut store).await {
            Ok(b) => b,
            Err(e) => {
                let failure = crate::runtime::trap::Failure::of(ctx, &mut store.data_mut().run);
                return Err(failure.classify(e));
            }
        };
        Ok(Instance::new(ctx.clone(), store, bindings))
    }
}
