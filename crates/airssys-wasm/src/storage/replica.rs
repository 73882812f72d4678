//! The seam for a storage that outlives its host: before the committer
//! applies a write to a namespace a [`Replica`] covers (a durable actor's
//! data, mailbox, timers and delivery counts), the write goes to the
//! replica's log, and only once that log has it is the write applied here
//! and acknowledged. The local database is then a cache of the log: a host
//! that takes an actor over rebuilds the actor's rows from the log
//! ([`super::Storage::restore`]) before it runs it.
//!
//! A record is the write as the committer applies it, with the quota and
//! account it was checked under, so a replay makes the same decisions (a
//! write refused for its quota is refused again). Effects on other actors'
//! logs (a durable group's sends, a timer's message) are separate records in
//! their logs, appended before the writer's own record; the writer's own
//! record leaves them out.
//!
//! The storage layer defines this seam; the cluster implements it on
//! JetStream.

use super::keys::{BatchOp, Quota, StorageError};
use super::ops::{DurableTimer, Group, WriteOp};

/// A write for an actor's log.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The actor whose log takes it.
    pub(crate) actor: String,
    /// The encoded write ([`encode`]).
    pub(crate) bytes: Vec<u8>,
    /// A de-duplication id: a second record with the same id (within the
    /// replica's window) is not appended, and its write is not applied.
    pub(crate) id: Option<String>,
}

/// What a replica did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fate {
    /// In the log: the write may be applied.
    Appended,
    /// Its id was in the log already: the write was applied before.
    Duplicate,
    /// Not in the log (the log cannot be reached, or another host holds the
    /// actor now): the write is refused.
    Refused(String),
}

/// A log that keeps the writes of the actors it covers (see the module docs).
pub(crate) trait Replica: Send + Sync + 'static {
    /// Whether actor `actor`'s rows are kept in this log.
    fn covers(&self, actor: &str) -> bool;
    /// Appends `records`, in order per actor, and returns each one's fate.
    /// Called on the committer thread: it blocks until every record is
    /// appended or refused.
    fn append(&self, records: &[Record]) -> Vec<Fate>;
}

/// A write as it is replayed, with what it was checked under.
#[derive(Debug, Clone)]
pub(crate) struct Replayed {
    pub(crate) op: WriteOp,
    pub(crate) quota: Quota,
    pub(crate) account: Option<String>,
}

struct Out(Vec<u8>);

impl Out {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    fn opt(&mut self, b: Option<&[u8]>) {
        match b {
            None => self.u8(0),
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
        }
    }
    fn ops(&mut self, ops: &[BatchOp]) {
        self.u64(ops.len() as u64);
        for op in ops {
            match op {
                BatchOp::Set(k, v) => {
                    self.u8(0);
                    self.bytes(k.as_bytes());
                    self.bytes(v);
                }
                BatchOp::Delete(k) => {
                    self.u8(1);
                    self.bytes(k.as_bytes());
                }
            }
        }
    }
}

struct In<'a>(&'a [u8]);

impl<'a> In<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (h, t) = self.0.split_at(n);
        self.0 = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let n = usize::try_from(self.u64()?).ok()?;
        // No allocation from a claimed length: it must be there.
        Some(self.take(n)?.to_vec())
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?).ok()
    }
    fn opt(&mut self) -> Option<Option<Vec<u8>>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
    /// A count of items each at least `min` bytes long: no larger than what is left.
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.saturating_mul(min) <= self.0.len()).then_some(n)
    }
    fn ops(&mut self) -> Option<Vec<BatchOp>> {
        let n = self.count(9)?;
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(match self.u8()? {
                0 => BatchOp::Set(self.string()?, self.bytes()?),
                1 => BatchOp::Delete(self.string()?),
                _ => return None,
            });
        }
        Some(ops)
    }
}

/// Encodes `op` (checked under `quota` for `account`) as the writer's own
/// record: a group's sends and a timer's target are left out (they are
/// records of their own, in their targets' logs).
pub(crate) fn encode(op: &WriteOp, quota: Quota, account: Option<&str>) -> Vec<u8> {
    let mut o = Out(Vec::with_capacity(64));
    o.u64(quota.bytes);
    o.u64(quota.keys);
    o.opt(account.map(str::as_bytes));
    match op {
        WriteOp::Batch(ops) => {
            o.u8(0);
            o.ops(ops);
        }
        WriteOp::Increment {
            key,
            delta,
            unsigned,
        } => {
            o.u8(1);
            o.bytes(key.as_bytes());
            o.0.extend_from_slice(&delta.to_le_bytes());
            o.u8(*unsigned as u8);
        }
        WriteOp::CompareAndSwap { key, expected, new } => {
            o.u8(2);
            o.bytes(key.as_bytes());
            o.opt(expected.as_deref());
            o.opt(new.as_deref());
        }
        WriteOp::DeleteNamespace => o.u8(3),
        WriteOp::Enqueue { message, .. } => {
            o.u8(4);
            o.bytes(message);
        }
        WriteOp::Handled(g) => {
            o.u8(5);
            o.u64(g.seqs.len() as u64);
            for s in &g.seqs {
                o.u64(*s);
            }
            o.ops(&g.ops);
            o.u64(g.timers.len() as u64);
            for t in &g.timers {
                o.u64(t.id);
                o.u64(t.due_ms);
                o.bytes(t.target.as_bytes());
                o.bytes(&t.message);
            }
        }
        WriteOp::FireTimer { id, .. } => {
            o.u8(6);
            o.u64(*id);
        }
        WriteOp::CancelTimer(id) => {
            o.u8(7);
            o.u64(*id);
        }
        WriteOp::Attempt(seq) => {
            o.u8(8);
            o.u64(*seq);
        }
        WriteOp::Reset => o.u8(9),
    }
    o.0
}

/// Decodes a record [`encode`] made; `None` when it is malformed.
pub(crate) fn decode(bytes: &[u8]) -> Option<Replayed> {
    let mut i = In(bytes);
    let quota = Quota {
        bytes: i.u64()?,
        keys: i.u64()?,
    };
    let account = match i.opt()? {
        Some(a) => Some(String::from_utf8(a).ok()?),
        None => None,
    };
    let op = match i.u8()? {
        0 => WriteOp::Batch(i.ops()?),
        1 => WriteOp::Increment {
            key: i.string()?,
            delta: i128::from_le_bytes(i.take(16)?.try_into().ok()?),
            unsigned: i.u8()? != 0,
        },
        2 => WriteOp::CompareAndSwap {
            key: i.string()?,
            expected: i.opt()?,
            new: i.opt()?,
        },
        3 => WriteOp::DeleteNamespace,
        4 => WriteOp::Enqueue {
            message: i.bytes()?,
            id: None,
        },
        5 => {
            let n = i.count(8)?;
            let mut seqs = Vec::with_capacity(n);
            for _ in 0..n {
                seqs.push(i.u64()?);
            }
            let ops = i.ops()?;
            let n = i.count(32)?;
            let mut timers = Vec::with_capacity(n);
            for _ in 0..n {
                timers.push(DurableTimer {
                    id: i.u64()?,
                    due_ms: i.u64()?,
                    target: i.string()?,
                    message: i.bytes()?,
                });
            }
            WriteOp::Handled(Group {
                seqs,
                ops,
                sends: Vec::new(),
                timers,
            })
        }
        6 => WriteOp::FireTimer {
            id: i.u64()?,
            to: None,
        },
        7 => WriteOp::CancelTimer(i.u64()?),
        8 => WriteOp::Attempt(i.u64()?),
        9 => WriteOp::Reset,
        _ => return None,
    };
    i.0.is_empty().then_some(Replayed { op, quota, account })
}

/// The error a writer gets when its write did not reach the log.
pub(crate) fn refused(actor: &str, why: &str) -> StorageError {
    StorageError::Backend(format!(
        "actor {actor}'s write was not replicated, so not applied: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_write_round_trips_without_its_effects_on_others() {
        let ops = [
            WriteOp::Batch(vec![
                BatchOp::Set("k".into(), b"v".to_vec()),
                BatchOp::Delete("d".into()),
            ]),
            WriteOp::Increment {
                key: "n".into(),
                delta: -7,
                unsigned: false,
            },
            WriteOp::CompareAndSwap {
                key: "c".into(),
                expected: None,
                new: Some(b"x".to_vec()),
            },
            WriteOp::Enqueue {
                message: vec![1, 2, 3],
                id: Some("m1".into()),
            },
            WriteOp::Handled(Group {
                seqs: vec![3, 4],
                ops: vec![BatchOp::Set("count".into(), b"2".to_vec())],
                sends: vec![("other".into(), vec![9])],
                timers: vec![DurableTimer {
                    id: 5,
                    due_ms: 10,
                    target: "me".into(),
                    message: vec![7],
                }],
            }),
            WriteOp::FireTimer {
                id: 5,
                to: Some("me".into()),
            },
            WriteOp::CancelTimer(6),
            WriteOp::Attempt(3),
            WriteOp::DeleteNamespace,
            WriteOp::Reset,
        ];
        for op in ops {
            let bytes = encode(&op, Quota::default(), Some("me"));
            let back = decode(&bytes).expect("decodes");
            assert_eq!(back.quota, Quota::default());
            assert_eq!(back.account.as_deref(), Some("me"));
            let again = encode(&back.op, Quota::default(), Some("me"));
            assert_eq!(bytes, again, "{op:?}");
            if let WriteOp::Handled(g) = &back.op {
                assert!(g.sends.is_empty());
            }
            if let WriteOp::FireTimer { to, .. } = &back.op {
                assert!(to.is_none());
            }
            // Cut anywhere, or with a byte more: refused, no panic.
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut]).is_none());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(decode(&longer).is_none());
        }
        // A claimed count larger than the record allocates nothing.
        let mut huge = encode(&WriteOp::Batch(vec![]), Quota::default(), None);
        let at = huge.len() - 8;
        huge[at..].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode(&huge).is_none());
    }
}
