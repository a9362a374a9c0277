//! Payments in tests: posting signed Stripe webhooks, and the payment jobs (events, expiry, refunds)
//! run inline, as a worker would.

use poem::http::HeaderValue;
use serde_json::Value;
use shared::{
    jobs::{Job, RefundOrder},
    orders::{
        expire::ExpiryReport,
        refund::{self, RefundOutcome},
    },
    payment_events::{self, EventOutcome, PaymentDeps},
};

use crate::{
    TestApp, TestResponse,
    stripe::{TEST_WEBHOOK_SECRET, stripe_signature},
};

impl TestApp {
    /// What the payment jobs need, built from the app's own state and settings.
    pub fn payment_deps(&self) -> PaymentDeps {
        self.state.services.payment()
    }

    /// Runs every unprocessed webhook event once, oldest first, inline. An event whose delivery
    /// failed (and is to be retried) shows as `None`.
    pub async fn run_payment_event_jobs(&self) -> Vec<Option<EventOutcome>> {
        let mut conn = self.pool().acquire().await.expect("connection");
        let ids = shared::db::webhook_events::unprocessed_ids(&mut conn)
            .await
            .expect("unprocessed events");
        drop(conn);
        let deps = self.payment_deps();
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(payment_events::process(&deps, &id).await.ok());
        }
        outcomes
    }

    /// Runs every queued refund job once, inline.
    pub async fn run_refund_jobs(&self) -> Vec<RefundOutcome> {
        let mut conn = self.pool().acquire().await.expect("connection");
        let ids = shared::db::jobs::queued_ids(&mut conn, <RefundOrder as Job>::NAME)
            .await
            .expect("queued jobs");
        drop(conn);
        let deps = self.payment_deps();
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(refund::process(&deps, id).await.expect("refund job ran"));
        }
        outcomes
    }

    /// Runs the `expire_orders` job once, as a scheduler tick would.
    pub async fn run_expiry(&self) -> ExpiryReport {
        shared::orders::expire::expire_orders(&self.payment_deps())
            .await
            .expect("expiry ran")
    }

    /// `POST /api/v1/webhooks/stripe` with `body` as raw bytes and an optional
    /// `Stripe-Signature` header.
    pub async fn post_stripe_webhook(&self, body: &[u8], signature: Option<&str>) -> TestResponse {
        let mut req = self
            .client
            .post("/api/v1/webhooks/stripe")
            .content_type("application/json; charset=utf-8")
            .body(body.to_vec());
        if let Some(signature) = signature {
            req = req.header(
                "stripe-signature",
                HeaderValue::from_str(signature).expect("header value"),
            );
        }
        Self::collect(req.send().await).await
    }

    /// Posts `event` signed now with [`TEST_WEBHOOK_SECRET`].
    pub async fn post_signed_event(&self, event: &Value) -> TestResponse {
        let body = serde_json::to_vec(event).expect("event JSON");
        let signature =
            stripe_signature(TEST_WEBHOOK_SECRET, chrono::Utc::now().timestamp(), &body);
        self.post_stripe_webhook(&body, Some(&signature)).await
    }
}
