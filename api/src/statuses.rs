//! The states the API reports, as OpenAPI enums.
//!
//! Each mirrors a status enum of `shared::domain` (stored as text in PostgreSQL under a
//! `CHECK (status IN (...))`), with the same names and values; the conversion is an exhaustive
//! match, so a status added in `shared` does not compile until it is added here.

/// Declares an OpenAPI enum whose variants are those of the `shared::domain` enum `$from`, with
/// the given names in the document.
macro_rules! db_enum {
    ($(#[$doc:meta])* $name:ident from $from:path { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
        pub enum $name {
            $($(#[$vdoc])* #[oai(rename = $text)] $variant),+
        }

        impl From<$from> for $name {
            fn from(status: $from) -> Self {
                use $from as Stored;
                match status {
                    $(Stored::$variant => Self::$variant,)+
                }
            }
        }
    };
}

db_enum!(
    /// Where an address is in its validation.
    AddressStatus from shared::domain::AddressStatus {
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
    /// Where an uploaded image is in its processing.
    ImageStatus from shared::domain::ImageStatus {
        /// Stored and validated; its renditions are being made (shown to its owner only).
        Pending = "pending",
        /// Processed: shown to everyone.
        Ready = "ready",
        /// Could not be processed (shown to its owner only, who can delete it).
        Failed = "failed",
    }
);

db_enum!(
    /// Where a background job is.
    JobStatus from shared::domain::JobStatus {
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
    OrderStatus from shared::domain::OrderStatus {
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
    LineStatus from shared::domain::LineStatus {
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
    use shared::domain;

    use super::*;

    #[test]
    fn statuses_are_written_as_stored() {
        assert_eq!(
            OrderStatus::from(domain::OrderStatus::PartiallyRefunded).to_json(),
            Some("partially_refunded".into())
        );
        assert_eq!(
            AddressStatus::from(domain::AddressStatus::NeedsReview),
            AddressStatus::NeedsReview
        );
    }

    /// Every stored value is written in the document exactly as the database holds it.
    #[test]
    fn every_status_is_written_as_its_stored_text() {
        fn check<S: Copy, A: From<S> + ToJSON>(all: &[S], as_str: fn(S) -> &'static str) {
            for s in all {
                assert_eq!(A::from(*s).to_json(), Some(as_str(*s).into()));
            }
        }
        check::<_, OrderStatus>(domain::OrderStatus::ALL, domain::OrderStatus::as_str);
        check::<_, LineStatus>(domain::LineStatus::ALL, domain::LineStatus::as_str);
        check::<_, JobStatus>(domain::JobStatus::ALL, domain::JobStatus::as_str);
        check::<_, AddressStatus>(domain::AddressStatus::ALL, domain::AddressStatus::as_str);
    }
}
