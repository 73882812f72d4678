//! Inspecting a `.wasm` file without running it: kind, size, content hash,
//! imports and exports, WIT text, and whether it implements the airssys lifecycle.

use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::bindings::is_lifecycle;
use crate::error::error_chain;
use crate::error::{Error, Result};
use crate::runtime::component::ComponentKind;
use crate::runtime::engine::Engine;
use crate::runtime::load::detect_kind;
use crate::units::hex;

/// What [`Engine::inspect`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The file or name inspected.
    pub name: String,
    /// Component or core module.
    pub kind: ComponentKind,
    /// Size in bytes.
    pub size: usize,
    /// SHA-256 of the bytes, in hex.
    pub sha256: String,
    /// Imports: interface names for components (`wasi:cli/stdout@0.2.0`),
    /// `module::name` for core modules.
    pub imports: Vec<String>,
    /// Exports, named the same way.
    pub exports: Vec<String>,
    /// Whether it exports `airssys:component/lifecycle`.
    pub lifecycle: bool,
    /// Whether it exports `wasi:http/incoming-handler` (0.2.x): a `wasi:http/proxy`
    /// component that `airssys-wasm serve` and HTTP routes can serve.
    pub http_handler: bool,
    /// The component's world as WIT text (imports and exports by name).
    pub world: Option<String>,
    /// The world and every interface it uses, as WIT text.
    pub wit: Option<String>,
}

impl Engine {
    /// Inspects a file; see [`Engine::inspect`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::InvalidWasm`] (also for a file past [`MAX_COMPONENT_FILE_BYTES`](crate::MAX_COMPONENT_FILE_BYTES)).
    pub fn inspect_file(&self, path: impl AsRef<Path>) -> Result<Inspection> {
        let path = path.as_ref();
        let bytes = crate::runtime::load::read_wasm_file(path)?;
        self.inspect(&path.display().to_string(), &bytes)
    }

    /// Inspects WebAssembly bytes without instantiating them. Works on
    /// components whose imports this host does not provide.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWasm`] when the bytes are not WebAssembly.
    pub fn inspect(&self, name: &str, bytes: &[u8]) -> Result<Inspection> {
        let invalid = |reason: String| Error::InvalidWasm {
            name: name.to_string(),
            reason,
        };
        let sha256 = hex(&Sha256::digest(bytes));
        match detect_kind(name, bytes)? {
            ComponentKind::Component => {
                let decoded =
                    wit_component::decode(bytes).map_err(|e| invalid(format!("{e:#}")))?;
                let wit_component::DecodedWasm::Component(resolve, world_id) = decoded else {
                    return Err(invalid("a WIT package, not a component".into()));
                };
                let world = &resolve.worlds[world_id];
                let imports: Vec<String> = world
                    .imports
                    .keys()
                    .map(|k| resolve.name_world_key(k))
                    .collect();
                let exports: Vec<String> = world
                    .exports
                    .keys()
                    .map(|k| resolve.name_world_key(k))
                    .collect();
                let print = |nested: &[_]| {
                    let pkg = world.package?;
                    let mut printer = wit_component::WitPrinter::default();
                    printer.print(&resolve, pkg, nested).ok()?;
                    Some(printer.output.to_string())
                };
                let others: Vec<_> = resolve
                    .packages
                    .iter()
                    .map(|(id, _)| id)
                    .filter(|id| Some(*id) != world.package)
                    .collect();
                let (world_text, wit) = (print(&[]), print(&others));
                Ok(Inspection {
                    name: name.to_string(),
                    kind: ComponentKind::Component,
                    size: bytes.len(),
                    sha256,
                    lifecycle: exports.iter().any(|e| is_lifecycle(e)),
                    http_handler: exports
                        .iter()
                        .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
                    imports,
                    exports,
                    world: world_text,
                    wit,
                })
            }
            ComponentKind::Module => {
                let module = wasmtime::Module::new(self.wasmtime(), bytes)
                    .map_err(|e| invalid(error_chain(&e)))?;
                Ok(Inspection {
                    name: name.to_string(),
                    kind: ComponentKind::Module,
                    size: bytes.len(),
                    sha256,
                    imports: module
                        .imports()
                        .map(|i| format!("{}::{}", i.module(), i.name()))
                        .collect(),
                    exports: module.exports().map(|e| e.name().to_string()).collect(),
                    lifecycle: false,
                    http_handler: false,
                    world: None,
                    wit: None,
                })
            }
        }
    }
}
