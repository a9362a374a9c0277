//! Structured logging set up the same way in every binary, and error reporting
//! ([`reporting`]).

mod reporting;
pub mod trace;

use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
use tracing::{Level, Metadata};
use tracing_subscriber::{
    EnvFilter,
    filter::{LevelFilter, filter_fn},
    fmt,
    prelude::*,
};

pub use reporting::{continue_trace, init_sentry, trace_context};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. `RUST_LOG` overrides `default_filter`.
///
/// `ERROR` events are also reported to Sentry, with the `INFO` and `WARN` events before them as
/// breadcrumbs, and our `INFO` spans become spans of the request's or job's Sentry transaction;
/// these layers do nothing until [`init_sentry`] starts a client.
///
/// Safe to call more than once (later calls are ignored), which keeps tests simple.
pub fn init(default_filter: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(ErrorLayer::new().with_filter(filter_fn(reported_as_error)))
        .with(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
        .with(SpanLayer::new().with_filter(filter_fn(sent_as_span)));
    let result = match format {
        LogFormat::Json => registry
            .with(
                // The span list carries the `trace_id` of the request or job delivery (the
                // outermost span) on every line, and its ids (`job.id`, `event.id`) too.
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(true),
            )
            .try_init(),
        LogFormat::Pretty => registry.with(fmt::layer().compact()).try_init(),
    };
    // Already initialised (tests): keep the first subscriber.
    drop(result);
}

/// Which events become Sentry error events: `ERROR`s, except apalis' own "task.failed" line,
/// which carries no context; the worker reports a failed job itself, with kind, id and attempt.
fn reported_as_error(metadata: &Metadata<'_>) -> bool {
    *metadata.level() == Level::ERROR && !metadata.target().starts_with("apalis::layers::tracing")
}

/// Which spans become Sentry spans: our own `INFO` spans (every `#[instrument]` of handlers,
/// domain code and SQL), as children of the request's or job's transaction. Spans opened outside
/// one, which would each start a transaction of their own, are left out: the per-request span
/// of `api::request_trace` and those of the HTTP server and of apalis.
fn sent_as_span(metadata: &Metadata<'_>) -> bool {
    const OURS: [&str; 4] = ["shared", "api", "worker", "scheduler"];
    let target = metadata.target();
    metadata.is_span()
        && *metadata.level() <= Level::INFO
        && OURS.iter().any(|ours| {
            // No allocation: this runs for every span the process opens.
            target
                .strip_prefix(ours)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
        && target != "api::request_trace"
}

/// Runs blocking work (e.g. password hashing) off the async executor, keeping the caller's span.
pub async fn spawn_blocking_with_tracing<F, R>(f: F) -> Result<R, tokio::task::JoinError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f)).await
}

/// The kernel's host name (the pod or container name under Kubernetes and compose), to tell
/// processes apart in worker names and lock holders. An unreadable one falls back to a
/// constant; callers add the pid and a random part where names must be unique.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().replace(':', "_"))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}
