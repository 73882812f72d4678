//! `airssys-wasm`: run, inspect, compile and call WebAssembly components.
//!
//! The binary only parses arguments and prints; every behaviour lives in the
//! `airssys-wasm` library.

mod args;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airssys_wasm::{
    Capabilities, Component, DisplayBytes, Engine, EngineConfig, ExecutionContext, Message,
    ResourceLimits, ResourceUsage,
};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use args::{parse_dir, parse_duration, parse_env, parse_key_value, parse_size};

/// Run untrusted WebAssembly components as sandboxed actors.
#[derive(Parser)]
#[command(name = "airssys-wasm", version, about)]
struct Cli {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a WASI command: a p2 component (`wasi:cli/run`) or a p1 core module (`_start`).
    Run(RunArgs),
    /// Show kind, size, content hash, imports and exports (WIT for components).
    Inspect(InspectArgs),
    /// Compile ahead of time; `run --allow-precompiled` and the library accept the output.
    Compile(CompileArgs),
    /// Instantiate a lifecycle component, initialize it, deliver one message, print the reply.
    Call(CallArgs),
}

#[derive(Args)]
struct EngineArgs {
    /// Directory of the compile cache (default: $XDG_CACHE_HOME/airssys-wasm or ~/.cache/airssys-wasm).
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl EngineArgs {
    /// The CLI runs one instance per process: on-demand allocation avoids
    /// reserving a pool it would not use.
    fn engine(&self) -> Result<Engine> {
        let mut config = EngineConfig::default().pooling(false);
        if self.no_cache {
            config = config.cache_dir(None);
        } else if let Some(dir) = &self.cache_dir {
            config = config.cache_dir(Some(dir.clone()));
        }
        Ok(Engine::new(config)?)
    }
}

#[derive(Args)]
struct LimitArgs {
    /// Fuel the guest may consume (per call for `call`).
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Maximum linear memory: bytes, or with a unit (`64MiB`, `1GiB`, `512KiB`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Wall-clock limit (`250ms`, `5s`, `2m`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<std::time::Duration>,
}

impl LimitArgs {
    fn apply(&self, mut limits: ResourceLimits) -> ResourceLimits {
        if let Some(f) = self.fuel {
            limits.fuel = Some(f);
        }
        if let Some(m) = self.max_memory {
            limits.memory_bytes = Some(m);
        }
        if let Some(t) = self.timeout {
            limits.timeout = Some(t);
        }
        limits
    }
}

#[derive(Args)]
struct RunArgs {
    /// Grant a host directory to the guest, read-write: `HOST` or `HOST::GUEST` (repeatable).
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<(PathBuf, String)>,
    /// Grant an environment variable: `NAME=VALUE`, or `NAME` to copy the host's value (repeatable).
    #[arg(long = "env", value_name = "NAME[=VALUE]", value_parser = parse_env)]
    envs: Vec<(String, Option<String>)>,
    #[command(flatten)]
    limits: LimitArgs,
    /// Accept a file precompiled by `airssys-wasm compile` (it is trusted machine code).
    #[arg(long)]
    allow_precompiled: bool,
    /// The `.wasm` component or module to run.
    file: PathBuf,
    /// Arguments passed to the guest.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

#[derive(Args)]
struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Print the full WIT: the world and every interface it uses.
    #[arg(long)]
    wit: bool,
    /// The `.wasm` file.
    file: PathBuf,
}

#[derive(Args)]
struct CompileArgs {
    /// Where to write the compiled code.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The `.wasm` file.
    file: PathBuf,
}

#[derive(Args)]
struct CallArgs {
    /// A configuration entry given to `initialize` and `get-config` (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    config: Vec<(String, String)>,
    /// Print the resource usage of the call to stderr.
    #[arg(long)]
    stats: bool,
    /// The sender named in the message.
    #[arg(long, default_value = "host")]
    sender: String,
    /// The content type of the payload.
    #[arg(long, default_value = "text/plain")]
    content_type: String,
    #[command(flatten)]
    limits: LimitArgs,
    /// The lifecycle component.
    file: PathBuf,
    /// The payload: literal text, or `@FILE` to read it from a file.
    payload: String,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,airssys_wasm::guest=info")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.engine, cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn one_line(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

async fn dispatch(engine: EngineArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Run(a) => run(engine.engine()?, a).await,
        Command::Inspect(a) => inspect(engine.engine()?, a),
        Command::Compile(a) => compile(engine.engine()?, a),
        Command::Call(a) => call(engine.engine()?, a).await,
    }
}

fn load(engine: &Engine, file: &Path, allow_precompiled: bool) -> Result<Component> {
    let precompiled = wasmtime_precompiled(file)?;
    if precompiled {
        if !allow_precompiled {
            bail!(
                "{}: is precompiled code; pass --allow-precompiled to run it (it is trusted machine code)",
                file.display()
            );
        }
        // SAFETY: the user asserted with --allow-precompiled that this file was
        // produced by `airssys-wasm compile` and is trusted, which is the contract
        // of `load_precompiled_file` (as with `wasmtime run --allow-precompiled`).
        return Ok(unsafe { engine.load_precompiled_file(file) }?);
    }
    Ok(engine.load_file(file)?)
}

fn wasmtime_precompiled(file: &Path) -> Result<bool> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .with_context(|| file.display().to_string())?;
    Ok(head[..n].starts_with(b"\x7fELF"))
}

async fn run(engine: Engine, a: RunArgs) -> Result<ExitCode> {
    let component = load(&engine, &a.file, a.allow_precompiled)?;
    let mut caps = Capabilities::default();
    for (host, guest) in &a.dirs {
        caps.dirs.push(airssys_wasm::DirGrant {
            host: host.clone(),
            guest: guest.clone(),
            read_only: false,
        });
    }
    for (name, value) in &a.envs {
        match value.clone().or_else(|| std::env::var(name).ok()) {
            Some(v) => caps.env.push((name.clone(), v)),
            None => tracing::warn!("--env {name}: not set on the host, not passed"),
        }
    }
    let ctx = ExecutionContext::new(component.name())
        .with_limits(a.limits.apply(ResourceLimits::unlimited()))
        .with_capabilities(caps);
    let mut argv = vec![a.file.display().to_string()];
    argv.extend(a.args.iter().cloned());
    let status = component.run_command(&ctx, &argv).await?;
    std::io::stdout().flush().ok();
    Ok(ExitCode::from(status.code.clamp(0, 255) as u8))
}

fn inspect(engine: Engine, a: InspectArgs) -> Result<ExitCode> {
    let info = engine.inspect_file(&a.file)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("file:      {}", info.name);
    println!(
        "kind:      {}",
        serde_json::to_value(info.kind)?.as_str().unwrap_or("?")
    );
    println!("size:      {} bytes", info.size);
    println!("sha256:    {}", info.sha256);
    println!(
        "lifecycle: {}",
        if info.lifecycle {
            format!("yes ({})", airssys_wasm::LIFECYCLE_INTERFACE)
        } else {
            "no".to_string()
        }
    );
    println!("imports:");
    info.imports.iter().for_each(|i| println!("  {i}"));
    println!("exports:");
    info.exports.iter().for_each(|e| println!("  {e}"));
    let wit = if a.wit { &info.wit } else { &info.world };
    if let Some(wit) = wit {
        println!("wit:");
        wit.lines().for_each(|l| println!("  {l}"));
    }
    Ok(ExitCode::SUCCESS)
}

fn compile(engine: Engine, a: CompileArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(&a.file).with_context(|| a.file.display().to_string())?;
    let out = engine.precompile(&a.file.display().to_string(), &bytes)?;
    std::fs::write(&a.output, &out).with_context(|| a.output.display().to_string())?;
    eprintln!(
        "compiled {} -> {} ({} bytes)",
        a.file.display(),
        a.output.display(),
        out.len()
    );
    Ok(ExitCode::SUCCESS)
}

async fn call(engine: Engine, a: CallArgs) -> Result<ExitCode> {
    let component = load(&engine, &a.file, false)?;
    let payload = match a.payload.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("payload file {path}"))?,
        None => a.payload.clone().into_bytes(),
    };
    let mut ctx = ExecutionContext::new(component.name())
        .with_limits(a.limits.apply(ResourceLimits::default()));
    for (k, v) in &a.config {
        ctx = ctx.with_config(k, v);
    }
    let mut instance = component.instantiate(&ctx).await?;
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

fn print_stats(u: &ResourceUsage) {
    eprintln!(
        "stats: fuel consumed {}, peak memory {} ({} bytes), wall time {:?}",
        u.fuel_consumed,
        DisplayBytes(u.peak_memory_bytes),
        u.peak_memory_bytes,
        u.wall_time
    );
}
