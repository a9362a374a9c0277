//! The one error policy of the HTTP layer.
//!
//! Every failure leaves as `{"error": {"code", "message", "details"}}`: domain errors through
//! `ApiError` (listed per operation in the OpenAPI document), and framework errors (malformed
//! JSON, unknown route, missing auth, body too large) through [`json_errors`]. 5xx answers log the
//! full cause chain and tell the client nothing internal. Which domain error gets which answer
//! is decided in one place, `error/domain.rs`; a unique or check constraint a handler expects is
//! mapped with [`OnConstraint`].

use poem::{Endpoint, IntoResponse, Request, Response, http::StatusCode};
use poem_openapi::{ApiResponse, Object, payload::Json};
use serde_json::{Value, json};
use shared::db::StoreError;

pub use crate::error_code::ErrorCode;

/// `Retry-After` of a 503: long enough for a restarting PostgreSQL or Redis to come back or a
/// pool to free a connection, short enough for a client's retry to be prompt.
pub const RETRY_AFTER_SECS: u64 = 5;

mod domain;

/// The error envelope.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code, a human message and optional details.
#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// Stable snake_case code clients branch on, e.g. `validation_failed`.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Extra structured information (e.g. the invalid fields).
    pub details: Value,
}

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed request (bad JSON, bad parameter, missing header).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing, invalid or expired credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated but not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource (or not visible to the caller).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflicts with the current state (e.g. a taken username).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Request body larger than the limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Body is not `application/json`.
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Well-formed but semantically invalid; `details` names the fields.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Throttled; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Unexpected failure; details are in the server log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (Postgres, Redis, the payment provider) is unavailable; retry after the
    /// given number of seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

pub(crate) fn body(code: ErrorCode, message: impl Into<String>, details: Value) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code,
            message: message.into(),
            details,
        },
    })
}

impl ApiError {
    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::Unauthorized(body(
            ErrorCode::Unauthorized,
            "missing, invalid or expired credentials",
            json!({}),
        ))
    }

    /// 403 with a code.
    pub fn forbidden(code: ErrorCode, message: &str) -> Self {
        Self::Forbidden(body(code, message, json!({})))
    }

    /// 404 with a `<what>_not_found` code; the message is the code in words.
    pub fn not_found(code: ErrorCode) -> Self {
        Self::NotFound(body(code, code.as_str().replace('_', " "), json!({})))
    }

    /// 404 `not_found`, exactly what an unknown path answers: for routes that exist only in
    /// some configurations (e.g. development payment mode).
    pub fn no_such_route() -> Self {
        Self::NotFound(body(ErrorCode::NotFound, "not found", json!({})))
    }

    /// 409 with a code and details.
    pub fn conflict(code: ErrorCode, message: impl Into<String>, details: Value) -> Self {
        Self::Conflict(body(code, message, details))
    }

    /// 422 with a code and details.
    pub fn unprocessable(code: ErrorCode, message: impl Into<String>, details: Value) -> Self {
        Self::Unprocessable(body(code, message, details))
    }

    /// 400 with a code.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message, json!({})))
    }

    /// 500; logs the cause chain once, here.
    pub fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error.message = %error, error.cause_chain = ?error, "request failed");
        Self::Internal(body(
            ErrorCode::InternalError,
            "an unexpected error occurred",
            json!({}),
        ))
    }

    /// 503 `unavailable`, with `Retry-After`.
    pub fn unavailable(message: &str) -> Self {
        Self::Unavailable(
            body(ErrorCode::Unavailable, message, json!({})),
            RETRY_AFTER_SECS,
        )
    }

    /// 503 for a dependency that is out of reach (a restart, a lost connection); logs the
    /// cause once, as a warning: the request was fine and a retry will do.
    pub fn dependency_down(error: &(dyn std::error::Error + 'static), message: &str) -> Self {
        tracing::warn!(error.message = %error, error.cause_chain = ?error, "dependency unavailable");
        Self::unavailable(message)
    }
}

/// The code for a framework error of this status.
fn code_for(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::UNPROCESSABLE_ENTITY => ErrorCode::ValidationFailed,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        s if s.is_server_error() => ErrorCode::InternalError,
        _ => ErrorCode::Error,
    }
}

/// Converts a framework error into the error envelope. Errors that already carry a response
/// (from `ApiError`) pass through unchanged.
pub fn error_response(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    // The one header whose absence has its own code, so clients can tell it from other 400s.
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseParamError>()
        && e.name == "Idempotency-Key"
    {
        return ApiError::bad_request(
            ErrorCode::IdempotencyKeyRequired,
            "an Idempotency-Key header of 1 to 255 characters is required",
        )
        .into_response();
    }
    let status = err.status();
    let message = if status.is_server_error() {
        tracing::error!(error.message = %err, error.cause_chain = ?err, "request failed");
        "an unexpected error occurred".to_owned()
    } else {
        err.to_string()
    };
    let json = body(code_for(status), message, json!({}));
    json.with_status(status).into_response()
}

/// The answer to a handler that panicked: a 500 in the error envelope instead of a dropped
/// connection (the panic itself is logged and reported by the panic hook).
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let json = body(
        ErrorCode::InternalError,
        "an unexpected error occurred",
        json!({}),
    );
    json.with_status(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response()
}

/// Middleware: every error leaving the app, whatever produced it, uses the error envelope.
pub async fn json_errors<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) => Ok(error_response(err)),
    }
}

/// Maps one named constraint violation of a write to the answer the client should get; every
/// other error keeps its usual conversion.
pub trait OnConstraint<T> {
    /// `answer` when the write broke constraint `name` (from the migrations).
    fn on_constraint(self, name: &str, answer: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> OnConstraint<T> for Result<T, StoreError> {
    fn on_constraint(self, name: &str, answer: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|e| {
            if e.constraint() == Some(name) {
                answer()
            } else {
                e.into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use poem::{EndpointExt, Route, get, handler, middleware::CatchPanic, test::TestClient};

    use super::*;

    #[handler]
    fn explode() -> &'static str {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_envelope() {
        let app = Route::new()
            .at("/", get(explode))
            .with(CatchPanic::new().with_handler(panic_response));
        let resp = TestClient::new(app).get("/").send().await;
        resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.json().await;
        body.value()
            .object()
            .get("error")
            .object()
            .get("code")
            .assert_string("internal_error");
    }
}
