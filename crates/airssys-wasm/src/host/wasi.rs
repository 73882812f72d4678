//! WASI glue: a deny-by-default `WasiCtx` built from [`Capabilities`], and the
//! bounded buffer that keeps the tail of a lifecycle guest's output so that a
//! trap can be reported with the guest's own panic message.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::error::{Error, Result};
use crate::sandbox::context::ExecutionContext;
use crate::security::capability::{CapabilityKind, FunctionSignature, WitInterface};

/// Where a guest's stdio goes.
pub(crate) enum Stdio {
    /// The host process's stdin, stdout and stderr (for `run`).
    Inherit,
    /// No stdin; stdout and stderr into a tail buffer.
    Capture(TailBuffer),
}

const fn f(name: &'static str, kind: &'static [CapabilityKind]) -> FunctionSignature {
    FunctionSignature {
        name,
        required_capabilities: kind,
    }
}

const FS: &[CapabilityKind] = &[CapabilityKind::Filesystem];
const ENV: &[CapabilityKind] = &[CapabilityKind::Environment];
const NET: &[CapabilityKind] = &[CapabilityKind::NetworkOutbound];

/// The WASI functions whose success depends on a grant. Files are reachable only
/// through the preopened directories; the environment only through the granted
/// variables; sockets only to granted addresses.
pub(crate) const INTERFACES: &[WitInterface] = &[
    WitInterface {
        name: "wasi:filesystem/preopens",
        functions: &[f("get-directories", FS)],
    },
    WitInterface {
        name: "wasi:cli/environment",
        functions: &[f("get-environment", ENV)],
    },
    WitInterface {
        name: "wasi:sockets/tcp",
        functions: &[
            f("[method]tcp-socket.start-connect", NET),
            f("[method]tcp-socket.start-bind", NET),
        ],
    },
    WitInterface {
        name: "wasi:sockets/udp",
        functions: &[
            f("[method]udp-socket.start-bind", NET),
            f("[method]udp-socket.stream", NET),
        ],
    },
    WitInterface {
        name: "wasi:sockets/ip-name-lookup",
        functions: &[f("resolve-addresses", NET)],
    },
];

/// A WASI context that grants exactly `ctx`'s capabilities: the listed
/// directories (read-only where asked), the listed environment variables,
/// outbound sockets only to granted addresses (each connect checked and
/// audited), no host args.
pub(crate) fn builder(
    ctx: &ExecutionContext,
    args: &[String],
    stdio: Stdio,
    resolved: &super::sockets::Resolved,
) -> Result<WasiCtxBuilder> {
    let component = ctx.component_id();
    let caps = ctx.capabilities();
    let mut b = WasiCtxBuilder::new();
    b.args(args);
    b.envs(&caps.env);
    for dir in &caps.dirs {
        let perms = if dir.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&dir.host, &dir.guest, perms).map_err(|e| {
            Error::Config(format!(
                "{component}: cannot grant directory {} as {}: {}",
                dir.host.display(),
                dir.guest,
                crate::error::error_chain(&e)
            ))
        })?;
    }
    super::sockets::configure(&mut b, ctx, resolved);
    match stdio {
        Stdio::Inherit => {
            b.inherit_stdio();
        }
        Stdio::Capture(tail) => {
            b.stdout(tail.clone()).stderr(tail);
        }
    }
    Ok(b)
}

/// Keeps the last `capacity` bytes written to it.
#[derive(Clone, Debug)]
pub(crate) struct TailBuffer {
    inner: Arc<Mutex<VecDeque<u8>>>,
    capacity: usize,
}

impl TailBuffer {
    pub(crate) fn new(capacity: usize) -> Self {
        TailBuffer {
            inner: Arc::new(Mutex::new(VecDeque::new())),
            capacity,
        }
    }

    /// Takes what was written so far, leaving the buffer empty.
    pub(crate) fn take(&self) -> String {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: Vec<u8> = buf.drain(..).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn push(&self, data: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let data = &data[data.len().saturating_sub(self.capacity)..];
        let overflow = (buf.len() + data.len()).saturating_sub(self.capacity);
        buf.drain(..overflow);
        buf.extend(data);
    }
}

impl IsTerminal for TailBuffer {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailBuffer {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for TailBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_last_bytes() {
        let t = TailBuffer::new(8);
        t.push(b"hello ");
        t.push(b"world!");
        assert_eq!(t.take(), "o world!");
        t.push(b"0123456789abc");
        assert_eq!(t.take(), "56789abc");
        assert_eq!(t.take(), "");
    }
}
