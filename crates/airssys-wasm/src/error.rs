//! The one error type of airssys-wasm.
//!
//! Every variant carries the facts (which component, which limit, which value)
//! rather than prose assembled far away; `Display` reads well on one line.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::bindings::GuestError;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when loading or running a component.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A manifest or host policy file is malformed or refers to something missing.
    #[error("{}: {message}", path.display())]
    Manifest {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column and the expected form.
        message: String,
    },
    /// A component's signature is missing, malformed or does not verify.
    #[error("{}: {message}", path.display())]
    Signature {
        /// The component file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The bytes are not a valid WebAssembly component or core module.
    #[error("{name}: invalid WebAssembly: {reason}")]
    InvalidWasm {
        /// The file name or the name given to the bytes.
        name: String,
        /// What is wrong, as the validator reported it.
        reason: String,
    },
    /// The component imports something the host does not provide.
    #[error("{component}: cannot be linked: {reason}")]
    Link {
        /// The component.
        component: String,
        /// The missing import, as the linker reported it.
        reason: String,
    },
    /// The component does not export what the operation needs.
    #[error("{component}: {reason}")]
    Unsupported {
        /// The component.
        component: String,
        /// What it lacks, e.g. "does not export airssys:component/lifecycle@0.2.1".
        reason: String,
    },
    /// The fuel given to one call ran out.
    #[error("{component}: fuel exhausted (limit {limit})")]
    FuelExhausted {
        /// The component.
        component: String,
        /// The fuel limit per call.
        limit: u64,
    },
    /// A call ran past its wall-clock timeout.
    #[error("{component}: timed out after {}", DisplayDuration(*limit))]
    Timeout {
        /// The component.
        component: String,
        /// The timeout per call.
        limit: Duration,
    },
    /// The component asked for more linear memory than its limit.
    #[error("{component}: memory limit of {} reached{}", DisplayBytes(*limit), suffix(detail))]
    MemoryLimit {
        /// The component.
        component: String,
        /// The memory limit in bytes.
        limit: u64,
        /// What the guest or the engine said, if anything.
        detail: Option<String>,
    },
    /// The guest overflowed its call stack.
    #[error("{component}: stack overflow (guest call stack exceeded the engine's max wasm stack)")]
    StackOverflow {
        /// The component.
        component: String,
        /// The guest backtrace, when available.
        backtrace: Option<String>,
    },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    #[error("{component}: trapped: {message}")]
    Trap {
        /// The component.
        component: String,
        /// The trap, followed by what the guest wrote to stderr (its panic message).
        message: String,
        /// The guest backtrace, when available.
        backtrace: Option<String>,
    },
    /// A lifecycle function returned an error value.
    #[error("{component}: {function} failed: {}", describe(error))]
    Guest {
        /// The component.
        component: String,
        /// The lifecycle function, e.g. `handle-message`.
        function: &'static str,
        /// The error the guest returned.
        error: GuestError,
    },
    /// The instance failed earlier (trap or exhausted limit) and cannot be entered again.
    #[error("{component}: instance is unusable after an earlier failure; instantiate it again")]
    Poisoned {
        /// The component.
        component: String,
    },
    /// An actor id is malformed.
    #[error("invalid actor id {id:?}: {reason}")]
    InvalidActorId {
        /// The id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// No actor by that id (and no virtual component to activate it from).
    #[error("{actor}: no such actor")]
    NoSuchActor {
        /// The id.
        actor: String,
    },
    /// The actor's mailbox is full.
    #[error("{actor}: mailbox full (capacity {capacity})")]
    MailboxFull {
        /// The actor.
        actor: String,
        /// Its mailbox capacity.
        capacity: usize,
    },
    /// A durable actor's mailbox log could not take the message (the
    /// database failed); the send was not acknowledged.
    #[error("{actor}: its durable mailbox did not take the message: {reason}")]
    NotLogged {
        /// The actor.
        actor: String,
        /// What the storage said.
        reason: String,
    },
    /// The actor lives on another host of the cluster that cannot be
    /// reached now (down, partitioned, or the link failed).
    #[error("{actor}: unavailable: {reason}")]
    Unavailable {
        /// The actor.
        actor: String,
        /// Which host, and why.
        reason: String,
    },
    /// The actor's `messaging.accept` list does not admit the sender.
    #[error("{actor}: refused: {rule}")]
    Refused {
        /// The actor.
        actor: String,
        /// The rule.
        rule: String,
    },
    /// A request got no reply in time.
    #[error("{actor}: no reply within {}", DisplayDuration(*timeout))]
    RequestTimeout {
        /// The actor asked.
        actor: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The actor stopped (or was restarted) before it replied.
    #[error("{actor}: stopped before replying")]
    ActorStopped {
        /// The actor.
        actor: String,
    },
    /// The actor's reply is larger than the cap on what it may send
    /// (`max-message-bytes`); the reply was dropped.
    #[error(
        "{actor}: reply of {bytes} bytes exceeds the cap of {limit} bytes (max-message-bytes)"
    )]
    ReplyTooLarge {
        /// The actor that replied.
        actor: String,
        /// The reply's size.
        bytes: usize,
        /// The cap.
        limit: usize,
    },
    /// The system is shutting down and accepts no new messages.
    #[error("the actor system is shutting down")]
    ShuttingDown,
    /// The root supervisor reached its restart intensity: the system stopped.
    #[error("actor system failed: {reason}")]
    SystemFailed {
        /// Which supervisor gave up, and the crash that tipped it.
        reason: String,
    },
    /// The engine or a configuration value was rejected.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Any other failure reported by the runtime for a component.
    #[error("{component}: {message}")]
    Runtime {
        /// The component.
        component: String,
        /// The runtime's message.
        message: String,
    },
    /// A dynamic call named no such function, or passed the wrong arguments.
    #[error("{component}: {function}: {reason}{}", signature.as_ref().map(|s| format!(" (signature: {s})")).unwrap_or_default())]
    Invoke {
        /// The component.
        component: String,
        /// The function as named by the caller.
        function: String,
        /// What is wrong.
        reason: String,
        /// The function's signature, when it exists.
        signature: Option<String>,
    },
    /// A data directory is held by another process.
    #[error("{}: data directory in use by {holder}", dir.display())]
    StorageInUse {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it (process id and command line), as it recorded itself.
        holder: String,
    },
    /// The storage in a data directory failed or refused an operation.
    #[error("{}: storage: {message}", dir.display())]
    Storage {
        /// The data directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
}

impl Error {
    /// The component this error is about, if it is about one.
    pub fn component(&self) -> Option<&str> {
        match self {
            Error::Io { .. }
            | Error::Config(_)
            | Error::Manifest { .. }
            | Error::Signature { .. }
            | Error::InvalidActorId { .. }
            | Error::ShuttingDown
            | Error::StorageInUse { .. }
            | Error::Storage { .. }
            | Error::SystemFailed { .. } => None,
            Error::InvalidWasm { name, .. } => Some(name),
            Error::Link { component, .. }
            | Error::Unsupported { component, .. }
            | Error::FuelExhausted { component, .. }
            | Error::Timeout { component, .. }
            | Error::MemoryLimit { component, .. }
            | Error::StackOverflow { component, .. }
            | Error::Trap { component, .. }
            | Error::Guest { component, .. }
            | Error::Poisoned { component }
            | Error::Invoke { component, .. }
            | Error::Runtime { component, .. } => Some(component),
            Error::NoSuchActor { actor }
            | Error::MailboxFull { actor, .. }
            | Error::NotLogged { actor, .. }
            | Error::Unavailable { actor, .. }
            | Error::Refused { actor, .. }
            | Error::RequestTimeout { actor, .. }
            | Error::ReplyTooLarge { actor, .. }
            | Error::ActorStopped { actor } => Some(actor),
        }
    }

    /// Whether the error leaves the instance unusable (a trap or an exhausted limit).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::FuelExhausted { .. }
                | Error::Timeout { .. }
                | Error::MemoryLimit { .. }
                | Error::StackOverflow { .. }
                | Error::Trap { .. }
                | Error::Poisoned { .. }
                | Error::Runtime { .. }
        )
    }
}

fn suffix(d: &Option<String>) -> String {
    match d {
        Some(d) if !d.is_empty() => format!(": {d}"),
        _ => String::new(),
    }
}

/// The error and its causes on one line, without the backtrace.
pub(crate) fn error_chain(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if s.starts_with("error while executing at wasm backtrace") {
            continue;
        }
        let s = s.lines().next().unwrap_or("").trim().to_string();
        if !s.is_empty() && !parts.contains(&s) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

fn describe(e: &GuestError) -> String {
    match e {
        GuestError::InvalidInput(m) => format!("invalid input: {m}"),
        GuestError::Unavailable(m) => format!("unavailable: {m}"),
        GuestError::CapabilityDenied(m) => format!("capability denied: {m}"),
        GuestError::Internal(m) => format!("internal error: {m}"),
    }
}

/// Formats a byte count the way a person writes a limit: `32 MiB`, `1 GiB`, `1500 bytes`.
#[derive(Debug, Clone, Copy)]
pub struct DisplayBytes(pub u64);

impl fmt::Display for DisplayBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{} {unit}", self.0 / size);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// Formats a duration the way a person writes a timeout: `1s`, `250ms`, `1.5s`.
#[derive(Debug, Clone, Copy)]
pub struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else if d.as_nanos().is_multiple_of(1_000_000) && d < Duration::from_secs(1) {
            write!(f, "{}ms", d.as_millis())
        } else {
            write!(f, "{:?}", d)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_like_a_person_wrote_them() {
        assert_eq!(DisplayBytes(32 << 20).to_string(), "32 MiB");
        assert_eq!(DisplayBytes(1 << 30).to_string(), "1 GiB");
        assert_eq!(DisplayBytes(1500).to_string(), "1500 bytes");
        assert_eq!(DisplayDuration(Duration::from_secs(1)).to_string(), "1s");
        assert_eq!(
            DisplayDuration(Duration::from_millis(250)).to_string(),
            "250ms"
        );
        assert_eq!(
            DisplayDuration(Duration::from_millis(1500)).to_string(),
            "1.5s"
        );
        let e = Error::FuelExhausted {
            component: "looper".into(),
            limit: 50_000_000,
        };
        assert_eq!(e.to_string(), "looper: fuel exhausted (limit 50000000)");
        let e = Error::MemoryLimit {
            component: "memhog".into(),
            limit: 32 << 20,
            detail: None,
        };
        assert_eq!(e.to_string(), "memhog: memory limit of 32 MiB reached");
    }
}
