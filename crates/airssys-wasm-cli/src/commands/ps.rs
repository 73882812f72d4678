//! `airssys-wasm ps`: the actors of a running system, through its admin API.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use crate::commands::client::{agent, api_error, auth, url, ClientArgs};

#[derive(Args)]
pub(crate) struct PsArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// Print the JSON the API returned.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn ps(a: PsArgs) -> Result<ExitCode> {
    let url = url(&a.client, "/components");
    let mut req = agent().get(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    let mut resp = req.call().with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    if status != 200 {
        return Err(api_error(status, &body));
    }
    if a.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(ExitCode::SUCCESS);
    }
    let actors: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
    println!(
        "{:<24} {:<14} {:>7} {:<12} {:<10} {:>8} {:>8} {:>8}",
        "ID", "COMPONENT", "VERSION", "SUPERVISOR", "STATE", "RESTARTS", "MAILBOX", "HANDLED"
    );
    for v in actors {
        let s: ActorStatusRow = serde_json::from_value(v)?;
        println!(
            "{:<24} {:<14} {:>7} {:<12} {:<10} {:>8} {:>8} {:>8}",
            s.id,
            s.component,
            if s.durable {
                format!("{}d", s.version)
            } else {
                s.version.to_string()
            },
            s.supervisor,
            s.state,
            s.restarts,
            s.mailbox,
            s.handled
        );
    }
    // In a cluster: its hosts, their health and the declared actors on each.
    let hosts_url = super::client::url(&a.client, "/hosts");
    let mut req = agent().get(&hosts_url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    if let Ok(mut resp) = req.call() {
        if resp.status().as_u16() == 200 {
            let hosts: Vec<serde_json::Value> =
                serde_json::from_slice(&resp.body_mut().read_to_vec()?).unwrap_or_default();
            if !hosts.is_empty() {
                println!();
                println!("{:<24} {:<7} {:>10}  ACTORS", "HOST", "HEALTH", "LAST-SEEN");
            }
            for h in hosts {
                let actors: Vec<&str> = h["actors"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                let id = h["id"].as_str().unwrap_or("?");
                println!(
                    "{:<24} {:<7} {:>10}  {}",
                    if h["this"] == true {
                        format!("{id} (this)")
                    } else {
                        id.to_string()
                    },
                    h["health"].as_str().unwrap_or("?"),
                    format!("{}ms", h["last_seen_ms"].as_u64().unwrap_or(0)),
                    actors.join(",")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The columns `ps` shows, as `airssys_wasm::ActorStatus` serializes them.
#[derive(serde::Deserialize)]
pub(crate) struct ActorStatusRow {
    pub(crate) id: String,
    pub(crate) component: String,
    /// The component version it runs (1 at start).
    #[serde(default)]
    pub(crate) version: u32,
    /// A durable mailbox (`d` after the version).
    #[serde(default)]
    pub(crate) durable: bool,
    pub(crate) supervisor: String,
    pub(crate) state: String,
    pub(crate) restarts: u32,
    pub(crate) mailbox: usize,
    pub(crate) handled: u64,
}
