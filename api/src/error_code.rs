//! Every error code the API answers with, as one OpenAPI enum clients can switch on.

/// Declares the codes and their wire names.
macro_rules! error_codes {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// A stable snake_case code naming what went wrong.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
        pub enum ErrorCode {
            $(#[oai(rename = $text)] $variant),+
        }

        impl ErrorCode {
            /// The code as sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }
    };
}

error_codes!(
    AddressNotFound = "address_not_found",
    AddressNotReviewable = "address_not_reviewable",
    AddressNotVerified = "address_not_verified",
    BadRequest = "bad_request",
    CheckoutInProgress = "checkout_in_progress",
    CurrencyMismatch = "currency_mismatch",
    EmailTaken = "email_taken",
    EmptyCart = "empty_cart",
    Error = "error",
    Forbidden = "forbidden",
    IdempotencyKeyRequired = "idempotency_key_required",
    ImageCorrupt = "image_corrupt",
    ImageEmpty = "image_empty",
    ImageNotFound = "image_not_found",
    ImageOrderMismatch = "image_order_mismatch",
    ImageTooLarge = "image_too_large",
    ImageTooManyPixels = "image_too_many_pixels",
    ImageUnsupportedFormat = "image_unsupported_format",
    IdempotencyKeyReused = "idempotency_key_reused",
    InternalError = "internal_error",
    InvalidCredentials = "invalid_credentials",
    InvalidCursor = "invalid_cursor",
    InvalidPayload = "invalid_payload",
    InvalidQuantity = "invalid_quantity",
    InvalidSignature = "invalid_signature",
    JobNotFound = "job_not_found",
    LimitExceeded = "limit_exceeded",
    LineNotInOrder = "line_not_in_order",
    LineNotRefundable = "line_not_refundable",
    LinesRequired = "lines_required",
    LineNotShippable = "line_not_shippable",
    ListingInactive = "listing_inactive",
    ListingNotFound = "listing_not_found",
    ListingUnavailable = "listing_unavailable",
    MethodNotAllowed = "method_not_allowed",
    NoFiles = "no_files",
    NotFound = "not_found",
    NotLineSeller = "not_line_seller",
    NotOwner = "not_owner",
    OrderAlreadyPaid = "order_already_paid",
    OrderNotFound = "order_not_found",
    OrderNotPaid = "order_not_paid",
    OrderNotPending = "order_not_pending",
    OrderShipped = "order_shipped",
    OutOfStock = "out_of_stock",
    OwnListing = "own_listing",
    PayloadTooLarge = "payload_too_large",
    PaymentNotReady = "payment_not_ready",
    QuantityBelowReserved = "quantity_below_reserved",
    RefundInProgress = "refund_in_progress",
    ResourceNotFound = "resource_not_found",
    TooManyAddresses = "too_many_addresses",
    TooManyAttempts = "too_many_attempts",
    TooManyImages = "too_many_images",
    TooManyRequests = "too_many_requests",
    TooManyUnpaidOrders = "too_many_unpaid_orders",
    Unauthorized = "unauthorized",
    Unavailable = "unavailable",
    UnsupportedMediaType = "unsupported_media_type",
    UserNotFound = "user_not_found",
    UsernameTaken = "username_taken",
    ValidationFailed = "validation_failed",
    WrongPassword = "wrong_password",
    WebhooksDisabled = "webhooks_disabled",
);
