//! Group commit: one thread owns every write transaction. It takes the first
//! write waiting, then every other write already queued (up to
//! [`StorageLimits::max_group`]), applies them one after another in a single
//! transaction and commits it with fsync (`Durability::Immediate`). Only then
//! does each writer hear back. So N concurrent writers pay one fsync, not N,
//! and no write is acknowledged before it is durable.
//!
//! Each request is checked in full against the transaction's current state
//! (limits, quota, compare-and-swap expectation) before any of it is written,
//! so a refused request writes nothing even when it shares a transaction with
//! others. If the commit itself fails, every request of the group gets the
//! error and none of them is acknowledged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use redb::{ReadableTable, Table};
use tokio::sync::oneshot;

use super::keys::{
    check_key, counter_after, usage_in, BatchOp, Namespace, NamespaceKind, Quota, QuotaKind,
    StorageError, StorageLimits, ACCOUNTS, ATTEMPTS, DATA, MAILBOX, TIMERS, USAGE,
};
use super::replica::{encode, refused, Fate, Record, Replica};

pub(crate) use super::ops::{DurableTimer, Group, Then, WriteOp, WriteOutcome};

type Reply = oneshot::Sender<Result<WriteOutcome, StorageError>>;

struct Request {
    ns: Namespace,
    op: WriteOp,
    quota: Quota,
    /// The actor writing, whose quota bounds its own namespace plus what it
    /// added to shared ones (`None`: the host writes).
    account: Option<Arc<str>>,
    reply: Reply,
    then: Option<Then>,
    /// Whether a replica takes it first (not when it replays the replica's log).
    replicate: bool,
}

/// Commits and the writes they carried, since the storage was opened.
#[derive(Debug, Default)]
pub(crate) struct CommitStats {
    pub(crate) commits: AtomicU64,
    pub(crate) writes: AtomicU64,
}

pub(crate) struct Committer {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Committer {
    pub(crate) fn start(
        db: Arc<redb::Database>,
        limits: StorageLimits,
        generation: Arc<AtomicU64>,
        stats: Arc<CommitStats>,
        replica: Arc<OnceLock<Arc<dyn Replica>>>,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("airssys-storage-commit".into())
            .spawn(move || run(&db, &limits, &generation, &stats, &replica, rx))
            .expect("spawn the storage committer thread");
        Committer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        }
    }

    pub(crate) fn submit(
        &self,
        ns: Namespace,
        op: WriteOp,
        quota: Quota,
        account: Option<Arc<str>>,
        then: Option<Then>,
    ) -> oneshot::Receiver<Result<WriteOutcome, StorageError>> {
        self.submit_as(ns, op, quota, account, then, true)
    }

    /// [`Committer::submit`]; `replicate: false` for a write replayed from
    /// the replica's log.
    pub(crate) fn submit_as(
        &self,
        ns: Namespace,
        op: WriteOp,
        quota: Quota,
        account: Option<Arc<str>>,
        then: Option<Then>,
        replicate: bool,
    ) -> oneshot::Receiver<Result<WriteOutcome, StorageError>> {
        let (reply, rx) = oneshot::channel();
        let request = Request {
            ns,
            op,
            quota,
            account,
            reply,
            then,
            replicate,
        };
        let sent = match &*self.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(request),
            None => Err(mpsc::SendError(request)),
        };
        if let Err(mpsc::SendError(r)) = sent {
            let closed = Err(StorageError::Backend("the storage is closed".into()));
            if let Some(then) = r.then {
                then(&closed);
            }
            let _ = r.reply.send(closed);
        }
        rx
    }

    /// Finishes the writes queued, then stops the thread.
    pub(crate) fn stop(&self) {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

fn run(
    db: &redb::Database,
    limits: &StorageLimits,
    generation: &AtomicU64,
    stats: &CommitStats,
    replica: &OnceLock<Arc<dyn Replica>>,
    rx: mpsc::Receiver<Request>,
) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < limits.max_group.max(1) {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        let decided = match replica.get() {
            Some(replica) => replicate(db, &**replica, &mut group),
            None => vec![None; group.len()],
        };
        let results = commit_group(db, limits, &group, decided);
        generation.fetch_add(1, Ordering::Release);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        match results {
            Ok(results) => {
                for (r, result) in group.into_iter().zip(results) {
                    if let Some(then) = r.then {
                        then(&result);
                    }
                    let _ = r.reply.send(result);
                }
            }
            Err(e) => {
                tracing::error!("storage commit failed: {e}");
                for r in group {
                    let failed = Err(e.clone());
                    if let Some(then) = r.then {
                        then(&failed);
                    }
                    let _ = r.reply.send(failed);
                }
            }
        }
    }
}

type Outcomes = Vec<Result<WriteOutcome, StorageError>>;

/// Hands the group's writes to covered actors to the replica before any is
/// applied: each write to another actor's log (a durable group's send, a
/// fired timer's message) ahead of the writer's own record. A write the
/// replica refused, or whose message id it held already, is decided here
/// (the slot is `Some`) and not applied. A send whose record was in its
/// target's log already is not applied either (its target is empty; its
/// outcome's sequence number 0): that log delivers it.
fn replicate(
    db: &redb::Database,
    replica: &dyn Replica,
    group: &mut [Request],
) -> Vec<Option<Result<WriteOutcome, StorageError>>> {
    let mut decided = vec![None; group.len()];
    let mut records = Vec::new();
    // Per record: its request, and what it is (own, or the group's send `j`).
    let mut whose: Vec<(usize, Option<usize>)> = Vec::new();
    for (i, r) in group.iter().enumerate() {
        if !r.replicate {
            continue;
        }
        let writer = crate::units::hex(r.ns.name().as_bytes());
        match &r.op {
            WriteOp::Handled(g) => {
                let first = g.seqs.first().copied().unwrap_or(0);
                for (j, (target, message)) in g.sends.iter().enumerate() {
                    if replica.covers(target) {
                        records.push(Record {
                            actor: target.clone(),
                            bytes: encode(&enqueue_op(message), Quota::unlimited(), None),
                            id: Some(format!("s.{writer}.{first}.{j}")),
                        });
                        whose.push((i, Some(j)));
                    }
                }
            }
            WriteOp::FireTimer { id, to: Some(to) } if replica.covers(to) => {
                if let Some(message) = timer_message(db, r.ns.name(), *id) {
                    records.push(Record {
                        actor: to.clone(),
                        bytes: encode(&enqueue_op(&message), Quota::unlimited(), None),
                        id: Some(format!("t.{writer}.{id}")),
                    });
                    whose.push((i, None));
                }
            }
            _ => {}
        }
        if r.ns.kind() == NamespaceKind::Actor && replica.covers(r.ns.name()) {
            let id = match &r.op {
                WriteOp::Enqueue { id: Some(m), .. } => Some(format!("m.{writer}.{m}")),
                _ => None,
            };
            records.push(Record {
                actor: r.ns.name().to_string(),
                bytes: encode(&r.op, r.quota, r.account.as_deref()),
                id,
            });
            whose.push((i, None));
        }
    }
    if records.is_empty() {
        return decided;
    }
    let fates = replica.append(&records);
    for (((i, send), record), fate) in whose.into_iter().zip(&records).zip(fates) {
        let own = record.actor == group[i].ns.name() && send.is_none();
        match fate {
            Fate::Appended => {}
            Fate::Duplicate => match (send, &mut group[i].op) {
                (Some(j), WriteOp::Handled(g)) => g.sends[j].0.clear(),
                (None, WriteOp::Enqueue { .. }) if own => {
                    decided[i].get_or_insert(Ok(WriteOutcome::Duplicate));
                }
                _ => {}
            },
            Fate::Refused(why) => {
                if !matches!(decided[i], Some(Err(_))) {
                    decided[i] = Some(Err(refused(&record.actor, &why)));
                }
            }
        }
    }
    decided
}

fn enqueue_op(message: &[u8]) -> WriteOp {
    WriteOp::Enqueue {
        message: message.to_vec(),
        id: None,
    }
}

/// The message of `actor`'s durable timer `id`, if it is stored.
fn timer_message(db: &redb::Database, actor: &str, id: u64) -> Option<Vec<u8>> {
    use redb::ReadableDatabase;
    let tx = db.begin_read().ok()?;
    let table = tx.open_table(TIMERS).ok()?;
    let row = table.get((actor, id)).ok()??;
    Some(row.value().2.to_vec())
}

fn commit_group(
    db: &redb::Database,
    limits: &StorageLimits,
    group: &[Request],
    decided: Vec<Option<Result<WriteOutcome, StorageError>>>,
) -> Result<Outcomes, StorageError> {
    let tx = db.begin_write().map_err(StorageError::backend)?;
    let mut out = Vec::with_capacity(group.len());
    {
        let mut data = tx.open_table(DATA).map_err(StorageError::backend)?;
        let mut usage = tx.open_table(USAGE).map_err(StorageError::backend)?;
        let mut accounts = tx.open_table(ACCOUNTS).map_err(StorageError::backend)?;
        let mut mailbox = tx.open_table(MAILBOX).map_err(StorageError::backend)?;
        let mut timers = tx.open_table(TIMERS).map_err(StorageError::backend)?;
        let mut attempts = tx.open_table(ATTEMPTS).map_err(StorageError::backend)?;
        let mut t = Tables {
            data: &mut data,
            usage: &mut usage,
            accounts: &mut accounts,
            mailbox: &mut mailbox,
            timers: &mut timers,
            attempts: &mut attempts,
        };
        for (r, decided) in group.iter().zip(decided) {
            out.push(match decided {
                Some(outcome) => outcome,
                None => apply(&mut t, limits, r)?,
            });
        }
    }
    tx.commit().map_err(StorageError::backend)?;
    Ok(out)
}

/// The entries of one namespace: key and value.
pub(crate) type Entries = Vec<(String, Vec<u8>)>;

/// Imports `entries` in one transaction: all of them or none.
pub(crate) fn import_all(
    db: &redb::Database,
    limits: &StorageLimits,
    generation: &AtomicU64,
    entries: Vec<(Namespace, Entries)>,
) -> Result<u64, StorageError> {
    let tx = db.begin_write().map_err(StorageError::backend)?;
    let mut count = 0u64;
    {
        let mut data = tx.open_table(DATA).map_err(StorageError::backend)?;
        let mut usage = tx.open_table(USAGE).map_err(StorageError::backend)?;
        let mut accounts = tx.open_table(ACCOUNTS).map_err(StorageError::backend)?;
        let mut mailbox = tx.open_table(MAILBOX).map_err(StorageError::backend)?;
        let mut timers = tx.open_table(TIMERS).map_err(StorageError::backend)?;
        let mut attempts = tx.open_table(ATTEMPTS).map_err(StorageError::backend)?;
        let mut t = Tables {
            data: &mut data,
            usage: &mut usage,
            accounts: &mut accounts,
            mailbox: &mut mailbox,
            timers: &mut timers,
            attempts: &mut attempts,
        };
        for (ns, entries) in entries {
            count += entries.len() as u64;
            let ops: Vec<BatchOp> = entries
                .into_iter()
                .map(|(k, v)| BatchOp::Set(k, v))
                .collect();
            apply_ops(
                &mut t,
                limits,
                &ns,
                Quota::unlimited(),
                None,
                &ops,
                Mode::Import,
            )??;
        }
    }
    tx.commit().map_err(StorageError::backend)?;
    generation.fetch_add(1, Ordering::Release);
    Ok(count)
}

type DataTable<'t> = Table<'t, (u8, &'static str, &'static str), &'static [u8]>;
type UsageTable<'t> = Table<'t, (u8, &'static str), (u64, u64)>;
type AccountTable<'t> = Table<'t, &'static str, (u64, u64)>;
type MailboxTable<'t> = Table<'t, (&'static str, u64), &'static [u8]>;
type TimerTable<'t> = Table<'t, (&'static str, u64), (u64, &'static str, &'static [u8])>;
type AttemptTable<'t> = Table<'t, (&'static str, u64), u32>;

/// The tables one write transaction changes.
struct Tables<'a, 't> {
    data: &'a mut DataTable<'t>,
    usage: &'a mut UsageTable<'t>,
    accounts: &'a mut AccountTable<'t>,
    mailbox: &'a mut MailboxTable<'t>,
    timers: &'a mut TimerTable<'t>,
    attempts: &'a mut AttemptTable<'t>,
}

/// Applies one request: `Ok(Err(_))` is a refusal (nothing written), the outer
/// `Err` a backend failure that aborts the whole group.
fn apply(
    t: &mut Tables<'_, '_>,
    limits: &StorageLimits,
    r: &Request,
) -> Result<Result<WriteOutcome, StorageError>, StorageError> {
    let ns = &r.ns;
    let account = r.account.as_deref();
    let (k, n) = ns.key();
    let batch: Vec<BatchOp>;
    let ops: &[BatchOp] = match &r.op {
        WriteOp::Batch(ops) => ops,
        WriteOp::Increment {
            key,
            delta,
            unsigned,
        } => {
            if let Err(e) = check_key(limits, key) {
                return Ok(Err(e));
            }
            let next = {
                let current = t
                    .data
                    .get((k, n, key.as_str()))
                    .map_err(StorageError::backend)?;
                counter_after(key, current.as_ref().map(|v| v.value()), *delta, *unsigned)
            };
            let next = match next {
                Ok(next) => next,
                Err(e) => return Ok(Err(e)),
            };
            batch = vec![BatchOp::Set(key.clone(), next.to_string().into_bytes())];
            return Ok(
                match apply_ops(t, limits, ns, r.quota, account, &batch, Mode::Request)? {
                    Ok(_) => Ok(WriteOutcome::Counter(next)),
                    Err(e) => Err(e),
                },
            );
        }
        WriteOp::CompareAndSwap { key, expected, new } => {
            if let Err(e) = check_key(limits, key) {
                return Ok(Err(e));
            }
            let current = t
                .data
                .get((k, n, key.as_str()))
                .map_err(StorageError::backend)?
                .map(|v| v.value().to_vec());
            if current != *expected {
                return Ok(Ok(WriteOutcome::Swapped(false)));
            }
            batch = vec![match new {
                Some(v) => BatchOp::Set(key.clone(), v.clone()),
                None => BatchOp::Delete(key.clone()),
            }];
            return Ok(
                match apply_ops(t, limits, ns, r.quota, account, &batch, Mode::Request)? {
                    Ok(_) => Ok(WriteOutcome::Swapped(true)),
                    Err(e) => Err(e),
                },
            );
        }
        WriteOp::Enqueue { message, .. } => {
            return Ok(Ok(WriteOutcome::Enqueued(enqueue(t.mailbox, n, message)?)));
        }
        WriteOp::Reset => {
            let gone = delete_namespace(t, k, n)?;
            let mailbox: Vec<u64> = t
                .mailbox
                .range((n, 0)..=(n, u64::MAX))
                .map_err(StorageError::backend)?
                .map(|e| e.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(StorageError::backend)?;
            for seq in mailbox {
                t.mailbox.remove((n, seq)).map_err(StorageError::backend)?;
            }
            let timers: Vec<u64> = t
                .timers
                .range((n, 0)..=(n, u64::MAX))
                .map_err(StorageError::backend)?
                .map(|e| e.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(StorageError::backend)?;
            for id in timers {
                t.timers.remove((n, id)).map_err(StorageError::backend)?;
            }
            let attempts: Vec<u64> = t
                .attempts
                .range((n, 0)..=(n, u64::MAX))
                .map_err(StorageError::backend)?
                .map(|e| e.map(|(key, _)| key.value().1))
                .collect::<Result<_, _>>()
                .map_err(StorageError::backend)?;
            for seq in attempts {
                t.attempts.remove((n, seq)).map_err(StorageError::backend)?;
            }
            return Ok(Ok(WriteOutcome::Deleted(gone)));
        }
        WriteOp::FireTimer { id, to } => {
            let row = t
                .timers
                .remove((n, *id))
                .map_err(StorageError::backend)?
                .map(|v| v.value().2.to_vec());
            return Ok(Ok(match (row, to) {
                (Some(message), Some(to)) => {
                    WriteOutcome::Enqueued(enqueue(t.mailbox, to, &message)?)
                }
                (Some(_), None) => WriteOutcome::Deleted(1),
                (None, _) => WriteOutcome::Deleted(0),
            }));
        }
        WriteOp::Attempt(seq) => {
            let before = t
                .attempts
                .get((n, *seq))
                .map_err(StorageError::backend)?
                .map(|v| v.value())
                .unwrap_or(0);
            t.attempts
                .insert((n, *seq), before.saturating_add(1))
                .map_err(StorageError::backend)?;
            return Ok(Ok(WriteOutcome::Attempts(before)));
        }
        WriteOp::CancelTimer(id) => {
            let gone = t
                .timers
                .remove((n, *id))
                .map_err(StorageError::backend)?
                .is_some();
            return Ok(Ok(WriteOutcome::Deleted(gone as u64)));
        }
        WriteOp::Handled(Group {
            seqs,
            ops,
            sends,
            timers,
        }) => {
            for d in timers {
                t.timers
                    .insert(
                        (n, d.id),
                        (d.due_ms, d.target.as_str(), d.message.as_slice()),
                    )
                    .map_err(StorageError::backend)?;
            }
            if !ops.is_empty() {
                if let Err(e) = apply_ops(t, limits, ns, r.quota, account, ops, Mode::WholeCall)? {
                    return Ok(Err(e));
                }
            }
            let mut sent = Vec::with_capacity(sends.len());
            for (target, bytes) in sends {
                // Emptied by `replicate`: its target's log has it already.
                if target.is_empty() {
                    sent.push(0);
                    continue;
                }
                sent.push(enqueue(t.mailbox, target, bytes)?);
            }
            for seq in seqs {
                t.mailbox.remove((n, *seq)).map_err(StorageError::backend)?;
                t.attempts
                    .remove((n, *seq))
                    .map_err(StorageError::backend)?;
            }
            return Ok(Ok(WriteOutcome::Handled(sent)));
        }
        WriteOp::DeleteNamespace => {
            return Ok(Ok(WriteOutcome::Deleted(delete_namespace(t, k, n)?)));
        }
    };
    apply_ops(t, limits, ns, r.quota, account, ops, Mode::Request)
}

/// Deletes every key of namespace `(k, n)` and its usage row; returns how many.
fn delete_namespace(t: &mut Tables<'_, '_>, k: u8, n: &str) -> Result<u64, StorageError> {
    let keys: Vec<String> = {
        let mut keys = Vec::new();
        for e in t.data.range((k, n, "")..).map_err(StorageError::backend)? {
            let (key, _) = e.map_err(StorageError::backend)?;
            let (kk, nn, key) = key.value();
            if kk != k || nn != n {
                break;
            }
            keys.push(key.to_string());
        }
        keys
    };
    for key in &keys {
        t.data
            .remove((k, n, key.as_str()))
            .map_err(StorageError::backend)?;
    }
    t.usage.remove((k, n)).map_err(StorageError::backend)?;
    Ok(keys.len() as u64)
}

/// Appends to `actor`'s mailbox log; its sequence number is above every
/// entry it holds (this transaction's too).
fn enqueue(mailbox: &mut MailboxTable<'_>, actor: &str, bytes: &[u8]) -> Result<u64, StorageError> {
    let last = mailbox
        .range((actor, 0)..=(actor, u64::MAX))
        .map_err(StorageError::backend)?
        .next_back()
        .transpose()
        .map_err(StorageError::backend)?
        .map(|(key, _)| key.value().1);
    let seq = last.map_or(1, |s| s + 1);
    mailbox
        .insert((actor, seq), bytes)
        .map_err(StorageError::backend)?;
    Ok(seq)
}

/// What [`apply_ops`] checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A guest's request: every limit and quota.
    Request,
    /// A durable call's writes as a whole: its quotas, not the batch size
    /// (each write was checked against it when the guest made it).
    WholeCall,
    /// An import: nothing (the archive was checked when exported).
    Import,
}

/// Checks a batch in full, then writes it.
fn apply_ops(
    t: &mut Tables<'_, '_>,
    limits: &StorageLimits,
    ns: &Namespace,
    quota: Quota,
    account: Option<&str>,
    ops: &[BatchOp],
    mode: Mode,
) -> Result<Result<WriteOutcome, StorageError>, StorageError> {
    let Tables {
        data,
        usage,
        accounts,
        ..
    } = t;
    let (k, n) = ns.key();
    if mode == Mode::Request && ops.len() > limits.max_batch_ops {
        return Ok(Err(StorageError::BatchTooLarge {
            ops: ops.len() as u64,
            limit: limits.max_batch_ops as u64,
        }));
    }
    // The size of each key's value after the ops before it (None: absent).
    let mut after: HashMap<&str, Option<usize>> = HashMap::new();
    let before = usage_in(&**usage, ns)?;
    let (mut bytes, mut keys) = (before.bytes as i128, before.keys as i128);
    let mut written = 0u64;
    let mut existed = false;
    for op in ops {
        let key = match op {
            BatchOp::Set(key, _) | BatchOp::Delete(key) => key.as_str(),
        };
        if let Err(e) = check_key(limits, key) {
            return Ok(Err(e));
        }
        if let BatchOp::Set(_, v) = op {
            if v.len() > limits.max_value_bytes {
                return Ok(Err(StorageError::ValueTooLarge {
                    size: v.len() as u64,
                    limit: limits.max_value_bytes as u64,
                }));
            }
        }
        let old = match after.get(key) {
            Some(old) => *old,
            None => data
                .get((k, n, key))
                .map_err(StorageError::backend)?
                .map(|v| v.value().len()),
        };
        if let Some(old) = old {
            bytes -= (key.len() + old) as i128;
            keys -= 1;
            existed = true;
        }
        let new = match op {
            BatchOp::Set(_, v) => {
                bytes += (key.len() + v.len()) as i128;
                keys += 1;
                written += (key.len() + v.len()) as u64;
                Some(v.len())
            }
            BatchOp::Delete(_) => None,
        };
        after.insert(key, new);
    }
    let grows = |now: i128, was: u64| now > was as i128;
    if mode != Mode::Import {
        if grows(bytes, before.bytes) && bytes > quota.bytes as i128 {
            return Ok(Err(StorageError::QuotaExceeded {
                namespace: ns.to_string(),
                quota: QuotaKind::Bytes,
                limit: quota.bytes,
                needed: bytes as u64,
            }));
        }
        if grows(keys, before.keys) && keys > quota.keys as i128 {
            return Ok(Err(StorageError::QuotaExceeded {
                namespace: ns.to_string(),
                quota: QuotaKind::Keys,
                limit: quota.keys,
                needed: keys as u64,
            }));
        }
    }
    // The writer's total: its own namespace plus what it added to shared ones
    // stays within its quota, whatever its shared grants.
    let mut account_after = None;
    if let (true, Some(id)) = (mode != Mode::Import, account) {
        let (ab, ak) = accounts
            .get(id)
            .map_err(StorageError::backend)?
            .map(|v| v.value())
            .unwrap_or((0, 0));
        let own = ns.kind() == NamespaceKind::Actor && ns.name() == id;
        let (total_bytes, total_keys) = if own {
            (bytes + ab as i128, keys + ak as i128)
        } else {
            let mine = usage_in(&**usage, &Namespace::actor(id))?;
            let nb = (ab as i128 + bytes - before.bytes as i128).max(0);
            let nk = (ak as i128 + keys - before.keys as i128).max(0);
            account_after = Some((nb as u64, nk as u64));
            (mine.bytes as i128 + nb, mine.keys as i128 + nk)
        };
        let total = |kind, limit: u64, needed: i128| StorageError::QuotaExceeded {
            namespace: format!(
                "{} (its own namespace plus its writes to shared ones)",
                Namespace::actor(id)
            ),
            quota: kind,
            limit,
            needed: needed as u64,
        };
        if grows(bytes, before.bytes) && total_bytes > quota.bytes as i128 {
            return Ok(Err(total(QuotaKind::Bytes, quota.bytes, total_bytes)));
        }
        if grows(keys, before.keys) && total_keys > quota.keys as i128 {
            return Ok(Err(total(QuotaKind::Keys, quota.keys, total_keys)));
        }
    }
    if let (Some(id), Some(after)) = (account, account_after) {
        if after == (0, 0) {
            accounts.remove(id).map_err(StorageError::backend)?;
        } else {
            accounts.insert(id, after).map_err(StorageError::backend)?;
        }
    }
    for op in ops {
        match op {
            BatchOp::Set(key, v) => {
                data.insert((k, n, key.as_str()), v.as_slice())
                    .map_err(StorageError::backend)?;
            }
            BatchOp::Delete(key) => {
                data.remove((k, n, key.as_str()))
                    .map_err(StorageError::backend)?;
            }
        }
    }
    if keys == 0 {
        usage.remove((k, n)).map_err(StorageError::backend)?;
    } else {
        usage
            .insert((k, n), (bytes.max(0) as u64, keys as u64))
            .map_err(StorageError::backend)?;
    }
    Ok(Ok(WriteOutcome::Written {
        bytes: written,
        existed,
    }))
}
