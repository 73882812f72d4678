//! `airssys-wasm keygen`: an Ed25519 key pair.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use airssys_wasm::security::signing::{self};

#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the secret key (the public key goes to OUT.pub).
    #[arg(long, value_name = "KEY")]
    pub(crate) out: PathBuf,
}

pub(crate) fn keygen(a: KeygenArgs) -> Result<ExitCode> {
    let public = signing::keygen(&a.out)?;
    eprintln!(
        "wrote {} and {}.pub (public key {public})",
        a.out.display(),
        a.out.display()
    );
    Ok(ExitCode::SUCCESS)
}
