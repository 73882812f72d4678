//! `airssys-wasm new NAME`: a guest project that builds to a component with
//! one command and answers `call` at once. It carries its own copy of the WIT
//! contract, so it needs nothing but crates.io (Rust) or PyPI (Python).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

const AIRSSYS_WIT: &str = include_str!("../../../../wit/airssys.wit");
const KV_WIT: [(&str, &str); 4] = [
    (
        "store.wit",
        include_str!("../../../../wit/deps/keyvalue/store.wit"),
    ),
    (
        "atomic.wit",
        include_str!("../../../../wit/deps/keyvalue/atomic.wit"),
    ),
    (
        "batch.wit",
        include_str!("../../../../wit/deps/keyvalue/batch.wit"),
    ),
    (
        "world.wit",
        include_str!("../../../../wit/deps/keyvalue/world.wit"),
    ),
];

/// The guest language.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust with wit-bindgen; `cargo build --release`.
    Rust,
    /// Python with componentize-py.
    Python,
}

/// What the new component is.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Template {
    /// An actor: it exports the airssys lifecycle; try it with `call`.
    Actor,
    /// An HTTP handler: it exports `wasi:http/incoming-handler`; try it with `serve`.
    Http,
}

#[derive(Args)]
pub struct NewArgs {
    /// The guest's language.
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// What it is: an actor, or an HTTP handler (Rust only).
    #[arg(long, value_enum, default_value = "actor")]
    template: Template,
    /// Where to create it (default: ./NAME).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The component's name: letters, digits and `-`.
    name: String,
}

fn write(dir: &Path, rel: &str, text: &str) -> Result<()> {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::write(&path, text).with_context(|| path.display().to_string())
}

pub fn new(a: NewArgs) -> Result<ExitCode> {
    let name = &a.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || !name.starts_with(|c: char| c.is_ascii_lowercase())
    {
        bail!(
            "invalid name {name:?}: use lowercase letters, digits and '-', starting with a letter"
        );
    }
    let dir = a.dir.clone().unwrap_or_else(|| PathBuf::from(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{}: already exists and is not empty", dir.display());
    }
    if a.template == Template::Http {
        if a.lang != Lang::Rust {
            bail!("--template http is for Rust; with componentize-py use its `proxy` world (`componentize-py -w wasi:http/proxy@0.2.0 ...`)");
        }
        return new_http(&dir, name);
    }
    write(&dir, "wit/airssys.wit", AIRSSYS_WIT)?;
    for (file, text) in KV_WIT {
        write(&dir, &format!("wit/deps/keyvalue/{file}"), text)?;
    }
    write(
        &dir,
        "Component.toml",
        &format!(
            "[component]\nname = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"A new airssys-wasm component\"\n\n[limits]\nmemory = \"64MiB\"\ntimeout = \"5s\"\n\n[capabilities]\n# network = {{ outbound = [\"api.example.com:443\"] }}\n# messaging = {{ send = [\"worker-*\"] }}\n"
        ),
    )?;
    let (build, wasm) = match a.lang {
        Lang::Rust => {
            let snake = name.replace('-', "_");
            write(
                &dir,
                "Cargo.toml",
                &format!(
                    "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwit-bindgen = \"0.63\"\n\n[profile.release]\nopt-level = \"s\"\n\n# A project of its own, even inside another workspace.\n[workspace]\n"
                ),
            )?;
            write(
                &dir,
                ".cargo/config.toml",
                "# Components are built for WASI 0.2: `rustup target add wasm32-wasip2` once.\n[build]\ntarget = \"wasm32-wasip2\"\n",
            )?;
            write(&dir, ".gitignore", "/target\n")?;
            write(&dir, "src/lib.rs", &RUST_LIB.replace("{name}", name))?;
            (
                "rustup target add wasm32-wasip2   # once\ncargo build --release".to_string(),
                format!("target/wasm32-wasip2/release/{snake}.wasm"),
            )
        }
        Lang::Python => {
            write(&dir, "app.py", &PYTHON_APP.replace("{name}", name))?;
            write(&dir, ".gitignore", "/*.wasm\n")?;
            (
                format!("pip install componentize-py==0.25.1   # once\ncomponentize-py -d wit -w component componentize app -o {name}.wasm"),
                format!("{name}.wasm"),
            )
        }
    };
    write(
        &dir,
        "README.md",
        &format!(
            "# {name}\n\nAn airssys-wasm component.\n\n```sh\n{build}\nairssys-wasm call --manifest Component.toml {wasm} hello\n```\n\nThe contract is `wit/airssys.wit` (`airssys:component@0.2.1`): export `lifecycle`;\nimport `services`, `messaging`, `storage` and `wasi:keyvalue` as needed.\n"
        ),
    )?;
    println!(
        "created {} ({})",
        dir.display(),
        match a.lang {
            Lang::Rust => "rust",
            Lang::Python => "python",
        }
    );
    println!("  cd {}", dir.display());
    for line in build.lines() {
        println!("  {line}");
    }
    println!("  airssys-wasm call --manifest Component.toml {wasm} hello");
    Ok(ExitCode::SUCCESS)
}

/// A Rust `wasi:http/proxy` component on the `wasip2` crate (which carries
/// the WIT), the shape `wasmtime serve` and Spin also run.
fn new_http(dir: &Path, name: &str) -> Result<ExitCode> {
    let snake = name.replace('-', "_");
    write(
        dir,
        "Cargo.toml",
        &format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[lib]\ncrate-type = [\"cdylib\"]\n\n[dependencies]\nwasip2 = \"2\"\n\n[profile.release]\nopt-level = \"s\"\n\n# A project of its own, even inside another workspace.\n[workspace]\n"
        ),
    )?;
    write(
        dir,
        ".cargo/config.toml",
        "# Components are built for WASI 0.2: `rustup target add wasm32-wasip2` once.\n[build]\ntarget = \"wasm32-wasip2\"\n",
    )?;
    write(dir, ".gitignore", "/target\n")?;
    write(
        dir,
        "Component.toml",
        &format!(
            "[component]\nname = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"A new airssys-wasm HTTP handler\"\n\n# Per request.\n[limits]\nmemory = \"64MiB\"\ntimeout = \"5s\"\n\n[capabilities]\n# network = {{ outbound = [\"api.example.com:443\"] }}\n"
        ),
    )?;
    write(dir, "src/lib.rs", &HTTP_LIB.replace("{name}", name))?;
    let wasm = format!("target/wasm32-wasip2/release/{snake}.wasm");
    write(
        dir,
        "README.md",
        &format!(
            "# {name}\n\nAn HTTP handler (`wasi:http/proxy`) for `airssys-wasm serve`.\n\n```sh\nrustup target add wasm32-wasip2   # once\ncargo build --release\nairssys-wasm serve --manifest Component.toml {wasm}\ncurl http://127.0.0.1:8080/\n```\n"
        ),
    )?;
    println!("created {} (rust, http handler)", dir.display());
    println!("  cd {}", dir.display());
    println!("  rustup target add wasm32-wasip2   # once");
    println!("  cargo build --release");
    println!("  airssys-wasm serve --manifest Component.toml {wasm}");
    Ok(ExitCode::SUCCESS)
}

const HTTP_LIB: &str = r#"//! {name}: an HTTP handler. Every request gets a fresh instance; answer it
//! through `out`, streaming the body as you write it.
use std::io::Write;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

struct Handler;

impl wasip2::exports::http::incoming_handler::Guest for Handler {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_else(|| "/".into());
        let headers = Fields::from_list(&[(
            "content-type".to_string(),
            b"text/plain; charset=utf-8".to_vec(),
        )])
        .expect("a valid header");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body, once");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = body.write().expect("the stream, once");
        let _ = writeln!(stream, "hello from {name}: you asked for {path}");
        let _ = stream.blocking_flush();
        drop(stream);
        let _ = OutgoingBody::finish(body, None);
    }
}

wasip2::http::proxy::export!(Handler);
"#;

const RUST_LIB: &str = r#"//! {name}: an airssys-wasm component. It answers every message with a
//! greeting and the payload; change `handle_message` to do your work.
wit_bindgen::generate!({ path: "wit", world: "airssys:component/component", generate_all });

use airssys::component::services::{log, LogLevel};
use airssys::component::types::{ComponentMetadata, Error, HealthStatus, Message, RequestError};
use exports::airssys::component::lifecycle::Guest;

struct Component;

impl Guest for Component {
    fn initialize(_config: Vec<(String, String)>) -> Result<(), Error> {
        log(LogLevel::Info, "{name} ready", &[]);
        Ok(())
    }

    fn handle_message(msg: Message) -> Result<Option<Vec<u8>>, Error> {
        let text = String::from_utf8_lossy(&msg.payload);
        Ok(Some(format!("{name} got: {text}").into_bytes()))
    }

    fn handle_callback(_id: String, _reply: Result<Message, RequestError>) -> Result<(), Error> {
        Ok(())
    }

    fn metadata() -> ComponentMetadata {
        ComponentMetadata {
            name: "{name}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "A new airssys-wasm component".into(),
        }
    }

    fn health() -> HealthStatus {
        HealthStatus::Healthy
    }

    fn shutdown() -> Result<(), Error> {
        Ok(())
    }
}

export!(Component);
"#;

const PYTHON_APP: &str = r#""""{name}: an airssys-wasm component in Python. It answers every
message with a greeting and the payload; change handle_message to do your work."""
from typing import List, Optional, Tuple

from wit_world import exports
from wit_world.imports import services, types


class Lifecycle(exports.Lifecycle):
    def initialize(self, config: List[Tuple[str, str]]) -> None:
        services.log(services.LogLevel.INFO, "{name} ready", [])

    def handle_message(self, msg: types.Message) -> Optional[bytes]:
        return b"{name} got: " + msg.payload

    def handle_callback(self, correlation_id, reply) -> None:
        return None

    def metadata(self) -> types.ComponentMetadata:
        return types.ComponentMetadata("{name}", "0.1.0", "A new airssys-wasm component")

    def health(self) -> types.HealthStatus:
        return types.HealthStatus.HEALTHY

    def shutdown(self) -> None:
        return None
"#;
