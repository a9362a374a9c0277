//! Request metrics, the Sentry transaction of each request, and `GET /metrics`.
//!
//! [`observe`] wraps every request (inside the error policy, so it still sees which operation
//! answered, also for errors):
//! * `http_requests_total{route,method,status}`, `http_request_duration_seconds{route,method}`,
//!   `http_requests_in_flight`; `route` is the OpenAPI operation id (e.g. `create_checkout`),
//!   else the matched path template, else `unmatched` — never the raw path, so ids do not
//!   become series;
//! * a Sentry hub and transaction per request, continuing the caller's `sentry-trace` header:
//!   errors logged while answering carry its trace, and jobs created by the request store it
//!   (`shared::telemetry::trace_context`), so the worker continues the same trace. A 5xx that
//!   nothing reported yet is reported here.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Instant,
};

use poem::{
    Endpoint, IntoResponse, PathPattern, Request, Response, handler,
    http::{Method, StatusCode},
};
use poem_openapi::OperationId;
use sentry::{Hub, SentryFutureExt as _, TransactionContext, protocol::SpanStatus};
use shared::metrics;

/// Headers that carry a caller's trace.
const TRACE_HEADERS: [&str; 2] = ["sentry-trace", "baggage"];

/// Middleware: metrics and the Sentry transaction of one request.
pub async fn observe<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let mut watch = Watch::start(&req);
    let answer = next.call(req);
    let result = match watch.hub.clone() {
        Some(hub) => answer.bind_hub(hub).await,
        None => answer.await,
    }
    .map(IntoResponse::into_response);
    let (route, status) = match &result {
        Ok(resp) => (
            route_of(resp.data::<OperationId>(), resp.data::<PathPattern>()),
            resp.status(),
        ),
        Err(err) => (
            route_of(err.data::<OperationId>(), err.data::<PathPattern>()),
            err.status(),
        ),
    };
    watch.finish(route, status);
    result
}

/// The `route` label: operation id, else path template, else `unmatched`.
fn route_of(operation: Option<&OperationId>, pattern: Option<&PathPattern>) -> &'static str {
    match (operation, pattern) {
        (Some(operation), _) => operation.0,
        // The OpenAPI service is nested at `/`; a path none of its operations takes still
        // matched that nest, with an empty pattern.
        (None, Some(pattern)) if !pattern.0.is_empty() => template_label(&pattern.0),
        _ => "unmatched",
    }
}

/// Most distinct path templates kept as labels: the route table has a handful outside the
/// OpenAPI document (`/metrics`, `/openapi.json`, the docs); past this, something made
/// templates per request, and `other` keeps the series bounded.
const MAX_TEMPLATES: usize = 32;

/// A path template as a `'static` label, so recording a request allocates nothing. Each
/// template is leaked once: they come from the route table, never from a request's path, so
/// there are few.
fn template_label(template: &str) -> &'static str {
    static SEEN: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());
    let find = |seen: &[&'static str]| seen.iter().copied().find(|t| *t == template);
    if let Some(found) = find(&SEEN.read().unwrap_or_else(PoisonError::into_inner)) {
        return found;
    }
    let mut seen = SEEN.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = find(&seen) {
        return found;
    }
    if seen.len() >= MAX_TEMPLATES {
        return "other";
    }
    let leaked: &'static str = Box::leak(template.into());
    seen.push(leaked);
    leaked
}

/// The `method` label. A client may send any method name; unknown ones share one label, so
/// they cannot add series.
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

/// `"100"` to `"999"`, every status code a response can have, so the `status` label is a
/// `'static` string without formatting one per request.
static STATUS_CODES: [[u8; 3]; 900] = {
    let mut codes = [[0; 3]; 900];
    let mut i = 0;
    while i < 900 {
        let code = i + 100;
        codes[i] = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        i += 1;
    }
    codes
};

/// The `status` label: the three digits of the code.
fn status_label(status: StatusCode) -> &'static str {
    let index = usize::from(status.as_u16()).wrapping_sub(100);
    STATUS_CODES
        .get(index)
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .unwrap_or("unknown")
}

/// One request in flight. Dropped without [`Watch::finish`] only when the handler panicked.
struct Watch {
    method: Method,
    /// The request's hub and transaction; `None` while Sentry is off, which spares every
    /// request the allocations.
    hub: Option<Arc<Hub>>,
    transaction: Option<sentry::Transaction>,
    started: Instant,
    finished: bool,
}

impl Watch {
    /// Starts the request's transaction, continuing the caller's trace headers.
    fn start(req: &Request) -> Self {
        metrics::HTTP_IN_FLIGHT.add([], 1);
        let method = req.method().clone();
        let (hub, transaction) = if Hub::main().client().is_some() {
            let headers: Vec<(&str, &str)> = TRACE_HEADERS
                .iter()
                .filter_map(|name| Some((*name, req.header(name)?)))
                .collect();
            // Without a caller's Sentry trace, the transaction takes the request's trace id
            // (`request_trace`), so a log line and its Sentry trace share one id.
            let context = match shared::telemetry::trace::current() {
                Some(id) if req.header("sentry-trace").is_none() => {
                    TransactionContext::new_with_trace_id(
                        method.as_str(),
                        "http.server",
                        id.to_sentry(),
                    )
                }
                _ => TransactionContext::continue_from_headers(
                    method.as_str(),
                    "http.server",
                    headers,
                ),
            };
            let hub = Arc::new(Hub::new_from_top(Hub::main()));
            let transaction = hub.start_transaction(context);
            hub.configure_scope(|scope| scope.set_span(Some(transaction.clone().into())));
            (Some(hub), Some(transaction))
        } else {
            (None, None)
        };
        Self {
            method,
            hub,
            transaction,
            started: Instant::now(),
            finished: false,
        }
    }

    fn finish(&mut self, route: &'static str, status: StatusCode) {
        self.finished = true;
        let method = method_label(&self.method);
        metrics::HTTP_IN_FLIGHT.add([], -1);
        metrics::HTTP_REQUESTS.inc([route, method, status_label(status)]);
        let elapsed = self.started.elapsed().as_secs_f64();
        metrics::HTTP_DURATION.observe([route, method], elapsed);
        let (Some(hub), Some(transaction)) = (self.hub.clone(), self.transaction.take()) else {
            return;
        };
        if status.is_server_error() && hub.last_event_id().is_none() {
            let message = format!("{method} {route} answered {status}");
            hub.capture_message(&message, sentry::Level::Error);
        }
        transaction.set_name(&format!("{method} {route}"));
        transaction.set_status(span_status(status));
        // Finishing applies the current hub's scope to the transaction.
        Hub::run(hub, || transaction.finish());
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.finished {
            self.finish("panicked", StatusCode::INTERNAL_SERVER_ERROR);
        }
    }
}

fn span_status(status: StatusCode) -> SpanStatus {
    match status.as_u16() {
        s if s < 400 => SpanStatus::Ok,
        401 => SpanStatus::Unauthenticated,
        403 => SpanStatus::PermissionDenied,
        404 => SpanStatus::NotFound,
        409 => SpanStatus::AlreadyExists,
        429 => SpanStatus::ResourceExhausted,
        s if s < 500 => SpanStatus::InvalidArgument,
        503 => SpanStatus::Unavailable,
        _ => SpanStatus::InternalError,
    }
}

/// `GET /metrics`: the api's metrics in the Prometheus text format.
#[handler]
pub fn metrics_endpoint() -> Response {
    metrics::render(metrics::API_FAMILIES)
        .with_content_type(metrics::CONTENT_TYPE)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_codes_methods_and_templates_as_sent() {
        for code in [100, 200, 204, 404, 429, 503, 999] {
            let status = StatusCode::from_u16(code).expect("a status code");
            assert_eq!(status_label(status), status.as_str());
        }
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("a method")),
            "other"
        );
        let first = template_label("/metrics");
        assert_eq!(first, "/metrics");
        assert!(
            std::ptr::eq(first, template_label("/metrics")),
            "leaked twice"
        );
    }
}
