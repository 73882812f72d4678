//! Loading code into an [`Engine`]: a `.wasm`/`.wat` file or bytes is
//! size-checked, its signature verified where the trust policy asks, looked up
//! in the compile cache by content hash, else compiled (and cached), then
//! linked into a [`Component`]. Precompiled (`.cwasm`) code loads here too.

use std::path::Path;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::runtime::component::{Compiled, Component, ComponentKind};
use crate::runtime::engine::{Engine, LONG_COMPILE_BYTES};
use crate::security::signing::{SignedIdentity, TrustPolicy};
use crate::units::hex;

impl Engine {
    /// Loads a component or core module from a `.wasm` (or `.wat`) file. The
    /// component id is the file stem.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file cannot be read, [`Error::InvalidWasm`] for a file past
    /// [`MAX_COMPONENT_FILE_BYTES`](crate::MAX_COMPONENT_FILE_BYTES), [`Error::InvalidWasm`]
    /// when it does not compile, [`Error::Link`] when its imports are not all provided.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Component> {
        self.load_file_trusted(path, &TrustPolicy::default(), None)
    }

    /// Loads a file after checking its signature (`FILE.sig`) against `trust`
    /// and, when given, the manifest's identity. An unsigned, tampered or
    /// wrongly-signed component is refused before it is compiled; the bytes
    /// verified are the bytes compiled. With an empty `trust`, as
    /// [`Engine::load_file`].
    ///
    /// # Errors
    ///
    /// As [`Engine::load_file`], and a signature error when the trust policy requires one that
    /// is missing, tampered or made by another key or for another identity.
    pub fn load_file_trusted(
        &self,
        path: impl AsRef<Path>,
        trust: &TrustPolicy,
        identity: Option<&SignedIdentity>,
    ) -> Result<Component> {
        let path = path.as_ref();
        let bytes = read_wasm_file(path)?;
        let signed = match trust.is_required() {
            true => Some(trust.verify_bytes(path, &bytes, identity)?),
            false => None,
        };
        let name = component_name(path);
        if wasmtime::Engine::detect_precompiled(&bytes).is_some() {
            return Err(Error::InvalidWasm {
                name: path.display().to_string(),
                reason: "this is precompiled code; load it with Engine::load_precompiled_file"
                    .into(),
            });
        }
        let c = self.load_named(&name, &path.display().to_string(), &bytes)?;
        Ok(match signed {
            Some(id) => c.signed_as(id),
            None => c,
        })
    }

    /// Loads bytes that arrived with the text of their signature file (an
    /// upload, say): the signature is checked against `trust` and, when given,
    /// `identity` before anything compiles, as [`Engine::load_file_trusted`]
    /// does for a file and its `FILE.sig`. Precompiled code is refused.
    ///
    /// # Errors
    ///
    /// A signature error (missing key, tampered, untrusted key, other
    /// identity), or as [`Engine::load`].
    pub fn load_signed(
        &self,
        name: &str,
        bytes: &[u8],
        signature: &str,
        trust: &TrustPolicy,
        identity: Option<&SignedIdentity>,
    ) -> Result<Component> {
        let label = Path::new(name);
        if !trust.is_required() {
            return Err(Error::Signature {
                path: label.to_path_buf(),
                message: "refused: no trusted key to check the signature with".into(),
            });
        }
        let signed = trust.verify_signature(
            label,
            Path::new("its signature"),
            bytes,
            signature,
            identity,
        )?;
        if wasmtime::Engine::detect_precompiled(bytes).is_some() {
            return Err(Error::InvalidWasm {
                name: name.to_string(),
                reason: "this is precompiled code, which is not taken from an upload".into(),
            });
        }
        Ok(self.load(name, bytes)?.signed_as(signed))
    }

    /// Loads a component or core module from bytes, naming it `name`.
    /// (The bytes are the caller's: a file is size-checked by the `load_file` family.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWasm`] when the bytes do not compile, [`Error::Link`] when the imports
    /// are not all provided.
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
            reason: crate::error::error_chain(&e),
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
            ComponentKind::Component => Compiled::Component(
                wasmtime::component::Component::new(engine, bytes).map_err(invalid)?,
            ),
            ComponentKind::Module => {
                Compiled::Module(wasmtime::Module::new(engine, bytes).map_err(invalid)?)
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
        kind: ComponentKind,
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
            ComponentKind::Component => {
                unsafe { wasmtime::component::Component::deserialize(&self.inner.wasmtime, &bytes) }
                    .map(Compiled::Component)
            }
            ComponentKind::Module => {
                unsafe { wasmtime::Module::deserialize(&self.inner.wasmtime, &bytes) }
                    .map(Compiled::Module)
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
    ///
    /// # Errors
    ///
    /// [`Error::Io`], or [`Error::InvalidWasm`] when the file is not code precompiled by this
    /// engine's configuration.
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
    ///
    /// # Errors
    ///
    /// As [`Engine::load_precompiled_file`], and the signature errors of
    /// [`Engine::load_file_trusted`].
    pub unsafe fn load_precompiled_file_trusted(
        &self,
        path: impl AsRef<Path>,
        trust: &TrustPolicy,
        identity: Option<&SignedIdentity>,
    ) -> Result<Component> {
        let path = path.as_ref();
        let bytes = read_wasm_file(path)?;
        let signed = match trust.is_required() {
            true => Some(trust.verify_bytes(path, &bytes, identity)?),
            false => None,
        };
        let display = path.display().to_string();
        let invalid = |e: wasmtime::Error| Error::InvalidWasm {
            name: display.clone(),
            reason: crate::error::error_chain(&e),
        };
        let engine = &self.inner.wasmtime;
        // SAFETY: the caller upholds this function's contract, which is exactly
        // wasmtime's `deserialize` contract.
        let compiled = match wasmtime::Engine::detect_precompiled(&bytes) {
            Some(wasmtime::Precompiled::Component) => Compiled::Component(
                unsafe { wasmtime::component::Component::deserialize(engine, &bytes) }
                    .map_err(invalid)?,
            ),
            Some(wasmtime::Precompiled::Module) => Compiled::Module(
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
        let c = Component::new(
            self.clone(),
            &component_name(path),
            hash,
            bytes.len(),
            compiled,
        )?;
        Ok(match signed {
            Some(id) => c.signed_as(id),
            None => c,
        })
    }

    /// Compiles a component or module ahead of time; the output loads with
    /// [`Engine::load_precompiled_file`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidWasm`] when the bytes do not compile.
    pub fn precompile(&self, name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
        let engine = &self.inner.wasmtime;
        let invalid = |e: wasmtime::Error| Error::InvalidWasm {
            name: name.to_string(),
            reason: crate::error::error_chain(&e),
        };
        match detect_kind(name, bytes)? {
            ComponentKind::Component => engine.precompile_component(bytes).map_err(invalid),
            ComponentKind::Module => engine.precompile_module(bytes).map_err(invalid),
        }
    }
}

pub(crate) fn detect_kind(name: &str, bytes: &[u8]) -> Result<ComponentKind> {
    // The preamble: magic, then a 16-bit version and a 16-bit layer (0: core, 1: component).
    const CORE: [u8; 8] = *b"\0asm\x01\0\0\0";
    const COMPONENT_LAYER: [u8; 2] = [1, 0];
    if bytes.starts_with(b"\0asm") && bytes.len() >= 8 && bytes[6..8] == COMPONENT_LAYER {
        Ok(ComponentKind::Component)
    } else if bytes.starts_with(&CORE) {
        Ok(ComponentKind::Module)
    } else if bytes.starts_with(b"\0asm") {
        Err(Error::InvalidWasm {
            name: name.to_string(),
            reason: "unsupported WebAssembly binary version or layer".into(),
        })
    } else if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('(')) {
        // WebAssembly text: wasmtime parses it; it is a component if it says so.
        if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with("(component")) {
            Ok(ComponentKind::Component)
        } else {
            Ok(ComponentKind::Module)
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

fn store_cached(file: &Path, compiled: &Compiled) {
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
