//! `expire_orders`: closes pending orders past their deadline and releases their units.

use super::Periodic;
use crate::{db::StoreError, orders::expire::ExpiryReport, services::Services};

/// Every minute (`SCHEDULE_EXPIRE_ORDERS`). Runs claim disjoint orders, and every order is
/// closed under its row lock only if still pending, so overlapping runs are harmless.
pub struct ExpireOrders;

impl Periodic for ExpireOrders {
    const NAME: &'static str = "expire_orders";
    const SCHEDULE: &'static str = "0 * * * * *";
    type Report = ExpiryReport;
    type Error = StoreError;

    async fn run(services: &Services) -> Result<ExpiryReport, StoreError> {
        crate::orders::expire::expire_orders(&services.payment()).await
    }
}
