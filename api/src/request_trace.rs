//! The trace id and request id of every request, on every log line written while it is answered.
//!
//! The trace id continues the caller's trace (`sentry-trace`, else W3C `traceparent`) or is new;
//! see `shared::telemetry::trace` for how it follows the request into the jobs it creates. The
//! request id is the caller's `X-Request-Id` only when the socket peer is one of
//! `TRUSTED_PROXIES` (a load balancer that sets it) and the value is a plain token of at most
//! 128 characters; anything else gets a new id, so a client cannot put arbitrary text into our
//! logs. Either way it is echoed in the response's `X-Request-Id`.

use std::sync::Arc;

use poem::{Endpoint, IntoResponse, Request, Response, http::HeaderValue};
use shared::{
    auth::TrustedProxies,
    telemetry::trace::{self, TraceId},
};
use tracing::Instrument as _;

/// The request id header (the one load balancers set).
pub const REQUEST_ID: &str = "x-request-id";

/// The longest incoming request id believed.
const MAX_REQUEST_ID: usize = 128;

/// Middleware: runs the request in a `request` span with `trace_id` and `request_id`.
pub async fn request_trace<E: Endpoint>(
    next: E,
    proxies: Arc<TrustedProxies>,
    req: Request,
) -> poem::Result<Response> {
    let trace_id = incoming_trace(&req).unwrap_or_else(TraceId::random);
    let request_id = incoming_request_id(&proxies, &req)
        .unwrap_or_else(|| uuid::Uuid::now_v7().simple().to_string());
    let span = tracing::info_span!(
        "request",
        trace_id = %trace_id,
        request_id = %request_id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let answer = trace::scope(trace_id, next.call(req).instrument(span)).await;
    let header = HeaderValue::from_str(&request_id).ok();
    answer.map(|resp| {
        let mut resp = resp.into_response();
        if let Some(value) = header {
            resp.headers_mut().insert(REQUEST_ID, value);
        }
        resp
    })
}

/// The caller's trace id, from `sentry-trace` or `traceparent`.
pub fn incoming_trace(req: &Request) -> Option<TraceId> {
    req.header("sentry-trace")
        .and_then(TraceId::from_sentry_trace)
        .or_else(|| {
            req.header("traceparent")
                .and_then(TraceId::from_traceparent)
        })
}

/// The `X-Request-Id` of a trusted proxy, if it is a plain token.
fn incoming_request_id(proxies: &TrustedProxies, req: &Request) -> Option<String> {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    if !proxies.is_trusted(peer) {
        return None;
    }
    let id = req.header(REQUEST_ID)?.trim();
    let plain = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    plain.then(|| id.to_owned())
}
