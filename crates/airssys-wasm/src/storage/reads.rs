//! Reads: point reads and key listings, from a transaction of their own or
//! (for a guest's instance) from a [`Reader`] that keeps one snapshot until a
//! commit moves the generation.

use std::sync::atomic::Ordering;

use redb::{ReadableDatabase, ReadableTable};
use serde::Serialize;

use super::keys::{
    check_key, usage_in, Namespace, NamespaceKind, StorageError, Usage, DATA, USAGE,
};
use super::Storage;

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

impl Storage {
    /// Checks a key against the limits.
    ///
    /// # Errors
    ///
    /// [`StorageError::InvalidKey`] for an empty key or one over the key limit.
    pub fn check_key(&self, key: &str) -> std::result::Result<(), StorageError> {
        check_key(&self.inner.limits, key)
    }

    /// The value of `key` in `ns`.
    ///
    /// # Errors
    ///
    /// [`StorageError`]: an invalid key, or the backend.
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
    ///
    /// # Errors
    ///
    /// [`StorageError`] from the backend.
    pub fn usage(&self, ns: &Namespace) -> std::result::Result<Usage, StorageError> {
        let tx = self.inner.db.begin_read().map_err(StorageError::backend)?;
        let table = tx.open_table(USAGE).map_err(StorageError::backend)?;
        usage_in(&table, ns)
    }

    /// Up to `limit` (capped by [`StorageLimits::max_page`](super::StorageLimits::max_page)) keys of `ns` that
    /// start with `prefix`, in byte order, after `cursor` (a key of a previous
    /// page's `cursor`).
    ///
    /// # Errors
    ///
    /// [`StorageError`]: a page over the limit, or the backend.
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

    /// Every namespace holding at least one key, with its usage.
    ///
    /// # Errors
    ///
    /// [`StorageError`] from the backend.
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
}
