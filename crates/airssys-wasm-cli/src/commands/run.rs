//! `airssys-wasm run`: a WASI command (p2 component or p1 module), deny by default.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use airssys_wasm::manifest::FilesystemRequest;
use airssys_wasm::security::pattern::HostPattern;
use airssys_wasm::{Access, Manifest, ResourceLimits};

use crate::args::{file_stem, load, parse_dir, parse_env, EngineArgs, LimitArgs, SecurityArgs};
use crate::commands::storage::DataArg;

#[derive(Args)]
pub(crate) struct RunArgs {
    /// Grant a host directory to the guest, read-write: `HOST` or `HOST::GUEST` (repeatable).
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    pub(crate) dirs: Vec<(PathBuf, String)>,
    /// Grant an environment variable: `NAME=VALUE`, or `NAME` to copy the host's value (repeatable).
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    pub(crate) envs: Vec<(String, Option<String>)>,
    /// Grant outbound connections and HTTP requests (`wasi:sockets` and
    /// `wasi:http`) to `HOST:PORT` (`127.0.0.1:8080`, `*.example.com:443`, `[::1]:*`; repeatable).
    #[arg(long = "allow-outbound", value_name = "HOST:PORT")]
    pub(crate) outbound: Vec<String>,
    #[command(flatten)]
    pub(crate) limits: LimitArgs,
    #[command(flatten)]
    pub(crate) security: SecurityArgs,
    /// Accept a file precompiled by `airssys-wasm compile` (it is trusted machine code).
    #[arg(long)]
    pub(crate) allow_precompiled: bool,
    #[command(flatten)]
    pub(crate) data: DataArg,
    /// The `.wasm` component or module to run.
    pub(crate) file: PathBuf,
    /// Arguments passed to the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
}

pub(crate) async fn run(engine_args: &EngineArgs, a: RunArgs) -> Result<ExitCode> {
    let manifest = a.security.manifest()?;
    let trust = a.security.trust(manifest.as_ref())?;
    // The flags are requests like the manifest's: the host policy applies to them too.
    let from_file = manifest.is_some();
    let mut manifest = manifest.unwrap_or_else(|| Manifest::new(file_stem(&a.file), "0.0.0"));
    let cwd = std::env::current_dir().context("current directory")?;
    for (host, guest) in &a.dirs {
        manifest.capabilities.filesystem.push(FilesystemRequest {
            host: cwd.join(host),
            guest: guest.clone(),
            access: Access::ReadWrite,
        });
    }
    for (name, value) in &a.envs {
        manifest.capabilities.environment.push(match value {
            Some(v) => format!("{name}={v}"),
            None => name.clone(),
        });
    }
    for pattern in &a.outbound {
        let p = HostPattern::parse(pattern).map_err(anyhow::Error::msg)?;
        manifest.capabilities.network.outbound.push(p);
    }
    let (ctx, audit) = a.security.context(&manifest)?;
    // Without a manifest, `run` is as unlimited as `wasmtime run` unless flags say otherwise.
    let base = if from_file {
        *ctx.limits()
    } else {
        ResourceLimits::unlimited()
    };
    let limits = a.limits.apply(base);
    let ctx = a.data.apply(ctx.with_limits(limits))?;
    // Fuel is metered only when a fuel limit is asked for: metering costs time.
    let engine = engine_args.engine(limits.fuel.is_some())?;
    let component = load(&engine, &a.file, a.allow_precompiled, &trust)?;
    let mut argv = vec![a.file.display().to_string()];
    argv.extend(a.args.iter().cloned());
    let status = component.run_command(&ctx, &argv).await;
    audit.flush();
    let status = status?;
    std::io::stdout().flush().ok();
    Ok(ExitCode::from(status.code.clamp(0, 255) as u8))
}
