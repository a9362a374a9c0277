//! The states the API reports, as OpenAPI enums.
//!
//! Each is stored as text in PostgreSQL under a `CHECK (status IN (...))` that lists exactly these
//! values, so reading any other is a broken invariant, not bad input.

/// Declares an enum whose variants are the given database strings.
macro_rules! db_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* #[oai(rename = $text)] $variant),+
        }

        impl $name {
            /// The variant stored as `text`.
            ///
            /// # Panics
            /// On a value the database's CHECK constraint does not allow (answered as a 500).
            pub fn from_db(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    other => panic!("{} {other:?} is not allowed by its CHECK constraint", stringify!($name)),
                }
            }
        }
    };
}

db_enum!(
    /// Where an address is in its validation.
    AddressStatus {
        /// Being geocoded.
        Pending = "pending",
        /// Usable at checkout.
        Verified = "verified",
        /// A partial match: confirm it or enter the address again.
        NeedsReview = "needs_review",
        /// Not found.
        Invalid = "invalid",
        /// Could not be checked.
        Failed = "failed",
    }
);

db_enum!(
    /// Where a background job is.
    JobStatus {
        /// Waiting for a worker.
        Queued = "queued",
        /// Being processed (or waiting for a retry).
        Running = "running",
        /// Done; `result` says what came of it.
        Succeeded = "succeeded",
        /// Given up; `error` says why.
        Failed = "failed",
    }
);

db_enum!(
    /// Where an order is.
    OrderStatus {
        /// Holding its units until paid or expired.
        PendingPayment = "pending_payment",
        /// Paid.
        Paid = "paid",
        /// Some lines refunded.
        PartiallyRefunded = "partially_refunded",
        /// Not paid in time; units released.
        Expired = "expired",
        /// Cancelled before payment.
        Cancelled = "cancelled",
        /// Every line refunded.
        Refunded = "refunded",
    }
);

db_enum!(
    /// Where one line of an order is.
    LineStatus {
        /// The order is not paid yet.
        AwaitingPayment = "awaiting_payment",
        /// Paid; the seller has not shipped it.
        AwaitingShipment = "awaiting_shipment",
        /// Shipped with a tracking code.
        Shipped = "shipped",
        /// The order was cancelled or expired.
        Cancelled = "cancelled",
        /// Refunded.
        Refunded = "refunded",
    }
);

#[cfg(test)]
mod tests {
    use poem_openapi::types::ToJSON;

    use super::*;

    #[test]
    fn statuses_are_written_as_stored() {
        assert_eq!(
            OrderStatus::from_db("partially_refunded").to_json(),
            Some("partially_refunded".into())
        );
        assert_eq!(
            AddressStatus::from_db("needs_review"),
            AddressStatus::NeedsReview
        );
    }

    #[test]
    #[should_panic(expected = "not allowed")]
    fn an_unknown_stored_status_is_a_broken_invariant() {
        LineStatus::from_db("lost");
    }
}
