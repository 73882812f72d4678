//! Resource limits per call, enforced as a wasmtime [`ResourceLimiter`], fuel and
//! an epoch deadline; and the [`ResourceUsage`] measured for every call.

use std::time::Duration;

use serde::Serialize;
use wasmtime::ResourceLimiter;

use crate::storage::Quota;

/// The limits one component instance runs under.
///
/// `fuel` and `timeout` apply to each call (fuel is refilled before every call);
/// `memory_bytes` caps the instance's total linear memory for its whole life.
///
/// ```
/// use airssys_wasm::ResourceLimits;
/// use std::time::Duration;
///
/// let limits = ResourceLimits::default()
///     .with_memory_bytes(32 << 20)
///     .with_fuel(50_000_000)
///     .with_timeout(Duration::from_secs(1));
/// assert_eq!(limits.fuel, Some(50_000_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ResourceLimits {
    /// Maximum linear memory of the instance in bytes (`None`: unlimited).
    pub memory_bytes: Option<u64>,
    /// Fuel per call (`None`: unmetered).
    pub fuel: Option<u64>,
    /// Wall-clock time per call (`None`: no deadline).
    pub timeout: Option<Duration>,
    /// What the instance's storage namespace may hold (bytes and keys).
    pub storage: Quota,
    /// What outbound HTTP the instance may make the host do.
    pub http: HttpLimits,
    /// What an actor may make the host hold for it outside its own memory.
    pub host: HostLimits,
}

/// What an actor may make the host hold on its behalf, outside its linear
/// memory: the messages it sent that wait in mailboxes and timers, and its
/// subscriptions. Past either cap a messaging call is refused (`unavailable`
/// naming the budget, or `too-many-pending` naming the count).
///
/// ```
/// use airssys_wasm::HostLimits;
/// let h = HostLimits::default();
/// assert_eq!((h.held_bytes, h.subscriptions), (16 << 20, 256));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HostLimits {
    /// Bytes of its messages the host may hold at once (each message counted
    /// whole: payload, content type, metadata, target) — default 16 MiB.
    pub held_bytes: u64,
    /// Subscriptions it may hold at once (default 256).
    pub subscriptions: u32,
    /// The mailbox capacity its manifest asks for (`None`: the actor's options decide).
    pub mailbox_capacity: Option<usize>,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            held_bytes: 16 << 20,
            subscriptions: 256,
            mailbox_capacity: None,
        }
    }
}

/// Bounds on the outbound HTTP (`wasi:http`) a guest can make the host do.
/// Timeouts never outlast the call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HttpLimits {
    /// The longest a connection may take to open (default 10 s).
    #[serde(serialize_with = "micros")]
    pub connect_timeout: Duration,
    /// The longest the first byte of the response may take (default 30 s).
    #[serde(serialize_with = "micros")]
    pub first_byte_timeout: Duration,
    /// The most response body bytes the host buffers for one request (default 16 MiB).
    pub max_response_bytes: u64,
    /// Requests in flight at once per instance (default 16).
    pub max_concurrent: u32,
    /// Requests per second per instance (`None`: unlimited; bursts of one second's worth).
    pub requests_per_sec: Option<u32>,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(30),
            max_response_bytes: 16 << 20,
            max_concurrent: 16,
            requests_per_sec: None,
        }
    }
}

impl Default for ResourceLimits {
    /// 64 MiB of memory, a 30 s timeout per call, no fuel metering, and the
    /// default storage [`Quota`] (64 MiB, 1,000,000 keys).
    fn default() -> Self {
        ResourceLimits {
            memory_bytes: Some(64 << 20),
            fuel: None,
            timeout: Some(Duration::from_secs(30)),
            storage: Quota::default(),
            http: HttpLimits::default(),
            host: HostLimits::default(),
        }
    }
}

impl ResourceLimits {
    /// No limit at all, as `wasmtime run` does by default.
    pub fn unlimited() -> Self {
        ResourceLimits {
            memory_bytes: None,
            fuel: None,
            timeout: None,
            storage: Quota::unlimited(),
            http: HttpLimits::default(),
            host: HostLimits::default(),
        }
    }

    /// Sets the memory limit in bytes.
    pub fn with_memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Sets the fuel given to each call.
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Sets the storage quota.
    pub fn with_storage_quota(mut self, quota: Quota) -> Self {
        self.storage = quota;
        self
    }

    /// Sets the wall-clock timeout of each call.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// How much a guest may write to the host's log through `services.log`: a
/// token bucket of lines and one of bytes, and a cap on one line's length.
/// Lines over either budget are dropped and counted; one summary line per
/// call says how many. Control characters in guest text are escaped, so a
/// guest line never starts a host line.
///
/// ```
/// use airssys_wasm::LogBudget;
/// let b = LogBudget::default();
/// assert_eq!((b.lines_per_sec, b.burst, b.max_line_bytes), (100, 200, 4096));
/// assert_eq!(b.bytes_per_sec, 64 << 10);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogBudget {
    /// Lines per second, refilled continuously.
    pub lines_per_sec: u32,
    /// Lines that may be written at once after a quiet spell.
    pub burst: u32,
    /// Longer lines are cut to this many bytes (and say so).
    pub max_line_bytes: usize,
    /// Bytes per second, refilled continuously (bursts of two seconds' worth).
    pub bytes_per_sec: u64,
}

impl Default for LogBudget {
    /// 100 lines/s, bursts of 200, 4 KiB per line, 64 KiB/s.
    fn default() -> Self {
        LogBudget {
            lines_per_sec: 100,
            burst: 200,
            max_line_bytes: 4096,
            bytes_per_sec: 64 << 10,
        }
    }
}

/// What one call consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ResourceUsage {
    /// Fuel consumed by the call (0 when fuel metering is off).
    pub fuel_consumed: u64,
    /// The largest total linear memory the instance had during the call, in bytes.
    pub peak_memory_bytes: u64,
    /// Wall-clock time of the call (in JSON: `wall_time_us`, microseconds).
    #[serde(rename = "wall_time_us", serialize_with = "micros")]
    pub wall_time: Duration,
    /// Bytes (keys plus values) the call wrote durably to storage.
    pub storage_bytes: u64,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}

/// The [`ResourceLimiter`] installed in every store: caps linear memory, tables and
/// instance counts, and tracks the memory peak for [`ResourceUsage`].
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_limit: Option<u64>,
    current: u64,
    peak: u64,
    /// Set when a memory request was refused, so the trap that follows is
    /// reported as the memory limit rather than as an opaque trap.
    pub(crate) memory_denied: bool,
    /// What the last admitted growth changed, undone if wasmtime then fails
    /// the growth (`memory_grow_failed`): (bytes added, peak before).
    last_grow: Option<(u64, u64)>,
}

/// Table elements one table may hold: generous for real guests, finite for hostile ones.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Core instances, tables and memories one store may create.
const MAX_INSTANCES: usize = 1000;

impl Limiter {
    pub(crate) fn new(memory_limit: Option<u64>) -> Self {
        Limiter {
            memory_limit,
            current: 0,
            peak: 0,
            memory_denied: false,
            last_grow: None,
        }
    }

    /// Starts a new measurement period (one call).
    pub(crate) fn begin_call(&mut self) {
        self.peak = self.current;
        self.memory_denied = false;
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let grow = (desired - current) as u64;
        let total = self.current + grow;
        if let Some(limit) = self.memory_limit {
            if total > limit {
                self.memory_denied = true;
                tracing::debug!(total, limit, "memory growth refused");
                return Ok(false);
            }
        }
        self.last_grow = Some((grow, self.peak));
        self.current = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth admitted above did not happen: take it back, so the
        // peak is not over-reported and the limit does not fire early.
        if let Some((grow, peak)) = self.last_grow.take() {
            self.current = self.current.saturating_sub(grow);
            self.peak = peak;
        }
        tracing::debug!("memory growth failed: {error}");
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_INSTANCES
    }

    fn memories(&self) -> usize {
        MAX_INSTANCES
    }
}

/// Raised by the epoch-deadline callback when a call passes its deadline.
#[derive(Debug)]
pub(crate) struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wall-clock deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_growth_past_the_limit_and_tracks_the_peak() {
        let mut l = Limiter::new(Some(1 << 20));
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert!(l.memory_growing(65536, 1 << 20, None).unwrap());
        assert!(!l.memory_denied);
        assert!(!l.memory_growing(1 << 20, (1 << 20) + 65536, None).unwrap());
        assert!(l.memory_denied);
        assert_eq!(l.peak(), 1 << 20);
        l.begin_call();
        assert!(!l.memory_denied);
        assert_eq!(l.peak(), 1 << 20);
    }

    #[test]
    fn a_growth_wasmtime_then_fails_is_taken_back() {
        let mut l = Limiter::new(Some(1 << 20));
        assert!(l.memory_growing(0, 65536, None).unwrap());
        assert!(l.memory_growing(65536, 1 << 20, None).unwrap());
        l.memory_grow_failed(wasmtime::Error::msg("no room in the slot"))
            .unwrap();
        assert_eq!(l.peak(), 65536, "the failed growth is not in the peak");
        // The whole remaining MiB is still there to grow into.
        assert!(l.memory_growing(65536, 1 << 20, None).unwrap());
        assert!(!l.memory_denied);
    }
}
