//! Export and import as JSON Lines: one `{"actor": ..., "key": ..., "value": ...}`
//! per entry. The value is UTF-8 text when it is, else base64 with
//! `"encoding": "base64"`. A shared namespace is written `shared:NAME`.
//! Import is atomic (one transaction: every entry or none) and idempotent
//! (an entry replaces the key's value).

use std::io::{BufRead, Write};

use base64::Engine as _;
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{check_key, commit, Namespace, NamespaceKind, Storage, StorageError, DATA};
use crate::error::{Error, Result};

/// One exported entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// The namespace: an actor id, or `shared:NAME`.
    pub actor: String,
    /// The key.
    pub key: String,
    /// The value: text, or base64 when `encoding` says so.
    pub value: String,
    /// `base64` when the value is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
}

impl Record {
    fn new(ns: &Namespace, key: &str, value: &[u8]) -> Self {
        let (value, encoding) = match std::str::from_utf8(value) {
            Ok(s) => (s.to_string(), None),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(value),
                Some("base64".to_string()),
            ),
        };
        Record {
            actor: ns.to_string(),
            key: key.to_string(),
            value,
            encoding,
        }
    }

    fn bytes(&self) -> std::result::Result<Vec<u8>, String> {
        match self.encoding.as_deref() {
            None | Some("utf-8") => Ok(self.value.clone().into_bytes()),
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&self.value)
                .map_err(|e| format!("invalid base64 value: {e}")),
            Some(other) => Err(format!("unknown encoding {other:?} (expected \"base64\")")),
        }
    }
}

impl Storage {
    /// Writes every entry (of `only` when given) as JSON Lines, in namespace
    /// then key order, from one consistent snapshot. Returns the number written.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] from the backend, [`Error::Io`] from the writer.
    pub fn export(&self, only: Option<&Namespace>, out: &mut dyn Write) -> Result<u64> {
        let fail = |e: &dyn std::fmt::Display| Error::Storage {
            dir: self.dir().to_path_buf(),
            message: e.to_string(),
        };
        let tx = self.inner().db.begin_read().map_err(|e| fail(&e))?;
        let table = tx.open_table(DATA).map_err(|e| fail(&e))?;
        let range = match only {
            Some(ns) => table.range((ns.key().0, ns.name(), "")..),
            None => table.iter(),
        }
        .map_err(|e| fail(&e))?;
        let mut n = 0;
        for e in range {
            let (k, v) = e.map_err(|e| fail(&e))?;
            let (kind, name, key) = k.value();
            if let Some(only) = only {
                if (kind, name) != only.key() {
                    break;
                }
            }
            let ns = match NamespaceKind::from_tag(kind) {
                Some(NamespaceKind::Shared) => Namespace::shared(name),
                _ => Namespace::actor(name),
            };
            let line =
                serde_json::to_string(&Record::new(&ns, key, v.value())).map_err(|e| fail(&e))?;
            writeln!(out, "{line}").map_err(|e| fail(&e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Imports JSON Lines written by [`Storage::export`]: every entry or, on
    /// any error (a malformed line, an invalid key, a value over the limit),
    /// none; the error names the line. Quotas are not applied (an operator
    /// restores what was there). Returns the number of entries imported.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] naming the line of a malformed record or a namespace no actor could
    /// have; nothing is imported then.
    pub fn import(&self, input: &mut dyn BufRead) -> Result<u64> {
        let invalid = |line: usize, message: String| Error::Storage {
            dir: self.dir().to_path_buf(),
            message: format!("import line {line}: {message}"),
        };
        let mut by_ns: std::collections::BTreeMap<Namespace, Vec<(String, Vec<u8>)>> =
            Default::default();
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(|e| invalid(i + 1, e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let r: Record =
                serde_json::from_str(&line).map_err(|e| invalid(i + 1, e.to_string()))?;
            let value = r.bytes().map_err(|e| invalid(i + 1, e))?;
            check_key(self.limits(), &r.key).map_err(|e| invalid(i + 1, e.to_string()))?;
            if value.len() > self.limits().max_value_bytes {
                let e = StorageError::ValueTooLarge {
                    size: value.len() as u64,
                    limit: self.limits().max_value_bytes as u64,
                };
                return Err(invalid(i + 1, e.to_string()));
            }
            if r.actor.is_empty() {
                return Err(invalid(i + 1, "empty actor".into()));
            }
            let ns = Namespace::parse(&r.actor);
            // Data under an id no actor can have could never be reached.
            match ns.kind() {
                NamespaceKind::Actor => {
                    // An actor id, or a component name as `call` uses
                    // (a DNS-label-like word that may also hold dots).
                    let name = ns.name();
                    let component_like = name.len() <= 63
                        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                    if !component_like {
                        crate::id::ActorId::parse(name)
                            .map_err(|e| invalid(i + 1, e.to_string()))?;
                    }
                }
                NamespaceKind::Shared => {
                    let name = ns.name();
                    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                        return Err(invalid(
                            i + 1,
                            format!(
                                "invalid shared namespace {:?}: 1 to 256 bytes, no control characters",
                                crate::units::truncate(name, 64)
                            ),
                        ));
                    }
                }
            }
            by_ns.entry(ns).or_default().push((r.key, value));
        }
        let inner = self.inner();
        commit::import_all(
            &inner.db,
            &inner.limits,
            &inner.generation,
            by_ns.into_iter().collect(),
        )
        .map_err(|e| Error::Storage {
            dir: self.dir().to_path_buf(),
            message: e.to_string(),
        })
    }
}
