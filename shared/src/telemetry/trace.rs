//! The trace id every log line of a request, and of the jobs it caused, carries.
//!
//! A request gets its trace id from the caller (`sentry-trace` or W3C `traceparent`), else a
//! new random one; the api runs the request in a `request` span with `trace_id` and keeps the
//! id in a task-local ([`scope`]) while it answers. Every task pushed meanwhile carries the id
//! (`queue::JobTask`, `queue::WebhookEventTask`), and the worker runs each delivery in a span
//! with the same `trace_id` and the same task-local, so the jobs a job creates carry it too. With
//! Sentry on, the request's transaction uses the same id, so a log line leads to its trace.

use std::{fmt, future::Future, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

tokio::task_local! {
    static CURRENT: TraceId;
}

/// A 128-bit trace id, written as 32 lowercase hex digits (as Sentry and W3C trace context
/// write it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

impl TraceId {
    /// A new random trace id (never zero, which W3C reserves for "none").
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().as_u128())
    }

    /// The trace id of a `sentry-trace` header (`<trace id>-<span id>[-<sampled>]`).
    pub fn from_sentry_trace(header: &str) -> Option<Self> {
        header.trim().split('-').next()?.parse().ok()
    }

    /// The trace id of a W3C `traceparent` header (`<version>-<trace id>-<parent id>-<flags>`).
    pub fn from_traceparent(header: &str) -> Option<Self> {
        header.trim().split('-').nth(1)?.parse().ok()
    }

    /// The id as Sentry's type.
    pub fn to_sentry(self) -> sentry::protocol::TraceId {
        sentry::protocol::TraceId::from(self.0.to_be_bytes())
    }
}

impl FromStr for TraceId {
    type Err = ();

    /// Exactly 32 hex digits, not all zero.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        match u128::from_str_radix(s, 16) {
            Ok(0) | Err(_) => Err(()),
            Ok(id) => Ok(Self(id)),
        }
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for TraceId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse()
            .map_err(|()| serde::de::Error::custom("expected 32 hex digits"))
    }
}

/// The trace id of the request or delivery being handled, if any.
pub fn current() -> Option<TraceId> {
    CURRENT.try_with(|id| *id).ok()
}

/// Runs `future` with `id` as the [`current`] trace id.
pub async fn scope<F: Future>(id: TraceId, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids_are_read_from_sentry_and_w3c_headers_and_nothing_else() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let sentry = TraceId::from_sentry_trace(&format!("{id}-00f067aa0ba902b7-1"));
        assert_eq!(sentry.map(|t| t.to_string()).as_deref(), Some(id));
        let w3c = TraceId::from_traceparent(&format!("00-{id}-00f067aa0ba902b7-01"));
        assert_eq!(w3c.map(|t| t.to_string()).as_deref(), Some(id));
        for bad in [
            "",
            "xyz",
            "00000000000000000000000000000000-00f067aa0ba902b7",
            "4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7",
            "4bf92f3577b34da6a3ce929d0e0e4736\u{0}-1",
            "+bf92f3577b34da6a3ce929d0e0e4736-1",
        ] {
            assert_eq!(TraceId::from_sentry_trace(bad), None, "{bad:?}");
        }
        assert_eq!(TraceId::from_traceparent(id), None);
    }

    #[test]
    fn a_trace_id_round_trips_through_json_and_the_task_local() {
        let id = TraceId::random();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json.len(), 34);
        assert_eq!(serde_json::from_str::<TraceId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<TraceId>("\"zz\"").is_err());
        assert_eq!(current(), None);
        let seen = futures_lite_block_on(scope(id, async { current() }));
        assert_eq!(seen, Some(id));
    }

    fn futures_lite_block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }
}
