//! What travels between hosts, in NATS payloads: a delivery (kind, target,
//! timeout, the message as the mailbox packs it) and a reply (a status and
//! the reply or the error). Hosts of one cluster trust each other: a frame is
//! bounds-checked, never believed about more than its own bytes.

use crate::actor::mailbox::pack;
use crate::bindings::{Message, Reply};

/// A delivery to a host: `send` (no reply) or `request`.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) target: String,
    /// How long the requester waits (0 for a send).
    pub(crate) timeout_ms: u64,
    pub(crate) msg: Message,
}

pub(crate) fn delivery(target: &str, timeout_ms: u64, msg: &Message) -> Vec<u8> {
    let packed = pack(msg);
    let mut out = Vec::with_capacity(target.len() + packed.len() + 12);
    out.extend_from_slice(&(target.len() as u32).to_le_bytes());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(&timeout_ms.to_le_bytes());
    out.extend_from_slice(&packed);
    out
}

pub(crate) fn read_delivery(buf: &[u8]) -> Option<Delivery> {
    let n = u32::from_le_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let target = std::str::from_utf8(buf.get(4..4 + n)?).ok()?.to_string();
    let rest = buf.get(4 + n..)?;
    let timeout_ms = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let packed = rest.get(8..)?;
    // The packed message is checked as the mailbox log's entries are.
    let msg = crate::actor::mailbox::unpack_checked(packed)?;
    Some(Delivery {
        target,
        timeout_ms,
        msg,
    })
}

/// Why a remote request failed, as the requester's host reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    NoSuchActor,
    MailboxFull(u64),
    Refused(String),
    Stopped,
    Timeout,
    Failed(String),
    Unavailable(String),
}

/// The answer to a request.
pub(crate) enum Answer {
    Reply(Option<Reply>),
    Failed(Failure),
}

pub(crate) fn answer(a: &Answer) -> Vec<u8> {
    let text = |code: u8, s: &str| {
        let mut v = vec![code];
        v.extend_from_slice(s.as_bytes());
        v
    };
    match a {
        Answer::Reply(None) => vec![0],
        Answer::Reply(Some(r)) => {
            let m = Message {
                sender: String::new(),
                payload: r.payload.clone(),
                content_type: r.content_type.clone().unwrap_or_default(),
                correlation_id: None,
                metadata: r.metadata.clone(),
                timestamp_ms: 0,
            };
            let mut v = vec![1];
            v.extend_from_slice(&pack(&m));
            v
        }
        Answer::Failed(f) => match f {
            Failure::NoSuchActor => vec![2],
            Failure::MailboxFull(c) => {
                let mut v = vec![3];
                v.extend_from_slice(&c.to_le_bytes());
                v
            }
            Failure::Refused(s) => text(4, s),
            Failure::Stopped => vec![5],
            Failure::Timeout => vec![6],
            Failure::Failed(s) => text(7, s),
            Failure::Unavailable(s) => text(8, s),
        },
    }
}

pub(crate) fn read_answer(buf: &[u8]) -> Option<Answer> {
    let (code, rest) = buf.split_first()?;
    let text = || String::from_utf8_lossy(rest).into_owned();
    Some(match code {
        0 => Answer::Reply(None),
        1 => {
            let m = crate::actor::mailbox::unpack_checked(rest)?;
            Answer::Reply(Some(Reply {
                payload: m.payload,
                content_type: (!m.content_type.is_empty()).then_some(m.content_type),
                metadata: m.metadata,
            }))
        }
        2 => Answer::Failed(Failure::NoSuchActor),
        3 => Answer::Failed(Failure::MailboxFull(u64::from_le_bytes(
            rest.get(..8)?.try_into().ok()?,
        ))),
        4 => Answer::Failed(Failure::Refused(text())),
        5 => Answer::Failed(Failure::Stopped),
        6 => Answer::Failed(Failure::Timeout),
        7 => Answer::Failed(Failure::Failed(text())),
        8 => Answer::Failed(Failure::Unavailable(text())),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_junk_is_refused() {
        let m = Message::new("a", b"hi".to_vec());
        let d = read_delivery(&delivery("b", 5, &m)).unwrap();
        assert_eq!((d.target.as_str(), d.timeout_ms), ("b", 5));
        assert_eq!(d.msg.payload, b"hi");
        assert!(read_delivery(&[9, 9, 9, 9, 1]).is_none());
        assert!(read_delivery(&[]).is_none());
        let a = answer(&Answer::Failed(Failure::MailboxFull(7)));
        assert!(matches!(
            read_answer(&a),
            Some(Answer::Failed(Failure::MailboxFull(7)))
        ));
        assert!(read_answer(&[1, 200, 200]).is_none());
    }
}
