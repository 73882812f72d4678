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
    /// To passivate an activation whose log this host lost track of.
    router: std::sync::Weak<crate::actor::router::Router>,
    /// This host's id (in its entries' ids).
    host: String,
}

impl Log {
    /// Opens (creating if needed) the stream of cluster `name`.
    pub(super) async fn open(
        js: jetstream::Context,
        name: &str,
        replicas: usize,
        kinds: Vec<String>,
        actors: Vec<String>,
        router: std::sync::Weak<crate::actor::router::Router>,
        host: &str,
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
            router,
            host: host.to_string(),
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

    /// Lets `actor` go: an activation of it here passivates, and the next
    /// time it is placed here it is rebuilt from its log.
    pub(super) fn release(&self, actor: &str) {
        let was = self
            .held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(actor);
        if was.is_some() {
            self.passivate(actor);
        }
    }

    /// Asks an activation of `actor` on this host (if any) to passivate.
    fn passivate(&self, actor: &str) {
        if let Some(cell) = self.router.upgrade().and_then(|r| r.get(actor)) {
            cell.abandon
                .store(true, std::sync::atomic::Ordering::Release);
            cell.evict.store(true, std::sync::atomic::Ordering::Release);
            cell.mailbox.poke();
        }
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
        // Whether this host lost track of the log (fenced, or unknowable).
        let mut lost = false;
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
            // Every entry has an id, so a retry after a failed link is taken
            // once (JetStream de-duplicates it): the entry lands at most once.
            let id = all[part[0]]
                .id
                .clone()
                .unwrap_or_else(|| format!("e.{}.{}.{last}", self.host, super::key_of(actor)));
            let outcome = self.append_entry(&subject, &id, last, &payload).await;
            match outcome {
                Landed::Yes(seq) => {
                    last = seq;
                    out.extend(part.iter().map(|&i| (i, Fate::Appended)));
                }
                Landed::Duplicate => {
                    out.extend(part.iter().map(|&i| (i, Fate::Duplicate)));
                }
                Landed::No => {
                    let why = "its log in JetStream did not take it".to_string();
                    out.extend(part.iter().map(|&i| (i, Fate::Refused(why.clone()))));
                    refused = Some(why);
                }
                Landed::Fenced => {
                    let why = "another host appended to its log (it was placed there)".to_string();
                    out.extend(part.iter().map(|&i| (i, Fate::Refused(why.clone()))));
                    refused = Some(why);
                    lost = true;
                }
                Landed::Unknown(e) => {
                    let why = format!("its log in JetStream cannot be reached: {e}");
                    out.extend(part.iter().map(|&i| (i, Fate::Refused(why.clone()))));
                    refused = Some(why);
                    lost = true;
                }
            }
        }
        if lost {
            // Rebuilt from the log before it runs here again: its activation
            // here passivates (its next message goes through placement).
            self.release(actor);
            tracing::warn!(target: "airssys_wasm::cluster", actor, "lost track of its log: passivated, rebuilt on its next message");
        } else {
            self.held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(actor.to_string(), last);
        }
        out
    }

    /// Appends one entry after `last`, retrying (same id, same expectation)
    /// while the link fails, for at most [`RESOLVE_WITHIN`].
    async fn append_entry(&self, subject: &str, id: &str, last: u64, payload: &[u8]) -> Landed {
        use jetstream::context::PublishErrorKind as Kind;
        let deadline = tokio::time::Instant::now() + RESOLVE_WITHIN;
        let mut tried = false;
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                last.to_string().as_str(),
            );
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
            let acked = match self
                .js
                .publish_with_headers(subject.to_string(), headers, payload.to_vec().into())
                .await
            {
                Ok(f) => f.await,
                Err(e) => Err(e),
            };
            match acked {
                // New, or an earlier try of this one (one writer: after `last`
                // is this host's).
                Ok(ack) if ack.sequence > last => return Landed::Yes(ack.sequence),
                // The id was in the log before: an earlier message with it.
                Ok(_) => return Landed::Duplicate,
                Err(e) if e.kind() == Kind::WrongLastSequence => {
                    // Another writer, or (after a failed try) this entry
                    // itself: the log says which.
                    return if tried {
                        self.landed(subject, last, payload).await
                    } else {
                        Landed::Fenced
                    };
                }
                Err(e) => {
                    tried = true;
                    if tokio::time::Instant::now() >= deadline {
                        return Landed::Unknown(e.to_string());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// After an append whose outcome is unknown (the link failed): whether
    /// the entry `payload` landed right after `last`, asked of the log until
    /// it answers (at most [`RESOLVE_WITHIN`]). One writer per actor, so an
    /// entry after `last` is this one or another host's.
    async fn landed(&self, subject: &str, last: u64, payload: &[u8]) -> Landed {
        let deadline = tokio::time::Instant::now() + RESOLVE_WITHIN;
        while tokio::time::Instant::now() < deadline {
            match self.stream.get_last_raw_message_by_subject(subject).await {
                Ok(m) if m.sequence == last => return Landed::No,
                Ok(m) if *m.payload == *payload => return Landed::Yes(m.sequence),
                Ok(_) => return Landed::Fenced,
                Err(e)
                    if e.kind() == jetstream::stream::LastRawMessageErrorKind::NoMessageFound =>
                {
                    return if last == 0 {
                        Landed::No
                    } else {
                        Landed::Fenced
                    };
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        Landed::Unknown("the log did not say what it holds".into())
    }
}

/// How long an append whose outcome is unknown waits for the log to say.
const RESOLVE_WITHIN: Duration = Duration::from_secs(15);

/// What the log says of an append whose outcome was unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Landed {
    /// It is the log's last entry, at this sequence.
    Yes(u64),
    /// The log ends where it did: not appended.
    No,
    /// Another host appended.
    Fenced,
    /// A message with its id was in the log before.
    Duplicate,
    /// The log did not answer in time (the last error).
    Unknown(String),
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
    use super::*;
    use crate::storage::commit::WriteOp;
    use crate::storage::{BatchOp, Namespace, Quota, StorageLimits};

    /// A `nats-server -js` on a loopback port (test.sh installs it).
    /// The server, its store (removed with it) and its URL.
    struct Server(
        std::process::Child,
        #[allow(dead_code)] tempfile::TempDir,
        String,
    );

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn server() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server is not installed: apt-get install nats-server");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Server(child, dir, format!("nats://127.0.0.1:{port}"))
    }

    /// One writer per actor: an append behind another writer's back is
    /// refused (nothing applied here), the actor is let go, and rebuilding
    /// it takes what the other writer appended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_append_after_another_writers_is_refused_and_the_actor_is_rebuilt() {
        let nats = server();
        let client = async_nats::connect(&nats.2).await.unwrap();
        let js = jetstream::new(client);
        let data = tempfile::tempdir().unwrap();
        let storage = Storage::open(data.path(), StorageLimits::default()).unwrap();
        let log = std::sync::Arc::new(
            Log::open(
                js.clone(),
                "t",
                1,
                vec!["kv".into()],
                vec![],
                std::sync::Weak::new(),
                "h",
            )
            .await
            .unwrap(),
        );
        assert!(storage.set_replica(log.clone()));
        let ns = Namespace::actor("kv/x");
        // Not held here yet: refused, nothing written.
        let e = storage
            .set(&ns, "k", b"0".to_vec(), Quota::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("does not hold it"), "{e}");
        assert_eq!(log.hold(&storage, "kv/x").await.unwrap(), 0);
        storage
            .set(&ns, "k", b"1".to_vec(), Quota::default())
            .await
            .unwrap();
        // Another host appends (as if it had been placed the actor).
        let record = crate::storage::replica::encode(
            &WriteOp::Batch(vec![BatchOp::Set("k".into(), b"9".to_vec())]),
            Quota::default(),
            None,
        );
        let mut entry = (record.len() as u64).to_le_bytes().to_vec();
        entry.extend_from_slice(&record);
        js.publish(log.subject("kv/x"), entry.into())
            .await
            .unwrap()
            .await
            .unwrap();
        // This host's next write is refused and applies nothing here.
        let e = storage
            .set(&ns, "k", b"2".to_vec(), Quota::default())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("another host appended"), "{e}");
        assert!(!log.holds("kv/x"));
        let read = |s: &Storage| {
            crate::storage::Reader::new(s.clone())
                .storage()
                .get(&ns, "k")
        };
        assert_eq!(read(&storage).unwrap(), Some(b"1".to_vec()));
        // Rebuilt from the log: both writers' records, in order.
        assert_eq!(log.hold(&storage, "kv/x").await.unwrap(), 2);
        assert_eq!(read(&storage).unwrap(), Some(b"9".to_vec()));
        storage
            .set(&ns, "k", b"3".to_vec(), Quota::default())
            .await
            .unwrap();
    }

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
