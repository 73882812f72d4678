//! `airssys-wasm serve`: answer HTTP requests with a `wasi:http/proxy`
//! component, a fresh instance per request, as `wasmtime serve` does.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use airssys_wasm::security::pattern::HostPattern;
use airssys_wasm::serve::{serve as serve_http, serve_metrics, HttpHandler, ServeLimits};
use airssys_wasm::units::{parse_duration, parse_size};
use airssys_wasm::{EngineConfig, Manifest};

use crate::args::{file_stem, load, parse_key_value, EngineArgs, LimitArgs, SecurityArgs};
use crate::commands::storage::DataArg;

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: SocketAddr,
    /// Serve Prometheus metrics at http://ADDR/metrics (a listener of its own).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<SocketAddr>,
    /// Requests handled at once; past it 503 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = ServeLimits::default().max_concurrency)]
    pub(crate) max_concurrency: usize,
    /// Connections open at once.
    #[arg(long, value_name = "N", default_value_t = ServeLimits::default().max_connections)]
    pub(crate) max_connections: usize,
    /// The largest request body (`16MiB`); past it 413.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_body: Option<u64>,
    /// The largest request head (`64KiB`, at least 8 KiB); past it 431.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_header: Option<u64>,
    /// How long requests in flight may finish after SIGINT/SIGTERM.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub(crate) drain_timeout: std::time::Duration,
    /// Grant outbound HTTP requests to `HOST:PORT` (repeatable), on top of the manifest's grants.
    #[arg(long = "allow-outbound", value_name = "HOST:PORT")]
    pub(crate) outbound: Vec<String>,
    /// A configuration entry the guest reads with `get-config` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) config: Vec<(String, String)>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) security: SecurityArgs,
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// The component: it exports wasi:http/incoming-handler.
    pub(crate) file: PathBuf,
}

pub(crate) async fn serve(engine_args: &EngineArgs, a: ServeArgs) -> Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let manifest = a.security.manifest()?;
    let trust = a.security.trust(manifest.as_ref())?;
    let mut manifest = manifest.unwrap_or_else(|| Manifest::new(file_stem(&a.file), "0.0.0"));
    for pattern in &a.outbound {
        let p = HostPattern::parse(pattern).map_err(anyhow::Error::msg)?;
        manifest.capabilities.network.outbound.push(p);
    }
    let (mut ctx, audit) = a.security.context(&manifest)?;
    let limits = a.limits.apply(*ctx.limits());
    ctx = ctx.with_limits(limits);
    for (k, v) in &a.config {
        ctx = ctx.with_config(k, v);
    }
    let ctx = a.data.apply(ctx)?;
    let mut limits = ServeLimits {
        max_concurrency: a.max_concurrency.max(1),
        max_connections: a.max_connections.max(1),
        drain_timeout: a.drain_timeout,
        ..ServeLimits::default()
    };
    if let Some(b) = a.max_body {
        limits.max_body_bytes = b;
    }
    if let Some(h) = a.max_header {
        limits.max_header_bytes = usize::try_from(h).unwrap_or(usize::MAX);
    }
    // One pooled slot per request in flight; fuel metered so that the
    // manifest's fuel limit holds per request.
    let config: EngineConfig = engine_args
        .config()
        .consume_fuel(ctx.limits().fuel.is_some())
        .pool_instances(u32::try_from(limits.max_concurrency).unwrap_or(u32::MAX));
    let engine = airssys_wasm::Engine::new(config)?;
    let component = load(&engine, &a.file, false, &trust)?;
    let handler = HttpHandler::new(&component, ctx, limits)?;
    let listener = tokio::net::TcpListener::bind(a.addr)
        .await
        .with_context(|| format!("cannot listen on {}", a.addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics_task = match a.metrics_addr {
        Some(m) => {
            let l = tokio::net::TcpListener::bind(m)
                .await
                .with_context(|| format!("cannot listen on {m} for metrics"))?;
            println!("metrics: http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(serve_metrics(
                l,
                Arc::clone(handler.metrics()),
                wait(stopped.clone()),
            )))
        }
        None => None,
    };
    let server = tokio::spawn(serve_http(listener, handler, wait(stopped.clone())));
    println!("serving {} on http://{addr}/", component.name());
    tokio::select! {
        _ = sigint.recv() => eprintln!("SIGINT: draining requests in flight (up to {:?})", a.drain_timeout),
        _ = sigterm.recv() => eprintln!("SIGTERM: draining requests in flight (up to {:?})", a.drain_timeout),
    }
    let _ = stop.send(true);
    let drained = server.await.unwrap_or(false);
    if let Some(t) = metrics_task {
        let _ = t.await;
    }
    audit.flush();
    if drained {
        println!("stopped: every request answered");
    } else {
        eprintln!(
            "stopped: requests still in flight after {:?} were cut",
            a.drain_timeout
        );
    }
    Ok(ExitCode::SUCCESS)
}
