//! Development payment mode only: pay (or fail to pay) a pending order without Stripe.

use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use shared::{
    jobs::{Job as _, PaymentEvent},
    payment_events::dev::{self, DevOutcome},
    queue::WebhookEventTask,
};
use uuid::Uuid;

use super::Tag;
use crate::{AppState, error::ApiError, security::BearerAuth};

pub struct DevPaymentsApi {
    pub state: AppState,
}

/// The payment outcome to simulate.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
enum Outcome {
    /// The buyer paid: the order becomes `paid`.
    Succeeded,
    /// The payment was declined: the order stays pending and can still be paid.
    Failed,
}

/// What to simulate.
#[derive(Object)]
struct DevPaymentRequest {
    outcome: Outcome,
}

/// The simulated event, queued for the same job that processes Stripe's.
#[derive(Object)]
struct DevPaymentAccepted {
    /// The made-up event id (`evt_dev_…`).
    event_id: String,
    /// `GET` this URL to see the order change.
    order_url: String,
}

#[derive(ApiResponse)]
enum Accepted {
    /// The event is stored and being processed.
    #[oai(status = 202)]
    Event(Json<DevPaymentAccepted>),
}

#[OpenApi(prefix_path = "/api/v1/dev", tag = "Tag::Development")]
impl DevPaymentsApi {
    /// Development payment mode only (no `STRIPE_SECRET_KEY`; 404 otherwise): the buyer
    /// declares how their pending order's payment went. The outcome is processed like a Stripe
    /// webhook event.
    #[oai(
        path = "/orders/:id/payment",
        method = "post",
        operation_id = "simulate_payment"
    )]
    async fn pay(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: Json<DevPaymentRequest>,
    ) -> Result<Accepted, ApiError> {
        if !self.state.payments.is_dev() {
            return Err(ApiError::no_such_route());
        }
        let user = self.state.user(auth.token()).await?;
        let outcome = match body.outcome {
            Outcome::Succeeded => DevOutcome::Succeeded,
            Outcome::Failed => DevOutcome::Failed,
        };
        let event_id = dev::simulate(&self.state.pool, id.0, user.id, outcome).await?;
        // The row is committed: if this push is lost, the sweeper re-pushes the event.
        let task = WebhookEventTask::new(event_id.clone());
        PaymentEvent::enqueue_committed(&self.state.queue, task).await;
        Ok(Accepted::Event(Json(DevPaymentAccepted {
            event_id,
            order_url: format!("/api/v1/orders/{}", id.0),
        })))
    }
}
