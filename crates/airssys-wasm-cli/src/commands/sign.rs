//! `airssys-wasm sign`: FILE.sig over the content hash and the manifest's name and version.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use airssys_wasm::security::signing::{self};

use crate::args::identity_of;

#[derive(Args)]
pub(crate) struct SignArgs {
    /// The secret key.
    #[arg(long, value_name = "KEY")]
    pub(crate) key: PathBuf,
    /// The manifest whose name and version the signature covers (default: the
    /// file stem, version 0.0.0).
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// The component to sign.
    pub(crate) file: PathBuf,
}

pub(crate) fn sign(a: SignArgs) -> Result<ExitCode> {
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
