//! `airssys-wasm upgrade` and `rollback`: a new version of a component into a
//! running system, and back, through its admin API.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use airssys_wasm::security::signing::{self, TrustPolicy};
use airssys_wasm::units::parse_duration;

use crate::commands::client::{agent, api_error, auth, encode, url, ClientArgs};

#[derive(Args)]
pub(crate) struct UpgradeArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// How long a crash of the new version sends an actor back to the previous one.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) probation: Duration,
    /// Check NEW.wasm's signature (NEW.wasm.sig) with this trusted key before
    /// sending it (repeatable).
    #[arg(long = "require-signature", value_name = "KEY.pub")]
    pub(crate) require_signature: Vec<PathBuf>,
    /// The component, as its actors were declared with it (its file's stem).
    pub(crate) component: String,
    /// The new version (its signature, NEW.wasm.sig, is sent along when it exists).
    pub(crate) file: PathBuf,
}

#[derive(Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// The actor.
    pub(crate) id: String,
}

pub(crate) fn upgrade(a: UpgradeArgs) -> Result<ExitCode> {
    if !a.require_signature.is_empty() {
        let mut trust = TrustPolicy::default();
        for k in &a.require_signature {
            trust = trust.trust_key_file(k)?;
        }
        trust.verify(&a.file, None)?;
    }
    let wasm = std::fs::read(&a.file).with_context(|| a.file.display().to_string())?;
    // The signature travels with the upload when there is one; the system
    // checks it where it requires signed upgrades.
    let sig_path = signing::signature_path(&a.file);
    let signature = match std::fs::read_to_string(&sig_path) {
        Ok(text) => Some(signing::header_value(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| sig_path.display().to_string()),
    };
    let path = format!(
        "/upgrade/{}?probation={}ms",
        encode(&a.component),
        a.probation.as_millis()
    );
    let url = url(&a.client, &path);
    let mut req = agent().post(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    if let Some(sig) = &signature {
        req = req.header(signing::SIGNATURE_HEADER, sig);
    }
    let mut resp = req.send(&wasm[..]).with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    if status != 200 {
        return Err(api_error(status, &body));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    let mut failed = false;
    for actor in answer["actors"].as_array().into_iter().flatten() {
        let id = actor["id"].as_str().unwrap_or("?");
        match (actor["version"].as_u64(), actor["error"].as_str()) {
            (Some(v), _) => println!("{id}: version {v}"),
            (_, Some(e)) => {
                failed = true;
                println!("{id}: kept its version: {e}");
            }
            _ => println!("{id}: {actor}"),
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn rollback(a: RollbackArgs) -> Result<ExitCode> {
    let url = url(
        &a.client,
        &format!("/components/{}/rollback", encode(&a.id)),
    );
    let mut req = agent().post(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    let mut resp = req.send(&[][..]).with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    if status != 200 {
        return Err(api_error(status, &body));
    }
    let answer: serde_json::Value = serde_json::from_slice(&body)?;
    println!("{}: version {}", a.id, answer["version"]);
    Ok(ExitCode::SUCCESS)
}
