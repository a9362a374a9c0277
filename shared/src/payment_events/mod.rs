//! Payment confirmation: Stripe webhook events, from the signed request to the order's new
//! state (`docs/ARCHITECTURE.md`, "Payments").
//!
//! 1. [`receive`] (api): verify the signature over the raw body, parse just the fields we need,
//!    store the event (unique Stripe event id) if it is about one of our PaymentIntents. The
//!    caller then pushes a `payment_event` task; if that push is lost, the row stays
//!    unprocessed and the sweeper re-pushes it.
//! 2. [`process`] (worker): claim the row, learn the PaymentIntent's real state (network, no
//!    lock held), then apply it to the order under the order's row lock ([`settle`]), marking
//!    the event processed in the same transaction.
//!
//! [`dev::simulate`] makes up an event in development payment mode (no Stripe keys), so the
//! same job runs locally.

pub mod dev;
pub mod mismatch;
mod outside;
mod process;
mod receive;
pub mod reconcile;
pub mod settle;
pub mod verify;

use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use process::{EventError, EventOutcome, MAX_ATTEMPTS, process};
pub use receive::{Receipt, ReceiveError, receive};
pub use settle::{SettleError, Settlement};

use crate::{gate::StockGate, payments::Payments};

/// Event types the job acts on; every other type is acknowledged and not stored.
pub const HANDLED_EVENT_TYPES: [&str; 10] = [
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
    "payment_intent.processing",
    // Money moved in Stripe itself (the dashboard, the card network): see `outside`.
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.closed",
];

/// What the payment jobs (events, expiry, refunds) need.
#[derive(Clone)]
pub struct PaymentDeps {
    /// Postgres.
    pub pool: PgPool,
    /// Postgres for the one statement that settles a pending order (`Services::hot_pool`).
    pub hot_pool: PgPool,
    /// Redis (job completion events).
    pub redis: ConnectionManager,
    /// Deployment key prefix.
    pub prefix: String,
    /// The stock gate (units of closed orders go back to it).
    pub gate: StockGate,
    /// The payment provider.
    pub payments: Payments,
    /// `PLATFORM_FEE_BPS`: the platform's cut of each sale, in basis points.
    pub fee_bps: i64,
}

impl PaymentDeps {
    /// Returns units to the gate. A Redis failure only leaves the gate too strict until
    /// reconciliation; it never risks overselling, so it is logged rather than retried.
    pub async fn release_gate(&self, units: &[(uuid::Uuid, i32)]) {
        if let Err(e) = self.gate.release(units).await {
            tracing::warn!(error.message = %e, "could not return units to the stock gate");
        }
    }
}
