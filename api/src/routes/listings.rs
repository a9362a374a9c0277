//! Listings: create, search, read, update, soft delete.

use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use shared::{
    db::{
        self,
        listings::{ListingCursor, ListingQuery, ListingRow},
        users::UserRow,
    },
    domain::{
        ListingPatch, ListingSort, NewListing, ValidationErrors, listing, money::STRIPE_MAX_CHARGE,
        no_control,
    },
};
use uuid::Uuid;

use super::{
    Tag,
    images::{self, Image},
};
use crate::{
    AppState,
    error::{ApiError, ErrorCode, OnConstraint},
    fields::{
        Int, Text, int_rule,
        rules::{NoControl, Opaque, PageLimit},
        text_rule,
    },
    page,
    security::BearerAuth,
};

text_rule!(
    /// A listing's title.
    Title = listing::TITLE
);
text_rule!(
    /// A listing's description.
    Description = listing::DESCRIPTION
);
text_rule!(
    /// A currency code.
    CurrencyCode, |schema| {
        schema.pattern = Some(listing::CURRENCY_PATTERN.to_owned());
    }
);
text_rule!(
    /// An ordering of the search.
    SortOrder, |schema| {
        schema.enum_items = ["created_at", "-created_at", "price", "-price"]
            .map(serde_json::Value::from)
            .to_vec();
    }
);
int_rule!(
    /// A unit price in minor units (a deployment may lower the maximum: `MAX_UNIT_PRICE_CENTS`).
    UnitPrice = 1, STRIPE_MAX_CHARGE
);
int_rule!(
    /// Units of a new listing.
    NewStock = 1, listing::MAX_QUANTITY
);
int_rule!(
    /// Units of a listing after a change.
    Stock = 0, listing::MAX_QUANTITY
);

pub struct ListingsApi {
    pub state: AppState,
}

/// A listing's seller.
#[derive(Object)]
struct Seller {
    id: Uuid,
    username: String,
}

/// A listing.
#[derive(Object)]
struct Listing {
    id: Uuid,
    title: String,
    description: String,
    /// Unit price in minor units.
    price_cents: i64,
    /// Lowercase ISO 4217 code.
    currency: String,
    /// Units in stock.
    quantity: i32,
    /// Units a buyer can take now (`quantity - reserved`).
    available: i32,
    seller: Seller,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// Pictures in gallery order, main first: the ready ones (its seller sees all).
    images: Vec<Image>,
    /// The first ready picture; null when there is none.
    #[oai(nullable)]
    main_image: Option<Image>,
}

impl Listing {
    fn new(l: ListingRow, images: Vec<Image>) -> Self {
        Self {
            main_image: images::main_of(&images),
            images,
            available: l.available(),
            id: l.id,
            title: l.title,
            description: l.description,
            price_cents: l.price_cents,
            currency: l.currency,
            quantity: l.quantity,
            seller: Seller {
                id: l.seller_id,
                username: l.seller_username,
            },
            is_active: l.is_active,
            created_at: l.created_at,
            updated_at: l.updated_at,
        }
    }
}

/// A new listing.
#[derive(Object)]
struct CreateListing {
    /// 3–255 characters.
    title: Text<Title>,
    /// Up to 10,000 characters.
    #[oai(nullable)]
    description: Option<Text<Description>>,
    /// Unit price in minor units, ≥ 1.
    price_cents: Int<UnitPrice>,
    /// Lowercase ISO 4217 code; default `usd`.
    #[oai(nullable)]
    currency: Option<Text<CurrencyCode>>,
    /// Units for sale, ≥ 1.
    quantity: Int<NewStock>,
}

/// Fields to change; omitted fields stay as they are.
#[derive(Object)]
struct UpdateListing {
    #[oai(nullable)]
    title: Option<Text<Title>>,
    #[oai(nullable)]
    description: Option<Text<Description>>,
    #[oai(nullable)]
    price_cents: Option<Int<UnitPrice>>,
    #[oai(nullable)]
    currency: Option<Text<CurrencyCode>>,
    /// ≥ 0, and not below the units reserved by pending orders.
    #[oai(nullable)]
    quantity: Option<Int<Stock>>,
    /// `true` reactivates a deleted or deactivated listing.
    #[oai(nullable)]
    is_active: Option<bool>,
}

/// One page of listings.
#[derive(Object)]
struct ListingPage {
    items: Vec<Listing>,
    /// Pass as `cursor` to get the next page; null on the last page.
    #[oai(nullable)]
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum Created {
    /// Listing created.
    #[oai(status = 201)]
    Listing(Json<Listing>),
}

#[derive(ApiResponse)]
enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

impl ListingsApi {
    /// The listing if `viewer` may see it: active ones for everyone, inactive ones for their owner.
    async fn visible(&self, id: Uuid, viewer: Option<&UserRow>) -> Result<ListingRow, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        match db::listings::find(&mut conn, id).await? {
            Some(l) if l.is_active || viewer.is_some_and(|v| v.id == l.seller_id) => Ok(l),
            _ => Err(ApiError::not_found(ErrorCode::ListingNotFound)),
        }
    }

    /// The listing shown to `viewer`, with its pictures.
    async fn with_gallery(
        &self,
        row: ListingRow,
        viewer: Option<Uuid>,
    ) -> Result<Listing, ApiError> {
        let mut galleries = images::galleries(&self.state, &[row.id], viewer).await?;
        let gallery = galleries.remove(&row.id).unwrap_or_default();
        Ok(Listing::new(row, gallery))
    }

    /// The listing if `user` owns it: 404 when invisible to them, 403 when someone else's.
    async fn owned(&self, id: Uuid, user: &UserRow) -> Result<ListingRow, ApiError> {
        let listing = self.visible(id, Some(user)).await?;
        if listing.seller_id != user.id {
            return Err(ApiError::forbidden(
                ErrorCode::NotOwner,
                "only the seller can change this listing",
            ));
        }
        Ok(listing)
    }
}

#[OpenApi(prefix_path = "/api/v1/listings", tag = "Tag::Listings")]
impl ListingsApi {
    /// Put goods up for sale.
    #[oai(path = "/", method = "post", operation_id = "create_listing")]
    async fn create(
        &self,
        auth: BearerAuth,
        body: Json<CreateListing>,
    ) -> Result<Created, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let b = body.0;
        let listing = NewListing::parse(
            b.title.as_str(),
            b.description.as_ref().map(Text::as_str),
            b.price_cents.get(),
            b.currency.as_ref().map(Text::as_str),
            b.quantity.get(),
            &self.state.settings.limits,
        )?;
        let mut conn = self.state.pool.acquire().await?;
        let row = db::listings::insert(&mut conn, user.id, &listing).await?;
        Ok(Created::Listing(Json(Listing::new(row, Vec::new()))))
    }

    /// Search active listings (a signed-in seller also sees their own inactive ones).
    ///
    /// `q` terms must all appear in the title, description or seller username.
    #[oai(path = "/", method = "get", operation_id = "list_listings")]
    async fn list(
        &self,
        req: &Request,
        /// Search terms, space-separated.
        q: Query<Option<Text<NoControl>>>,
        /// Only this seller's listings (username).
        seller: Query<Option<Text<NoControl>>>,
        /// `created_at`, `-created_at` (default), `price` or `-price`.
        sort: Query<Option<Text<SortOrder>>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<Int<PageLimit>>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<Text<Opaque>>>,
    ) -> Result<Json<ListingPage>, ApiError> {
        let viewer = self.state.optional_user(req).await?;
        let viewer_id = viewer.as_ref().map(|v| v.id);
        let mut errors = ValidationErrors::default();
        let sort: ListingSort = sort
            .0
            .as_ref()
            .map_or(Ok(ListingSort::default()), |s| s.as_str().parse())
            .unwrap_or_else(|e| {
                errors.0.extend(e.0);
                ListingSort::default()
            });
        let limit = errors
            .check(page::limit(limit.0))
            .unwrap_or(page::DEFAULT_LIMIT);
        // A bad cursor is refused on its own (400), before any other check.
        let cursor = cursor
            .0
            .as_ref()
            .map(|c| ListingCursor::decode(c.as_str(), sort))
            .transpose()?;
        for (field, value) in [("q", &q.0), ("seller", &seller.0)] {
            if let Some(value) = value {
                errors.check(no_control(field, value.as_str()));
            }
        }
        let terms =
            q.0.as_ref()
                .map_or("", |q| q.as_str())
                .split_whitespace()
                .take(10)
                .map(str::to_owned)
                .collect();
        let query = errors.finish(|| ListingQuery {
            terms,
            seller: seller.0.map(|s| s.as_str().to_owned()),
            sort,
            limit,
            cursor,
            viewer: viewer_id,
        })?;
        let mut conn = self.state.pool.acquire().await?;
        let (rows, has_more) = db::listings::search(&mut conn, &query).await?;
        drop(conn);
        let next_cursor =
            page::next_cursor(has_more, &rows, |r| ListingCursor::after(r, sort).encode());
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut galleries = images::galleries(&self.state, &ids, viewer_id).await?;
        Ok(Json(ListingPage {
            items: rows
                .into_iter()
                .map(|r| {
                    let gallery = galleries.remove(&r.id).unwrap_or_default();
                    Listing::new(r, gallery)
                })
                .collect(),
            next_cursor,
        }))
    }

    /// One listing (inactive ones only for their seller).
    #[oai(path = "/:id", method = "get", operation_id = "get_listing")]
    async fn get(&self, req: &Request, id: Path<Uuid>) -> Result<Json<Listing>, ApiError> {
        let viewer = self.state.optional_user(req).await?;
        let row = self.visible(id.0, viewer.as_ref()).await?;
        Ok(Json(self.with_gallery(row, viewer.map(|v| v.id)).await?))
    }

    /// Change a listing (seller only). `is_active: true` reactivates it.
    #[oai(path = "/:id", method = "patch", operation_id = "update_listing")]
    async fn update(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: Json<UpdateListing>,
    ) -> Result<Json<Listing>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let b = body.0;
        let patch = ListingPatch::parse(
            b.title.as_ref().map(Text::as_str),
            b.description.as_ref().map(Text::as_str),
            b.price_cents.as_ref().map(Int::get),
            b.currency.as_ref().map(Text::as_str),
            b.quantity.as_ref().map(Int::get),
            b.is_active,
            &self.state.settings.limits,
        )?;
        self.owned(id.0, &user).await?;
        let mut conn = self.state.pool.acquire().await?;
        let row = db::listings::update(&mut conn, id.0, &patch)
            .await
            .on_constraint("listings_reserved_within_quantity", || {
                ApiError::conflict(
                    ErrorCode::QuantityBelowReserved,
                    "quantity cannot be lower than the units reserved by pending orders",
                    serde_json::json!({ "field": "quantity" }),
                )
            })?;
        // The stock gate's counter no longer matches a changed quantity or activity; a stale
        // one would refuse a restocked listing (or admit a reduced one) until reconciliation.
        // Reloaded from Postgres on the next checkout.
        if (patch.quantity.is_some() || patch.is_active.is_some())
            && let Err(e) = self.state.gate.forget(id.0).await
        {
            tracing::warn!(error.message = %e, "could not reset the stock gate counter");
        }
        Ok(Json(self.with_gallery(row, Some(user.id)).await?))
    }

    /// Delete (deactivate) a listing (seller only). It can be reactivated with PATCH.
    #[oai(path = "/:id", method = "delete", operation_id = "delete_listing")]
    async fn delete(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<NoContent, ApiError> {
        let user = self.state.user(auth.token()).await?;
        self.owned(id.0, &user).await?;
        let mut conn = self.state.pool.acquire().await?;
        db::listings::soft_delete(&mut conn, id.0).await?;
        Ok(NoContent::Done)
    }
}
