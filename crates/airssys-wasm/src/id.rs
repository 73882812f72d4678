//! Actor ids: the one address type every layer shares (storage names an
//! actor's namespace by it, messaging names targets by it, the actor layer
//! registers cells by it). A leaf: it depends only on the error type.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};

/// The id of an actor: a declared name (a DNS-label-like word: letters, digits,
/// `-`, `_`; no `/` or `.`), or `component/key` for a virtual actor activated
/// on demand.
///
/// ```
/// use airssys_wasm::ActorId;
/// assert!(ActorId::new("worker-1").is_ok());
/// assert!(ActorId::new("a/b").is_err());
/// assert_eq!(ActorId::keyed("counter", "user-42").unwrap().as_str(), "counter/user-42");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub(crate) Arc<str>);

/// The longest actor name, as a DNS label.
const MAX_NAME: usize = 63;
/// The longest key of a virtual actor.
const MAX_KEY: usize = 128;

impl ActorId {
    /// A declared actor's id; fails unless `name` is DNS-label-like.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidActorId`] unless `name` is DNS-label-like.
    pub fn new(name: &str) -> Result<ActorId> {
        check_name(name).map_err(|reason| Error::InvalidActorId {
            id: crate::units::truncate(name, 80),
            reason,
        })?;
        Ok(ActorId(Arc::from(name)))
    }

    /// The id of the virtual actor of `component` under `key`: `component/key`.
    /// The key may hold any printable character but `/`, up to 128 bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidActorId`] for an invalid component name or key.
    pub fn keyed(component: &str, key: &str) -> Result<ActorId> {
        let id = format!("{component}/{key}");
        let invalid = |reason: String| Error::InvalidActorId {
            id: crate::units::truncate(&id, 80),
            reason,
        };
        check_name(component).map_err(invalid)?;
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(invalid(format!("a key has 1 to {MAX_KEY} bytes")));
        }
        if key.chars().any(|c| c == '/' || c.is_control()) {
            return Err(invalid("a key has no '/' and no control characters".into()));
        }
        Ok(ActorId(Arc::from(id)))
    }

    /// Parses either form: `name` or `component/key`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidActorId`] for anything but a name or `component/key`.
    pub fn parse(s: &str) -> Result<ActorId> {
        match s.split_once('/') {
            Some((component, key)) => ActorId::keyed(component, key),
            None => ActorId::new(s),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For `component/key`, the component and the key.
    pub fn virtual_parts(&self) -> Option<(&str, &str)> {
        self.0.split_once('/')
    }

    pub(crate) fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if !name.chars().all(ok_char) || !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(
            "a name is letters, digits, '-' and '_', starting with a letter or digit".into(),
        );
    }
    Ok(())
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({})", self.0)
    }
}

impl Serialize for ActorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
