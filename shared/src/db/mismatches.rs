//! Payments that did not match their order, kept for the operator.

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::payments::matching::Mismatch;

/// What one report of a mismatching payment records.
#[derive(Debug, Clone)]
pub struct MismatchReport<'a> {
    /// The PaymentIntent Stripe reported.
    pub intent_id: &'a str,
    /// The order it was reported for.
    pub order_id: Uuid,
    /// Where it was noticed (`webhook`, `expiry`, `cancel`, `late_refund`).
    pub source: &'static str,
    /// The fields that disagree.
    pub mismatches: &'a [Mismatch],
    /// The webhook event, when one carried it.
    pub event_id: Option<&'a str>,
    /// The refund that sent the money back, once made.
    pub refund_id: Option<&'a str>,
}

/// Records (or counts again) a mismatching payment.
#[tracing::instrument(skip_all, fields(order.id = %report.order_id))]
pub async fn record(
    conn: &mut PgConnection,
    report: &MismatchReport<'_>,
) -> Result<(), StoreError> {
    let mismatches = serde_json::to_value(report.mismatches).unwrap_or_default();
    sqlx::query!(
        "INSERT INTO payment_mismatches
             (payment_intent_id, order_id, source, mismatches, event_id, refund_id)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (payment_intent_id) DO UPDATE
         SET reports = payment_mismatches.reports + 1, mismatches = EXCLUDED.mismatches,
             event_id = coalesce(EXCLUDED.event_id, payment_mismatches.event_id),
             refund_id = coalesce(EXCLUDED.refund_id, payment_mismatches.refund_id)",
        report.intent_id,
        report.order_id,
        report.source,
        mismatches,
        report.event_id,
        report.refund_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds the refund that sent a mismatching payment back (no-op for `None`).
#[tracing::instrument(skip_all)]
pub async fn add_refund(
    conn: &mut PgConnection,
    intent_id: &str,
    refund_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE payment_mismatches SET refund_id = coalesce($2, refund_id)
         WHERE payment_intent_id = $1",
        intent_id,
        refund_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
