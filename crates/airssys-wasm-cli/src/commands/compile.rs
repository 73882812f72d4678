//! `airssys-wasm compile`: precompile to `.cwasm`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use airssys_wasm::Engine;

#[derive(Args)]
pub(crate) struct CompileArgs {
    /// Where to write the compiled code.
    #[arg(short, long, value_name = "OUT")]
    pub(crate) output: PathBuf,
    /// The `.wasm` file.
    pub(crate) file: PathBuf,
}

pub(crate) fn compile(engine: Engine, a: CompileArgs) -> Result<ExitCode> {
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
