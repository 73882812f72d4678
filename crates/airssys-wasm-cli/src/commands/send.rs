//! `airssys-wasm send`: a message to an actor of a running system, through its admin API.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

use std::time::Duration;

use airssys_wasm::units::parse_duration;

use crate::args::read_payload;
use crate::commands::client::{agent, api_error, auth, encode, url, ClientArgs};

#[derive(Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) client: ClientArgs,
    /// Wait for the reply and print it.
    #[arg(long)]
    pub(crate) reply: bool,
    /// How long to wait for the reply.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// The actor id (`name` or `component/key`).
    pub(crate) id: String,
    /// The payload: literal text, or `@FILE` to read it from a file.
    pub(crate) payload: String,
}

pub(crate) fn send(a: SendArgs) -> Result<ExitCode> {
    let payload = read_payload(&a.payload)?;
    let mut path = format!("/components/{}/messages", encode(&a.id));
    if a.reply {
        path.push_str(&format!("?reply=true&timeout={}ms", a.timeout.as_millis()));
    }
    let url = url(&a.client, &path);
    let mut req = agent().post(&url);
    if let Some(h) = auth(&a.client)? {
        req = req.header("Authorization", &h);
    }
    let mut resp = req.send(&payload[..]).with_context(|| url.clone())?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_vec()?;
    match status {
        202 => {
            eprintln!("accepted");
            Ok(ExitCode::SUCCESS)
        }
        200 => {
            std::io::Write::write_all(&mut std::io::stdout(), &body)?;
            println!();
            Ok(ExitCode::SUCCESS)
        }
        204 => Ok(ExitCode::SUCCESS),
        _ => Err(api_error(status, &body)),
    }
}
