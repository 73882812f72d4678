//! `airssys-wasm`: run, inspect, compile and call WebAssembly components.
//!
//! The binary only parses arguments and prints; every behaviour lives in the
//! `airssys-wasm` library.

mod args;
mod new;
mod store;
mod up;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use airssys_wasm::security::capability::HostPattern;
use airssys_wasm::manifest::FilesystemRequest;
use airssys_wasm::security::signing::{self, SignedIdentity, TrustPolicy};
use airssys_wasm::{
    Access, AuditLog, Component, DisplayBytes, Engine, EngineConfig, ExecutionContext, HostPolicy,
    Manifest, Message, ResourceLimits, ResourceUsage,
};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use airssys_wasm::units::{parse_duration, parse_size};
use args::{parse_dir, parse_env, parse_key_value};

/// Run untrusted WebAssembly components as sandboxed actors.
#[derive(Parser)]
#[command(name = "airssys-wasm", version, about)]
struct Cli {
    #[command(flatten)]
    engine: EngineArgs,
    /// How log lines (the guests' and the host's) are written to stderr: `text`
    /// (colours only on a terminal, and never with NO_COLOR set) or `json` (one object a line).
    #[arg(long, value_name = "FORMAT", default_value = "text", global = true)]
    log_format: LogFormat,
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
    /// Generate an Ed25519 key pair: KEY (secret) and KEY.pub.
    Keygen(KeygenArgs),
    /// Sign a component: writes FILE.sig over its content hash and the manifest's name and version.
    Sign(SignArgs),
    /// Verify FILE.sig with a public key.
    Verify(VerifyArgs),
    /// Run a system of component actors from system.toml until SIGINT/SIGTERM.
    Up(up::UpArgs),
    /// List the actors of a running system (through its admin API).
    Ps(up::PsArgs),
    /// Send a message to an actor of a running system (through its admin API).
    Send(up::SendArgs),
    /// Create a guest project (Rust, or Python with --lang python) that builds to a component.
    New(new::NewArgs),
    /// Inspect and manage the durable storage in a data directory.
    #[command(subcommand)]
    Storage(store::StorageCommand),
    /// Print the JSON Schema of Component.toml (or, with --system, of system.toml).
    #[command(hide = true)]
    Schema {
        /// The schema of system.toml.
        #[arg(long)]
        system: bool,
    },
}

#[derive(Args)]
struct SecurityArgs {
    /// The component's manifest (Component.toml): identity, limits, capabilities.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The host policy (TOML): forbidden paths, ports and env, maximum limits.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Append every capability decision to PATH as JSON Lines.
    #[arg(long, value_name = "PATH")]
    audit_log: Option<PathBuf>,
    /// Refuse the component unless FILE.sig verifies with this public key (repeatable).
    #[arg(long, value_name = "KEY.pub")]
    require_signature: Vec<PathBuf>,
}

impl SecurityArgs {
    fn manifest(&self) -> Result<Option<Manifest>> {
        Ok(match &self.manifest {
            Some(p) => Some(Manifest::from_file(p)?),
            None => None,
        })
    }

    /// The trusted keys, and the identity a signature must carry (the manifest's).
    fn trust(&self, manifest: Option<&Manifest>) -> Result<Trust> {
        let mut policy = TrustPolicy::default();
        for key in &self.require_signature {
            policy = policy.trust_key_file(key)?;
        }
        let identity = manifest.map(|m| SignedIdentity {
            name: m.component.name.clone(),
            version: m.component.version.clone(),
        });
        Ok(Trust { policy, identity })
    }

    /// The context from the manifest intersected with the policy, or a
    /// deny-all context with `limits` when there is no manifest.
    /// The context: the manifest's requests intersected with the host policy.
    fn context(&self, manifest: &Manifest) -> Result<(ExecutionContext, AuditLog)> {
        let audit = match &self.audit_log {
            Some(p) => {
                AuditLog::to_file(p).with_context(|| format!("audit log {}", p.display()))?
            }
            None => AuditLog::default(),
        };
        let policy = match &self.policy {
            Some(p) => HostPolicy::from_file(p)?,
            None => HostPolicy::default(),
        };
        let ctx = manifest.context(&policy, audit.clone())?;
        Ok((ctx, audit))
    }
}

#[derive(Args)]
struct KeygenArgs {
    /// Where to write the secret key (the public key goes to OUT.pub).
    #[arg(long, value_name = "KEY")]
    out: PathBuf,
}

#[derive(Args)]
struct SignArgs {
    /// The secret key.
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The manifest whose name and version the signature covers (default: the
    /// file stem, version 0.0.0).
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The component to sign.
    file: PathBuf,
}

#[derive(Args)]
struct VerifyArgs {
    /// A trusted public key (repeatable).
    #[arg(long = "pubkey", value_name = "KEY.pub", required = true)]
    pubkeys: Vec<PathBuf>,
    /// The manifest the signature must match.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The component.
    file: PathBuf,
}

#[derive(Args)]
pub(crate) struct EngineArgs {
    /// Directory of the compile cache (default: $XDG_CACHE_HOME/airssys-wasm or ~/.cache/airssys-wasm).
    #[arg(long, value_name = "DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the compile cache.
    #[arg(long, global = true)]
    no_cache: bool,
}

impl EngineArgs {
    fn config(&self) -> EngineConfig {
        let config = EngineConfig::default();
        if self.no_cache {
            config.cache_dir(None)
        } else if let Some(dir) = &self.cache_dir {
            config.cache_dir(Some(dir.clone()))
        } else {
            config
        }
    }

    /// The CLI runs one instance per process: on-demand allocation avoids
    /// reserving a pool it would not use.
    fn engine(&self, metered: bool) -> Result<Engine> {
        Ok(Engine::new(
            self.config().pooling(false).consume_fuel(metered),
        )?)
    }

    /// For `up`: many instances, so the pooling allocator; fuel metered so
    /// that manifests' fuel limits hold.
    pub(crate) fn pooled_engine(&self) -> Result<Engine> {
        Ok(Engine::new(self.config().consume_fuel(true))?)
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
    /// Grant outbound connections and HTTP requests (`wasi:sockets` and
    /// `wasi:http`) to `HOST:PORT` (`127.0.0.1:8080`, `*.example.com:443`, `[::1]:*`; repeatable).
    #[arg(long = "allow-outbound", value_name = "HOST:PORT")]
    outbound: Vec<String>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    security: SecurityArgs,
    /// Accept a file precompiled by `airssys-wasm compile` (it is trusted machine code).
    #[arg(long)]
    allow_precompiled: bool,
    #[command(flatten)]
    data: store::DataArg,
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
    /// Report the imported functions this manifest's grants can never let succeed.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
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
    /// Grant outbound connections and HTTP requests (`wasi:sockets` and
    /// `wasi:http`) to `HOST:PORT` (repeatable), on top of the manifest's grants.
    #[arg(long = "allow-outbound", value_name = "HOST:PORT")]
    outbound: Vec<String>,
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
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    data: store::DataArg,
    /// Call any exported function instead of delivering a message, with
    /// arguments in WAVE syntax: `--invoke 'add(1, 2)'`, `--invoke 'iface#greet("hi")'`.
    /// The component need not implement the lifecycle; core modules work too.
    #[arg(long, value_name = "CALL", conflicts_with_all = ["payload", "sender", "content_type"])]
    invoke: Option<String>,
    /// The lifecycle component (or, with --invoke, any component or module).
    file: PathBuf,
    /// The payload: literal text, or `@FILE` to read it from a file.
    #[arg(required_unless_present = "invoke")]
    payload: Option<String>,
}

/// The format of log lines on stderr.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Logs go to stderr: guests' lines (`airssys_wasm::guest`) at info and
/// above, the host's warnings, and — on a terminal only — the progress of long
/// compiles. `RUST_LOG` overrides the filter.
fn init_logging(format: LogFormat) {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let default = if terminal {
        "warn,airssys_wasm::guest=info,airssys_wasm::compile=info"
    } else {
        "warn,airssys_wasm::guest=info"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().with_ansi(false).init(),
        LogFormat::Text => builder.with_ansi(terminal && !no_color).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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

/// The error and its causes on one line; a cause the text already ends with
/// (an I/O error our own message quotes) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for c in e.chain() {
        let c = c.to_string();
        if out.ends_with(&c) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&c);
    }
    out
}

async fn dispatch(engine: EngineArgs, command: Command) -> Result<ExitCode> {
    match command {
        Command::Run(a) => run(&engine, a).await,
        Command::Inspect(a) => inspect(engine.engine(false)?, a),
        Command::Compile(a) => compile(engine.engine(false)?, a),
        Command::Call(a) => call(&engine, a).await,
        Command::Keygen(a) => {
            let public = signing::keygen(&a.out)?;
            eprintln!(
                "wrote {} and {}.pub (public key {public})",
                a.out.display(),
                a.out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Sign(a) => {
            let identity = identity_of(&a.file, a.manifest.as_deref())?;
            let out = signing::sign(&a.file, &a.key, &identity)?;
            eprintln!(
                "signed {}@{} -> {}",
                identity.name,
                identity.version,
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(a) => {
            let mut trust = TrustPolicy::default();
            for k in &a.pubkeys {
                trust = trust.trust_key_file(k)?;
            }
            let expected = match &a.manifest {
                Some(m) => Some(identity_of(&a.file, Some(m))?),
                None => None,
            };
            let id = trust.verify(&a.file, expected.as_ref())?;
            println!(
                "verified: {} is {}@{}",
                a.file.display(),
                id.name,
                id.version
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema { system } => {
            if system {
                print!(
                    "{}",
                    airssys_wasm::system::config::SystemConfig::json_schema()
                );
            } else {
                print!("{}", Manifest::json_schema());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(a) => up::up(&engine, a).await,
        Command::Ps(a) => tokio::task::spawn_blocking(move || up::ps(a)).await?,
        Command::Send(a) => tokio::task::spawn_blocking(move || up::send(a)).await?,
        Command::New(a) => new::new(a),
        Command::Storage(c) => tokio::task::spawn_blocking(move || store::run(c)).await?,
    }
}

/// A payload argument: literal text, or `@FILE`.
fn read_payload(arg: &str) -> Result<Vec<u8>> {
    Ok(match arg.strip_prefix('@') {
        Some(path) => std::fs::read(path).with_context(|| format!("payload file {path}"))?,
        None => arg.as_bytes().to_vec(),
    })
}

/// Who must have signed a component, and as what.
struct Trust {
    policy: TrustPolicy,
    identity: Option<SignedIdentity>,
}

/// Loads a component; an unsigned, tampered or wrongly-signed one is refused
/// before it is compiled.
fn load(engine: &Engine, file: &Path, allow_precompiled: bool, trust: &Trust) -> Result<Component> {
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
        // The signature is checked on the bytes that are loaded (one read).
        return Ok(unsafe {
            engine.load_precompiled_file_trusted(file, &trust.policy, trust.identity.as_ref())
        }?);
    }
    Ok(engine.load_file_trusted(file, &trust.policy, trust.identity.as_ref())?)
}

fn wasmtime_precompiled(file: &Path) -> Result<bool> {
    let mut head = [0u8; 64];
    let n = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .with_context(|| file.display().to_string())?;
    Ok(head[..n].starts_with(b"\x7fELF"))
}

fn identity_of(file: &Path, manifest: Option<&Path>) -> Result<SignedIdentity> {
    Ok(match manifest {
        Some(m) => {
            let m = Manifest::from_file(m)?;
            SignedIdentity {
                name: m.component.name,
                version: m.component.version,
            }
        }
        None => SignedIdentity {
            name: file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("component")
                .to_string(),
            version: "0.0.0".to_string(),
        },
    })
}

fn file_stem(file: &Path) -> &str {
    file.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("component")
}

async fn run(engine_args: &EngineArgs, a: RunArgs) -> Result<ExitCode> {
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

fn inspect(engine: Engine, a: InspectArgs) -> Result<ExitCode> {
    let info = engine.inspect_file(&a.file)?;
    let functions = engine
        .load_file(&a.file)
        .map(|c| c.exported_functions())
        .ok();
    let never = match &a.manifest {
        Some(m) => {
            let ctx =
                Manifest::from_file(m)?.context(&HostPolicy::default(), AuditLog::default())?;
            Some(airssys_wasm::security::capability::never_callable(
                airssys_wasm::host_interfaces(),
                &info.imports,
                ctx.capabilities(),
            ))
        }
        None => None,
    };
    if a.json {
        let mut v = serde_json::to_value(&info)?;
        if let Some(never) = &never {
            v["never_callable"] = serde_json::to_value(never)?;
        }
        if let Some(functions) = &functions {
            v["functions"] = serde_json::to_value(functions)?;
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
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
    if let Some(functions) = &functions {
        println!("functions (call with --invoke 'NAME(ARGS)'):");
        functions
            .iter()
            .for_each(|f| println!("  {}: {}", f.name, f.signature));
    }
    let wit = if a.wit { &info.wit } else { &info.world };
    if let Some(wit) = wit {
        println!("wit:");
        wit.lines().for_each(|l| println!("  {l}"));
    }
    if let Some(never) = &never {
        if never.is_empty() {
            println!("every imported function can succeed under the manifest's grants");
        } else {
            println!("never callable under the manifest's grants:");
            for u in never {
                println!(
                    "  {} (needs {})",
                    u.function,
                    serde_json::to_value(u.missing)?.as_str().unwrap_or("?")
                );
            }
        }
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

async fn call(engine_args: &EngineArgs, a: CallArgs) -> Result<ExitCode> {
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
async fn invoke(
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

async fn call_once(
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

fn print_stats(u: &ResourceUsage) {
    eprintln!(
        "stats: fuel consumed {}, peak memory {} ({} bytes), wall time {:?}, storage written {} bytes",
        u.fuel_consumed,
        DisplayBytes(u.peak_memory_bytes),
        u.peak_memory_bytes,
        u.wall_time,
        u.storage_bytes
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::from(airssys_wasm::Error::Io {
            path: "nope.toml".into(),
            source: io,
        });
        assert_eq!(super::one_line(&e), "nope.toml: gone");
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(super::one_line(&e), "outer: inner");
    }
}
