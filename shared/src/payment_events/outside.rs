//! Money Stripe moved without us: refunds made in the dashboard and card disputes. Stripe is the
//! source of truth for them; each is applied to the order, its lines and the ledger exactly
//! once, whether its events arrive twice or out of order.
//!
//! * **Refunds.** Stripe sends `charge.refunded` after every refund, full or partial, ours
//!   included, with the charge's *cumulative* `amount_refunded`. That total is applied as a high
//!   watermark over the order's `refunded_cents`: only the part we have not recorded yet moves
//!   money, so a duplicate or an older event changes nothing. A refund of the whole charge ends
//!   the order `refunded` (unshipped lines back in stock, every seller's credit reversed); a
//!   partial one is recorded as an unattributed `outside_refund` and the order becomes
//!   `partially_refunded`. While a refund job of ours is running the event waits (it is
//!   retried), so our own refund is never counted twice. `refund.*` events carry no cumulative
//!   total: they are recorded as seen, and a failed refund is reported for a human.
//! * **Disputes.** `charge.dispute.created` holds the disputed lines' net in the ledger
//!   (`dispute_hold`); `charge.dispute.closed` releases it when won and keeps it as the debit
//!   when lost. A closed dispute never reopens, so a late `created` changes nothing.

use crate::domain::OrderStatus;
use serde_json::Value;

use super::{PaymentDeps, process::EventError, settle::Settlement};
use crate::db::{self, orders::OrderRow, webhook_events::WebhookEventRow};

/// Applies a refund or dispute event about `order`.
pub(super) async fn apply(
    deps: &PaymentDeps,
    order: &OrderRow,
    event: &WebhookEventRow,
) -> Result<Settlement, EventError> {
    let object = &event.payload["data"]["object"];
    match event.event_type.as_str() {
        "charge.refunded" => charge_refunded(deps, order, event, object).await,
        "charge.dispute.created" | "charge.dispute.closed" => {
            dispute(deps, order, event, object).await
        }
        _ => refund_seen(deps, event, object).await,
    }
}

async fn charge_refunded(
    deps: &PaymentDeps,
    order: &OrderRow,
    event: &WebhookEventRow,
    charge: &Value,
) -> Result<Settlement, EventError> {
    let (Some(refunded), Some(currency)) = (
        charge["amount_refunded"].as_i64(),
        charge["currency"].as_str(),
    ) else {
        return note(deps, event, "the charge carries no refunded amount").await;
    };
    if !currency.eq_ignore_ascii_case(&order.currency) {
        tracing::error!(
            currency,
            "a refund in another currency than its order; left alone"
        );
        return note(deps, event, "refund currency differs from the order's").await;
    }
    let mut tx = deps.pool.begin().await?;
    let Some(order) = db::orders::lock(&mut tx, order.id).await? else {
        return note(deps, event, "the order no longer exists").await;
    };
    if !matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded | OrderStatus::Refunded
    ) {
        // Refunds of a payment the order never took (late or mismatching payments) are our
        // own, recorded where they were made.
        tx.rollback().await?;
        return note(deps, event, "the order was never paid; nothing to reverse").await;
    }
    if db::settlement::active_refund_job(&mut tx, order.id)
        .await?
        .is_some()
    {
        return Err(EventError::Busy(
            "a refund of this order is in progress; applied after it".into(),
        ));
    }
    let watermark = refunded.min(order.total_cents);
    if refunded > order.total_cents {
        tracing::error!(
            refunded,
            total = order.total_cents,
            "Stripe refunded more than the order"
        );
    }
    let delta = watermark - order.refunded_cents;
    if delta <= 0 {
        db::webhook_events::mark_processed(&mut tx, &event.id, Some("refund already recorded"))
            .await?;
        tx.commit().await?;
        return Ok(Settlement::AlreadySettled);
    }
    let full = watermark == order.total_cents;
    let restocked = db::outside::record_refund(&mut tx, &order, delta, full).await?;
    db::webhook_events::mark_processed(&mut tx, &event.id, None).await?;
    tx.commit().await?;
    deps.release_gate(&restocked).await;
    tracing::warn!(
        amount = delta,
        full,
        "a refund made in Stripe was applied to the order"
    );
    Ok(if full {
        Settlement::RefundedOutside
    } else {
        Settlement::PartlyRefundedOutside
    })
}

async fn refund_seen(
    deps: &PaymentDeps,
    event: &WebhookEventRow,
    refund: &Value,
) -> Result<Settlement, EventError> {
    let status = refund["status"].as_str().unwrap_or_default();
    if matches!(status, "failed" | "canceled") {
        // The money did not go back: a human must decide what the order should say.
        tracing::error!(
            refund.id = refund["id"].as_str().unwrap_or_default(),
            status,
            "a refund failed at Stripe"
        );
    }
    note(
        deps,
        event,
        "applied through the charge's cumulative refunds",
    )
    .await
}

async fn dispute(
    deps: &PaymentDeps,
    order: &OrderRow,
    event: &WebhookEventRow,
    object: &Value,
) -> Result<Settlement, EventError> {
    let (Some(id), Some(status)) = (object["id"].as_str(), object["status"].as_str()) else {
        return note(deps, event, "the dispute carries no id or status").await;
    };
    let dispute = db::outside::Dispute {
        id,
        order_id: order.id,
        amount_cents: object["amount"].as_i64().unwrap_or(order.total_cents),
        currency: object["currency"].as_str().unwrap_or(&order.currency),
        status,
        reason: object["reason"].as_str(),
    };
    let mut tx = deps.pool.begin().await?;
    db::orders::lock(&mut tx, order.id).await?;
    let status = db::outside::upsert_dispute(&mut tx, &dispute).await?;
    let settlement = match status.as_str() {
        "won" | "warning_closed" => {
            db::outside::release_dispute_hold(&mut tx, order.id).await?;
            Settlement::DisputeWon
        }
        "lost" => {
            db::outside::hold_for_dispute(&mut tx, order.id).await?;
            tracing::error!(
                dispute.id = id,
                "a dispute was lost; the sellers' funds are debited"
            );
            Settlement::DisputeLost
        }
        _ => {
            db::outside::hold_for_dispute(&mut tx, order.id).await?;
            tracing::warn!(
                dispute.id = id,
                status,
                "a payment is disputed; sellers' funds held"
            );
            Settlement::DisputeOpened
        }
    };
    db::webhook_events::mark_processed(&mut tx, &event.id, None).await?;
    tx.commit().await?;
    Ok(settlement)
}

async fn note(
    deps: &PaymentDeps,
    event: &WebhookEventRow,
    reason: &str,
) -> Result<Settlement, EventError> {
    let mut conn = deps.pool.acquire().await?;
    db::webhook_events::mark_processed(&mut conn, &event.id, Some(reason)).await?;
    Ok(Settlement::AlreadySettled)
}
