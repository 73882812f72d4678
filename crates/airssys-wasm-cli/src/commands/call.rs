//! `airssys-wasm call`: initialize a lifecycle component and deliver one message, or `--invoke` any export.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use airssys_wasm::security::pattern::HostPattern;
use airssys_wasm::{Component, DisplayBytes, ExecutionContext, Manifest, Message, ResourceUsage};

use crate::args::{
    file_stem, load, parse_key_value, read_payload, EngineArgs, LimitArgs, SecurityArgs,
};
use crate::commands::storage::DataArg;

#[derive(Args)]
pub(crate) struct CallArgs {
    /// Grant outbound connections and HTTP requests (`wasi:sockets` and
    /// `wasi:http`) to `HOST:PORT` (repeatable), on top of the manifest's grants.
    #[arg(long = "allow-outbound", value_name = "HOST:PORT")]
    pub(crate) outbound: Vec<String>,
    /// A configuration entry given to `initialize` and `get-config` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) config: Vec<(String, String)>,
    /// Print the resource usage of the call to stderr.
    #[arg(long)]
    pub(crate) stats: bool,
    /// The sender named in the message.
    #[arg(long, default_value = "host")]
    pub(crate) sender: String,
    /// The content type of the payload.
    #[arg(long, default_value = "text/plain")]
    pub(crate) content_type: String,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) security: SecurityArgs,
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// Call any exported function instead of delivering a message, with
    /// arguments in WAVE syntax: `--invoke 'add(1, 2)'`, `--invoke 'iface#greet("hi")'`.
    /// The component need not implement the lifecycle; core modules work too.
    #[arg(long, value_name = "CALL", conflicts_with_all = ["payload", "sender", "content_type"])]
    pub(crate) invoke: Option<String>,
    /// The lifecycle component (or, with --invoke, any component or module).
    pub(crate) file: PathBuf,
    /// The payload: literal text, or `@FILE` to read it from a file.
    #[arg(required_unless_present = "invoke")]
    pub(crate) payload: Option<String>,
}

pub(crate) async fn call(engine_args: &EngineArgs, a: CallArgs) -> Result<ExitCode> {
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
    let engine = engine_args.engine(ctx.limits().fuel.is_some())?;
    let component = load(&engine, &a.file, false, &trust)?;
    let result = match &a.invoke {
        Some(call) => invoke(&component, &ctx, &a, call).await,
        None => {
            let payload = read_payload(a.payload.as_deref().unwrap_or_default())?;
            call_once(&component, &ctx, &a, payload).await
        }
    };
    audit.flush();
    result
}

/// `call --invoke`: one call of any export; each result printed in WAVE.
pub(crate) async fn invoke(
    component: &Component,
    ctx: &ExecutionContext,
    a: &CallArgs,
    call: &str,
) -> Result<ExitCode> {
    let mut invoker = component.instantiate_invoker(ctx).await?;
    let result = invoker.invoke_wave(call).await;
    if a.stats {
        if let Some(usage) = invoker.last_usage() {
            print_stats(&usage);
        }
    }
    let mut out = std::io::stdout().lock();
    for value in result? {
        writeln!(out, "{value}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn call_once(
    component: &Component,
    ctx: &ExecutionContext,
    a: &CallArgs,
    payload: Vec<u8>,
) -> Result<ExitCode> {
    let mut instance = component.instantiate(ctx).await?;
    instance.initialize().await?;
    let msg = Message::new(&a.sender, payload).with_content_type(&a.content_type);
    let result = instance.handle_message(&msg).await;
    if a.stats {
        if let Some(usage) = instance.last_usage() {
            print_stats(&usage);
        }
    }
    let reply = result?;
    let mut out = std::io::stdout().lock();
    match reply {
        Some(bytes) => {
            out.write_all(&bytes)?;
            if std::str::from_utf8(&bytes).is_ok() && !bytes.ends_with(b"\n") {
                out.write_all(b"\n")?;
            }
        }
        None => eprintln!("(no reply)"),
    }
    out.flush()?;
    instance.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn print_stats(u: &ResourceUsage) {
    eprintln!(
        "stats: fuel consumed {}, peak memory {} ({} bytes), wall time {:?}, storage written {} bytes",
        u.fuel_consumed,
        DisplayBytes(u.peak_memory_bytes),
        u.peak_memory_bytes,
        u.wall_time,
        u.storage_bytes
    );
}
