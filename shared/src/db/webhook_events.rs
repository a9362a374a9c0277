//! `webhook_events`: Stripe events, stored before they are acknowledged and processed by the
//! `payment_event` job. The row is the job's record: `processed_at IS NULL` means work is
//! pending (the sweeper re-pushes such rows), `attempts` counts deliveries.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;
use crate::domain::OrderStatus;

/// An event as the `payment_event` job reads it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookEventRow {
    /// Stripe's event id (`evt_…`), or `evt_dev_…` in development payment mode.
    pub id: String,
    /// e.g. `payment_intent.succeeded`.
    pub event_type: String,
    /// The PaymentIntent the event is about.
    pub object_id: Option<String>,
    /// The event as received.
    pub payload: Value,
    /// Deliveries so far, this one included.
    pub attempts: i32,
}

/// What [`insert_if_known`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new row: push a job for it.
    New,
    /// The event was stored before (Stripe delivers at least once).
    Duplicate,
    /// No order has this PaymentIntent: not ours, nothing stored.
    UnknownObject,
}

/// Stores an event about PaymentIntent `object_id` if an order has that intent, in one
/// statement. `payload` is the raw JSON text; Postgres parses it, so it is never re-serialised
/// on the way in.
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn insert_if_known(
    conn: &mut PgConnection,
    id: &str,
    event_type: &str,
    object_id: &str,
    payload: &str,
) -> Result<Inserted, StoreError> {
    let row = sqlx::query!(
        r#"WITH known AS (SELECT EXISTS (SELECT 1 FROM orders WHERE payment_intent_id = $3) AS yes),
         inserted AS (
             INSERT INTO webhook_events (id, event_type, object_id, payload)
             SELECT $1, $2, $3, $4::jsonb FROM known WHERE known.yes
             ON CONFLICT (id) DO NOTHING
             RETURNING 1)
         SELECT (SELECT yes FROM known) AS "known!", EXISTS (SELECT 1 FROM inserted) AS "inserted!""#,
        id,
        event_type,
        object_id,
        // Sent as text, as before: Postgres parses it (`$4::jsonb`), so it is never re-serialised.
        payload as &str
    )
    .fetch_one(conn)
    .await?;
    let (known, inserted) = (row.known, row.inserted);
    Ok(match (known, inserted) {
        (false, _) => Inserted::UnknownObject,
        (true, true) => Inserted::New,
        (true, false) => Inserted::Duplicate,
    })
}

/// Stores an event made up locally (development payment mode).
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn insert(
    conn: &mut PgConnection,
    id: &str,
    event_type: &str,
    object_id: &str,
    payload: &Value,
) -> Result<(), StoreError> {
    sqlx::query!(
        "INSERT INTO webhook_events (id, event_type, object_id, payload) VALUES ($1, $2, $3, $4)",
        id,
        event_type,
        object_id,
        payload
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims an unprocessed event for one delivery and counts it. `None` when it was processed
/// already (or does not exist), so a duplicate delivery does nothing.
///
/// There is no lease: two deliveries of the same event may run at once, and that is safe,
/// because every decision is re-made under the order's row lock from the order's current
/// state, and the event is marked processed in the same transaction as the change.
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn claim(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<WebhookEventRow>, StoreError> {
    Ok(sqlx::query_as!(
        WebhookEventRow,
        "UPDATE webhook_events SET attempts = attempts + 1
         WHERE id = $1 AND processed_at IS NULL
         RETURNING id, event_type, object_id, payload, attempts",
        id
    )
    .fetch_optional(conn)
    .await?)
}

/// An unprocessed event with what its order expects to be paid, read without claiming it:
/// what a delivery's first try decides from (`payment_events::process`). The order fields are
/// `None` when no order has the event's PaymentIntent.
#[derive(Debug, Clone)]
pub struct PendingEvent {
    /// The event; `attempts` counts the deliveries before this one.
    pub event: WebhookEventRow,
    /// The order with the event's PaymentIntent, as the payment is checked against it.
    pub order: Option<PendingEventOrder>,
}

/// The fields of an order a payment is verified against.
#[derive(Debug, Clone)]
pub struct PendingEventOrder {
    /// The order.
    pub id: Uuid,
    /// Where it is now (read, not locked).
    pub status: OrderStatus,
    /// Its total in minor units.
    pub total_cents: i64,
    /// Its currency.
    pub currency: String,
    /// Its PaymentIntent.
    pub payment_intent_id: Option<String>,
}

/// Event `id` if it is unprocessed, with its order, in one read that writes nothing.
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn pending_with_order(
    conn: &mut PgConnection,
    id: &str,
) -> Result<Option<PendingEvent>, StoreError> {
    let row = sqlx::query!(
        r#"SELECT e.id, e.event_type, e.object_id, e.payload, e.attempts,
                  o.id AS "order_id?", o.status AS "order_status?: OrderStatus",
                  o.total_cents AS "total_cents?", o.currency AS "currency?",
                  o.payment_intent_id AS "payment_intent_id?"
           FROM webhook_events e LEFT JOIN orders o ON o.payment_intent_id = e.object_id
           WHERE e.id = $1 AND e.processed_at IS NULL"#,
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| PendingEvent {
        order: match (r.order_id, r.order_status, r.total_cents, r.currency) {
            (Some(id), Some(status), Some(total_cents), Some(currency)) => {
                Some(PendingEventOrder {
                    id,
                    status,
                    total_cents,
                    currency,
                    payment_intent_id: r.payment_intent_id,
                })
            }
            _ => None,
        },
        event: WebhookEventRow {
            id: r.id,
            event_type: r.event_type,
            object_id: r.object_id,
            payload: r.payload,
            attempts: r.attempts,
        },
    }))
}

/// Marks an event processed, with an optional note (why it was ignored, or why it was given
/// up). Call it in the transaction that applies the event.
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn mark_processed(
    conn: &mut PgConnection,
    id: &str,
    note: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE webhook_events SET processed_at = now(), error = $2 WHERE id = $1",
        id,
        note
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records why a delivery failed; the event stays unprocessed and is retried after
/// `retry_in` (the sweeper re-pushes it if that retry's task is lost).
#[tracing::instrument(skip_all, fields(event.id = %id))]
pub async fn record_error(
    conn: &mut PgConnection,
    id: &str,
    error: &str,
    retry_in: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query!(
        "UPDATE webhook_events SET error = $2, retry_at = now() + make_interval(secs => $3)
         WHERE id = $1 AND processed_at IS NULL",
        id,
        error,
        retry_in.as_secs_f64()
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ids of unprocessed events, oldest first (tests and the sweeper).
#[tracing::instrument(skip_all)]
pub async fn unprocessed_ids(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar!(
        "SELECT id FROM webhook_events WHERE processed_at IS NULL ORDER BY received_at, id"
    )
    .fetch_all(conn)
    .await?)
}
