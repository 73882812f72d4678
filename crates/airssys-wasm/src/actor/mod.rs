//! Actors: each running component instance owns its `Store` and a bounded
//! mailbox, handles one message at a time, and is restarted by its supervisor
//! when it crashes.
//!
//! The path of a message, one file per step:
//!
//! - `mailbox` — the bounded queue in front of each actor (a user lane with a
//!   capacity, and a lane for replies and control bounded by the pending caps);
//! - `router` — ids to mailboxes (the registry): send, request → reply with
//!   correlation ids, timers, activation of virtual actors; with `topics`
//!   (subscriptions), `dead_letters` and `residency` (the LRU of virtual actors);
//! - `cell` — what the host keeps of one actor across instances;
//! - `link` — an instance's [`Mailroom`](crate::host::messaging::Mailroom):
//!   what its guest sends, charged to its host budget, handed to the router;
//! - `task` — the actor loop: instantiate from the `InstancePre`, initialize,
//!   handle messages, health checks, passivation, report crashes;
//! - `supervisor` — strategies, restart intensity, backoff, escalation;
//! - `system` — the composition root an embedder uses;
//! - `spec` and `events` — what an embedder declares and what observers see.

pub(crate) mod cell;
pub(crate) mod dead_letters;
pub(crate) mod deadlines;
pub(crate) mod events;
pub(crate) mod link;
pub(crate) mod mailbox;
pub(crate) mod remote;
pub(crate) mod residency;
pub(crate) mod router;
pub(crate) mod rpc;
pub(crate) mod spec;
pub(crate) mod supervisor;
pub(crate) mod system;
pub(crate) mod task;
pub(crate) mod timers;
pub(crate) mod topics;

pub use crate::id::ActorId;
pub use events::{
    ActorMetadata, ActorState, ActorStatus, DeadLetter, DeadLetterReason, HostUsage, SystemEvent,
};
pub use remote::{HostHealth, HostStatus};
pub use router::MESSAGE_ID;
pub use spec::{
    ActorOptions, ActorSpec, Backoff, ChildSpec, HealthCheck, Intensity, RestartPolicy, Strategy,
    SupervisorSpec,
};
pub use system::{ActorSystem, SystemBuilder, SystemStats};
