//! Orders: the buyer's and the seller's views, cancellation, refunds and shipments.

use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use serde_json::Value;
use shared::{
    db::orders::{OrderLineRow, OrderRole},
    domain::{ValidationErrors, cursor::OrderCursor},
    jobs::{Job as _, RefundOrder},
    orders::{
        self,
        refund::{self, RefundScope},
        ship::{self, Shipment},
        view::OrderView,
    },
    queue::JobTask,
};
use uuid::Uuid;

use super::{
    Tag,
    checkout::JobAccepted,
    images::{self, Urls},
};
use crate::{
    AppState,
    error::{ApiError, ErrorCode},
    fields::{
        IdList, Int, Text,
        rules::{Opaque, PageLimit},
        text_rule,
    },
    optional_body::OptionalJson,
    page,
    security::BearerAuth,
    statuses::{LineStatus, OrderStatus},
};

text_rule!(
    /// Whose orders: as buyer or as seller.
    Role, |schema| {
        schema.enum_items = vec!["buyer".into(), "seller".into()];
    }
);
text_rule!(
    /// A carrier's tracking code.
    TrackingCode = ship::TRACKING_CODE
);

pub struct OrdersApi {
    pub state: AppState,
}

/// A line, as bought (a snapshot: later listing edits do not change it).
#[derive(Object)]
struct OrderLine {
    id: Uuid,
    #[oai(nullable)]
    listing_id: Option<Uuid>,
    title: String,
    unit_price_cents: i64,
    currency: String,
    quantity: i32,
    #[oai(nullable)]
    seller_id: Option<Uuid>,
    seller_username: String,
    status: LineStatus,
    #[oai(nullable)]
    tracking_code: Option<String>,
    /// The listing's main thumbnail when it was bought; null if it had none.
    #[oai(nullable)]
    thumb_url: Option<String>,
}

impl OrderLine {
    fn new(l: OrderLineRow, urls: &Urls) -> Self {
        Self {
            thumb_url: l.image_key.as_ref().and_then(|k| urls.get(k).cloned()),
            id: l.id,
            listing_id: l.listing_id,
            title: l.title,
            unit_price_cents: l.unit_price_cents,
            currency: l.currency,
            quantity: l.quantity,
            seller_id: l.seller_id,
            seller_username: l.seller_username,
            status: l.status.into(),
            tracking_code: l.tracking_code,
        }
    }
}

/// An order.
#[derive(Object)]
struct Order {
    id: Uuid,
    status: OrderStatus,
    #[oai(nullable)]
    status_reason: Option<String>,
    /// Total of the lines shown (a seller sees only their own lines and their total).
    total_cents: i64,
    currency: String,
    lines: Vec<OrderLine>,
    shipping_address: Value,
    #[oai(nullable)]
    payment_intent_id: Option<String>,
    /// Only for the buyer, only while payment is pending.
    #[oai(nullable)]
    client_secret: Option<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// One page of orders, newest first.
#[derive(Object)]
struct OrderPage {
    items: Vec<Order>,
    #[oai(nullable)]
    next_cursor: Option<String>,
}

#[derive(ApiResponse)]
enum Cancelled {
    /// The order is cancelled and its units released.
    #[oai(status = 200)]
    Order(Json<Order>),
}

/// Lines a seller has shipped.
#[derive(Object)]
struct ShipmentRequest {
    /// Lines of this order, all sold by the caller and awaiting shipment (1–100).
    line_ids: IdList,
    /// The carrier's tracking code, 1–150 characters.
    tracking_code: Text<TrackingCode>,
}

/// Which lines to refund.
#[derive(Object)]
struct RefundRequest {
    /// Lines of this order awaiting shipment (1–100). A buyer may name any of them, a seller
    /// only their own. Leave the body out to refund the whole order (buyer only, and only while
    /// nothing has shipped).
    line_ids: IdList,
}

#[derive(ApiResponse)]
enum RefundAccepted {
    /// Refund accepted (or already under way: the same job); poll the job for the outcome.
    #[oai(status = 202)]
    Job(Json<JobAccepted>),
}

impl Order {
    fn new(v: OrderView, urls: &Urls) -> Self {
        let order = v.order;
        Self {
            id: order.id,
            status: order.status.into(),
            status_reason: order.status_reason,
            total_cents: v.total_cents,
            currency: order.currency,
            lines: v
                .lines
                .into_iter()
                .map(|l| OrderLine::new(l, urls))
                .collect(),
            shipping_address: order.shipping_address,
            payment_intent_id: v.payment_intent_id,
            client_secret: v.client_secret,
            created_at: order.created_at,
            expires_at: order.expires_at,
        }
    }
}

impl OrdersApi {
    /// The order as `viewer` may see it (`orders::view`); 404 for anyone else.
    async fn visible(&self, id: Uuid, viewer: Uuid) -> Result<Order, ApiError> {
        let mut conn = self.state.pool.acquire().await?;
        let view = orders::view::one(&mut conn, id, viewer)
            .await?
            .ok_or_else(|| ApiError::not_found(ErrorCode::OrderNotFound))?;
        drop(conn);
        let urls = self.urls(std::slice::from_ref(&view)).await?;
        Ok(Order::new(view, &urls))
    }

    /// The URLs of the thumbnails the lines of `views` were bought with.
    async fn urls(&self, views: &[OrderView]) -> Result<Urls, ApiError> {
        let keys: Vec<&str> = views
            .iter()
            .flat_map(|v| v.lines.iter().filter_map(|l| l.image_key.as_deref()))
            .collect();
        images::urls(&self.state.images, &keys).await
    }
}

#[OpenApi(prefix_path = "/api/v1/orders", tag = "Tag::Orders")]
impl OrdersApi {
    /// The signed-in user's orders as buyer (default) or seller, newest first.
    #[oai(path = "/", method = "get", operation_id = "list_orders")]
    async fn list(
        &self,
        auth: BearerAuth,
        /// `buyer` (default) or `seller`.
        role: Query<Option<Text<Role>>>,
        /// Page size, 1–100 (default 20).
        limit: Query<Option<Int<PageLimit>>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<Text<Opaque>>>,
    ) -> Result<Json<OrderPage>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let role = match role.0.as_ref().map(Text::as_str) {
            None | Some("buyer") => OrderRole::Buyer,
            Some("seller") => OrderRole::Seller,
            Some(_) => {
                return Err(ValidationErrors::single("role", "must be buyer or seller").into());
            }
        };
        let limit = page::limit(limit.0)?;
        let before = cursor
            .0
            .as_ref()
            .map(|c| OrderCursor::decode(c.as_str()))
            .transpose()?
            .map(|c| c.0);
        let mut conn = self.state.pool.acquire().await?;
        let (views, more) = orders::view::page(&mut conn, user.id, role, before, limit).await?;
        drop(conn);
        let next_cursor = page::next_cursor(more, &views, |v| OrderCursor(v.order.id).encode());
        let urls = self.urls(&views).await?;
        let items = views.into_iter().map(|v| Order::new(v, &urls)).collect();
        Ok(Json(OrderPage { items, next_cursor }))
    }

    /// One order (its buyer, or a seller of one of its lines).
    #[oai(path = "/:id", method = "get", operation_id = "get_order")]
    async fn get(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Json<Order>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        Ok(Json(self.visible(id.0, user.id).await?))
    }

    /// Cancel a pending order (buyer only): the payment is cancelled and the units released.
    #[oai(path = "/:id/cancel", method = "post", operation_id = "cancel_order")]
    async fn cancel(&self, auth: BearerAuth, id: Path<Uuid>) -> Result<Cancelled, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let s = &self.state;
        orders::cancel(&s.pool, &s.gate, &s.payments, id.0, user.id).await?;
        Ok(Cancelled::Order(Json(self.visible(id.0, user.id).await?)))
    }

    /// Refund lines of a paid order that have not shipped. With `{"line_ids": [...]}` the
    /// buyer refunds any of them and a seller their own; with no body the buyer refunds the
    /// whole order, while nothing has shipped. Answers 202 with a job to poll: exactly those
    /// lines' total is refunded, their units go back in stock, and the order ends
    /// `partially_refunded`, or `refunded` once every line is.
    #[oai(path = "/:id/refund", method = "post", operation_id = "refund_order")]
    async fn refund(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: OptionalJson<RefundRequest>,
    ) -> Result<RefundAccepted, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let line_ids = body.0.as_ref().map(|b| b.line_ids.0.as_slice());
        let scope = RefundScope::parse(line_ids)?;
        let accepted = refund::request(&self.state.pool, id.0, user.id, &scope).await?;
        if accepted.created {
            // The row is committed: if this push is lost, the sweeper re-pushes the job.
            let task = JobTask::new(accepted.job_id);
            RefundOrder::enqueue_committed(&self.state.queue, task).await;
        }
        Ok(RefundAccepted::Job(Json(JobAccepted::new(accepted.job_id))))
    }

    /// Mark lines as shipped, with a tracking code (only the seller of every named line; the
    /// order must be paid and the lines not shipped yet). Answers with the seller's view.
    #[oai(
        path = "/:id/shipments",
        method = "post",
        operation_id = "create_shipment"
    )]
    async fn ship(
        &self,
        auth: BearerAuth,
        id: Path<Uuid>,
        body: Json<ShipmentRequest>,
    ) -> Result<Json<Order>, ApiError> {
        let user = self.state.user(auth.token()).await?;
        let shipment = Shipment::parse(&body.line_ids.0, body.tracking_code.as_str())?;
        ship::ship(&self.state.pool, id.0, user.id, &shipment).await?;
        Ok(Json(self.visible(id.0, user.id).await?))
    }
}
