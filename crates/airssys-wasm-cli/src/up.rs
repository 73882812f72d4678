//! `up` runs a system from `system.toml` until SIGINT/SIGTERM, serving the
//! admin API; `ps` and `send` talk to that API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use airssys_wasm::storage::{Storage, StorageLimits};
use airssys_wasm::system::{admin, config::SystemConfig};
use airssys_wasm::units::parse_duration;
use airssys_wasm::{AuditLog, HostPolicy};
use anyhow::{bail, Context, Result};
use clap::Args;

use crate::EngineArgs;

#[derive(Args)]
pub struct UpArgs {
    /// Serve the admin API (JSON, Prometheus metrics) on ADDR, e.g. 127.0.0.1:9090 (port 0: any).
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// A file holding the bearer token every admin request must carry (required off loopback).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// The host policy (TOML): forbidden paths, ports and env, maximum limits.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Append every capability decision to PATH as JSON Lines.
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// The data directory of the actors' durable storage (default: `[system] data`
    /// in the system file; neither: no storage).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The system file.
    file: PathBuf,
}

#[derive(Args)]
pub struct ClientArgs {
    /// The admin API of a running `up`, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    admin: String,
    /// A file holding the admin bearer token.
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
}

#[derive(Args)]
pub struct PsArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Print the JSON the API returned.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Wait for the reply and print it.
    #[arg(long)]
    reply: bool,
    /// How long to wait for the reply.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// The actor id (`name` or `component/key`).
    id: String,
    /// The payload: literal text, or `@FILE` to read it from a file.
    payload: String,
}

fn read_token(path: &PathBuf) -> Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("token file {}", path.display()))?
        .trim()
        .to_string();
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

pub async fn up(engine: &EngineArgs, a: UpArgs) -> Result<ExitCode> {
    // Listen first: a signal that arrives once the admin address or the "up:"
    // line is out must find its handler installed, not the default (death).
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let config = SystemConfig::from_file(&a.file)?;
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
    let system = Arc::new(
        config
            .builder(&engine, &policy, &audit, storage.as_ref())?
            .start()
            .await?,
    );
    let (stop_admin, admin_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = match a.admin {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("--admin {addr}"))?;
            let local = listener.local_addr()?;
            println!("admin: http://{local}");
            let system = system.clone();
            Some(tokio::spawn(admin::serve(listener, system, token, async {
                let _ = admin_stopped.await;
            })))
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
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let failure = tokio::select! {
        _ = sigint.recv() => { eprintln!("SIGINT: shutting down"); None }
        _ = sigterm.recv() => { eprintln!("SIGTERM: shutting down"); None }
        e = system.failed() => Some(e),
    };
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

/// Percent-encodes an actor id for a URL path (`counter/7` -> `counter%2F7`).
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(70)))
        .build()
        .into()
}

fn url(c: &ClientArgs, path: &str) -> String {
    format!("{}{path}", c.admin.trim_end_matches('/'))
}

fn auth(c: &ClientArgs) -> Result<Option<String>> {
    Ok(match &c.token_file {
        Some(f) => Some(format!("Bearer {}", read_token(f)?)),
        None => None,
    })
}

/// The API's `{"error": ...}` text, or the body.
fn api_error(status: u16, body: &[u8]) -> anyhow::Error {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    anyhow::anyhow!("admin API answered {status}: {text}")
}

pub fn ps(a: PsArgs) -> Result<ExitCode> {
    let url = url(&a.client, "/components");
    let mut req = agent().get(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    let mut resp = req.call().with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    if status != 200 {
        return Err(api_error(status, &body));
    }
    if a.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let actors: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
    println!(
        "{:<24} {:<14} {:<12} {:<10} {:>8} {:>8} {:>8}",
        "ID", "COMPONENT", "SUPERVISOR", "STATE", "RESTARTS", "MAILBOX", "HANDLED"
    );
    for v in actors {
        let s: ActorStatusRow = serde_json::from_value(v)?;
        println!(
            "{:<24} {:<14} {:<12} {:<10} {:>8} {:>8} {:>8}",
            s.id, s.component, s.supervisor, s.state, s.restarts, s.mailbox, s.handled
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns `ps` shows, as `airssys_wasm::ActorStatus` serializes them.
#[derive(serde::Deserialize)]
struct ActorStatusRow {
    id: String,
    component: String,
    supervisor: String,
    state: String,
    restarts: u32,
    mailbox: usize,
    handled: u64,
}

pub fn send(a: SendArgs) -> Result<ExitCode> {
    let payload = crate::read_payload(&a.payload)?;
    let mut path = format!("/components/{}/messages", encode(&a.id));
    if a.reply {
        path.push_str(&format!("?reply=true&timeout={}ms", a.timeout.as_millis()));
    }
    let url = url(&a.client, &path);
    let mut req = agent().post(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    let mut resp = req.send(&payload[..]).with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    match status {
        202 => {
            eprintln!("accepted");
            Ok(ExitCode::SUCCESS)
        }
        200 => {
            std::io::Write::write_all(&mut std::io::stdout(), &body)?;
            println!();
            Ok(ExitCode::SUCCESS)
        }
        204 => Ok(ExitCode::SUCCESS),
        _ => Err(api_error(status, &body)),
    }
}
