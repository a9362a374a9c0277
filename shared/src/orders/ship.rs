//! Sellers shipping the lines they sold.

use crate::domain::{LineStatus, OrderStatus};
use std::collections::BTreeSet;

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    db::{self, StoreError, orders::OrderLineRow},
    domain::{TextRule, ValidationErrors},
};

/// A carrier's tracking code.
pub const TRACKING_CODE: TextRule = TextRule::line(1, 150);

/// Most lines one shipment may name.
pub const MAX_LINES: usize = 100;

/// A validated shipment: distinct line ids and a trimmed tracking code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    /// The lines shipped, sorted, without duplicates.
    pub line_ids: Vec<Uuid>,
    /// The carrier's tracking code, 1–150 characters.
    pub tracking_code: String,
}

impl Shipment {
    /// Validates a shipment request.
    pub fn parse(line_ids: &[Uuid], tracking_code: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let tracking_code = errors.check(TRACKING_CODE.check("tracking_code", tracking_code));
        // Counted as sent (the document's `minItems`/`maxItems`); repeats are merged.
        if line_ids.is_empty() || line_ids.len() > MAX_LINES {
            errors.0.extend(
                ValidationErrors::single("line_ids", format!("must name 1 to {MAX_LINES} lines")).0,
            );
        }
        let distinct: BTreeSet<Uuid> = line_ids.iter().copied().collect();
        errors.finish(|| Self {
            line_ids: distinct.into_iter().collect(),
            tracking_code: tracking_code.unwrap_or_default(),
        })
    }
}

/// Why a shipment was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// The caller neither bought nor sells anything in this order.
    #[error("order not found")]
    OrderNotFound,
    /// Named lines are not part of this order.
    #[error("these lines are not part of the order")]
    UnknownLines(Vec<Uuid>),
    /// Named lines are sold by someone else (or the caller is the buyer).
    #[error("only the seller of a line can ship it")]
    NotSeller(Vec<Uuid>),
    /// The order is not paid.
    #[error("only paid orders can be shipped (this one is {0})")]
    NotPaid(String),
    /// The buyer asked for a refund that is being processed.
    #[error("a refund of this order is in progress")]
    RefundInProgress,
    /// Named lines are not awaiting shipment (already shipped, or refunded).
    #[error("these lines are not awaiting shipment")]
    NotShippable(Vec<Uuid>),
    /// Database failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ShipError {
    fn from(e: sqlx::Error) -> Self {
        ShipError::Store(e.into())
    }
}

/// Marks the shipment's lines of order `order_id` as shipped by `seller_id`. All or nothing:
/// every named line must belong to the order, be sold by `seller_id`, and await shipment.
#[tracing::instrument(skip_all, fields(order.id = %order_id, user.id = %seller_id))]
pub async fn ship(
    pool: &PgPool,
    order_id: Uuid,
    seller_id: Uuid,
    shipment: &Shipment,
) -> Result<(), ShipError> {
    let mut tx = pool.begin().await?;
    // The order lock orders this against a refund request for the same order.
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .ok_or(ShipError::OrderNotFound)?;
    let lines = db::orders::lines(&mut tx, &[order_id], None).await?;
    let sells_here = lines.iter().any(|l| l.seller_id == Some(seller_id));
    if !sells_here && order.buyer_id != Some(seller_id) {
        return Err(ShipError::OrderNotFound);
    }
    let ids = &shipment.line_ids;
    let unknown = select(ids, &lines, |line| line.is_none());
    if !unknown.is_empty() {
        return Err(ShipError::UnknownLines(unknown));
    }
    let foreign = select(ids, &lines, |line| {
        line.is_some_and(|l| l.seller_id != Some(seller_id))
    });
    if !foreign.is_empty() {
        return Err(ShipError::NotSeller(foreign));
    }
    // A partly refunded order still ships its other lines.
    if !matches!(
        order.status,
        OrderStatus::Paid | OrderStatus::PartiallyRefunded
    ) {
        return Err(ShipError::NotPaid(order.status.to_string()));
    }
    if db::settlement::active_refund_job(&mut tx, order_id)
        .await?
        .is_some()
    {
        return Err(ShipError::RefundInProgress);
    }
    let not_shippable = select(ids, &lines, |line| {
        line.is_some_and(|l| l.status != LineStatus::AwaitingShipment)
    });
    if !not_shippable.is_empty() {
        return Err(ShipError::NotShippable(not_shippable));
    }
    db::settlement::ship_lines(
        &mut tx,
        order_id,
        &shipment.line_ids,
        &shipment.tracking_code,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The ids in `ids` whose line (`None`: not in the order) satisfies `keep`.
fn select(
    ids: &[Uuid],
    lines: &[OrderLineRow],
    keep: impl Fn(Option<&OrderLineRow>) -> bool,
) -> Vec<Uuid> {
    ids.iter()
        .copied()
        .filter(|id| keep(lines.iter().find(|l| l.id == *id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shipment_needs_lines_and_a_tracking_code_of_at_most_150_characters() {
        let line = Uuid::now_v7();
        let ok = Shipment::parse(&[line, line], "  1Z999AA10123456784 ").unwrap();
        assert_eq!(ok.line_ids, vec![line]);
        assert_eq!(ok.tracking_code, "1Z999AA10123456784");
        assert!(Shipment::parse(&[line], &"é".repeat(150)).is_ok());

        let err = Shipment::parse(&[], "   ").unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["tracking_code", "line_ids"]);
        assert!(Shipment::parse(&[line], &"x".repeat(151)).is_err());
        let nul = Shipment::parse(&[line], "1Z\u{0}99").unwrap_err();
        assert_eq!(nul.0[0].field, "tracking_code");
    }
}
