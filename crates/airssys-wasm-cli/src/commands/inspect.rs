//! `airssys-wasm inspect`: kind, size, hash, imports and exports, and what a manifest can never grant.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use airssys_wasm::{AuditLog, Engine, HostPolicy, Manifest};

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub(crate) json: bool,
    /// Print the full WIT: the world and every interface it uses.
    #[arg(long)]
    pub(crate) wit: bool,
    /// Report the imported functions this manifest's grants can never let succeed.
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// The `.wasm` file.
    pub(crate) file: PathBuf,
}

pub(crate) fn inspect(engine: Engine, a: InspectArgs) -> Result<ExitCode> {
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
            let export = info
                .exports
                .iter()
                .find(|e| e.starts_with("airssys:component/lifecycle@"))
                .map_or(airssys_wasm::LIFECYCLE_INTERFACE, String::as_str);
            format!("yes ({export})")
        } else {
            "no".to_string()
        }
    );
    println!(
        "http handler: {}",
        if info.http_handler {
            "yes (wasi:http/incoming-handler; run it with `airssys-wasm serve`)"
        } else {
            "no"
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
