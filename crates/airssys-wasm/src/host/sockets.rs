//! WASI sockets behind the outbound grants. Owns the network check:
//!
//! - every connect, bind and datagram goes through `socket_addr_check`, which
//!   allows an address only when an outbound pattern covers it (IP patterns), or
//!   when it was resolved from a DNS name that a pattern covers, on a port that
//!   pattern allows (DNS patterns);
//! - `wasi:sockets/ip-name-lookup.resolve-addresses` is interposed: a name no
//!   pattern covers is refused with `access-denied` before any DNS query, and
//!   the addresses an allowed lookup returns are remembered for the connect check.
//!
//! Every decision is audited.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress, Network};
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsView};
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

use crate::sandbox::context::ExecutionContext;
use crate::security::capability::{Capabilities, Decision};
use crate::security::policy::{Capability, PolicyDecision};

/// Addresses resolved by allowed lookups, with the name they came from.
pub(crate) type Resolved = Arc<Mutex<HashMap<IpAddr, String>>>;

/// Per-instance state of the interposed name lookup.
pub(crate) struct LookupState {
    pub(crate) component: Arc<str>,
    pub(crate) caps: Arc<Capabilities>,
    pub(crate) resolved: Resolved,
    /// Resolve streams opened by allowed lookups, by resource rep, with the name.
    pub(crate) streams: HashMap<u32, String>,
}

const IP_NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";
/// Resolved addresses remembered per instance before the memory is reset.
const RESOLVED_LIMIT: usize = 4096;

/// Configures the WASI sockets of one instance: closed unless something is
/// granted; then each address is checked against the grants.
pub(crate) fn configure(b: &mut WasiCtxBuilder, ctx: &ExecutionContext, resolved: &Resolved) {
    // Sockets are on even with nothing granted, so that every refusal goes
    // through the check below and reaches the audit log.
    let caps = ctx.capabilities();
    b.allow_tcp(true).allow_udp(true);
    b.allow_ip_name_lookup(caps.outbound.iter().any(|p| p.is_dns_name()));
    let (caps, component, resolved) =
        (ctx.shared_capabilities(), ctx.shared_id(), resolved.clone());
    b.socket_addr_check(move |addr, usage| {
        let function = match usage {
            SocketAddrUse::TcpBind => "wasi:sockets/tcp.start-bind",
            SocketAddrUse::TcpConnect => "wasi:sockets/tcp.start-connect",
            SocketAddrUse::UdpBind => "wasi:sockets/udp.start-bind",
            SocketAddrUse::UdpSend => "wasi:sockets/udp.send",
            SocketAddrUse::UdpReceive => "wasi:sockets/udp.receive",
            SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                let d = Decision::deny("not granted: inbound connections are not a capability");
                caps.record(&component, "wasi:sockets/tcp.listen", &addr.to_string(), &d);
                return Box::pin(async { false });
            }
        };
        let resource = addr.to_string();
        let ephemeral = matches!(usage, SocketAddrUse::UdpBind | SocketAddrUse::TcpBind)
            && addr.ip().is_unspecified()
            && addr.port() == 0;
        let d = if ephemeral {
            // A client socket binds to an ephemeral local port before it connects.
            Decision::allow("ephemeral local bind")
        } else {
            let by_ip = caps.check_connect(addr);
            if by_ip.allowed {
                by_ip
            } else {
                let name = resolved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&addr.ip().to_canonical())
                    .cloned();
                match name.and_then(|n| by_name(&caps, &n, addr.port())) {
                    Some(d) => d,
                    None => by_ip,
                }
            }
        };
        let d = if d.allowed {
            // The grant holds; the host's policy has the last word.
            match caps
                .policy
                .check_capability(&component, &Capability::Connect(addr))
            {
                PolicyDecision::Allowed => d,
                PolicyDecision::Denied { reason } => {
                    Decision::deny(format!("host policy: {reason}"))
                }
            }
        } else {
            d
        };
        caps.record(&component, function, &resource, &d);
        let allowed = d.allowed;
        Box::pin(async move { allowed })
    });
}

fn by_name(caps: &Capabilities, name: &str, port: u16) -> Option<Decision> {
    if caps.forbidden_ports.contains(&port) {
        return None;
    }
    caps.outbound
        .iter()
        .find(|p| p.matches_name(name) && p.matches_port(port))
        .map(|p| {
            Decision::allow(format!(
                "network.outbound {} (resolved from {name})",
                p.as_str()
            ))
        })
}

/// Interposes `resolve-addresses` and `resolve-next-address` over wasmtime-wasi's.
pub(crate) fn add_to_linker<T: WasiView + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut LookupState,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut inst = linker.instance(IP_NAME_LOOKUP)?;
    inst.func_wrap(
        "resolve-addresses",
        move |mut store: StoreContextMut<'_, T>, (network, name): (Resource<Network>, String)| {
            let state = store.data_mut();
            let lookup = get(state);
            let d = lookup
                .caps
                .decide(&lookup.component, &Capability::Lookup(&name));
            lookup.caps.record(
                &lookup.component,
                "wasi:sockets/ip-name-lookup.resolve-addresses",
                &name,
                &d,
            );
            if !d.allowed {
                return Ok((Err(ErrorCode::AccessDenied),));
            }
            let mut view = WasiSocketsView::sockets(state);
            match ip_name_lookup::Host::resolve_addresses(&mut view, network, name.clone()) {
                Ok(stream) => {
                    get(state).streams.insert(stream.rep(), name);
                    Ok((Ok(stream),))
                }
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    )?;
    inst.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        move |mut store: StoreContextMut<'_, T>, (stream,): (Resource<ResolveAddressStream>,)| {
            let state = store.data_mut();
            let rep = stream.rep();
            let mut view = WasiSocketsView::sockets(state);
            match HostResolveAddressStream::resolve_next_address(&mut view, stream) {
                Ok(addr) => {
                    let lookup = get(state);
                    match (&addr, lookup.streams.get(&rep)) {
                        (Some(addr), Some(name)) => {
                            let ip = match *addr {
                                IpAddress::Ipv4((a, b, c, d)) => IpAddr::from([a, b, c, d]),
                                IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
                                    IpAddr::from([a, b, c, d, e, f, g, h])
                                }
                            };
                            let mut resolved =
                                lookup.resolved.lock().unwrap_or_else(|p| p.into_inner());
                            if resolved.len() >= RESOLVED_LIMIT {
                                // Bounded: a guest cannot grow host memory by looking names up.
                                resolved.clear();
                            }
                            resolved.insert(ip, name.clone());
                        }
                        // The stream is exhausted: forget it.
                        (None, _) => {
                            lookup.streams.remove(&rep);
                        }
                        (Some(_), None) => {}
                    }
                    Ok((Ok(addr),))
                }
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
