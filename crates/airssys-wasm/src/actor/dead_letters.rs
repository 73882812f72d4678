//! Dead letters: what could not be delivered, kept (bounded) for observers
//! with its reason, each cut to a prefix of the message so that a flood of
//! large undeliverable messages holds little.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::events::{DeadLetter, DeadLetterReason};
use crate::bindings::{now_millis, Message};

/// Dead letters kept for observers (the count is exact; the oldest are dropped from the list).
const DEAD_LETTERS_KEPT: usize = 1024;
/// The payload bytes a dead letter keeps (its full size is recorded).
const DEAD_LETTER_PAYLOAD_KEPT: usize = 256;
/// The bytes of each string a dead letter keeps (ids, content type, metadata).
const DEAD_LETTER_TEXT_KEPT: usize = 256;
/// The metadata entries a dead letter keeps.
const DEAD_LETTER_METADATA_KEPT: usize = 8;

/// The dead letters of one system, numbered by `seq`.
#[derive(Default)]
pub(crate) struct DeadLetters {
    kept: Mutex<VecDeque<DeadLetter>>,
    seq: AtomicU64,
}

impl DeadLetters {
    /// Keeps a dead letter: the message cut to what a dead letter keeps, its
    /// full size, numbered in order.
    pub(crate) fn record(&self, to: &str, msg: Message, reason: DeadLetterReason) {
        let to = crate::units::truncate(to, DEAD_LETTER_TEXT_KEPT);
        let payload_bytes = msg.payload.len();
        let message_bytes = msg.wire_bytes();
        let message = dead_prefix(msg);
        tracing::debug!(%to, from = %message.sender, %reason, "dead letter");
        let mut letter = DeadLetter {
            seq: 0,
            to,
            from: message.sender.clone(),
            reason,
            payload_bytes,
            message_bytes,
            message,
            timestamp_ms: now_millis(),
        };
        let mut dead = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        // Numbered under the lock, so the kept list is in `seq` order (paging
        // relies on it) whichever thread records first.
        letter.seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        if dead.len() >= DEAD_LETTERS_KEPT {
            dead.pop_front();
        }
        dead.push_back(letter);
    }

    /// Up to `limit` kept dead letters with `seq` above `after`, oldest first.
    pub(crate) fn page(&self, after: u64, limit: usize) -> Vec<DeadLetter> {
        let dead = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let start = dead.partition_point(|d| d.seq <= after);
        dead.range(start..).take(limit).cloned().collect()
    }

    /// Every kept dead letter, oldest first.
    pub(crate) fn all(&self) -> Vec<DeadLetter> {
        self.page(0, DEAD_LETTERS_KEPT)
    }
}

/// What a dead letter keeps of `msg`: strings cut to
/// [`DEAD_LETTER_TEXT_KEPT`], the payload to [`DEAD_LETTER_PAYLOAD_KEPT`],
/// at most [`DEAD_LETTER_METADATA_KEPT`] metadata entries.
fn dead_prefix(mut msg: Message) -> Message {
    use crate::units::truncate;
    msg.payload.truncate(DEAD_LETTER_PAYLOAD_KEPT);
    msg.payload.shrink_to_fit();
    msg.sender = truncate(&msg.sender, DEAD_LETTER_TEXT_KEPT);
    msg.content_type = truncate(&msg.content_type, DEAD_LETTER_TEXT_KEPT);
    msg.correlation_id = msg
        .correlation_id
        .map(|c| truncate(&c, DEAD_LETTER_TEXT_KEPT));
    msg.metadata.truncate(DEAD_LETTER_METADATA_KEPT);
    for (k, v) in &mut msg.metadata {
        *k = truncate(k, DEAD_LETTER_TEXT_KEPT);
        *v = truncate(v, DEAD_LETTER_TEXT_KEPT);
    }
    msg.metadata.shrink_to_fit();
    msg
}
