//! `airssys-wasm`: run, inspect, compile and call WebAssembly components, and
//! run systems of them.
//!
//! The binary only parses arguments and prints; every behaviour lives in the
//! `airssys-wasm` library. `main` dispatches to one module per subcommand
//! under `commands/`.

mod args;
mod commands;
mod logging;

use std::process::ExitCode;

use airssys_wasm::Manifest;
use anyhow::Result;
use clap::{Parser, Subcommand};

use args::EngineArgs;
use commands::{
    call, compile, inspect, keygen, new, ps, run, send, serve, sign, storage, up, upgrade, verify,
};
use logging::LogFormat;

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
    Run(run::RunArgs),
    /// Show kind, size, content hash, imports and exports (WIT for components).
    Inspect(inspect::InspectArgs),
    /// Compile ahead of time; `run --allow-precompiled` and the library accept the output.
    Compile(compile::CompileArgs),
    /// Instantiate a lifecycle component, initialize it, deliver one message, print the reply.
    Call(call::CallArgs),
    /// Answer HTTP requests with a wasi:http/proxy component (a fresh instance per request).
    Serve(serve::ServeArgs),
    /// Generate an Ed25519 key pair: KEY (secret) and KEY.pub.
    Keygen(keygen::KeygenArgs),
    /// Sign a component: writes FILE.sig over its content hash and the manifest's name and version.
    Sign(sign::SignArgs),
    /// Verify FILE.sig with a public key.
    Verify(verify::VerifyArgs),
    /// Run a system of component actors from system.toml until SIGINT/SIGTERM.
    Up(up::UpArgs),
    /// List the actors of a running system (through its admin API).
    Ps(ps::PsArgs),
    /// Send a message to an actor of a running system (through its admin API).
    Send(send::SendArgs),
    /// Load a new version of a component into a running system: each of its
    /// actors switches between two messages, on probation (through the admin API).
    Upgrade(upgrade::UpgradeArgs),
    /// Send an actor of a running system back to its previous version.
    Rollback(upgrade::RollbackArgs),
    /// Create a guest project (Rust, or Python with --lang python) that builds to a component.
    New(new::NewArgs),
    /// Inspect and manage the durable storage in a data directory.
    #[command(subcommand)]
    Storage(storage::StorageCommand),
    /// Print the JSON Schema of Component.toml (or, with --system, of system.toml).
    #[command(hide = true)]
    Schema {
        /// The schema of system.toml.
        #[arg(long)]
        system: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init_logging(cli.log_format);
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
        Command::Run(a) => run::run(&engine, a).await,
        Command::Inspect(a) => inspect::inspect(engine.engine(false)?, a),
        Command::Compile(a) => compile::compile(engine.engine(false)?, a),
        Command::Call(a) => call::call(&engine, a).await,
        Command::Serve(a) => serve::serve(&engine, a).await,
        Command::Keygen(a) => keygen::keygen(a),
        Command::Sign(a) => sign::sign(a),
        Command::Verify(a) => verify::verify(a),
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
        Command::Ps(a) => tokio::task::spawn_blocking(move || ps::ps(a)).await?,
        Command::Send(a) => tokio::task::spawn_blocking(move || send::send(a)).await?,
        Command::Upgrade(a) => tokio::task::spawn_blocking(move || upgrade::upgrade(a)).await?,
        Command::Rollback(a) => tokio::task::spawn_blocking(move || upgrade::rollback(a)).await?,
        Command::New(a) => new::new(a),
        Command::Storage(c) => tokio::task::spawn_blocking(move || storage::run(c)).await?,
    }
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
