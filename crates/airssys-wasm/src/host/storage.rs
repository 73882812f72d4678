//! `airssys:component/storage` and `wasi:keyvalue@0.2.0-draft` (`store`,
//! `atomics`, `batch`) over one backend, [`Storage`].
//!
//! An instance's own namespace (its actor id) is always granted and needs no
//! check. A shared namespace is reached only with `wasi:keyvalue/store.open(NAME)`
//! under the manifest's `storage.shared` (read-write) or
//! `storage.shared-read-only` grants, then the host's `SecurityPolicy`; the
//! open is audited, allow and deny. Writes wait (without blocking a thread)
//! until the committer has made them durable.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};

use crate::bindings::airssys::component::storage::{
    self as airssys_storage, BatchOp as WitBatchOp, KeyPage, StorageError as WitError,
    StorageUsage as WitUsage,
};
use crate::bindings::wasi::keyvalue::{atomics, batch, store};
use crate::bindings::Bucket;
use crate::security::capability::{Capabilities, FunctionSignature, WitInterface};
use crate::security::policy::Capability;
use crate::storage::commit::{WriteOp, WriteOutcome};
use crate::storage::{BatchOp, Namespace, Quota, Reader, Storage, StorageError};

/// What each function of `wasi:keyvalue/store` requires (`open` of a shared
/// namespace needs a `storage.shared` grant; the own namespace is always granted).
pub(crate) const INTERFACE: WitInterface = WitInterface {
    name: "wasi:keyvalue/store",
    functions: &[FunctionSignature {
        name: "open",
        required_capabilities: &[],
    }],
};

/// Per-instance state of the storage interfaces.
pub(crate) struct StorageCtx {
    component: Arc<str>,
    caps: Arc<Capabilities>,
    backend: Option<Backend>,
    table: ResourceTable,
    /// Bytes written durably during the call in progress.
    pub(crate) written: u64,
    /// `wasi:keyvalue` list cursors: an opaque number standing for the last
    /// key of a page, so the next page is a seek, never a scan. At most
    /// [`CURSORS_KEPT`] are live; an unknown cursor is an error.
    cursors: HashMap<u64, (Namespace, String)>,
    next_cursor: u64,
    /// While a durable actor handles a message: its writes to its own
    /// namespace, held for the transaction that also removes the message.
    held: Option<Held>,
}

/// A durable call's writes to the actor's own namespace, last one per key
/// (`None`: deleted), and what they change of its usage. Reads in the call
/// see them (read-your-writes); nothing reaches the database until the actor
/// layer commits them with the handled message.
#[derive(Default)]
struct Held {
    values: std::collections::BTreeMap<String, Option<Vec<u8>>>,
    bytes: i128,
    keys: i128,
}

/// Live `wasi:keyvalue` list cursors per instance.
const CURSORS_KEPT: usize = 256;

struct Backend {
    reader: Reader,
    own: Namespace,
    quota: Quota,
}

impl StorageCtx {
    pub(crate) fn new(
        component: Arc<str>,
        caps: Arc<Capabilities>,
        storage: Option<Storage>,
        quota: Quota,
    ) -> Self {
        StorageCtx {
            backend: storage.map(|s| Backend {
                reader: Reader::new(s),
                own: Namespace::actor(component.clone()),
                quota,
            }),
            component,
            caps,
            table: ResourceTable::new(),
            written: 0,
            cursors: HashMap::new(),
            next_cursor: 1,
            held: None,
        }
    }

    /// Starts holding this call's writes to the own namespace (a durable
    /// actor's `handle-message`).
    pub(crate) fn hold_writes(&mut self) {
        self.held = Some(Held::default());
    }

    /// Stops holding and returns the held writes, as the final operation per
    /// key (empty when none were held).
    pub(crate) fn take_held(&mut self) -> Vec<BatchOp> {
        self.held
            .take()
            .map(|h| {
                h.values
                    .into_iter()
                    .map(|(k, v)| match v {
                        Some(v) => BatchOp::Set(k, v),
                        None => BatchOp::Delete(k),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The own namespace's quota (for the commit of held writes).
    pub(crate) fn quota(&self) -> Option<Quota> {
        self.backend.as_ref().map(|b| b.quota)
    }

    /// `key` of the own namespace as this call sees it.
    fn own_get(&mut self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(v) = self.held.as_ref().and_then(|h| h.values.get(key)) {
            return Ok(v.clone());
        }
        let b = self.backend()?;
        b.reader.get(&b.own, key)
    }

    /// A write to the own namespace while holding: checked as the committer
    /// would check it (limits, quota, counter, expectation), then held.
    fn hold(&mut self, op: WriteOp) -> Result<WriteOutcome, StorageError> {
        let limits = *self.backend()?.reader.storage().limits();
        let (ops, outcome): (Vec<BatchOp>, Option<WriteOutcome>) = match op {
            WriteOp::Batch(ops) => {
                if ops.len() > limits.max_batch_ops {
                    return Err(StorageError::BatchTooLarge {
                        ops: ops.len() as u64,
                        limit: limits.max_batch_ops as u64,
                    });
                }
                (ops, None)
            }
            WriteOp::Increment {
                key,
                delta,
                unsigned,
            } => {
                crate::storage::check_key(&limits, &key)?;
                let current = self.own_get(&key)?;
                let next =
                    crate::storage::counter_after(&key, current.as_deref(), delta, unsigned)?;
                (
                    vec![BatchOp::Set(key, next.to_string().into_bytes())],
                    Some(WriteOutcome::Counter(next)),
                )
            }
            WriteOp::CompareAndSwap { key, expected, new } => {
                crate::storage::check_key(&limits, &key)?;
                if self.own_get(&key)? != expected {
                    return Ok(WriteOutcome::Swapped(false));
                }
                let op = match new {
                    Some(v) => BatchOp::Set(key, v),
                    None => BatchOp::Delete(key),
                };
                (vec![op], Some(WriteOutcome::Swapped(true)))
            }
            other => {
                return Err(StorageError::Backend(format!(
                    "{other:?} is not a guest's write"
                )))
            }
        };
        // Check every op, and the quota on the usage after them all.
        let (mut bytes, mut keys) = {
            let h = self.held.as_ref().expect("holding");
            (h.bytes, h.keys)
        };
        let mut existed = false;
        let mut written = 0u64;
        let mut after: HashMap<&str, Option<usize>> = HashMap::new();
        for op in &ops {
            let (key, new) = match op {
                BatchOp::Set(k, v) => (k.as_str(), Some(v.len())),
                BatchOp::Delete(k) => (k.as_str(), None),
            };
            crate::storage::check_key(&limits, key)?;
            if let Some(n) = new {
                if n > limits.max_value_bytes {
                    return Err(StorageError::ValueTooLarge {
                        size: n as u64,
                        limit: limits.max_value_bytes as u64,
                    });
                }
            }
            let old = match after.get(key) {
                Some(old) => *old,
                None => self.own_get(key)?.map(|v| v.len()),
            };
            if let Some(old) = old {
                bytes -= (key.len() + old) as i128;
                keys -= 1;
                existed = true;
            }
            if let Some(n) = new {
                bytes += (key.len() + n) as i128;
                keys += 1;
                written += (key.len() + n) as u64;
            }
            after.insert(key, new);
        }
        let (was_bytes, was_keys) = {
            let h = self.held.as_ref().expect("holding");
            (h.bytes, h.keys)
        };
        let b = self.backend()?;
        let quota = b.quota;
        let base = b.reader.storage().usage(&b.own)?;
        let total_bytes = base.bytes as i128 + bytes;
        let total_keys = base.keys as i128 + keys;
        let own = b.own.to_string();
        if bytes > was_bytes && total_bytes > quota.bytes as i128 {
            return Err(StorageError::QuotaExceeded {
                namespace: own,
                quota: crate::storage::QuotaKind::Bytes,
                limit: quota.bytes,
                needed: total_bytes.max(0) as u64,
            });
        }
        if keys > was_keys && total_keys > quota.keys as i128 {
            return Err(StorageError::QuotaExceeded {
                namespace: own,
                quota: crate::storage::QuotaKind::Keys,
                limit: quota.keys,
                needed: total_keys.max(0) as u64,
            });
        }
        let h = self.held.as_mut().expect("holding");
        h.bytes = bytes;
        h.keys = keys;
        for op in ops {
            match op {
                BatchOp::Set(k, v) => h.values.insert(k, Some(v)),
                BatchOp::Delete(k) => h.values.insert(k, None),
            };
        }
        self.written += written;
        Ok(outcome.unwrap_or(WriteOutcome::Written {
            bytes: written,
            existed,
        }))
    }

    /// Adjusts a page of the own namespace's keys (after `after`, with
    /// `prefix`; `more` when pages follow) for the held writes.
    fn held_page(
        &self,
        keys: Vec<String>,
        more: bool,
        after: Option<&str>,
        prefix: &str,
    ) -> Vec<String> {
        let Some(h) = &self.held else { return keys };
        let upper = if more { keys.last().cloned() } else { None };
        let mut set: std::collections::BTreeSet<String> = keys.into_iter().collect();
        let start = match after {
            Some(a) => std::ops::Bound::Excluded(a.to_string()),
            None => std::ops::Bound::Unbounded,
        };
        for (k, v) in h.values.range((start, std::ops::Bound::Unbounded)) {
            if upper.as_ref().is_some_and(|u| k > u) {
                break;
            }
            if !k.starts_with(prefix) {
                continue;
            }
            match v {
                Some(_) => set.insert(k.clone()),
                None => set.remove(k),
            };
        }
        set.into_iter().collect()
    }

    /// Ends a call: lets go of the read snapshot and returns the bytes written.
    pub(crate) fn end_call(&mut self) -> u64 {
        if let Some(b) = &mut self.backend {
            b.reader.release();
        }
        std::mem::take(&mut self.written)
    }

    fn backend(&mut self) -> Result<&mut Backend, StorageError> {
        let component = &self.component;
        self.backend.as_mut().ok_or_else(|| {
            StorageError::Unavailable(format!(
                "{component}: no storage is configured (give the host a data directory, e.g. --data DIR)"
            ))
        })
    }

    async fn write(
        &mut self,
        ns: Option<Namespace>,
        op: WriteOp,
    ) -> Result<WriteOutcome, StorageError> {
        let b = self.backend()?;
        let ns = ns.unwrap_or_else(|| b.own.clone());
        if self.held.is_some() && ns == self.backend()?.own {
            return self.hold(op);
        }
        let b = self.backend()?;
        // A shared namespace takes the writer's quota (as the host policy
        // capped it), and the writer's own namespace plus everything it added
        // to shared ones stays within that quota in total.
        let quota = b.quota;
        let account = b.own.name_shared();
        let outcome = b.reader.storage().write_as(&ns, op, quota, account).await?;
        if let WriteOutcome::Written { bytes, .. } = outcome {
            self.written += bytes;
        }
        Ok(outcome)
    }

    fn bucket(&self, b: &Resource<Bucket>) -> Result<(Namespace, bool), store::Error> {
        let b = self
            .table
            .get(b)
            .map_err(|e| store::Error::Other(e.to_string()))?;
        let ns = match &b.shared {
            None => match &self.backend {
                Some(backend) => backend.own.clone(),
                None => return Err(store::Error::Other("no storage is configured".into())),
            },
            Some(name) => Namespace::shared(name.clone()),
        };
        Ok((ns, b.writable))
    }

    fn writable(&self, b: &Resource<Bucket>) -> Result<Namespace, store::Error> {
        let (ns, writable) = self.bucket(b)?;
        if writable {
            Ok(ns)
        } else {
            Err(store::Error::AccessDenied)
        }
    }
}

/// Adds both interfaces to the linker.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StorageCtx,
) -> wasmtime::Result<()> {
    airssys_storage::add_to_linker::<T, HasSelf<StorageCtx>>(linker, get)?;
    store::add_to_linker::<T, HasSelf<StorageCtx>>(linker, get)?;
    atomics::add_to_linker::<T, HasSelf<StorageCtx>>(linker, get)?;
    batch::add_to_linker::<T, HasSelf<StorageCtx>>(linker, get)
}

impl From<StorageError> for WitError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::InvalidKey { .. } => WitError::InvalidKey(e.to_string()),
            StorageError::ValueTooLarge { limit, .. } => WitError::ValueTooLarge(limit),
            StorageError::BatchTooLarge { limit, .. } => {
                WitError::BatchTooLarge(limit.min(u32::MAX as u64) as u32)
            }
            StorageError::QuotaExceeded { .. } => WitError::QuotaExceeded(e.to_string()),
            StorageError::NotACounter { .. } => WitError::NotACounter(e.to_string()),
            StorageError::Unavailable(m) => WitError::Unavailable(m),
            StorageError::Backend(m) => WitError::Backend(m),
        }
    }
}

impl From<StorageError> for store::Error {
    fn from(e: StorageError) -> Self {
        store::Error::Other(e.to_string())
    }
}

impl airssys_storage::Host for StorageCtx {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, WitError> {
        Ok(self.own_get(&key)?)
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), WitError> {
        self.write(None, WriteOp::Batch(vec![BatchOp::Set(key, value)]))
            .await?;
        Ok(())
    }

    async fn delete(&mut self, key: String) -> Result<bool, WitError> {
        match self
            .write(None, WriteOp::Batch(vec![BatchOp::Delete(key)]))
            .await?
        {
            WriteOutcome::Written { existed, .. } => Ok(existed),
            _ => Ok(false),
        }
    }

    fn exists(&mut self, key: String) -> Result<bool, WitError> {
        if self.held.is_some() {
            return Ok(self.own_get(&key)?.is_some());
        }
        let b = self.backend()?;
        Ok(b.reader.exists(&b.own, &key)?)
    }

    fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<KeyPage, WitError> {
        let b = self.backend()?;
        let page =
            b.reader
                .storage()
                .list_keys(&b.own, &prefix, cursor.as_deref(), limit as usize)?;
        let more = page.cursor.is_some();
        let keys = self.held_page(page.keys, more, cursor.as_deref(), &prefix);
        Ok(KeyPage {
            keys,
            cursor: page.cursor,
        })
    }

    fn usage(&mut self) -> Result<WitUsage, WitError> {
        let b = self.backend()?;
        let u = b.reader.storage().usage(&b.own)?;
        let quota = b.quota;
        let (db, dk) = self.held.as_ref().map_or((0, 0), |h| (h.bytes, h.keys));
        Ok(WitUsage {
            bytes: (u.bytes as i128 + db).max(0) as u64,
            keys: (u.keys as i128 + dk).max(0) as u64,
            quota_bytes: quota.bytes,
            quota_keys: quota.keys,
        })
    }

    async fn batch(&mut self, ops: Vec<WitBatchOp>) -> Result<(), WitError> {
        let ops = ops
            .into_iter()
            .map(|op| match op {
                WitBatchOp::Set((k, v)) => BatchOp::Set(k, v),
                WitBatchOp::Delete(k) => BatchOp::Delete(k),
            })
            .collect();
        self.write(None, WriteOp::Batch(ops)).await?;
        Ok(())
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, WitError> {
        let op = WriteOp::Increment {
            key,
            delta: delta as i128,
            unsigned: false,
        };
        match self.write(None, op).await? {
            WriteOutcome::Counter(v) => Ok(v as i64),
            other => Err(WitError::Backend(format!("unexpected outcome {other:?}"))),
        }
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> Result<bool, WitError> {
        match self
            .write(None, WriteOp::CompareAndSwap { key, expected, new })
            .await?
        {
            WriteOutcome::Swapped(s) => Ok(s),
            other => Err(WitError::Backend(format!("unexpected outcome {other:?}"))),
        }
    }
}

impl store::Host for StorageCtx {
    /// `""` or `"default"` opens the instance's own namespace; any other
    /// identifier is a shared namespace, opened under the grants.
    fn open(&mut self, identifier: String) -> Result<Resource<Bucket>, store::Error> {
        self.backend()
            .map_err(|e| store::Error::Other(e.to_string()))?;
        let bucket = if identifier.is_empty() || identifier == "default" {
            Bucket {
                shared: None,
                writable: true,
            }
        } else {
            // Read-write where granted so, else read-only where granted so.
            let writable = self.caps.check_storage(&identifier, true).allowed;
            let d = self.caps.authorize(
                &self.component,
                "wasi:keyvalue/store.open",
                &identifier,
                &Capability::Storage {
                    namespace: &identifier,
                    write: writable,
                },
            );
            if !d.allowed {
                return Err(store::Error::AccessDenied);
            }
            Bucket {
                shared: Some(identifier.into()),
                writable,
            }
        };
        self.table
            .push(bucket)
            .map_err(|e| store::Error::Other(e.to_string()))
    }
}

impl store::HostBucket for StorageCtx {
    fn get(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
    ) -> Result<Option<Vec<u8>>, store::Error> {
        let (ns, _) = self.bucket(&bucket)?;
        if self.held.is_some() && ns == self.backend()?.own {
            return Ok(self.own_get(&key)?);
        }
        let b = self.backend()?;
        Ok(b.reader.get(&ns, &key)?)
    }

    async fn set(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), store::Error> {
        let ns = self.writable(&bucket)?;
        self.write(Some(ns), WriteOp::Batch(vec![BatchOp::Set(key, value)]))
            .await?;
        Ok(())
    }

    async fn delete(&mut self, bucket: Resource<Bucket>, key: String) -> Result<(), store::Error> {
        let ns = self.writable(&bucket)?;
        self.write(Some(ns), WriteOp::Batch(vec![BatchOp::Delete(key)]))
            .await?;
        Ok(())
    }

    fn exists(&mut self, bucket: Resource<Bucket>, key: String) -> Result<bool, store::Error> {
        let (ns, _) = self.bucket(&bucket)?;
        if self.held.is_some() && ns == self.backend()?.own {
            return Ok(self.own_get(&key)?.is_some());
        }
        let b = self.backend()?;
        Ok(b.reader.exists(&ns, &key)?)
    }

    fn list_keys(
        &mut self,
        bucket: Resource<Bucket>,
        cursor: Option<u64>,
    ) -> Result<store::KeyResponse, store::Error> {
        let (ns, _) = self.bucket(&bucket)?;
        let after = match cursor {
            None => None,
            Some(c) => match self.cursors.remove(&c) {
                Some((cns, last)) if cns == ns => Some(last),
                _ => {
                    return Err(store::Error::Other(format!(
                        "unknown list-keys cursor {c}: pass the cursor of the previous page \
                         (at most {CURSORS_KEPT} are live)"
                    )))
                }
            },
        };
        let b = self.backend()?;
        let (keys, last) = b.reader.storage().list_after(&ns, after.as_deref())?;
        let keys = if ns == b.own {
            self.held_page(keys, last.is_some(), after.as_deref(), "")
        } else {
            keys
        };
        let cursor = match last {
            None => None,
            Some(last) => {
                if self.cursors.len() >= CURSORS_KEPT {
                    self.cursors.clear();
                }
                let c = self.next_cursor;
                self.next_cursor += 1;
                self.cursors.insert(c, (ns, last));
                Some(c)
            }
        };
        Ok(store::KeyResponse { keys, cursor })
    }

    fn drop(&mut self, bucket: Resource<Bucket>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl atomics::Host for StorageCtx {
    async fn increment(
        &mut self,
        bucket: Resource<Bucket>,
        key: String,
        delta: u64,
    ) -> Result<u64, store::Error> {
        let ns = self.writable(&bucket)?;
        let op = WriteOp::Increment {
            key,
            delta: delta as i128,
            unsigned: true,
        };
        match self.write(Some(ns), op).await? {
            WriteOutcome::Counter(v) => Ok(v as u64),
            other => Err(store::Error::Other(format!("unexpected outcome {other:?}"))),
        }
    }
}

impl batch::Host for StorageCtx {
    fn get_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<Vec<Option<(String, Vec<u8>)>>, store::Error> {
        let (ns, _) = self.bucket(&bucket)?;
        let b = self.backend()?;
        let max = b.reader.storage().limits().max_batch_ops;
        if keys.len() > max {
            return Err(StorageError::BatchTooLarge {
                ops: keys.len() as u64,
                limit: max as u64,
            }
            .into());
        }
        if self.held.is_some() && ns == self.backend()?.own {
            return keys
                .into_iter()
                .map(|k| Ok(self.own_get(&k)?.map(|v| (k, v))))
                .collect();
        }
        let b = self.backend()?;
        keys.into_iter()
            .map(|k| Ok(b.reader.get(&ns, &k)?.map(|v| (k, v))))
            .collect()
    }

    async fn set_many(
        &mut self,
        bucket: Resource<Bucket>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> Result<(), store::Error> {
        let ns = self.writable(&bucket)?;
        let ops = key_values
            .into_iter()
            .map(|(k, v)| BatchOp::Set(k, v))
            .collect();
        self.write(Some(ns), WriteOp::Batch(ops)).await?;
        Ok(())
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<Bucket>,
        keys: Vec<String>,
    ) -> Result<(), store::Error> {
        let ns = self.writable(&bucket)?;
        let ops = keys.into_iter().map(BatchOp::Delete).collect();
        self.write(Some(ns), WriteOp::Batch(ops)).await?;
        Ok(())
    }
}
