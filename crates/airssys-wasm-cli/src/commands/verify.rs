//! `airssys-wasm verify`: check FILE.sig with trusted public keys.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use airssys_wasm::security::signing::TrustPolicy;

use crate::args::identity_of;

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// A trusted public key (repeatable).
    #[arg(long = "pubkey", value_name = "KEY.pub", required = true)]
    pub(crate) pubkeys: Vec<PathBuf>,
    /// The manifest the signature must match.
    #[arg(long, value_name = "FILE")]
    pub(crate) manifest: Option<PathBuf>,
    /// The component.
    pub(crate) file: PathBuf,
}

pub(crate) fn verify(a: VerifyArgs) -> Result<ExitCode> {
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
