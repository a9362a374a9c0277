//! Stripe webhooks: verified over the raw body, stored, then processed by the worker.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Header,
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef},
};
use shared::{
    jobs::{Job as _, PaymentEvent},
    payment_events::{self, Receipt},
    queue::WebhookEventTask,
};

use super::Tag;
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{Text, rules::HeaderText},
};

pub struct WebhooksApi {
    pub state: AppState,
}

/// A request body kept exactly as received. The signature covers the bytes, so the event must
/// not pass through a JSON type that would re-serialise it. Documented
/// as a JSON object; any content type is accepted, since only the signature decides.
pub struct RawJson(pub Vec<u8>);

impl Payload for RawJson {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(_content_type: &str) -> bool {
        true
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some("A Stripe event, exactly as Stripe sent and signed it."),
            ..MetaSchema::new("object")
        }))
    }
}

impl ParsePayload for RawJson {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(
            <Vec<u8> as poem::FromRequest>::from_request(request, body).await?,
        ))
    }
}

// The one-argument form of the macro recurses by an unqualified name, which only resolves
// inside poem-openapi; the two-argument form (no extra bounds) works from here.
poem_openapi::impl_apirequest_for_payload!(RawJson,);

/// The acknowledgement Stripe gets.
#[derive(Object)]
struct WebhookAck {
    /// `stored` (new, will be processed), `duplicate` (seen before) or `ignored` (not an event
    /// we act on, or about a payment we did not create).
    status: String,
}

#[derive(ApiResponse)]
enum Acknowledged {
    /// The event is durably stored (or needs no processing).
    #[oai(status = 200)]
    Ok(Json<WebhookAck>),
}

#[OpenApi(prefix_path = "/api/v1/webhooks", tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// Stripe webhook endpoint. The `Stripe-Signature` header is checked against
    /// `STRIPE_WEBHOOK_SECRET` over the raw body (300 s tolerance); a bad signature or an
    /// unreadable event is 400. The event is stored before the answer, so a 200 means it will
    /// be processed; deliveries of the same event are acknowledged once. Without a webhook
    /// secret (typical of development payment mode) every request is 400 `webhooks_disabled`.
    #[oai(
        path = "/stripe",
        method = "post",
        operation_id = "receive_stripe_webhook"
    )]
    async fn stripe(
        &self,
        #[oai(name = "Stripe-Signature")] signature: Header<Option<Text<HeaderText>>>,
        body: RawJson,
    ) -> Result<Acknowledged, ApiError> {
        let state = &self.state;
        let Some(secret) = &state.settings.stripe.webhook_secret else {
            if !state.payments.is_dev() {
                tracing::error!("Stripe webhook refused: STRIPE_WEBHOOK_SECRET is not set");
            }
            return Err(ApiError::bad_request(
                ErrorCode::WebhooksDisabled,
                "webhooks are disabled: STRIPE_WEBHOOK_SECRET is not set",
            ));
        };
        let receipt = payment_events::receive(
            &state.pool,
            secret,
            signature.0.as_ref().map(Text::as_str),
            &body.0,
            chrono::Utc::now().timestamp(),
        )
        .await?;
        let status = match receipt {
            Receipt::Stored { event_id } => {
                // The row is committed: if this push is lost, the sweeper re-pushes the event.
                let task = WebhookEventTask::new(event_id);
                PaymentEvent::enqueue_committed(&state.queue, task).await;
                "stored"
            }
            Receipt::Duplicate => "duplicate",
            Receipt::Ignored => "ignored",
        };
        Ok(Acknowledged::Ok(Json(WebhookAck {
            status: status.to_owned(),
        })))
    }
}
