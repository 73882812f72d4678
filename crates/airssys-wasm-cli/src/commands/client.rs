//! The admin API client `ps` and `send` share: URL, bearer token, errors.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use std::time::Duration;

#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The admin API of a running `up`, e.g. http://127.0.0.1:9090.
    #[arg(long, value_name = "URL")]
    pub(crate) admin: String,
    /// A file holding the admin bearer token.
    #[arg(long, value_name = "FILE")]
    pub(crate) token_file: Option<PathBuf>,
}

pub(crate) fn read_token(path: &PathBuf) -> Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("token file {}", path.display()))?
        .trim()
        .to_string();
    if token.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(token)
}

/// Percent-encodes an actor id for a URL path (`counter/7` -> `counter%2F7`).
pub(crate) fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(70)))
        .build()
        .into()
}

pub(crate) fn url(c: &ClientArgs, path: &str) -> String {
    format!("{}{path}", c.admin.trim_end_matches('/'))
}

pub(crate) fn auth(c: &ClientArgs) -> Result<Option<String>> {
    Ok(match &c.token_file {
        Some(f) => Some(format!("Bearer {}", read_token(f)?)),
        None => None,
    })
}

/// The API's `{"error": ...}` text, or the body.
pub(crate) fn api_error(status: u16, body: &[u8]) -> anyhow::Error {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    anyhow::anyhow!("admin API answered {status}: {text}")
}
