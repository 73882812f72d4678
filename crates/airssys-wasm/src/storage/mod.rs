//! Durable key-value storage: one redb database per data directory, one
//! namespace per actor, quotas, group commit, export/import.
//!
//! - **Isolation is structural.** Every entry is stored under the key
//!   `(kind, namespace, key)` of one redb table; a guest only ever supplies the
//!   last part, so no key (with `/`, `..`, NUL bytes, …) can reach another
//!   namespace. An actor's namespace is its actor id; shared namespaces
//!   ([`Namespace::shared`]) are a different kind, reached only through the
//!   manifest's `storage.shared` grants.
//! - **Durable before acknowledged.** A write returns only after its
//!   transaction is committed with fsync. Concurrent writers share commits: a
//!   committer thread takes every write waiting and commits them in one
//!   transaction ([group commit](commit)), so durability costs one fsync per
//!   group, not per write.
//! - **Atomic per request.** A batch, an increment or a compare-and-swap is
//!   checked in full (limits, quota, expectation) before anything is written;
//!   a refused request writes nothing, whatever else shares its commit.
//! - **Counted.** Bytes (key + value) and keys per namespace are kept in the
//!   same transactions as the data, so quotas are exact and
//!   [`Storage::verify`] can prove the counters match.
//!
//! ```no_run
//! use airssys_wasm::storage::{Namespace, Quota, Storage, StorageLimits};
//! # fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = Storage::open("data", StorageLimits::default())?;
//! let ns = Namespace::actor("counter");
//! storage.set_blocking(&ns, "hits", b"1".to_vec(), Quota::default())?;
//! assert_eq!(storage.get(&ns, "hits")?, Some(b"1".to_vec()));
//! # Ok(()) }
//! ```

pub mod archive;
pub(crate) mod commit;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;

use crate::error::{Error, Result};
use commit::{Committer, WriteOp, WriteOutcome};

/// Every entry: `(kind, namespace, key)` → value.
pub(crate) const DATA: TableDefinition<(u8, &str, &str), &[u8]> = TableDefinition::new("data");
/// Per namespace: `(kind, namespace)` → `(bytes, keys)`.
pub(crate) const USAGE: TableDefinition<(u8, &str), (u64, u64)> = TableDefinition::new("usage");
/// Per actor: the bytes and keys it added to shared namespaces (net of what
/// it removed there), counted against its own quota.
pub(crate) const ACCOUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("accounts");

/// The database file inside a data directory.
pub const DATABASE_FILE: &str = "airssys.redb";
/// The file naming the process that holds a data directory.
pub const OWNER_FILE: &str = "owner";

/// Whose entries a namespace holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NamespaceKind {
    /// One actor's own entries (keyed by its actor id).
    Actor,
    /// A namespace shared by the components granted it (`storage.shared`).
    Shared,
}

impl NamespaceKind {
    fn tag(self) -> u8 {
        match self {
            NamespaceKind::Actor => 0,
            NamespaceKind::Shared => 1,
        }
    }

    fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            0 => Some(NamespaceKind::Actor),
            1 => Some(NamespaceKind::Shared),
            _ => None,
        }
    }
}

/// One namespace: an actor's own, or a shared one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    kind: NamespaceKind,
    name: Arc<str>,
}

impl Namespace {
    /// The namespace of the actor (or `call`ed component) `id`.
    pub fn actor(id: impl Into<Arc<str>>) -> Self {
        Namespace {
            kind: NamespaceKind::Actor,
            name: id.into(),
        }
    }

    /// The shared namespace `name`.
    pub fn shared(name: impl Into<Arc<str>>) -> Self {
        Namespace {
            kind: NamespaceKind::Shared,
            name: name.into(),
        }
    }

    /// Parses the display form: `ID` for an actor, `shared:NAME` for a shared namespace.
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix("shared:") {
            Some(name) => Namespace::shared(name),
            None => Namespace::actor(s),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> NamespaceKind {
        self.kind
    }

    /// The actor id or shared name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn key(&self) -> (u8, &str) {
        (self.kind.tag(), &self.name)
    }

    pub(crate) fn name_shared(&self) -> Arc<str> {
        self.name.clone()
    }
}

impl fmt::Display for Namespace {
    /// `ID` for an actor's namespace, `shared:NAME` for a shared one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            NamespaceKind::Actor => f.write_str(&self.name),
            NamespaceKind::Shared => write!(f, "shared:{}", self.name),
        }
    }
}

/// How much one namespace may hold. Exceeding either is `quota-exceeded`, and
/// the write that would exceed it writes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// Bytes of keys plus values.
    pub bytes: u64,
    /// Number of keys.
    pub keys: u64,
}

impl Default for Quota {
    /// 64 MiB and 1,000,000 keys.
    fn default() -> Self {
        Quota {
            bytes: 64 << 20,
            keys: 1_000_000,
        }
    }
}

impl Quota {
    /// No quota.
    pub fn unlimited() -> Self {
        Quota {
            bytes: u64::MAX,
            keys: u64::MAX,
        }
    }
}

/// What one namespace holds, and its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Usage {
    /// Bytes of keys plus values.
    pub bytes: u64,
    /// Number of keys.
    pub keys: u64,
}

/// The per-request limits of a [`Storage`], the same for every namespace.
/// Each has its own error when exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StorageLimits {
    /// Longest key in bytes (keys are non-empty UTF-8). Default 256.
    pub max_key_bytes: usize,
    /// Largest value in bytes. Default 1 MiB.
    pub max_value_bytes: usize,
    /// Most operations in one batch. Default 1,000.
    pub max_batch_ops: usize,
    /// Most keys one `list-keys` page returns. Default 1,000.
    pub max_page: usize,
    /// Most writes committed together in one transaction. Default 1,024.
    pub max_group: usize,
}

impl Default for StorageLimits {
    fn default() -> Self {
        StorageLimits {
            max_key_bytes: 256,
            max_value_bytes: 1 << 20,
            max_batch_ops: 1000,
            max_page: 1000,
            max_group: 1024,
        }
    }
}

/// Which quota a write would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaKind {
    /// [`Quota::bytes`].
    Bytes,
    /// [`Quota::keys`].
    Keys,
}

/// Why a storage operation was refused or failed. Each names the namespace
/// or the limit; nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The key is empty or longer than the limit.
    #[error("invalid key {key:?}: {reason}")]
    InvalidKey {
        /// The key (cut to 64 bytes).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The value is larger than [`StorageLimits::max_value_bytes`].
    #[error("value of {size} bytes is over the limit of {limit} bytes")]
    ValueTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The batch has more operations than [`StorageLimits::max_batch_ops`].
    #[error("batch of {ops} operations is over the limit of {limit}")]
    BatchTooLarge {
        /// Its operations.
        ops: u64,
        /// The limit.
        limit: u64,
    },
    /// The write would take the namespace over a quota.
    #[error("{namespace}: {} quota of {limit} exceeded (the write needs {needed})", quota_name(*.quota))]
    QuotaExceeded {
        /// The namespace.
        namespace: String,
        /// Which quota.
        quota: QuotaKind,
        /// Its limit.
        limit: u64,
        /// What the namespace would hold after the write.
        needed: u64,
    },
    /// An increment found a value that is not a decimal integer, or overflowed.
    #[error("{key:?}: {reason}")]
    NotACounter {
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// No storage is configured for the instance (no data directory).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed (I/O, corruption) or is closed.
    #[error("storage backend: {0}")]
    Backend(String),
}

fn quota_name(q: QuotaKind) -> &'static str {
    match q {
        QuotaKind::Bytes => "storage-quota (bytes)",
        QuotaKind::Keys => "storage-keys",
    }
}

impl StorageError {
    pub(crate) fn backend(e: impl fmt::Display) -> Self {
        StorageError::Backend(e.to_string())
    }
}

/// One operation of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    /// Sets `key` to a value.
    Set(String, Vec<u8>),
    /// Deletes `key` (absent is fine).
    Delete(String),
}

/// One page of [`Storage::list_keys`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPage {
    /// Keys in byte order.
    pub keys: Vec<String>,
    /// Where the next page starts (`None`: this was the last).
    pub cursor: Option<String>,
}

/// A namespace as [`Storage::namespaces`] lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamespaceUsage {
    /// `ID` or `shared:NAME`.
    pub namespace: String,
    /// What it holds.
    #[serde(flatten)]
    pub usage: Usage,
}

/// See [`Storage::commit_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CommitCounts {
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Writes they carried.
    pub writes: u64,
}

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

/// A database in a data directory, shared by every instance of a host.
/// Cloning is cheap (one `Arc`); the database closes when the last clone
/// drops. Only one process may hold a data directory at a time.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Arc<redb::Database>,
    pub(crate) dir: PathBuf,
    pub(crate) limits: StorageLimits,
    committer: Committer,
    /// Bumped after each commit; readers refresh their snapshot when it moves.
    pub(crate) generation: Arc<AtomicU64>,
    stats: Arc<commit::CommitStats>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.committer.stop();
        let _ = std::fs::remove_file(self.dir.join(OWNER_FILE));
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Storage")
            .field("dir", &self.inner.dir)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Storage {
    /// Opens (creating if needed) the database in `dir`. A database left by a
    /// crashed process is repaired on open. Fails with
    /// [`Error::StorageInUse`] naming the holder when another process has it.
    pub fn open(dir: impl AsRef<Path>, limits: StorageLimits) -> Result<Storage> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let file = dir.join(DATABASE_FILE);
        let db = match redb::Database::create(&file) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                let holder = holder(&dir);
                return Err(Error::StorageInUse { dir, holder });
            }
            Err(e) => {
                return Err(Error::Storage {
                    dir,
                    message: e.to_string(),
                })
            }
        };
        let fail = |e: &dyn fmt::Display| Error::Storage {
            dir: dir.clone(),
            message: e.to_string(),
        };
        // Create the tables so readers never meet a missing one.
        let tx = db.begin_write().map_err(|e| fail(&e))?;
        tx.open_table(DATA).map_err(|e| fail(&e))?;
        tx.open_table(USAGE).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))?;
        let _ = std::fs::write(dir.join(OWNER_FILE), owner_line());
        let db = Arc::new(db);
        let generation = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(commit::CommitStats::default());
        let committer = Committer::start(db.clone(), limits, generation.clone(), stats.clone());
        Ok(Storage {
            inner: Arc::new(Inner {
                db,
                dir,
                limits,
                committer,
                generation,
                stats,
            }),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The per-request limits.
    pub fn limits(&self) -> &StorageLimits {
        &self.inner.limits
    }

    /// Commits made and writes acknowledged since the storage was opened; with
    /// concurrent writers there are fewer commits than writes (group commit).
    pub fn commit_stats(&self) -> CommitCounts {
        CommitCounts {
            commits: self.inner.stats.commits.load(Ordering::Relaxed),
            writes: self.inner.stats.writes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Checks a key against the limits.
    pub fn check_key(&self, key: &str) -> std::result::Result<(), StorageError> {
        check_key(&self.inner.limits, key)
    }

    /// The value of `key` in `ns`.
    pub fn get(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        self.check_key(key)?;
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(DATA).map_err(StorageError::backend)?;
        let v = table
            .get((ns.key().0, ns.name(), key))
            .map_err(StorageError::backend)?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// What `ns` holds.
    pub fn usage(&self, ns: &Namespace) -> std::result::Result<Usage, StorageError> {
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(USAGE).map_err(StorageError::backend)?;
        usage_in(&table, ns)
    }

    /// Up to `limit` (capped by [`StorageLimits::max_page`]) keys of `ns` that
    /// start with `prefix`, in byte order, after `cursor` (a key of a previous
    /// page's `cursor`).
    pub fn list_keys(
        &self,
        ns: &Namespace,
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> std::result::Result<KeyPage, StorageError> {
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(DATA).map_err(StorageError::backend)?;
        list_in(
            &table,
            ns,
            prefix,
            cursor,
            limit.clamp(1, self.inner.limits.max_page),
        )
    }

    /// One page of `ns`'s keys after `after` (from the start with `None`),
    /// a seek and at most a page of steps; the last key when more follow.
    pub(crate) fn list_after(
        &self,
        ns: &Namespace,
        after: Option<&str>,
    ) -> std::result::Result<(Vec<String>, Option<String>), StorageError> {
        let page = self.list_keys(ns, "", after, self.inner.limits.max_page)?;
        Ok((page.keys, page.cursor))
    }

    /// Sends a write to the committer; resolves once it is durable (or refused).
    pub(crate) fn write(
        &self,
        ns: &Namespace,
        op: WriteOp,
        quota: Quota,
    ) -> tokio::sync::oneshot::Receiver<std::result::Result<WriteOutcome, StorageError>> {
        self.inner.committer.submit(ns.clone(), op, quota, None)
    }

    /// A write by actor `account`: its quota bounds its own namespace plus
    /// what it added to shared namespaces; resolves once durable (or refused).
    pub(crate) async fn write_as(
        &self,
        ns: &Namespace,
        op: WriteOp,
        quota: Quota,
        account: Arc<str>,
    ) -> std::result::Result<WriteOutcome, StorageError> {
        self.inner
            .committer
            .submit(ns.clone(), op, quota, Some(account))
            .await
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))
    }

    /// Sets `key` in `ns`, blocking until it is durable. (Guests go through
    /// the same committer without blocking a thread.)
    pub fn set_blocking(
        &self,
        ns: &Namespace,
        key: &str,
        value: Vec<u8>,
        quota: Quota,
    ) -> std::result::Result<(), StorageError> {
        let op = WriteOp::Batch(vec![BatchOp::Set(key.to_string(), value)]);
        self.write_blocking(ns, op, quota).map(|_| ())
    }

    /// Sets `key` in `ns`, resolving once it is durable.
    pub async fn set(
        &self,
        ns: &Namespace,
        key: &str,
        value: Vec<u8>,
        quota: Quota,
    ) -> std::result::Result<(), StorageError> {
        let op = WriteOp::Batch(vec![BatchOp::Set(key.to_string(), value)]);
        self.write_async(ns, op, quota).await.map(|_| ())
    }

    pub(crate) async fn write_async(
        &self,
        ns: &Namespace,
        op: WriteOp,
        quota: Quota,
    ) -> std::result::Result<WriteOutcome, StorageError> {
        self.write(ns, op, quota)
            .await
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))
    }

    pub(crate) fn write_blocking(
        &self,
        ns: &Namespace,
        op: WriteOp,
        quota: Quota,
    ) -> std::result::Result<WriteOutcome, StorageError> {
        self.write(ns, op, quota)
            .blocking_recv()
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))
    }

    /// Deletes every entry of `ns`, durably, in one transaction. Returns the
    /// number of keys deleted.
    pub fn delete_namespace(&self, ns: &Namespace) -> std::result::Result<u64, StorageError> {
        match self.write_blocking(ns, WriteOp::DeleteNamespace, Quota::unlimited())? {
            WriteOutcome::Deleted(n) => Ok(n),
            _ => Ok(0),
        }
    }

    /// Every namespace holding at least one key, with its usage.
    pub fn namespaces(&self) -> std::result::Result<Vec<NamespaceUsage>, StorageError> {
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(USAGE).map_err(StorageError::backend)?;
        let mut out = Vec::new();
        for e in table.iter().map_err(StorageError::backend)? {
            let (k, v) = e.map_err(StorageError::backend)?;
            let (kind, name) = k.value();
            let (bytes, keys) = v.value();
            if keys == 0 {
                continue;
            }
            let Some(kind) = NamespaceKind::from_tag(kind) else {
                continue;
            };
            let ns = Namespace {
                kind,
                name: name.into(),
            };
            out.push(NamespaceUsage {
                namespace: ns.to_string(),
                usage: Usage { bytes, keys },
            });
        }
        Ok(out)
    }

    /// Checks the database's integrity (page checksums, tree structure; this
    /// needs the database to itself, so it runs on a fresh open of the
    /// directory) and that every usage counter matches the data.
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

pub(crate) fn check_key(
    limits: &StorageLimits,
    key: &str,
) -> std::result::Result<(), StorageError> {
    let reason = if key.is_empty() {
        "keys must not be empty".to_string()
    } else if key.len() > limits.max_key_bytes {
        format!(
            "{} bytes is over the key limit of {} bytes",
            key.len(),
            limits.max_key_bytes
        )
    } else {
        return Ok(());
    };
    let mut cut = key.len().min(64);
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    Err(StorageError::InvalidKey {
        key: key[..cut].to_string(),
        reason,
    })
}

pub(crate) fn usage_in(
    table: &impl ReadableTable<(u8, &'static str), (u64, u64)>,
    ns: &Namespace,
) -> std::result::Result<Usage, StorageError> {
    Ok(table
        .get(ns.key())
        .map_err(StorageError::backend)?
        .map(|v| {
            let (bytes, keys) = v.value();
            Usage { bytes, keys }
        })
        .unwrap_or_default())
}

pub(crate) fn list_in(
    table: &impl ReadableTable<(u8, &'static str, &'static str), &'static [u8]>,
    ns: &Namespace,
    prefix: &str,
    cursor: Option<&str>,
    limit: usize,
) -> std::result::Result<KeyPage, StorageError> {
    let (k, n) = ns.key();
    let start = match cursor {
        Some(c) if c > prefix => c,
        _ => prefix,
    };
    let mut page = KeyPage::default();
    let range = table
        .range((k, n, start)..)
        .map_err(StorageError::backend)?;
    for e in range {
        let (key, _) = e.map_err(StorageError::backend)?;
        let (kk, nn, key) = key.value();
        if kk != k || nn != n || !key.starts_with(prefix) {
            break;
        }
        if Some(key) == cursor {
            continue;
        }
        if page.keys.len() == limit {
            page.cursor = page.keys.last().cloned();
            break;
        }
        page.keys.push(key.to_string());
    }
    Ok(page)
}

/// The data table as a reader holds it.
type DataSnapshot = redb::ReadOnlyTable<(u8, &'static str, &'static str), &'static [u8]>;

/// A snapshot reader that stays valid until the next commit: `get` of a hot
/// key costs one atomic load and a B-tree lookup, no transaction setup.
pub(crate) struct Reader {
    storage: Storage,
    snapshot: Option<(u64, DataSnapshot)>,
}

impl Reader {
    pub(crate) fn new(storage: Storage) -> Self {
        Reader {
            storage,
            snapshot: None,
        }
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    fn table(&mut self) -> std::result::Result<&DataSnapshot, StorageError> {
        let generation = self.storage.inner.generation.load(Ordering::Acquire);
        if !matches!(&self.snapshot, Some((g, _)) if *g == generation) {
            self.snapshot = None;
            let tx = self
                .storage
                .inner
                .db
                .begin_read()
                .map_err(StorageError::backend)?;
            let table = tx.open_table(DATA).map_err(StorageError::backend)?;
            self.snapshot = Some((generation, table));
        }
        Ok(&self.snapshot.as_ref().expect("just set").1)
    }

    pub(crate) fn get(
        &mut self,
        ns: &Namespace,
        key: &str,
    ) -> std::result::Result<Option<Vec<u8>>, StorageError> {
        check_key(&self.storage.inner.limits, key)?;
        let (k, n) = ns.key();
        let v = self
            .table()?
            .get((k, n, key))
            .map_err(StorageError::backend)?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    pub(crate) fn exists(
        &mut self,
        ns: &Namespace,
        key: &str,
    ) -> std::result::Result<bool, StorageError> {
        check_key(&self.storage.inner.limits, key)?;
        let (k, n) = ns.key();
        Ok(self
            .table()?
            .get((k, n, key))
            .map_err(StorageError::backend)?
            .is_some())
    }

    /// Lets go of the snapshot (so the database can reuse the pages it pins).
    pub(crate) fn release(&mut self) {
        self.snapshot = None;
    }
}

/// Who holds `dir`, as the holder recorded itself.
fn holder(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(OWNER_FILE))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "another process".into())
}

fn owner_line() -> String {
    let cmd = std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if cmd.is_empty() {
        format!("process {}", std::process::id())
    } else {
        format!("process {} ({cmd})", std::process::id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked_against_the_limits() {
        let l = StorageLimits::default();
        assert!(check_key(&l, "a/../b\0c").is_ok());
        assert!(check_key(&l, &"k".repeat(256)).is_ok());
        let e = check_key(&l, &"é".repeat(200)).unwrap_err().to_string();
        assert!(
            e.contains("400 bytes is over the key limit of 256 bytes"),
            "{e}"
        );
        assert_eq!(
            check_key(&l, "").unwrap_err().to_string(),
            "invalid key \"\": keys must not be empty"
        );
    }

    #[test]
    fn namespaces_print_and_parse_by_kind() {
        assert_eq!(Namespace::actor("counter/7").to_string(), "counter/7");
        assert_eq!(Namespace::shared("cache").to_string(), "shared:cache");
        assert_eq!(Namespace::parse("shared:cache"), Namespace::shared("cache"));
        assert_eq!(Namespace::parse("a"), Namespace::actor("a"));
        assert_ne!(Namespace::actor("x").key(), Namespace::shared("x").key());
    }
}
