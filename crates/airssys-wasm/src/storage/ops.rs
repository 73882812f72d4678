//! What the committer is asked to write, and what it answers: the writes
//! of a storage request, plain data shared by the committer and the replica
//! seam (neither depends on the other for them).

use super::keys::{BatchOp, StorageError};

/// A write request.
#[derive(Debug, Clone)]
pub(crate) enum WriteOp {
    /// Sets and deletes, all or nothing (a single `set` or `delete` is a batch of one).
    Batch(Vec<BatchOp>),
    /// Adds `delta` to the decimal integer at `key` (absent: 0). `unsigned`
    /// keeps the value within `u64` (`wasi:keyvalue`), else within `i64`.
    Increment {
        key: String,
        delta: i128,
        unsigned: bool,
    },
    /// Sets (or deletes, `new: None`) `key` if its value is `expected` (`None`: absent).
    CompareAndSwap {
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    },
    /// Deletes the whole namespace.
    DeleteNamespace,
    /// Appends a message (the actor layer's packed bytes) to the durable
    /// mailbox of actor `ns`; the outcome is its sequence number, above every
    /// entry still in that mailbox. With an `id`, a replica takes it once
    /// (a second one is [`WriteOutcome::Duplicate`]).
    Enqueue {
        message: Vec<u8>,
        id: Option<String>,
    },
    /// Actor `ns` handled a group of its durable messages: see [`Group`].
    Handled(Group),
    /// Durable timer `id` of actor `ns` fired: its row goes, and (`to`) its
    /// message joins that durable actor's log, in one transaction.
    FireTimer { id: u64, to: Option<String> },
    /// Durable timer `id` of actor `ns` was cancelled.
    CancelTimer(u64),
    /// A delivery of actor `ns`'s recovered durable message `seq` begins.
    Attempt(u64),
    /// Actor `ns`'s rows go: its data, mailbox, timers and delivery counts
    /// (before they are rebuilt from a replica's log).
    Reset,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteOutcome {
    /// Applied; bytes written (keys + values set).
    Written { bytes: u64, existed: bool },
    /// The counter's new value.
    Counter(i128),
    /// Whether the compare-and-swap matched (and so wrote).
    Swapped(bool),
    /// Keys deleted.
    Deleted(u64),
    /// The mailbox sequence number of an enqueued message.
    Enqueued(u64),
    /// A durable message handled: the sequence numbers its sends got, in order.
    Handled(Vec<u64>),
    /// Deliveries of a recovered message begun before this one.
    Attempts(u32),
    /// A message whose id the replica's log held already: taken before, not again.
    Duplicate,
}

/// What a durable group commits in one transaction for actor `ns`: the log
/// entries `seqs` go, `ops` (the calls' writes to its own namespace, in order,
/// last one wins) are applied with the same quota checks, `sends` (messages
/// to durable actors: target and packed message) join their logs, and
/// `timers` are stored. A refused `ops` writes nothing at all.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) seqs: Vec<u64>,
    pub(crate) ops: Vec<BatchOp>,
    pub(crate) sends: Vec<(String, Vec<u8>)>,
    pub(crate) timers: Vec<DurableTimer>,
}

/// A durable timer as stored: its id, when it is due (ms since the Unix
/// epoch), its target and its packed message.
#[derive(Debug, Clone)]
pub(crate) struct DurableTimer {
    pub(crate) id: u64,
    pub(crate) due_ms: u64,
    pub(crate) target: String,
    pub(crate) message: Vec<u8>,
}

/// Run on the committer thread once a write's transaction is committed (or
/// failed), before the writer hears back: so what it does happens in commit
/// order (a durable mailbox's in-memory queue follows its log).
pub(crate) type Then = Box<dyn FnOnce(&Result<WriteOutcome, StorageError>) + Send>;
