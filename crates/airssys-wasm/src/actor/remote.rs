//! The seam between the router and other hosts: when an id is not on this
//! host, the router asks its [`Remote`] (a cluster transport) to take the
//! message; topics reach the other hosts through it too. The actor layer
//! defines the seam; the cluster implements it.

use super::mailbox::ReplyTo;
use crate::bindings::Message;
use crate::host::messaging::Undeliverable;
use crate::sandbox::budget::Charge;

/// What a [`Remote`] did with a message.
pub(crate) enum Forwarded {
    /// On its way to the host the target lives on (at most once).
    Sent,
    /// On its way to a durable target's host: the acknowledgement resolves
    /// once its log there has it (or with why not).
    Acked(crate::host::messaging::Ack),
    /// For a host the cluster knows, but cannot be delivered (that host is
    /// down, the link is gone): a dead letter for the sender.
    Failed(Undeliverable, Message),
    /// Not another host's: the message comes back, to be delivered here (or
    /// be `no such actor`).
    Unknown(Message, Option<ReplyTo>),
}

/// Another host's side of the router.
pub(crate) trait Remote: Send + Sync + 'static {
    /// Takes `msg` for `target` if the cluster knows where `target` lives.
    /// A reply (`reply`) comes back through the router (`complete`) or the
    /// embedder's channel. The sender's `charge` is taken along and held
    /// until the message has left this host.
    fn forward(
        &self,
        target: &str,
        msg: Message,
        reply: Option<ReplyTo>,
        charge: &mut Option<Charge>,
    ) -> Forwarded;
    /// Publishes a copy of `msg` on `topic` to the other hosts.
    fn publish(&self, topic: &str, msg: &Message);
    /// The hosts of the cluster, this one first.
    fn hosts(&self) -> Vec<HostStatus>;
}

/// A host of the cluster as this host sees it (`GET /hosts`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostStatus {
    /// Its id (`--host-id`).
    pub id: String,
    /// `alive`, `dead` (no heartbeat within the cluster's `dead-after`) or `left`.
    pub health: HostHealth,
    /// Milliseconds since its last heartbeat reached this host.
    pub last_seen_ms: u64,
    /// The declared actors it runs.
    pub actors: Vec<String>,
    /// Whether it is this host.
    pub this: bool,
    /// Frames (sends, requests, replies, acks) this host sent it.
    pub frames_sent: u64,
    /// Messages for it that this host refused as `unavailable` (it was down).
    pub unavailable: u64,
}

/// A host's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostHealth {
    /// Heartbeating.
    Alive,
    /// No heartbeat within the cluster's `dead-after`.
    Dead,
    /// Left the cluster (stopped cleanly).
    Left,
}
