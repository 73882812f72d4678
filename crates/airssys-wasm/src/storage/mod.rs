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
//!   transaction (group commit), so durability costs one fsync per
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
mod keys;
mod ops;
mod reads;
pub(crate) mod replica;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use commit::{Committer, DurableTimer, Then, WriteOp, WriteOutcome};

pub(crate) use keys::{check_key, counter_after, ATTEMPTS, DATA, MAILBOX, TIMERS, USAGE};
pub use keys::{
    BatchOp, Namespace, NamespaceKind, Quota, QuotaKind, StorageError, StorageLimits, Usage,
};
pub(crate) use reads::Reader;
pub use reads::{KeyPage, NamespaceUsage};
pub use verify::VerifyReport;

/// The database file inside a data directory.
pub const DATABASE_FILE: &str = "airssys.redb";
/// The file naming the process that holds a data directory.
pub const OWNER_FILE: &str = "owner";

/// A durable mailbox log's entries, oldest first: sequence number and packed message.
pub(crate) type LogEntries = Vec<(u64, Vec<u8>)>;

/// See [`Storage::commit_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CommitCounts {
    /// Transactions committed (each one fsync).
    pub commits: u64,
    /// Writes they carried.
    pub writes: u64,
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
    /// Where the writes of the actors it covers go first (a cluster's log).
    replica: Arc<std::sync::OnceLock<Arc<dyn replica::Replica>>>,
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
    ///
    /// # Errors
    ///
    /// [`Error::StorageInUse`] naming the holder when another process has the directory,
    /// [`Error::Storage`] when the database cannot be created or repaired.
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
        tx.open_table(MAILBOX).map_err(|e| fail(&e))?;
        tx.open_table(TIMERS).map_err(|e| fail(&e))?;
        tx.open_table(ATTEMPTS).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))?;
        let _ = std::fs::write(dir.join(OWNER_FILE), owner_line());
        let db = Arc::new(db);
        let generation = Arc::new(AtomicU64::new(0));
        let stats = Arc::new(commit::CommitStats::default());
        let replica = Arc::new(std::sync::OnceLock::new());
        let committer = Committer::start(
            db.clone(),
            limits,
            generation.clone(),
            stats.clone(),
            replica.clone(),
        );
        Ok(Storage {
            inner: Arc::new(Inner {
                db,
                dir,
                limits,
                committer,
                generation,
                stats,
                replica,
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

    /// Sends a write to the committer; resolves once it is durable (or refused).
    pub(crate) fn write(
        &self,
        ns: &Namespace,
        op: WriteOp,
        quota: Quota,
    ) -> tokio::sync::oneshot::Receiver<std::result::Result<WriteOutcome, StorageError>> {
        self.inner
            .committer
            .submit(ns.clone(), op, quota, None, None)
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
            .submit(ns.clone(), op, quota, Some(account), None)
            .await
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))
    }

    /// Sets `key` in `ns`, blocking until it is durable. (Guests go through
    /// the same committer without blocking a thread.)
    ///
    /// # Errors
    ///
    /// [`StorageError`]: an invalid key, a value over the limit, the namespace's quota, or the
    /// backend.
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
    ///
    /// # Errors
    ///
    /// As [`Storage::set_blocking`].
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

    /// Appends `message` (packed by the actor layer) to `actor`'s durable
    /// mailbox. `then` runs on the committer thread once it is durable (with
    /// its sequence number) or refused, in commit order; the receiver
    /// resolves after it.
    pub(crate) fn enqueue(
        &self,
        actor: &str,
        message: Vec<u8>,
        id: Option<String>,
        then: Then,
    ) -> tokio::sync::oneshot::Receiver<std::result::Result<WriteOutcome, StorageError>> {
        self.inner.committer.submit(
            Namespace::actor(actor),
            WriteOp::Enqueue { message, id },
            Quota::unlimited(),
            None,
            Some(then),
        )
    }

    /// Actor `own` handled a group of durable messages: commits `group`
    /// (see [`commit::Group`]) in one durable transaction, its writes under
    /// `quota` counted for `own`; `then` runs on the committer thread after
    /// it (to queue the sends in memory in log order). A refusal writes nothing.
    pub(crate) async fn handled(
        &self,
        own: &Namespace,
        group: commit::Group,
        quota: Quota,
        then: Option<Then>,
    ) -> std::result::Result<WriteOutcome, StorageError> {
        let account = own.name_shared();
        self.inner
            .committer
            .submit(
                own.clone(),
                WriteOp::Handled(group),
                quota,
                Some(account),
                then,
            )
            .await
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))
    }

    /// What `actor`'s durable mailbox holds, oldest first: sequence number and
    /// packed message.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] when the database cannot be read.
    pub(crate) fn mailbox(
        &self,
        actor: &str,
    ) -> std::result::Result<Vec<(u64, Vec<u8>)>, StorageError> {
        use redb::ReadableDatabase;
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(MAILBOX).map_err(StorageError::backend)?;
        let mut out = Vec::new();
        for e in table
            .range((actor, 0)..=(actor, u64::MAX))
            .map_err(StorageError::backend)?
        {
            let (k, v) = e.map_err(StorageError::backend)?;
            out.push((k.value().1, v.value().to_vec()));
        }
        Ok(out)
    }

    /// Every durable mailbox log whose actor id starts with `prefix` (a
    /// virtual component's `component/`), with its entries, oldest first.
    pub(crate) fn mailboxes_under(
        &self,
        prefix: &str,
    ) -> std::result::Result<Vec<(String, LogEntries)>, StorageError> {
        use redb::ReadableDatabase;
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(MAILBOX).map_err(StorageError::backend)?;
        let mut out: Vec<(String, LogEntries)> = Vec::new();
        for e in table.range((prefix, 0)..).map_err(StorageError::backend)? {
            let (k, v) = e.map_err(StorageError::backend)?;
            let (actor, seq) = k.value();
            if !actor.starts_with(prefix) {
                break;
            }
            match out.last_mut() {
                Some((a, entries)) if a == actor => entries.push((seq, v.value().to_vec())),
                _ => out.push((actor.to_string(), vec![(seq, v.value().to_vec())])),
            }
        }
        Ok(out)
    }

    /// Whether `other` is this same database (a clone of this handle).
    pub(crate) fn same(&self, other: &Storage) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Makes `replica` take, from now on, every write to the actors it
    /// covers before it is applied here. Once per storage.
    pub(crate) fn set_replica(&self, replica: Arc<dyn replica::Replica>) -> bool {
        self.inner.replica.set(replica).is_ok()
    }

    /// Rebuilds `actor`'s rows (data, mailbox, timers, delivery counts) from
    /// `records`, its replica's log in order: what was here goes first.
    /// Returns how many records were replayed.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] for a malformed record (nothing after it is
    /// replayed) or a failed commit.
    pub(crate) async fn restore(
        &self,
        actor: &str,
        records: Vec<Vec<u8>>,
    ) -> std::result::Result<usize, StorageError> {
        let ns = Namespace::actor(actor);
        let c = &self.inner.committer;
        let mut last = c.submit_as(
            ns.clone(),
            WriteOp::Reset,
            Quota::unlimited(),
            None,
            None,
            false,
        );
        let n = records.len();
        for (i, bytes) in records.into_iter().enumerate() {
            let Some(r) = replica::decode(&bytes) else {
                let _ = last.await;
                return Err(StorageError::Backend(format!(
                    "actor {actor}: record {i} of its log is malformed"
                )));
            };
            last = c.submit_as(
                ns.clone(),
                r.op,
                r.quota,
                r.account.map(Arc::from),
                None,
                false,
            );
        }
        match last.await {
            // A replayed write refused (its quota) was refused the first time too.
            Ok(Ok(_)) | Ok(Err(StorageError::QuotaExceeded { .. })) => Ok(n),
            Ok(Err(StorageError::Backend(e))) => Err(StorageError::Backend(e)),
            Ok(Err(_)) => Ok(n),
            Err(_) => Err(StorageError::Backend("the storage is closed".into())),
        }
    }

    /// Durable timer `id` of `actor` fired: removes it and, when `to` is a
    /// durable actor, appends its message to that log, in one transaction;
    /// `then` runs after (to queue it). Resolves once durable.
    pub(crate) fn fire_timer(
        &self,
        actor: &str,
        id: u64,
        to: Option<String>,
        then: Then,
    ) -> tokio::sync::oneshot::Receiver<std::result::Result<WriteOutcome, StorageError>> {
        self.inner.committer.submit(
            Namespace::actor(actor),
            WriteOp::FireTimer { id, to },
            Quota::unlimited(),
            None,
            Some(then),
        )
    }

    /// A delivery of `actor`'s durable message `seq` (recovered from its log at
    /// a start) is about to begin: counts it durably. Resolves, once durable,
    /// to the deliveries started before this one (in earlier runs of the host
    /// that ended without handling it).
    pub(crate) async fn attempt(
        &self,
        actor: &str,
        seq: u64,
    ) -> std::result::Result<u32, StorageError> {
        match self
            .inner
            .committer
            .submit(
                Namespace::actor(actor),
                WriteOp::Attempt(seq),
                Quota::unlimited(),
                None,
                None,
            )
            .await
            .unwrap_or_else(|_| Err(StorageError::Backend("the storage is closed".into())))?
        {
            WriteOutcome::Attempts(n) => Ok(n),
            other => Err(StorageError::Backend(format!(
                "unexpected outcome of an attempt: {other:?}"
            ))),
        }
    }

    /// Removes durable timer `id` of `actor` (not awaited by the caller: a
    /// cancel is durable shortly after it returns).
    pub(crate) fn cancel_timer(&self, actor: &str, id: u64) {
        drop(self.inner.committer.submit(
            Namespace::actor(actor),
            WriteOp::CancelTimer(id),
            Quota::unlimited(),
            None,
            None,
        ));
    }

    /// `actor`'s durable timers, by id.
    pub(crate) fn timers(
        &self,
        actor: &str,
    ) -> std::result::Result<Vec<DurableTimer>, StorageError> {
        use redb::ReadableDatabase;
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(TIMERS).map_err(StorageError::backend)?;
        let mut out = Vec::new();
        for e in table
            .range((actor, 0)..=(actor, u64::MAX))
            .map_err(StorageError::backend)?
        {
            let (k, v) = e.map_err(StorageError::backend)?;
            let (due_ms, target, message) = v.value();
            out.push(DurableTimer {
                id: k.value().1,
                due_ms,
                target: target.to_string(),
                message: message.to_vec(),
            });
        }
        Ok(out)
    }

    /// The actors whose id starts with `prefix` (a virtual component's
    /// `component/`) that have durable timers stored, each once.
    pub(crate) fn timer_owners_under(
        &self,
        prefix: &str,
    ) -> std::result::Result<Vec<String>, StorageError> {
        use redb::ReadableDatabase;
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(TIMERS).map_err(StorageError::backend)?;
        let mut out: Vec<String> = Vec::new();
        for e in table.range((prefix, 0)..).map_err(StorageError::backend)? {
            let (k, _) = e.map_err(StorageError::backend)?;
            let (actor, _) = k.value();
            if !actor.starts_with(prefix) {
                break;
            }
            if out.last().map(String::as_str) != Some(actor) {
                out.push(actor.to_string());
            }
        }
        Ok(out)
    }

    /// Messages in `actor`'s durable mailbox log: acknowledged, not yet handled.
    ///
    /// # Errors
    ///
    /// [`StorageError::Backend`] when the database cannot be read.
    pub fn mailbox_len(&self, actor: &str) -> std::result::Result<u64, StorageError> {
        Ok(self.mailbox(actor)?.len() as u64)
    }

    /// Deletes every entry of `ns`, durably, in one transaction. Returns the
    /// number of keys deleted.
    ///
    /// # Errors
    ///
    /// [`StorageError`] from the backend.
    pub fn delete_namespace(&self, ns: &Namespace) -> std::result::Result<u64, StorageError> {
        match self.write_blocking(ns, WriteOp::DeleteNamespace, Quota::unlimited())? {
            WriteOutcome::Deleted(n) => Ok(n),
            _ => Ok(0),
        }
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
