//! Durable virtual actors that outlive their host: each one's writes (its
//! data, its mailbox, its timers, its delivery counts) go to a subject of
//! its own in the cluster's JetStream stream `airssys-{name}-durable` before
//! they are applied to the host's storage and acknowledged (the storage's
//! [`Replica`] seam). The host's database is a cache of that log: a host that
//! is placed an actor rebuilds its rows from the log ([`Log::hold`]) before
//! it runs it, so it loses no acknowledged write and no acknowledged message
//! when it moves.
//!
//! - **One writer per actor.** Only the host the `activations` bucket names
//!   appends to an actor's log, and every append names the subject's last
//!   sequence it knows (`Nats-Expected-Last-Subject-Sequence`): a host that
//!   was declared dead and comes back cannot append behind the new owner's
//!   back (its append is refused, so its write is neither applied nor
//!   acknowledged, and it lets the actor go).
//! - **Exactly once in effect.** A group of messages and its writes are one
//!   record: replayed, the record consumes the same messages with the same
//!   writes; what was in the log but not yet consumed is delivered again.
//! - **Message ids.** A message carrying a `message-id` (see
//!   [`crate::actor::MESSAGE_ID`]) is appended with it as `Nats-Msg-Id`:
//!   JetStream takes it once within its duplicate window (2 minutes), so a
//!   sender that retries after losing an acknowledgement (a host died) does
//!   not count twice. A durable group's sends to other durable actors get
//!   ids of their own (the writer, its first message, the index).
//! - Replicated as the stream is: `ClusterOptions::replicas` (1 on a single
//!   NATS server).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::HeaderMap;
use futures_util::StreamExt;

use crate::storage::replica::{Fate, Record, Replica};
use crate::storage::Storage;

/// The cluster's log of durable virtual actors.
pub(super) struct Log {
    js: jetstream::Context,
    stream: jetstream::stream::Stream,
    prefix: String,
    runtime: tokio::runtime::Handle,
    /// The durable virtual components whose actors it keeps.
    kinds: Vec<String>,
    /// The durable declared actors (that may fail over) it keeps.
    actors: Vec<String>,
    /// The actors this host holds: the last sequence of each one's subject.
    held: Mutex<HashMap<String, u64>>,
}

impl Log {
    /// Opens (creating if needed) the stream of cluster `name`.
    pub(super) async fn open(
        js: jetstream::Context,
        name: &str,
        replicas: usize,
        kinds: Vec<String>,
        actors: Vec<String>,
    ) -> Result<Log, String> {
        use jetstream::stream;
        let prefix = format!("airssys.{name}.durable");
        let cfg = stream::Config {
            name: format!("airssys-{name}-durable"),
            subjects: vec![format!("{prefix}.>")],
            storage: stream::StorageType::File,
            num_replicas: replicas.max(1),
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        };
        let stream = js
            .get_or_create_stream(cfg)
            .await
            .map_err(|e| format!("stream airssys-{name}-durable: {e}"))?;
        Ok(Log {
            js,
            stream,
            prefix,
            runtime: tokio::runtime::Handle::current(),
            kinds,
            actors,
            held: Mutex::default(),
        })
    }

    fn subject(&self, actor: &str) -> String {
        format!("{}.{}", self.prefix, super::key_of(actor))
    }

    /// Whether this host holds `actor`'s log (rebuilt here, written only from here).
    pub(super) fn holds(&self, actor: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(actor)
    }

    /// Lets `actor` go: the next time it is placed here, it is rebuilt.
    pub(super) fn release(&self, actor: &str) {
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(actor);
    }

    /// Rebuilds `actor`'s rows in `storage` from its log, unless this host
    /// holds it already; from then on its writes go to the log from here.
    pub(super) async fn hold(&self, storage: &Storage, actor: &str) -> Result<usize, String> {
        if self.holds(actor) {
            return Ok(0);
        }
        let subject = self.subject(actor);
        let last = match self.stream.get_last_raw_message_by_subject(&subject).await {
            Ok(m) => m.sequence,
            Err(e) if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound => 0,
            Err(e) => return Err(format!("actor {actor}'s log cannot be read: {e}")),
        };
        let mut records = Vec::new();
        if last > 0 {
            let consumer = self
                .stream
                .create_consumer(jetstream::consumer::push::OrderedConfig {
                    deliver_subject: self.js.client().new_inbox(),
                    filter_subject: subject.clone(),
                    replay_policy: jetstream::consumer::ReplayPolicy::Instant,
                    ..Default::default()
                })
                .await
                .map_err(|e| format!("actor {actor}'s log cannot be read: {e}"))?;
            let mut messages = consumer
                .messages()
                .await
                .map_err(|e| format!("actor {actor}'s log cannot be read: {e}"))?;
            while let Some(m) = messages.next().await {
                let m = m.map_err(|e| format!("actor {actor}'s log cannot be read: {e}"))?;
                let seq = m
                    .info()
                    .map_err(|e| format!("actor {actor}'s log: {e}"))?
                    .stream_sequence;
                unbatch(&m.payload, &mut records)
                    .ok_or_else(|| format!("actor {actor}'s log: entry {seq} is malformed"))?;
                if seq >= last {
                    break;
                }
            }
        }
        let n = storage
            .restore(actor, records)
            .await
            .map_err(|e| e.to_string())?;
        self.held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(actor.to_string(), last);
        tracing::debug!(target: "airssys_wasm::cluster", actor, records = n, "rebuilt from its log");
        Ok(n)
    }

    /// Appends one actor's `records` (indexes into `all`) in order, each run
    /// of records without an id as one entry; returns each one's fate.
    async fn chain(&self, actor: &str, idx: &[usize], all: &[Record]) -> Vec<(usize, Fate)> {
        let mut out = Vec::with_capacity(idx.len());
        let last = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(actor)
            .copied();
        let Some(mut last) = last else {
            let why = "this host does not hold it (it is placed elsewhere, or not yet here)";
            return idx
                .iter()
                .map(|&i| (i, Fate::Refused(why.into())))
                .collect();
        };
        let subject = self.subject(actor);
        let mut at = 0;
        let mut refused: Option<String> = None;
        while at < idx.len() {
            // A record with an id is an entry alone; others run together.
            let mut end = at + 1;
            if all[idx[at]].id.is_none() {
                while end < idx.len() && all[idx[end]].id.is_none() {
                    end += 1;
                }
            }
            let part = &idx[at..end];
            at = end;
            if let Some(why) = &refused {
                out.extend(part.iter().map(|&i| (i, Fate::Refused(why.clone()))));
                continue;
            }
            let mut payload = Vec::new();
            for &i in part {
                payload.extend_from_slice(&(all[i].bytes.len() as u64).to_le_bytes());
                payload.extend_from_slice(&all[i].bytes);
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                last.to_string().as_str(),
            );
            if let Some(id) = &all[part[0]].id {
                headers.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
            }
            let acked = match self
                .js
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
            {
                Ok(f) => f.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match acked {
                Ok(ack) if ack.duplicate => {
                    out.extend(part.iter().map(|&i| (i, Fate::Duplicate)));
                }
                Ok(ack) => {
                    last = ack.sequence;
                    out.extend(part.iter().map(|&i| (i, Fate::Appended)));
                }
                Err(e) => {
                    let why = format!("its log in JetStream refused it: {e}");
                    out.extend(part.iter().map(|&i| (i, Fate::Refused(why.clone()))));
                    refused = Some(why);
                }
            }
        }
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match refused {
            // Another host may have written: rebuilt before it runs here again.
            Some(_) => {
                held.remove(actor);
            }
            None => {
                held.insert(actor.to_string(), last);
            }
        }
        out
    }
}

/// Splits a log entry into its records.
fn unbatch(entry: &[u8], out: &mut Vec<Vec<u8>>) -> Option<()> {
    let mut rest = entry;
    while !rest.is_empty() {
        let n = usize::try_from(u64::from_le_bytes(rest.get(..8)?.try_into().ok()?)).ok()?;
        let body = rest.get(8..8usize.checked_add(n)?)?;
        out.push(body.to_vec());
        rest = &rest[8 + n..];
    }
    Some(())
}

impl Replica for Log {
    fn covers(&self, actor: &str) -> bool {
        match actor.split_once('/') {
            Some((c, _)) => self.kinds.iter().any(|k| k == c),
            None => self.actors.iter().any(|a| a == actor),
        }
    }

    fn append(&self, records: &[Record]) -> Vec<Fate> {
        // Per actor, in order; the actors side by side.
        let mut order: Vec<&str> = Vec::new();
        let mut by: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let e = by.entry(r.actor.as_str()).or_insert_with(|| {
                order.push(r.actor.as_str());
                Vec::new()
            });
            e.push(i);
        }
        let chains = order
            .iter()
            .map(|a| self.chain(a, &by[a], records))
            .collect::<Vec<_>>();
        // The committer thread is not a runtime thread: it may block on one.
        // A runtime shutting down refuses the writes, never kills the thread.
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.runtime
                .block_on(futures_util::future::join_all(chains))
        }))
        .unwrap_or_default();
        let mut fates =
            vec![Fate::Refused("the cluster's runtime is shutting down".into()); records.len()];
        for (i, f) in done.into_iter().flatten() {
            fates[i] = f;
        }
        fates
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_split_into_their_records_and_a_cut_one_is_refused() {
        let mut entry = Vec::new();
        for r in [&b"ab"[..], b"", b"xyz"] {
            entry.extend_from_slice(&(r.len() as u64).to_le_bytes());
            entry.extend_from_slice(r);
        }
        let mut out = Vec::new();
        assert!(super::unbatch(&entry, &mut out).is_some());
        assert_eq!(out, vec![b"ab".to_vec(), vec![], b"xyz".to_vec()]);
        for cut in 1..entry.len() {
            let mut out = Vec::new();
            if super::unbatch(&entry[..cut], &mut out).is_some() {
                // Only at a record's end.
                assert!(cut == 10 || cut == 18, "{cut}");
            }
        }
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.push(1);
        assert!(super::unbatch(&huge, &mut Vec::new()).is_none());
    }
}
