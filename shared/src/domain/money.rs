//! Money arithmetic and its limits: integer minor units, checked at every step.
//!
//! Every sum, product and fee goes through these functions, so nothing can wrap (a release build
//! would silently wrap an `i64`) or panic (a debug build would), and every order stays within
//! what Stripe can charge. The limits are configurable ([`MoneyLimits`], from the environment)
//! but never above the hard ceilings here, which the database enforces too.

use serde::Serialize;

/// Stripe's largest charge: 99,999,999 minor units (999,999.99 in a two-decimal currency).
pub const STRIPE_MAX_CHARGE: i64 = 99_999_999;

/// The largest quantity a cart or order line can ever hold (the database's CHECK).
pub const MAX_LINE_QUANTITY_CEILING: i64 = 1_000_000;

/// Basis points in one whole.
const BPS_PER_WHOLE: i64 = 10_000;

/// The configurable money limits (each documented with its variable in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoneyLimits {
    /// `MAX_UNIT_PRICE_CENTS` (99,999,999): the highest price of one unit.
    pub max_unit_price_cents: i64,
    /// `MAX_LINE_QUANTITY` (1,000): the most units of one listing in a cart or an order.
    pub max_line_quantity: i64,
    /// `MAX_CART_LINES` (50): the most listings in one cart (and so in one order).
    pub max_cart_lines: usize,
    /// `MAX_ORDER_TOTAL_CENTS` (99,999,999, Stripe's maximum charge): the most one order may cost.
    pub max_order_total_cents: i64,
}

impl Default for MoneyLimits {
    fn default() -> Self {
        Self {
            max_unit_price_cents: STRIPE_MAX_CHARGE,
            max_line_quantity: 1_000,
            max_cart_lines: 50,
            max_order_total_cents: STRIPE_MAX_CHARGE,
        }
    }
}

/// A limit that a cart, an order or a listing would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{limit} is {max}")]
pub struct LimitExceeded {
    /// The limit's name, as in the error details: `max_unit_price_cents`, `max_line_quantity`,
    /// `max_cart_lines` or `max_order_total_cents`.
    pub limit: &'static str,
    /// Its value.
    pub max: i64,
}

impl MoneyLimits {
    /// Refuses a unit price above the limit.
    pub fn check_unit_price(&self, price_cents: i64) -> Result<(), LimitExceeded> {
        within(
            "max_unit_price_cents",
            price_cents,
            self.max_unit_price_cents,
        )
    }

    /// Refuses a line quantity above the limit.
    pub fn check_line_quantity(&self, quantity: i64) -> Result<(), LimitExceeded> {
        within("max_line_quantity", quantity, self.max_line_quantity)
    }

    /// Refuses more lines than the limit.
    pub fn check_line_count(&self, lines: usize) -> Result<(), LimitExceeded> {
        let max = i64::try_from(self.max_cart_lines).unwrap_or(i64::MAX);
        within(
            "max_cart_lines",
            i64::try_from(lines).unwrap_or(i64::MAX),
            max,
        )
    }

    /// The total of `lines` (unit price, quantity), refused when any line or the sum exceeds a
    /// limit, or when the arithmetic would overflow (which is above every limit anyway).
    pub fn order_total(
        &self,
        lines: impl IntoIterator<Item = (i64, i64)>,
    ) -> Result<i64, LimitExceeded> {
        let too_large = LimitExceeded {
            limit: "max_order_total_cents",
            max: self.max_order_total_cents,
        };
        let mut total: i64 = 0;
        let mut count = 0usize;
        for (price, quantity) in lines {
            count += 1;
            self.check_unit_price(price)?;
            self.check_line_quantity(quantity)?;
            let line = line_total(price, quantity).ok_or(too_large)?;
            total = total.checked_add(line).ok_or(too_large)?;
            if total > self.max_order_total_cents {
                return Err(too_large);
            }
        }
        self.check_line_count(count)?;
        Ok(total)
    }
}

fn within(limit: &'static str, value: i64, max: i64) -> Result<(), LimitExceeded> {
    if value > max {
        Err(LimitExceeded { limit, max })
    } else {
        Ok(())
    }
}

/// Unit price × quantity, `None` on overflow.
pub fn line_total(unit_price_cents: i64, quantity: i64) -> Option<i64> {
    unit_price_cents.checked_mul(quantity)
}

/// The sum of `amounts`, `None` on overflow.
pub fn checked_sum(amounts: impl IntoIterator<Item = i64>) -> Option<i64> {
    amounts
        .into_iter()
        .try_fold(0i64, |sum, amount| sum.checked_add(amount))
}

/// The platform's fee on `amount_cents` at `fee_bps` basis points, rounded down (the seller
/// keeps the fraction). Computed in 128 bits, so it is exact for every `i64` amount; `fee_bps`
/// is clamped to 0–10,000, so the fee is never negative and never more than the amount.
/// The ledger's SQL (`db::ledger::credit_sale`) computes the same rounding.
pub fn platform_fee(amount_cents: i64, fee_bps: i64) -> i64 {
    let bps = i128::from(fee_bps.clamp(0, BPS_PER_WHOLE));
    let fee = i128::from(amount_cents) * bps / i128::from(BPS_PER_WHOLE);
    // |fee| ≤ |amount|, so it fits.
    i64::try_from(fee).unwrap_or(amount_cents)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn limits() -> MoneyLimits {
        MoneyLimits::default()
    }

    #[test]
    fn three_lines_at_the_maximum_charge_are_refused() {
        let err = limits()
            .order_total([(STRIPE_MAX_CHARGE, 1); 3])
            .unwrap_err();
        assert_eq!(err.limit, "max_order_total_cents");
        assert_eq!(err.max, STRIPE_MAX_CHARGE);
        assert_eq!(
            limits().order_total([(STRIPE_MAX_CHARGE, 1)]),
            Ok(STRIPE_MAX_CHARGE)
        );
    }

    #[test]
    fn a_line_that_overflows_is_refused_not_wrapped() {
        let limits = MoneyLimits {
            max_unit_price_cents: i64::MAX,
            max_line_quantity: i64::MAX,
            max_cart_lines: usize::MAX,
            max_order_total_cents: i64::MAX,
        };
        let err = limits
            .order_total([(9_999_999_999, 1_000_000_000_000)])
            .unwrap_err();
        assert_eq!(err.limit, "max_order_total_cents");
        assert!(limits.order_total([(i64::MAX, 1), (1, 1)]).is_err());
    }

    #[test]
    fn too_many_lines_and_too_many_units_are_refused_by_name() {
        let lines = vec![(1, 1); 51];
        assert_eq!(
            limits().order_total(lines).unwrap_err().limit,
            "max_cart_lines"
        );
        assert_eq!(
            limits().order_total([(1, 1_001)]).unwrap_err().limit,
            "max_line_quantity"
        );
        assert_eq!(
            limits()
                .order_total([(STRIPE_MAX_CHARGE + 1, 1)])
                .unwrap_err()
                .limit,
            "max_unit_price_cents"
        );
    }

    #[test]
    fn the_fee_rounds_down_and_stays_within_the_amount() {
        assert_eq!(platform_fee(2_000, 1_000), 200);
        assert_eq!(platform_fee(999, 1_000), 99);
        assert_eq!(platform_fee(STRIPE_MAX_CHARGE, 1_000), 9_999_999);
        assert_eq!(platform_fee(i64::MAX, 10_000), i64::MAX);
        assert_eq!(platform_fee(100, 20_000), 100, "bps clamped to 100 %");
        assert_eq!(platform_fee(100, -5), 0, "never a negative fee");
    }

    proptest! {
        /// Any cart: the total is the exact sum when every limit holds, and an error (never a
        /// wrap or a panic) otherwise.
        #[test]
        fn the_order_total_is_exact_or_refused(
            lines in proptest::collection::vec((1i64..=10_000_000_000, 1i64..=2_000_000), 0..120),
        ) {
            let exact: i128 = lines.iter().map(|&(p, q)| i128::from(p) * i128::from(q)).sum();
            let within_limits = lines.len() <= 50
                && lines.iter().all(|&(p, q)| p <= STRIPE_MAX_CHARGE && q <= 1_000)
                && exact <= i128::from(STRIPE_MAX_CHARGE);
            match limits().order_total(lines.iter().copied()) {
                Ok(total) => {
                    prop_assert!(within_limits);
                    prop_assert_eq!(i128::from(total), exact);
                    prop_assert!(total <= STRIPE_MAX_CHARGE);
                }
                Err(_) => prop_assert!(!within_limits),
            }
        }

        /// Fee and seller's share always add up to the sale, with neither negative.
        #[test]
        fn fee_and_net_add_up_to_the_sale(amount in 0i64..=i64::MAX, bps in 0i64..=10_000) {
            let fee = platform_fee(amount, bps);
            prop_assert!(fee >= 0 && fee <= amount);
            let net = amount - fee;
            prop_assert_eq!(net.checked_add(fee), Some(amount));
            prop_assert_eq!(i128::from(fee), i128::from(amount) * i128::from(bps) / 10_000);
        }

        /// The ledger of a paid and then refunded order nets to zero for its sellers, line by
        /// line, and the sale entries never exceed what the buyer was charged.
        #[test]
        fn sale_fee_and_their_reversal_net_to_zero(
            lines in proptest::collection::vec((1i64..=STRIPE_MAX_CHARGE, 1i64..=1_000), 1..50),
            bps in 0i64..=10_000,
        ) {
            let Ok(charged) = limits().order_total(lines.iter().copied()) else {
                return Ok(());
            };
            let mut entries = Vec::new();
            for &(price, quantity) in &lines {
                let sale = line_total(price, quantity).expect("within limits");
                let fee = platform_fee(sale, bps);
                entries.extend([sale, -fee]);
            }
            let credited = checked_sum(entries.iter().copied()).expect("no overflow");
            prop_assert!(credited <= charged);
            prop_assert!(credited >= 0);
            let reversed: Vec<i64> = entries.iter().map(|e| -e).collect();
            let net = checked_sum(entries.into_iter().chain(reversed)).expect("no overflow");
            prop_assert_eq!(net, 0);
        }
    }
}
