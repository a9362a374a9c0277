//! Error and trace reporting to Sentry (`SENTRY_DSN`; off when unset).
//!
//! * Every `ERROR` log becomes a Sentry event, and `INFO`/`WARN` logs become its breadcrumbs
//!   (the layers [`init`](super::init) installs): errors are logged once, where they are
//!   handled, so that is also where they are reported.
//! * Panics are reported by the panic integration.
//! * The api starts a transaction per request and the worker one per job; a job remembers the
//!   trace it was created in ([`trace_context`], stored with the job row) and the worker
//!   continues it ([`continue_trace`]), so a checkout is one trace from request to job.

use serde_json::{Map, Value};

use crate::config::SentrySettings;

/// Starts the Sentry client for process `service` (version `version`), or returns `None` when
/// no DSN is configured. Keep the guard alive until the process exits: dropping it flushes
/// what is queued (bounded by the client's shutdown timeout, 2 s).
pub fn init_sentry(
    settings: &SentrySettings,
    service: &'static str,
    version: &'static str,
) -> Option<sentry::ClientInitGuard> {
    let dsn = settings.dsn.clone()?;
    // The HTTP transport is reqwest on rustls without a built-in provider.
    crate::payments::install_crypto_provider();
    let mut options = sentry::ClientOptions::new().traces_sample_rate(settings.traces_sample_rate);
    options.dsn = Some(dsn);
    options.release = Some(format!("{service}@{version}").into());
    options.environment = Some(settings.environment.clone().into());
    // Request bodies, cookies and user IPs stay out of reports.
    options.send_default_pii = false;
    let guard = sentry::init(options);
    // `init` binds the client to the calling thread's hub, which is the process hub only on the
    // main thread; per-request and per-job hubs are made from the process hub.
    let main = sentry::Hub::main();
    main.bind_client(sentry::Hub::current().client());
    main.configure_scope(|scope| scope.set_tag("service", service));
    tracing::info!(service, "error reporting to Sentry enabled");
    Some(guard)
}

/// The current trace, to store with work that another process picks up: its id
/// (`{"trace_id": "…"}`, see [`super::trace`]) and, with Sentry on, the headers that continue
/// its Sentry trace (`"sentry-trace"`, `"baggage"`). `None` outside any trace.
pub fn trace_context() -> Option<Value> {
    let mut context = Map::new();
    if let Some(id) = super::trace::current() {
        context.insert("trace_id".to_owned(), Value::String(id.to_string()));
    }
    let hub = sentry::Hub::current();
    if hub.client().is_some() {
        hub.configure_scope(|scope| {
            for (name, value) in scope.iter_trace_propagation_headers() {
                context.insert(name.to_owned(), Value::String(value));
            }
        });
    }
    (!context.is_empty()).then_some(Value::Object(context))
}

/// A transaction context named `name` that continues the trace stored by [`trace_context`],
/// or starts a new trace when nothing (or nothing readable) was stored.
pub fn continue_trace(name: &str, op: &str, stored: Option<&Value>) -> sentry::TransactionContext {
    let headers: Vec<(&str, &str)> = stored
        .and_then(Value::as_object)
        .map(|headers| {
            headers
                .iter()
                .filter_map(|(name, value)| Some((name.as_str(), value.as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    sentry::TransactionContext::continue_from_headers(name, op, headers)
}
