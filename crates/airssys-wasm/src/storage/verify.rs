//! [`Storage::verify`]: redb's own integrity check, then every usage counter
//! recounted from the data.

use std::fmt;
use std::path::Path;

use redb::{ReadableDatabase, ReadableTable};
use serde::Serialize;

use super::keys::{Namespace, NamespaceKind, Usage, DATA, USAGE};
use super::{holder, Storage, DATABASE_FILE};
use crate::error::{Error, Result};

/// What [`Storage::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct VerifyReport {
    /// Namespaces checked.
    pub namespaces: u64,
    /// Entries checked.
    pub keys: u64,
    /// Bytes checked.
    pub bytes: u64,
    /// Every mismatch between a usage counter and the data (empty: all good).
    pub problems: Vec<String>,
}

impl Storage {
    /// Checks the database's integrity (page checksums, tree structure; this
    /// needs the database to itself, so it runs on a fresh open of the
    /// directory) and that every usage counter matches the data.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when there is no database in `dir`, [`Error::StorageInUse`] when a
    /// process holds it.
    pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
        let dir = dir.as_ref();
        let file = dir.join(DATABASE_FILE);
        if !file.exists() {
            return Err(Error::Storage {
                dir: dir.to_path_buf(),
                message: format!("no database ({DATABASE_FILE}) in this directory"),
            });
        }
        let fail = |e: &dyn fmt::Display| Error::Storage {
            dir: dir.to_path_buf(),
            message: e.to_string(),
        };
        let mut db = match redb::Database::open(&file) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(Error::StorageInUse {
                    dir: dir.to_path_buf(),
                    holder: holder(dir),
                });
            }
            Err(e) => return Err(fail(&e)),
        };
        let mut report = VerifyReport::default();
        if !db.check_integrity().map_err(|e| fail(&e))? {
            report
                .problems
                .push("the database was repaired: it had not been closed cleanly".into());
        }
        let tx = db.begin_read().map_err(|e| fail(&e))?;
        let data = tx.open_table(DATA).map_err(|e| fail(&e))?;
        let usage = tx.open_table(USAGE).map_err(|e| fail(&e))?;
        let mut counted: std::collections::BTreeMap<(u8, String), Usage> = Default::default();
        for e in data.iter().map_err(|e| fail(&e))? {
            let (k, v) = e.map_err(|e| fail(&e))?;
            let (kind, ns, key) = k.value();
            let u = counted.entry((kind, ns.to_string())).or_default();
            u.keys += 1;
            u.bytes += (key.len() + v.value().len()) as u64;
            report.keys += 1;
            report.bytes += (key.len() + v.value().len()) as u64;
        }
        let mut recorded: std::collections::BTreeMap<(u8, String), Usage> = Default::default();
        for e in usage.iter().map_err(|e| fail(&e))? {
            let (k, v) = e.map_err(|e| fail(&e))?;
            let (kind, ns) = k.value();
            let (bytes, keys) = v.value();
            if keys > 0 || bytes > 0 {
                recorded.insert((kind, ns.to_string()), Usage { bytes, keys });
            }
        }
        report.namespaces = counted.len() as u64;
        let names: std::collections::BTreeSet<_> =
            counted.keys().chain(recorded.keys()).cloned().collect();
        for name in names {
            let c = counted.get(&name).copied().unwrap_or_default();
            let r = recorded.get(&name).copied().unwrap_or_default();
            if c != r {
                let ns = Namespace {
                    kind: NamespaceKind::from_tag(name.0).unwrap_or(NamespaceKind::Actor),
                    name: name.1.as_str().into(),
                };
                report.problems.push(format!(
                    "{ns}: usage counter says {} keys, {} bytes; the data holds {} keys, {} bytes",
                    r.keys, r.bytes, c.keys, c.bytes
                ));
            }
        }
        Ok(report)
    }
}
