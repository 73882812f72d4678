//! `storage ls|export|import|delete|verify`, and the `--data DIR` of `run` and `call`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use airssys_wasm::storage::{Namespace, Storage, StorageLimits};
use airssys_wasm::ExecutionContext;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

/// `--data DIR`: the durable storage of the component.
#[derive(Args)]
pub struct DataArg {
    /// Keep the component's durable storage in DIR (its namespace is the
    /// manifest's name, else the file stem). Without it, storage calls return `unavailable`.
    #[arg(long = "data", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl DataArg {
    pub fn apply(&self, ctx: ExecutionContext) -> Result<ExecutionContext> {
        Ok(match &self.dir {
            Some(dir) => ctx.with_storage(Storage::open(dir, StorageLimits::default())?),
            None => ctx,
        })
    }
}

#[derive(Args)]
pub struct DataDir {
    /// The data directory.
    #[arg(long = "data", value_name = "DIR")]
    dir: PathBuf,
}

impl DataDir {
    fn open(&self) -> Result<Storage> {
        if !self.dir.join(airssys_wasm::storage::DATABASE_FILE).exists() {
            bail!(
                "{}: no storage here (no {})",
                self.dir.display(),
                airssys_wasm::storage::DATABASE_FILE
            );
        }
        Ok(Storage::open(&self.dir, StorageLimits::default())?)
    }
}

#[derive(Subcommand)]
pub enum StorageCommand {
    /// List the actors with their key count and bytes, or one actor's keys.
    Ls {
        #[command(flatten)]
        data: DataDir,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// An actor id (or `shared:NAME`): list its keys.
        actor: Option<String>,
    },
    /// Write every entry (or one actor's) to stdout as JSON Lines.
    Export {
        #[command(flatten)]
        data: DataDir,
        /// Only this actor (or `shared:NAME`).
        actor: Option<String>,
    },
    /// Import JSON Lines written by `export`: all entries or none; idempotent.
    Import {
        #[command(flatten)]
        data: DataDir,
        /// The file (`-` for stdin).
        file: PathBuf,
    },
    /// Delete every entry of one actor.
    Delete {
        #[command(flatten)]
        data: DataDir,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// The actor id (or `shared:NAME`).
        actor: String,
    },
    /// Check the database's integrity and that its usage counters match the data.
    Verify {
        #[command(flatten)]
        data: DataDir,
    },
}

pub fn run(c: StorageCommand) -> Result<ExitCode> {
    match c {
        StorageCommand::Ls { data, json, actor } => {
            let storage = data.open()?;
            let mut out = std::io::stdout().lock();
            match actor {
                None => {
                    let all = storage.namespaces()?;
                    if json {
                        writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                    } else {
                        writeln!(out, "{:<32} {:>10} {:>12}", "ACTOR", "KEYS", "BYTES")?;
                        for n in all {
                            writeln!(
                                out,
                                "{:<32} {:>10} {:>12}",
                                n.namespace, n.usage.keys, n.usage.bytes
                            )?;
                        }
                    }
                }
                Some(actor) => {
                    let ns = Namespace::parse(&actor);
                    let mut keys = Vec::new();
                    let mut cursor: Option<String> = None;
                    loop {
                        let page = storage.list_keys(&ns, "", cursor.as_deref(), usize::MAX)?;
                        for k in page.keys {
                            let size = storage.get(&ns, &k)?.map(|v| v.len()).unwrap_or(0);
                            keys.push((k, size));
                        }
                        match page.cursor {
                            Some(c) => cursor = Some(c),
                            None => break,
                        }
                    }
                    if json {
                        let v: Vec<_> = keys
                            .iter()
                            .map(|(k, n)| serde_json::json!({"key": k, "value_bytes": n}))
                            .collect();
                        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                    } else if keys.is_empty() {
                        eprintln!("{actor}: no keys");
                    } else {
                        for (k, n) in keys {
                            writeln!(out, "{k:?}\t{n} bytes")?;
                        }
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Export { data, actor } => {
            let storage = data.open()?;
            let ns = actor.as_deref().map(Namespace::parse);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let n = storage.export(ns.as_ref(), &mut out)?;
            out.flush()?;
            eprintln!("exported {n} entries");
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Import { data, file } => {
            let storage = Storage::open(&data.dir, StorageLimits::default())?;
            let mut input: Box<dyn BufRead> = if file.as_os_str() == "-" {
                Box::new(std::io::stdin().lock())
            } else {
                Box::new(std::io::BufReader::new(
                    std::fs::File::open(&file).with_context(|| file.display().to_string())?,
                ))
            };
            let n = storage.import(&mut input)?;
            eprintln!("imported {n} entries");
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Delete { data, yes, actor } => {
            let storage = data.open()?;
            let ns = Namespace::parse(&actor);
            let usage = storage.usage(&ns)?;
            if usage.keys == 0 {
                eprintln!("{actor}: no keys; nothing to delete");
                return Ok(ExitCode::SUCCESS);
            }
            if !yes {
                eprint!(
                    "delete {} keys ({} bytes) of {actor} in {}? [y/N] ",
                    usage.keys,
                    usage.bytes,
                    data.dir.display()
                );
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if !matches!(answer.trim(), "y" | "Y" | "yes") {
                    eprintln!("not deleted");
                    return Ok(ExitCode::FAILURE);
                }
            }
            let n = storage.delete_namespace(&ns)?;
            eprintln!("deleted {n} keys of {actor}");
            Ok(ExitCode::SUCCESS)
        }
        StorageCommand::Verify { data } => {
            let report = Storage::verify(&data.dir)?;
            for p in &report.problems {
                println!("problem: {p}");
            }
            println!(
                "{}: {} namespaces, {} keys, {} bytes: {}",
                data.dir.display(),
                report.namespaces,
                report.keys,
                report.bytes,
                if report.problems.is_empty() {
                    "ok"
                } else {
                    "PROBLEMS FOUND"
                }
            );
            Ok(if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
