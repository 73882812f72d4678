//! The data model: the tables, namespaces and keys entries live under, the
//! limits and quotas a write is checked against, and the errors a guest sees.

use std::fmt;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition};
use serde::Serialize;

/// Every entry: `(kind, namespace, key)` → value.
pub(crate) const DATA: TableDefinition<(u8, &str, &str), &[u8]> = TableDefinition::new("data");

/// Per namespace: `(kind, namespace)` → `(bytes, keys)`.
pub(crate) const USAGE: TableDefinition<(u8, &str), (u64, u64)> = TableDefinition::new("usage");

/// Per actor: the bytes and keys it added to shared namespaces (net of what
/// it removed there), counted against its own quota.
pub(crate) const ACCOUNTS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("accounts");

/// Durable mailboxes: `(actor id, sequence number)` → the message, packed by
/// the actor layer. An entry is written before its send is acknowledged and
/// removed in the transaction that commits the effects of handling it.
pub(crate) const MAILBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("mailbox");

/// Durable timers: `(actor id, timer id)` → `(due, ms since the Unix epoch;
/// target; packed message)`. Written with the call that armed them, removed in
/// the transaction that delivers them (or by a cancel).
pub(crate) const TIMERS: TableDefinition<(&str, u64), (u64, &str, &[u8])> =
    TableDefinition::new("timers");

/// Deliveries started of a durable message recovered from its log at a
/// start: `(actor id, sequence number)` → how many (written before each such
/// delivery, removed with the log entry), so that a message during which the
/// host stops each time becomes a poison message across restarts too.
pub(crate) const ATTEMPTS: TableDefinition<(&str, u64), u32> = TableDefinition::new("attempts");

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
    pub(super) fn tag(self) -> u8 {
        match self {
            NamespaceKind::Actor => 0,
            NamespaceKind::Shared => 1,
        }
    }

    pub(super) fn from_tag(tag: u8) -> Option<Self> {
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
    pub(super) kind: NamespaceKind,
    pub(super) name: Arc<str>,
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

/// The per-request limits of a [`Storage`](super::Storage), the same for every namespace.
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

/// The value a counter at `key` takes after adding `delta` to `current` (its
/// stored bytes; absent counts as 0): refused when `current` is not a decimal
/// integer or the sum leaves `u64` (`unsigned`, as `wasi:keyvalue`) or `i64`.
/// The committer and a durable call's held writes both count with it.
pub(crate) fn counter_after(
    key: &str,
    current: Option<&[u8]>,
    delta: i128,
    unsigned: bool,
) -> Result<i128, StorageError> {
    let current = match current {
        None => 0i128,
        Some(v) => std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<i128>().ok())
            .ok_or_else(|| StorageError::NotACounter {
                key: key.to_string(),
                reason: "the value is not a decimal integer".into(),
            })?,
    };
    let next = current + delta;
    let in_range = if unsigned {
        (0..=u64::MAX as i128).contains(&next)
    } else {
        (i64::MIN as i128..=i64::MAX as i128).contains(&next)
    };
    if !in_range {
        return Err(StorageError::NotACounter {
            key: key.to_string(),
            reason: format!("overflow: {current} + {delta}"),
        });
    }
    Ok(next)
}
