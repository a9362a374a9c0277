//! The states of orders, order lines, jobs, addresses and images.
//!
//! Each is stored as `text` in PostgreSQL under a `CHECK (status IN (...))` that lists exactly
//! these values (see `migrations/`), and is encoded and decoded as that text: the one mapping
//! is the `status_enum!` declaration of each enum, used by `as_str`, sqlx and serde.

/// Declares a status enum from its variants and their stored text, written once: the enum
/// (serde renamed to the same text), `as_str`, `Display` and the sqlx mapping (plain `text`,
/// so no type lookup by name on a new connection).
macro_rules! status_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The text stored in the database (and written in JSON).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'_, sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            /// A text the CHECK constraint does not allow is a decoding error (a 500), never a
            /// guess.
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == text)
                    .ok_or_else(|| format!("{} {text:?} is not allowed by its CHECK constraint", stringify!($name)).into())
            }
        }
    };
}

status_enum!(
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

status_enum!(
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

status_enum!(
    /// Where a background job is.
    JobStatus {
        /// Waiting for a worker.
        Queued = "queued",
        /// Being processed (or waiting for a retry).
        Running = "running",
        /// Done; `result` says what came of it.
        Succeeded = "succeeded",
        /// Given up; `error_code` and `error_message` say why.
        Failed = "failed",
    }
);

impl JobStatus {
    /// Whether the job reached `succeeded` or `failed`.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

status_enum!(
    /// Where an address is in its validation.
    AddressStatus {
        /// Being geocoded.
        Pending = "pending",
        /// Usable at checkout.
        Verified = "verified",
        /// A partial match: the owner confirms it or enters the address again.
        NeedsReview = "needs_review",
        /// Not found.
        Invalid = "invalid",
        /// Could not be checked.
        Failed = "failed",
    }
);

status_enum!(
    /// Where an uploaded image is in its processing.
    ImageStatus {
        /// Stored and validated; its renditions are being made.
        Pending = "pending",
        /// Processed: shown to everyone.
        Ready = "ready",
        /// Could not be processed; only its owner sees it (and can delete it).
        Failed = "failed",
    }
);

status_enum!(
    /// What an image is for.
    ImagePurpose {
        /// One of a listing's pictures.
        Listing = "listing",
        /// A user's profile picture.
        Avatar = "avatar",
    }
);

status_enum!(
    /// An accepted image format, as sniffed from the bytes.
    ImageFormat {
        /// JPEG.
        Jpeg = "jpeg",
        /// PNG.
        Png = "png",
        /// WebP.
        Webp = "webp",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    /// `as_str` (which sqlx uses) and serde agree on every variant's text.
    fn agrees<T: serde::Serialize>(all: &[T], as_str: impl Fn(&T) -> &'static str) {
        for v in all {
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::from(as_str(v))
            );
        }
    }

    #[test]
    fn text_serde_and_as_str_agree() {
        agrees(OrderStatus::ALL, |s| s.as_str());
        agrees(LineStatus::ALL, |s| s.as_str());
        agrees(JobStatus::ALL, |s| s.as_str());
        agrees(AddressStatus::ALL, |s| s.as_str());
        agrees(ImageStatus::ALL, |s| s.as_str());
        agrees(ImagePurpose::ALL, |s| s.as_str());
        agrees(ImageFormat::ALL, |s| s.as_str());
        assert_eq!(OrderStatus::PendingPayment.as_str(), "pending_payment");
        assert_eq!(LineStatus::AwaitingShipment.as_str(), "awaiting_shipment");
        assert_eq!(JobStatus::Queued.as_str(), "queued");
        assert_eq!(AddressStatus::NeedsReview.as_str(), "needs_review");
    }

    #[test]
    fn a_status_the_check_constraints_do_not_allow_is_refused() {
        assert!(serde_json::from_str::<LineStatus>("\"lost\"").is_err());
        assert!(serde_json::from_str::<OrderStatus>("\"PendingPayment\"").is_err());
    }
}
