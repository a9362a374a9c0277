//! One OpenAPI struct per resource, combined into the service here.

mod addresses;
mod auth;
mod cart;
mod checkout;
mod client_config;
mod dev_payments;
mod health;
mod images;
mod jobs;
mod listings;
mod orders;
mod users;
mod webhooks;

use poem_openapi::Tags;

use crate::AppState;

/// Groups in the OpenAPI document.
#[derive(Tags)]
pub enum Tag {
    /// Registration, tokens, logout.
    Auth,
    /// Own account and public profiles.
    Users,
    /// Goods for sale.
    Listings,
    /// Listing pictures, profile pictures and their files.
    Images,
    /// The buyer's cart.
    Cart,
    /// Shipping addresses and their validation.
    Addresses,
    /// Checking out the cart.
    Checkout,
    /// Background job status.
    Jobs,
    /// Orders for buyers and sellers.
    Orders,
    /// Liveness, readiness and the deployment's public settings.
    Health,
    /// Payment-provider callbacks (Stripe).
    Webhooks,
    /// Development payment mode only.
    Development,
}

/// Every API group, in the order they appear in the document.
pub type Apis = (
    auth::AuthApi,
    users::UsersApi,
    listings::ListingsApi,
    images::ImagesApi,
    cart::CartApi,
    addresses::AddressesApi,
    checkout::CheckoutApi,
    jobs::JobsApi,
    orders::OrdersApi,
    health::HealthApi,
    client_config::ClientConfigApi,
    webhooks::WebhooksApi,
    dev_payments::DevPaymentsApi,
);

/// Builds every API group over the same state.
pub fn apis(state: &AppState) -> Apis {
    (
        auth::AuthApi {
            state: state.clone(),
        },
        users::UsersApi {
            state: state.clone(),
        },
        listings::ListingsApi {
            state: state.clone(),
        },
        images::ImagesApi {
            state: state.clone(),
        },
        cart::CartApi {
            state: state.clone(),
        },
        addresses::AddressesApi {
            state: state.clone(),
        },
        checkout::CheckoutApi {
            state: state.clone(),
        },
        jobs::JobsApi {
            state: state.clone(),
        },
        orders::OrdersApi {
            state: state.clone(),
        },
        health::HealthApi {
            state: state.clone(),
        },
        client_config::ClientConfigApi {
            state: state.clone(),
        },
        webhooks::WebhooksApi {
            state: state.clone(),
        },
        dev_payments::DevPaymentsApi {
            state: state.clone(),
        },
    )
}
