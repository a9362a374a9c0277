//! Refunds asked for in the app: by the buyer (any unshipped lines, or the whole order while
//! nothing has shipped) or by a seller (their own unshipped lines). Accepted by the api as a
//! `refund_order` job, carried out by the worker.
//!
//! Request ([`request`], api): under the order's row lock, check who asks, which lines and that
//! they can be refunded, and insert the job row with the exact amount (those lines' total). An
//! active refund job for the same lines is returned instead of a second one; one for other lines
//! is a conflict. While a refund job is queued or running, shipments of the order are refused
//! (`shipments::ship`), so goods cannot leave after the money was sent back.
//!
//! Job ([`process`], worker): claim the row; refund that amount at Stripe with the key
//! `refund-<job id>` (no lock held); then in one transaction: the lines `refunded`, their units
//! back in stock, their sellers' credit reversed, the refund recorded, the order
//! `partially_refunded` or, once every line is refunded, `refunded`; the job `succeeded`.
//!
//! The amount never exceeds what is left to refund: the database refuses
//! `refunded_cents > total_cents`, and each line can be refunded only once.

mod process;
mod request;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use process::{RefundError, RefundOutcome, process};
pub use request::{RefundAccepted, RefundRequestError, request};

use crate::domain::ValidationErrors;

/// Attempts before a refund job gives up (payment-provider outages are retried with backoff).
pub const MAX_ATTEMPTS: i32 = 8;

/// Most lines one refund request may name.
pub const MAX_LINES: usize = 100;

/// Which lines a refund request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundScope {
    /// The whole order (no body): every line, allowed only while nothing has shipped.
    WholeOrder,
    /// These lines (sorted, distinct).
    Lines(Vec<Uuid>),
}

impl RefundScope {
    /// Validates `line_ids` (`None` = the whole order): 1 to [`MAX_LINES`] distinct lines.
    pub fn parse(line_ids: Option<&[Uuid]>) -> Result<Self, ValidationErrors> {
        let Some(ids) = line_ids else {
            return Ok(Self::WholeOrder);
        };
        // Counted as sent (the document's `minItems`/`maxItems`); repeats are merged.
        let distinct: BTreeSet<Uuid> = ids.iter().copied().collect();
        if ids.is_empty() || ids.len() > MAX_LINES {
            return Err(ValidationErrors::single(
                "line_ids",
                format!("must name 1 to {MAX_LINES} lines"),
            ));
        }
        Ok(Self::Lines(distinct.into_iter().collect()))
    }
}

/// What a `refund_order` job row carries. Jobs written before refunds by line carry only the
/// order id and refund every line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayload {
    /// The order.
    pub order_id: Uuid,
    /// The lines to refund (sorted); empty in older jobs.
    #[serde(default)]
    pub line_ids: Vec<Uuid>,
    /// Their total, the amount sent back; `None` in older jobs (everything that is left).
    #[serde(default)]
    pub amount_cents: Option<i64>,
    /// `requested_by_buyer` or `requested_by_seller`.
    #[serde(default = "buyer_reason")]
    pub reason: String,
}

fn buyer_reason() -> String {
    "requested_by_buyer".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_lines_means_the_whole_order_and_named_lines_are_deduplicated() {
        assert_eq!(RefundScope::parse(None), Ok(RefundScope::WholeOrder));
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        assert_eq!(
            RefundScope::parse(Some(&[a, b, a])),
            Ok(RefundScope::Lines(vec![b, a]))
        );
        assert!(RefundScope::parse(Some(&[])).is_err());
        let many: Vec<Uuid> = (0..=MAX_LINES as u128).map(Uuid::from_u128).collect();
        assert!(RefundScope::parse(Some(&many)).is_err());
    }

    #[test]
    fn an_older_job_payload_refunds_everything_for_the_buyer() {
        let payload: RefundPayload =
            serde_json::from_value(serde_json::json!({ "order_id": Uuid::from_u128(9) })).unwrap();
        assert!(payload.line_ids.is_empty());
        assert_eq!(payload.amount_cents, None);
        assert_eq!(payload.reason, "requested_by_buyer");
    }
}
