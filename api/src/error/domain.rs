//! Every conversion of a domain error into the API's answer: which status and code a failure
//! of `shared` gets, and what its `details` carry. Handlers only write `?`.

use serde_json::{Map, Value, json};
use shared::{
    auth::AuthError,
    cart::CartError,
    checkout::AdmitError,
    db::StoreError,
    domain::{ValidationErrors, cursor::InvalidCursor, money::LimitExceeded},
    gate::GateError,
    geocode::{self, SubmitError},
    images::{ImageError, Rejected},
    orders::{CancelError, refund::RefundRequestError, ship::ShipError},
    payment_events::{ReceiveError, dev::DevPaymentError},
};

use super::{ApiError, ErrorCode, body};

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        let mut fields = Map::new();
        for e in &errors.0 {
            fields.insert(e.field.to_owned(), Value::String(e.message.clone()));
        }
        Self::unprocessable(
            ErrorCode::ValidationFailed,
            errors.to_string(),
            json!({ "fields": fields }),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found(ErrorCode::ResourceNotFound),
            StoreError::Unavailable(e) => {
                Self::dependency_down(&e, "the database is unavailable; try again shortly")
            }
            other => Self::internal(&other),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Invalid(v) => v.into(),
            AuthError::InvalidCredentials => Self::Unauthorized(body(
                ErrorCode::InvalidCredentials,
                "username or password is incorrect",
                json!({}),
            )),
            AuthError::InvalidToken => Self::unauthorized(),
            AuthError::WrongPassword => Self::unprocessable(
                ErrorCode::WrongPassword,
                "the current password is incorrect",
                json!({ "fields": { "current_password": "is incorrect" } }),
            ),
            AuthError::Throttled { retry_after_secs } => Self::TooManyRequests(
                body(
                    ErrorCode::TooManyAttempts,
                    "too many failed login attempts; try again later",
                    json!({ "retry_after_secs": retry_after_secs }),
                ),
                retry_after_secs,
            ),
            AuthError::Taken { field } => Self::conflict(
                if field == "email" {
                    ErrorCode::EmailTaken
                } else {
                    ErrorCode::UsernameTaken
                },
                format!("{field} is already taken"),
                json!({ "field": field }),
            ),
            AuthError::Store(e) => e.into(),
            AuthError::Unexpected(e) => Self::internal(e.as_ref()),
        }
    }
}

impl From<CartError> for ApiError {
    fn from(e: CartError) -> Self {
        let message = e.to_string();
        match e {
            CartError::ListingNotFound => Self::not_found(ErrorCode::ListingNotFound),
            CartError::OwnListing => Self::unprocessable(ErrorCode::OwnListing, message, json!({})),
            CartError::ListingInactive => {
                Self::unprocessable(ErrorCode::ListingInactive, message, json!({}))
            }
            CartError::InvalidQuantity { available } => Self::unprocessable(
                ErrorCode::InvalidQuantity,
                message,
                json!({ "available": available }),
            ),
            CartError::CurrencyMismatch { cart, listing } => Self::unprocessable(
                ErrorCode::CurrencyMismatch,
                message,
                json!({ "cart_currency": cart, "listing_currency": listing }),
            ),
            CartError::LimitExceeded(limit) => limit.into(),
            CartError::Store(e) => e.into(),
        }
    }
}

impl From<InvalidCursor> for ApiError {
    fn from(e: InvalidCursor) -> Self {
        Self::bad_request(ErrorCode::InvalidCursor, e.to_string())
    }
}

impl From<LimitExceeded> for ApiError {
    fn from(e: LimitExceeded) -> Self {
        Self::unprocessable(
            ErrorCode::LimitExceeded,
            e.to_string(),
            json!({ "limit": e.limit, "max": e.max }),
        )
    }
}

impl From<DevPaymentError> for ApiError {
    fn from(e: DevPaymentError) -> Self {
        let message = e.to_string();
        match e {
            DevPaymentError::NotFound => Self::not_found(ErrorCode::OrderNotFound),
            DevPaymentError::NotPending(status) => Self::conflict(
                ErrorCode::OrderNotPending,
                message,
                json!({ "status": status }),
            ),
            DevPaymentError::NotReady => {
                Self::conflict(ErrorCode::PaymentNotReady, message, json!({}))
            }
            DevPaymentError::Store(e) => e.into(),
        }
    }
}

impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::Signature(e) => {
                Self::bad_request(ErrorCode::InvalidSignature, e.to_string())
            }
            ReceiveError::Payload(message) => Self::bad_request(ErrorCode::InvalidPayload, message),
            ReceiveError::Store(e) => e.into(),
        }
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> Self {
        let message = e.to_string();
        match e {
            AdmitError::EmptyCart => Self::unprocessable(ErrorCode::EmptyCart, message, json!({})),
            AdmitError::AddressNotFound => {
                Self::unprocessable(ErrorCode::AddressNotFound, message, json!({}))
            }
            AdmitError::AddressNotVerified => {
                Self::unprocessable(ErrorCode::AddressNotVerified, message, json!({}))
            }
            AdmitError::ListingsUnavailable(ids) => Self::unprocessable(
                ErrorCode::ListingUnavailable,
                message,
                json!({ "listing_ids": ids }),
            ),
            AdmitError::CurrencyMismatch(lines) => {
                let lines: Vec<_> = lines
                    .into_iter()
                    .map(|(listing_id, currency)| {
                        json!({ "listing_id": listing_id, "currency": currency })
                    })
                    .collect();
                Self::unprocessable(
                    ErrorCode::CurrencyMismatch,
                    message,
                    json!({ "lines": lines }),
                )
            }
            AdmitError::LimitExceeded(limit) => limit.into(),
            AdmitError::CheckoutInProgress(job_id) => Self::conflict(
                ErrorCode::CheckoutInProgress,
                message,
                json!({ "job_id": job_id, "status_url": format!("/api/v1/jobs/{job_id}") }),
            ),
            AdmitError::TooManyUnpaidOrders { limit } => Self::conflict(
                ErrorCode::TooManyUnpaidOrders,
                message,
                json!({ "limit": limit }),
            ),
            AdmitError::OutOfStock(ids) => Self::conflict(
                ErrorCode::OutOfStock,
                message,
                json!({ "listing_ids": ids }),
            ),
            AdmitError::KeyReused => {
                Self::unprocessable(ErrorCode::IdempotencyKeyReused, message, json!({}))
            }
            AdmitError::StillAdmitting => Self::unavailable(&message),
            AdmitError::Store(e) => e.into(),
            AdmitError::Gate(GateError::Postgres(e)) => StoreError::from(e).into(),
            AdmitError::Gate(GateError::Redis(e))
                if e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal() =>
            {
                Self::dependency_down(&e, "the stock gate is unavailable; try again shortly")
            }
            AdmitError::Gate(e) => Self::internal(&e),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::TooManyAddresses => Self::unprocessable(
                ErrorCode::TooManyAddresses,
                message,
                json!({ "max": geocode::MAX_ADDRESSES_PER_USER }),
            ),
            SubmitError::Store(e) => e.into(),
        }
    }
}

impl From<RefundRequestError> for ApiError {
    fn from(e: RefundRequestError) -> Self {
        let message = e.to_string();
        match e {
            RefundRequestError::NotFound => Self::not_found(ErrorCode::OrderNotFound),
            RefundRequestError::NotPaid(status) => Self::conflict(
                ErrorCode::OrderNotPaid,
                message,
                json!({ "status": status }),
            ),
            RefundRequestError::Shipped => {
                Self::conflict(ErrorCode::OrderShipped, message, json!({}))
            }
            RefundRequestError::UnknownLines(ids) => {
                let details = json!({ "fields": { "line_ids": message }, "line_ids": ids });
                Self::unprocessable(ErrorCode::LineNotInOrder, message, details)
            }
            RefundRequestError::NotSeller(_) => Self::forbidden(ErrorCode::NotLineSeller, &message),
            RefundRequestError::LinesRequired => Self::unprocessable(
                ErrorCode::LinesRequired,
                "a seller names the lines to refund",
                json!({ "fields": { "line_ids": "a seller names the lines to refund" } }),
            ),
            RefundRequestError::NotRefundable(ids) => Self::conflict(
                ErrorCode::LineNotRefundable,
                message,
                json!({ "line_ids": ids }),
            ),
            RefundRequestError::InProgress(job_id) => Self::conflict(
                ErrorCode::RefundInProgress,
                message,
                json!({ "job_id": job_id, "status_url": format!("/api/v1/jobs/{job_id}") }),
            ),
            RefundRequestError::Store(e) => e.into(),
        }
    }
}

impl From<ShipError> for ApiError {
    fn from(e: ShipError) -> Self {
        let message = e.to_string();
        match e {
            ShipError::OrderNotFound => Self::not_found(ErrorCode::OrderNotFound),
            ShipError::UnknownLines(ids) => {
                let details = json!({ "fields": { "line_ids": message }, "line_ids": ids });
                Self::unprocessable(ErrorCode::LineNotInOrder, message, details)
            }
            ShipError::NotSeller(_) => Self::forbidden(ErrorCode::NotLineSeller, &message),
            ShipError::NotPaid(status) => Self::conflict(
                ErrorCode::OrderNotPaid,
                message,
                json!({ "status": status }),
            ),
            ShipError::RefundInProgress => {
                Self::conflict(ErrorCode::RefundInProgress, message, json!({}))
            }
            ShipError::NotShippable(ids) => Self::conflict(
                ErrorCode::LineNotShippable,
                message,
                json!({ "line_ids": ids }),
            ),
            ShipError::Store(e) => e.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        let message = e.to_string();
        match e {
            CancelError::NotFound => Self::not_found(ErrorCode::OrderNotFound),
            CancelError::NotPending(status) => Self::conflict(
                ErrorCode::OrderNotPending,
                message,
                json!({ "status": status }),
            ),
            CancelError::AlreadyPaid => {
                Self::conflict(ErrorCode::OrderAlreadyPaid, message, json!({}))
            }
            CancelError::PaymentUnavailable(_) => {
                Self::unavailable("the payment provider is unavailable; try again")
            }
            CancelError::Store(e) => e.into(),
        }
    }
}

impl From<ImageError> for ApiError {
    fn from(e: ImageError) -> Self {
        let message = e.to_string();
        match e {
            ImageError::NoFiles => Self::unprocessable(ErrorCode::NoFiles, message, json!({})),
            ImageError::ListingNotFound => Self::not_found(ErrorCode::ListingNotFound),
            ImageError::ImageNotFound => Self::not_found(ErrorCode::ImageNotFound),
            ImageError::NotOwner => Self::forbidden(ErrorCode::NotOwner, &message),
            ImageError::TooMany { max } => Self::conflict(
                ErrorCode::TooManyImages,
                message,
                json!({ "max_images": max }),
            ),
            ImageError::OrderMismatch => {
                Self::unprocessable(ErrorCode::ImageOrderMismatch, message, json!({}))
            }
            ImageError::Rejected { index, reason } => {
                let code = match &reason {
                    Rejected::Empty => ErrorCode::ImageEmpty,
                    Rejected::TooLarge { .. } => ErrorCode::ImageTooLarge,
                    Rejected::UnsupportedFormat => ErrorCode::ImageUnsupportedFormat,
                    Rejected::TooManyPixels { .. } => ErrorCode::ImageTooManyPixels,
                    Rejected::Corrupt(_) => ErrorCode::ImageCorrupt,
                };
                let mut details = json!({ "file": index });
                match reason {
                    Rejected::TooLarge { max_bytes } => details["max_bytes"] = json!(max_bytes),
                    Rejected::TooManyPixels { max_pixels, .. } => {
                        details["max_pixels"] = json!(max_pixels);
                    }
                    _ => {}
                }
                Self::unprocessable(code, message, details)
            }
            ImageError::Store(e) => e.into(),
            ImageError::Objects(e) => {
                Self::dependency_down(&e, "image storage is unavailable; try again shortly")
            }
            ImageError::Redis(e) => Self::internal(&e),
        }
    }
}
