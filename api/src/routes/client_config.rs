//! What the web client needs to know about this deployment before it can take a payment.

use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json};

use super::Tag;
use crate::AppState;

pub struct ClientConfigApi {
    pub state: AppState,
}

/// How this deployment takes payments.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
enum PaymentMode {
    /// Development payments: no Stripe; `POST /api/v1/dev/orders/{id}/payment` declares the
    /// outcome.
    Dev,
    /// Real payments through Stripe: confirm the order's `client_secret` with Stripe.js.
    Stripe,
}

/// Public settings of this deployment.
#[derive(Object)]
struct ClientConfig {
    /// How payments are taken.
    payment_mode: PaymentMode,
    /// Stripe's publishable key for Stripe.js; absent in development mode or when unset.
    #[oai(skip_serializing_if_is_none)]
    #[oai(nullable)]
    stripe_publishable_key: Option<String>,
}

#[derive(ApiResponse)]
enum ConfigResponse {
    /// The deployment's public settings.
    #[oai(status = 200)]
    Ok(Json<ClientConfig>),
}

#[OpenApi(prefix_path = "/api/v1/config", tag = "Tag::Health")]
impl ClientConfigApi {
    /// Public settings the web client needs: the payment mode and Stripe's publishable key.
    #[oai(path = "/", method = "get", operation_id = "get_client_config")]
    async fn get(&self) -> ConfigResponse {
        let stripe = &self.state.settings.stripe;
        let (payment_mode, key) = if self.state.payments.is_dev() {
            (PaymentMode::Dev, None)
        } else {
            (PaymentMode::Stripe, stripe.publishable_key.clone())
        };
        ConfigResponse::Ok(Json(ClientConfig {
            payment_mode,
            stripe_publishable_key: key,
        }))
    }
}
