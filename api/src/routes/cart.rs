//! The buyer's cart.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use shared::{cart, db};
use uuid::Uuid;

use super::{Tag, images};
use crate::{
    AppState,
    error::ApiError,
    fields::{Int, int_rule},
    security::BearerAuth,
};

int_rule!(
    /// Units of one listing in the cart (a deployment may lower the maximum: `MAX_LINE_QUANTITY`).
    LineQuantity = 1, shared::domain::money::MAX_LINE_QUANTITY_CEILING
);

pub struct CartApi {
    pub state: AppState,
}

/// One listing in the cart, at its current price.
#[derive(Object)]
struct CartItem {
    listing_id: Uuid,
    title: String,
    unit_price_cents: i64,
    currency: String,
    quantity: i32,
    line_total_cents: i64,
    /// Units that can be bought now (0 if the listing was deactivated).
    available: i32,
    /// The listing's main thumbnail; null if it has none.
    #[oai(nullable)]
    thumb_url: Option<String>,
}

/// The cart.
#[derive(Object)]
struct Cart {
    items: Vec<CartItem>,
    total_cents: i64,
    currency: String,
}

impl Cart {
    /// The cart with the thumbnails of its listings.
    async fn shown(state: &AppState, c: cart::Cart) -> Result<Self, ApiError> {
        let ids: Vec<Uuid> = c.lines.iter().map(|l| l.listing_id).collect();
        let mut galleries = images::galleries(state, &ids, None).await?;
        Ok(Self {
            items: c
                .lines
                .into_iter()
                .map(|l| CartItem {
                    thumb_url: galleries
                        .remove(&l.listing_id)
                        .and_then(|g| images::main_of(&g))
                        .and_then(|m| m.thumb_url),
                    line_total_cents: l.line_total_cents(),
                    listing_id: l.listing_id,
                    title: l.title,
                    unit_price_cents: l.unit_price_cents,
                    currency: l.currency,
                    quantity: l.quantity,
                    available: l.available,
                })
                .collect(),
            total_cents: c.total_cents,
            currency: c.currency,
        })
    }
}

/// How many units to hold in the cart.
#[derive(Object)]
struct SetQuantity {
    /// Between 1 and the listing's available units.
    quantity: Int<LineQuantity>,
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

#[OpenApi(prefix_path = "/api/v1/cart", tag = "Tag::Cart")]
impl CartApi {
    /// The signed-in buyer's cart.
    #[oai(path = "/", method = "get", operation_id = "get_cart")]
    async fn get(&self, auth: BearerAuth) -> Result<Json<Cart>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let cart = cart::load(&self.state.pool, user.id).await?;
        Ok(Json(Cart::shown(&self.state, cart).await?))
    }

    /// Set the quantity of a listing in the cart (adds it if absent).
    #[oai(
        path = "/items/:listing_id",
        method = "put",
        operation_id = "set_cart_item"
    )]
    async fn put_item(
        &self,
        auth: BearerAuth,
        listing_id: Path<Uuid>,
        body: Json<SetQuantity>,
    ) -> Result<Json<Cart>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        cart::set_item(
            &self.state.pool,
            &self.state.settings.limits,
            user.id,
            listing_id.0,
            body.quantity.get(),
        )
        .await?;
        let cart = cart::load(&self.state.pool, user.id).await?;
        Ok(Json(Cart::shown(&self.state, cart).await?))
    }

    /// Remove a listing from the cart.
    #[oai(
        path = "/items/:listing_id",
        method = "delete",
        operation_id = "delete_cart_item"
    )]
    async fn delete_item(
        &self,
        auth: BearerAuth,
        listing_id: Path<Uuid>,
    ) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        db::cart::delete_line(&mut conn, user.id, listing_id.0).await?;
        Ok(NoContent::Done)
    }

    /// Empty the cart.
    #[oai(path = "/", method = "delete", operation_id = "clear_cart")]
    async fn clear(&self, auth: BearerAuth) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let mut conn = self.state.pool.acquire().await?;
        db::cart::clear(&mut conn, user.id).await?;
        Ok(NoContent::Done)
    }
}
