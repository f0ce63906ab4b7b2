//! The host resources one invocation may take besides its linear memory.
//!
//! `memory_mb` caps what a guest holds inside its sandbox. What it makes the
//! host hold for it is capped here, per invocation:
//!
//! - entries of its resource table (every handle: fields, streams, bodies,
//!   pollables, outgoing requests);
//! - bytes held for it by the host: header fields, summed over every fields
//!   resource and every request and response that carries one, and the
//!   buffers of the bodies it writes;
//! - outgoing HTTP requests: how many in all, and how many at once;
//! - bytes of its response body;
//! - bytes of its stdout and stderr, and the rate it writes them at.
//!
//! Crossing a limit trips the instance's [`Tripwire`]: the host call at hand
//! fails, the guest is interrupted at its next epoch check, and the caller
//! gets `resource_limit_exceeded` naming the limit. The instance is dropped.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use wasmtime::component::ResourceTable;
use wasmtime_wasi_http::FieldMap;
use wasmtime_wasi_http::p2::body::HostOutgoingBody;
use wasmtime_wasi_http::p2::types::{
    HostIncomingResponse, HostOutgoingRequest, HostOutgoingResponse,
};

/// Most entries an instance's resource table may hold at once.
pub const MAX_RESOURCES: usize = 4096;
/// Most bytes the host may hold for an invocation at once in header fields
/// and body buffers.
pub const MAX_HELD_BYTES: usize = 8 << 20;
/// Largest single fields resource, in bytes (wasmtime counts its in-memory
/// size; 64 KiB is eight times what proxies accept on the wire).
pub const MAX_FIELD_MAP_BYTES: usize = 64 << 10;
/// Largest write to a body the guest sends; a body buffers two of them.
pub const BODY_CHUNK_BYTES: usize = 64 << 10;
/// Most outgoing requests of one invocation in flight at once.
pub const MAX_CONCURRENT_OUTBOUND: u32 = 16;
/// Sustained rate of guest stdout and stderr, in bytes per second; a burst
/// of one second's worth is allowed on top.
pub const MAX_LOG_RATE: u64 = 1 << 20;

/// The host limit an invocation crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLimit {
    /// [`MAX_RESOURCES`].
    ResourceEntries,
    /// [`MAX_HELD_BYTES`].
    HeldBytes,
    /// The function's `max_outbound_requests`.
    OutboundRequests(u32),
    /// [`MAX_CONCURRENT_OUTBOUND`].
    ConcurrentOutbound,
    /// The function's `max_response_bytes`.
    ResponseBytes(u64),
    /// The function's `max_log_bytes`.
    LogBytes(u64),
    /// [`MAX_LOG_RATE`].
    LogRate,
}

impl std::fmt::Display for HostLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ResourceEntries => write!(f, "resource handles held at once ({MAX_RESOURCES})"),
            Self::HeldBytes => write!(
                f,
                "bytes held by the host in header fields and body buffers ({MAX_HELD_BYTES})"
            ),
            Self::OutboundRequests(max) => write!(
                f,
                "outgoing requests per call ({max}; raise max_outbound_requests)"
            ),
            Self::ConcurrentOutbound => write!(
                f,
                "outgoing requests in flight at once ({MAX_CONCURRENT_OUTBOUND})"
            ),
            Self::ResponseBytes(max) => {
                write!(f, "response body bytes ({max}; raise max_response_bytes)")
            }
            Self::LogBytes(max) => write!(
                f,
                "stdout and stderr bytes per call ({max}; raise max_log_bytes)"
            ),
            Self::LogRate => write!(f, "stdout and stderr bytes per second ({MAX_LOG_RATE})"),
        }
    }
}

/// Records the first limit an instance crossed, and whether its call failed;
/// shared by the pieces of the host that enforce a limit (store, log sinks,
/// outbound hooks) and by the response body, which must not end as if
/// complete when the call that wrote it failed.
#[derive(Debug, Default)]
pub(crate) struct Tripwire {
    hit: Mutex<Option<HostLimit>>,
    failed: AtomicBool,
}

impl Tripwire {
    /// Records `limit` (the first one wins) and returns the error that ends
    /// the guest's call.
    pub(crate) fn trip(&self, limit: HostLimit) -> wasmtime::Error {
        let mut hit = self.hit.lock().unwrap();
        let first = *hit.get_or_insert(limit);
        wasmtime::format_err!("host resource limit exceeded: {first}")
    }

    /// The limit crossed, if any.
    pub(crate) fn tripped(&self) -> Option<HostLimit> {
        *self.hit.lock().unwrap()
    }

    /// Records that the call failed (trapped, timed out, crossed a limit).
    /// Its instance is never reused, so this is never undone.
    pub(crate) fn fail(&self) {
        self.failed.store(true, Ordering::Release);
    }

    /// Whether the call failed.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
}

/// Bytes a token bucket may hold: one second at the sustained rate.
const LOG_BURST: u64 = MAX_LOG_RATE;

/// Counts one invocation's stdout and stderr against its byte limit and the
/// rate limit. A write counts at least one byte, so a flood of empty writes
/// is bounded like any other.
#[derive(Debug)]
pub(crate) struct LogBudget {
    max_bytes: u64,
    written: u64,
    tokens: u64,
    refilled: Instant,
}

impl LogBudget {
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            written: 0,
            tokens: LOG_BURST,
            refilled: Instant::now(),
        }
    }

    /// Starts a new invocation's count.
    pub(crate) fn reset(&mut self) {
        *self = Self::new(self.max_bytes);
    }

    /// Charges a write of `len` bytes.
    pub(crate) fn charge(&mut self, len: usize) -> Result<(), HostLimit> {
        let cost = (len as u64).max(1);
        self.written += cost;
        if self.written > self.max_bytes {
            return Err(HostLimit::LogBytes(self.max_bytes));
        }
        let now = Instant::now();
        let earned =
            now.duration_since(self.refilled).as_micros() as u64 * MAX_LOG_RATE / 1_000_000;
        if earned > 0 {
            self.tokens = (self.tokens + earned).min(LOG_BURST);
            self.refilled = now;
        }
        self.tokens = self.tokens.checked_sub(cost).ok_or(HostLimit::LogRate)?;
        Ok(())
    }
}

/// Bytes the host holds for the resources in `table`: header names and
/// values, and for each body the guest writes (or request or response that
/// carries one) the two chunks its channel may buffer.
///
/// Called from the epoch callback, so while a guest runs the sum is checked
/// about every tick; a hoarding guest overshoots by at most a tick's worth.
pub(crate) fn held_bytes(table: &mut ResourceTable) -> usize {
    const BODY: usize = 2 * BODY_CHUNK_BYTES;
    // As wasmtime counts a fields resource: each name and value with the
    // size of its handle, so that empty values count too.
    fn size(map: &FieldMap) -> usize {
        map.iter()
            .map(|(name, value)| {
                name.as_str().len()
                    + size_of::<http::HeaderName>()
                    + value.len()
                    + size_of::<http::HeaderValue>()
            })
            .sum()
    }
    table
        .iter_mut()
        .map(|entry| {
            if let Some(map) = entry.downcast_ref::<FieldMap>() {
                size(map)
            } else if let Some(response) = entry.downcast_ref::<HostOutgoingResponse>() {
                size(&response.headers) + BODY
            } else if let Some(request) = entry.downcast_ref::<HostOutgoingRequest>() {
                size(&request.headers) + BODY
            } else if entry.is::<HostOutgoingBody>() {
                BODY
            } else if let Some(response) = entry.downcast_ref::<HostIncomingResponse>() {
                size(&response.headers)
            } else {
                0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_budget_counts_bytes_and_empty_writes() {
        let mut budget = LogBudget::new(10);
        assert!(budget.charge(4).is_ok());
        for _ in 0..6 {
            assert!(budget.charge(0).is_ok());
        }
        assert_eq!(budget.charge(0), Err(HostLimit::LogBytes(10)));
        budget.reset();
        assert!(budget.charge(10).is_ok());
    }

    #[test]
    fn log_budget_limits_the_rate() {
        let mut budget = LogBudget::new(u64::MAX);
        assert!(budget.charge(LOG_BURST as usize).is_ok());
        assert_eq!(budget.charge(64 << 10), Err(HostLimit::LogRate));
    }

    #[test]
    fn the_first_limit_wins() {
        let wire = Tripwire::default();
        assert_eq!(wire.tripped(), None);
        let error = wire.trip(HostLimit::HeldBytes);
        assert!(error.to_string().contains("header fields"), "{error}");
        wire.trip(HostLimit::LogRate);
        assert_eq!(wire.tripped(), Some(HostLimit::HeldBytes));
    }

    #[test]
    fn fields_in_the_table_are_summed() {
        let mut table = ResourceTable::new();
        let mut map = http::HeaderMap::new();
        map.insert("x-a", http::HeaderValue::from_static("12345"));
        table
            .push(FieldMap::new_immutable(
                wasmtime_wasi_http::default_hooks(),
                map,
            ))
            .unwrap();
        table.push(7u32).unwrap();
        let overhead = size_of::<http::HeaderName>() + size_of::<http::HeaderValue>();
        assert_eq!(held_bytes(&mut table), 3 + 5 + overhead);
    }
}
