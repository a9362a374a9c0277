//! What the buyer and the sellers of an order see of it. The buyer sees the whole order; a
//! seller sees only their own lines, at the total of those lines, and never the payment's
//! identifiers or secret; anyone else does not see the order at all.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    db::{
        self, StoreError,
        orders::{OrderLineRow, OrderRole, OrderRow},
    },
    domain::{
        OrderStatus,
        money::{checked_sum, line_total},
    },
};

/// An order as one viewer may see it.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// The order row (its totals and payment fields are the buyer's; use the fields below).
    pub order: OrderRow,
    /// The lines this viewer may see, in order.
    pub lines: Vec<OrderLineRow>,
    /// The buyer: the order's total; a seller: the total of their lines.
    pub total_cents: i64,
    /// The PaymentIntent, for the buyer only.
    pub payment_intent_id: Option<String>,
    /// The PaymentIntent's client secret, for the buyer of a pending order only.
    pub client_secret: Option<String>,
}

/// Order `id` as `viewer` may see it; `None` when they are neither its buyer nor a seller of
/// one of its lines (the caller answers 404 either way, so a stranger learns nothing).
pub async fn one(
    conn: &mut PgConnection,
    id: Uuid,
    viewer: Uuid,
) -> Result<Option<OrderView>, StoreError> {
    let Some(order) = db::orders::find(conn, id).await? else {
        return Ok(None);
    };
    let seller_filter = if order.buyer_id == Some(viewer) {
        None
    } else if db::orders::is_seller_of(conn, id, viewer).await? {
        Some(viewer)
    } else {
        return Ok(None);
    };
    let lines = db::orders::lines(conn, &[id], seller_filter).await?;
    Ok(Some(view(order, lines, viewer)))
}

/// A page of `viewer`'s orders as `role`, newest first, after the order `before`; and whether
/// more follow.
pub async fn page(
    conn: &mut PgConnection,
    viewer: Uuid,
    role: OrderRole,
    before: Option<Uuid>,
    limit: i64,
) -> Result<(Vec<OrderView>, bool), StoreError> {
    let (orders, more) = db::orders::list(conn, viewer, role, before, limit).await?;
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let seller_filter = (role == OrderRole::Seller).then_some(viewer);
    let mut lines = db::orders::lines(conn, &ids, seller_filter).await?;
    let views = orders
        .into_iter()
        .map(|order| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                lines.drain(..).partition(|l| l.order_id == order.id);
            lines = rest;
            view(order, mine, viewer)
        })
        .collect();
    Ok((views, more))
}

/// The view of `order` with the `lines` `viewer` may see.
fn view(order: OrderRow, lines: Vec<OrderLineRow>, viewer: Uuid) -> OrderView {
    let is_buyer = order.buyer_id == Some(viewer);
    let total_cents = if is_buyer {
        order.total_cents
    } else {
        seller_total(&lines)
    };
    let client_secret = (is_buyer && order.status == OrderStatus::PendingPayment)
        .then(|| order.client_secret.clone())
        .flatten();
    let payment_intent_id = is_buyer.then(|| order.payment_intent_id.clone()).flatten();
    OrderView {
        order,
        lines,
        total_cents,
        payment_intent_id,
        client_secret,
    }
}

/// The total of a seller's lines.
///
/// # Panics
/// If it overflows, which the schema rules out: every line is part of an order whose total is
/// bounded by a CHECK constraint.
fn seller_total(lines: &[OrderLineRow]) -> i64 {
    checked_sum(
        lines
            .iter()
            .map(|l| line_total(l.unit_price_cents, i64::from(l.quantity)).expect("bounded line")),
    )
    .expect("a seller's lines are part of a bounded order total")
}
