//! `airssys-wasm up`: run a system of actors from system.toml until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;

use std::net::SocketAddr;
use std::sync::Arc;

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::system::{admin, config::SystemConfig};
use airssys_wasm::{AuditLog, HostPolicy};

use crate::args::EngineArgs;
use crate::commands::client::read_token;

#[derive(Args)]
pub(crate) struct UpArgs {
    /// Serve the admin API (JSON, Prometheus metrics) on ADDR, e.g. 127.0.0.1:9090 (port 0: any).
    #[arg(long, value_name = "ADDR")]
    pub(crate) admin: Option<SocketAddr>,
    /// A file holding the bearer token every admin request must carry (required off loopback).
    #[arg(long, value_name = "FILE")]
    pub(crate) admin_token_file: Option<PathBuf>,
    /// The host policy (TOML): forbidden paths, ports and env, maximum limits.
    #[arg(long, value_name = "FILE")]
    pub(crate) policy: Option<PathBuf>,
    /// Append every capability decision to PATH as JSON Lines.
    #[arg(long, value_name = "PATH")]
    pub(crate) audit_log: Option<PathBuf>,
    /// The data directory of the actors' durable storage (default: `[system] data`
    /// in the system file; neither: no storage).
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Listen for the `[http]` routes on ADDR instead of `[http] addr` (port 0: any).
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<SocketAddr>,
    /// Require every component, and every upgrade, to be signed by this
    /// public key (repeatable; adds to `[system] trusted-keys`).
    #[arg(long, value_name = "KEY.pub")]
    pub(crate) require_signature: Vec<PathBuf>,
    /// Join the cluster on this NATS server (JetStream enabled), e.g.
    /// nats://127.0.0.1:4222 (overrides `[cluster] url`).
    #[arg(long, value_name = "URL")]
    pub(crate) cluster: Option<String>,
    /// This host's id in the cluster (default: `[cluster] host-id`, else the
    /// host name and process id).
    #[arg(long, value_name = "ID")]
    pub(crate) host_id: Option<String>,
    /// The system file.
    pub(crate) file: PathBuf,
}

pub(crate) async fn up(engine: &EngineArgs, a: UpArgs) -> Result<ExitCode> {
    // Listen first: a signal that arrives once the admin address or the "up:"
    // line is out must find its handler installed, not the default (death).
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut config = SystemConfig::from_file(&a.file)?;
    for key in &a.require_signature {
        // Relative to where the command runs, not to the system file.
        let key = std::path::absolute(key).with_context(|| key.display().to_string())?;
        config.system.trusted_keys.push(key);
    }
    let token = match (&a.admin, &a.admin_token_file) {
        (Some(addr), None) if !addr.ip().is_loopback() => bail!(
            "--admin {addr} is not a loopback address: give --admin-token-file so that every request must carry a bearer token"
        ),
        (_, Some(f)) => Some(read_token(f)?),
        _ => None,
    };
    let policy = match &a.policy {
        Some(p) => HostPolicy::from_file(p)?,
        None => HostPolicy::default(),
    };
    let audit = match &a.audit_log {
        Some(p) => AuditLog::to_file(p).with_context(|| format!("audit log {}", p.display()))?,
        None => AuditLog::default(),
    };
    let engine = engine.pooled_engine()?;
    let storage = match a.data.clone().or_else(|| config.data_dir()) {
        Some(dir) => Some(Storage::open(&dir, StorageLimits::default())?),
        None => None,
    };
    let cluster_options = config.cluster_options(a.cluster.as_deref(), a.host_id.as_deref());
    let system = Arc::new(
        config
            .builder(&engine, &policy, &audit, storage.as_ref())?
            .clustered(cluster_options.is_some())
            .start()
            .await?,
    );
    // Joined before anything is served: sends to other hosts' actors work
    // from the first request on.
    let cluster = match cluster_options {
        Some(o) => {
            let (url, host) = (o.url.clone(), o.host_id.clone());
            let c = airssys_wasm::cluster::Cluster::join(&system, o).await?;
            println!("cluster: {url} as {host}");
            Some(c)
        }
        None => None,
    };
    // The HTTP routes: bound before the "up:" line, served after it.
    let http =
        match config.http_listener(&engine, &policy, &audit, storage.as_ref(), system.clone())? {
            Some(mut h) => {
                if let Some(addr) = a.http {
                    h.addr = addr;
                }
                let listener = tokio::net::TcpListener::bind(h.addr)
                    .await
                    .with_context(|| format!("[http] addr {}", h.addr))?;
                Some((listener, h))
            }
            None => None,
        };
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match a.admin {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--admin {addr}"))?;
            let local = listener.local_addr()?;
            println!("admin: http://{local}");
            let system = system.clone();
            // One scrape of the admin API's /metrics sees the [http] listener's figures too.
            let http_metrics = http.as_ref().map(|(_, h)| h.routes.metrics().clone());
            Some(tokio::spawn(admin::serve_with(
                listener,
                system,
                token,
                admin::AdminLimits::default(),
                http_metrics,
                async {
                    let _ = admin_stopped.await;
                },
            )))
        }
        None => None,
    };
    let name = config
        .system
        .name
        .clone()
        .unwrap_or_else(|| "system".into());
    match &storage {
        Some(s) => println!(
            "up: {name}: {} actors, storage in {}",
            system.actors().len(),
            s.dir().display()
        ),
        None => println!("up: {name}: {} actors", system.actors().len()),
    }
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_server = match http {
        Some((listener, h)) => {
            println!("http: http://{}", listener.local_addr()?);
            Some(tokio::spawn(airssys_wasm::serve::serve_routes(
                listener,
                h.routes,
                h.limits,
                async {
                    let _ = http_stopped.await;
                },
            )))
        }
        None => None,
    };
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let failure = tokio::select! {
        _ = sigint.recv() => { eprintln!("SIGINT: shutting down"); None }
        _ = sigterm.recv() => { eprintln!("SIGTERM: shutting down"); None }
        e = system.failed() => Some(e),
    };
    // Stop taking HTTP requests and answer those in flight, then stop the actors.
    let _ = stop_http.send(());
    if let Some(server) = http_server {
        let _ = server.await;
    }
    // Leave first: the others see this host gone at once, not after dead-after.
    if let Some(c) = cluster {
        c.leave().await;
    }
    system.shutdown().await;
    let _ = stop_admin.send(());
    if let Some(server) = server {
        let _ = server.await;
    }
    match failure {
        None => {
            println!("stopped: {name}");
            Ok(ExitCode::SUCCESS)
        }
        Some(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
