//! Listing rules: titles, prices in minor units, currencies and stock.

use std::str::FromStr;

use super::{money::MoneyLimits, text::TextRule, validation::ValidationErrors};

/// A listing's title.
pub const TITLE: TextRule = TextRule::line(3, 255);
/// A listing's description.
pub const DESCRIPTION: TextRule = TextRule::block(0, 10_000);
/// A lowercase three-letter currency code, as the OpenAPI document declares it.
pub const CURRENCY_PATTERN: &str = "^[a-z]{3}$";
/// Units of stock a listing may have.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// A lowercase ISO 4217 code such as `usd`. Defaults to `usd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    /// Validates a three-letter lowercase code (exactly: `USD` or ` usd` is refused, so the
    /// document's pattern and the server agree).
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let lower = value.to_owned();
        if lower.len() != 3 || !lower.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(ValidationErrors::single(
                "currency",
                "must be a three-letter ISO 4217 code",
            ));
        }
        Ok(Self(lower))
    }

    /// The lowercase code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Currency {
    fn default() -> Self {
        Self("usd".to_owned())
    }
}

/// A unit price: at least one minor unit and at most `MAX_UNIT_PRICE_CENTS`, since a unit
/// that costs more than an order may could never be bought.
fn price(value: i64, limits: &MoneyLimits) -> Result<i64, ValidationErrors> {
    let max = limits.max_unit_price_cents;
    if !(1..=max).contains(&value) {
        return Err(ValidationErrors::single(
            "price_cents",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(value)
}

fn quantity(value: i64, min: i64) -> Result<i32, ValidationErrors> {
    if !(min..=MAX_QUANTITY).contains(&value) {
        return Err(ValidationErrors::single(
            "quantity",
            format!("must be between {min} and {MAX_QUANTITY}"),
        ));
    }
    // In range, so the conversion cannot fail.
    Ok(value as i32)
}

/// A validated new listing.
#[derive(Debug, Clone)]
pub struct NewListing {
    /// 3–255 characters.
    pub title: String,
    /// Up to 10,000 characters.
    pub description: String,
    /// Unit price in minor units, ≥ 1.
    pub price_cents: i64,
    /// Currency of the price.
    pub currency: Currency,
    /// Units for sale, ≥ 1.
    pub quantity: i32,
}

impl NewListing {
    /// Validates every field.
    pub fn parse(
        title: &str,
        description: Option<&str>,
        price_cents: i64,
        currency: Option<&str>,
        quantity_value: i64,
        limits: &MoneyLimits,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let title = errors.check(TITLE.check("title", title));
        let description = errors.check(DESCRIPTION.check("description", description.unwrap_or("")));
        let price_cents = errors.check(price(price_cents, limits));
        let currency = match currency {
            Some(c) => errors.check(Currency::parse(c)),
            None => Some(Currency::default()),
        };
        let quantity = errors.check(quantity(quantity_value, 1));
        match (title, description, price_cents, currency, quantity) {
            (Some(title), Some(description), Some(price_cents), Some(currency), Some(quantity)) => {
                Ok(Self {
                    title,
                    description,
                    price_cents,
                    currency,
                    quantity,
                })
            }
            _ => Err(errors),
        }
    }
}

/// A validated partial update. `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct ListingPatch {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New price.
    pub price_cents: Option<i64>,
    /// New currency.
    pub currency: Option<Currency>,
    /// New total quantity (≥ 0; cannot go below what is reserved).
    pub quantity: Option<i32>,
    /// Reactivate (`true`) or deactivate (`false`) the listing.
    pub is_active: Option<bool>,
}

impl ListingPatch {
    /// Validates each present field.
    pub fn parse(
        title: Option<&str>,
        description: Option<&str>,
        price_cents: Option<i64>,
        currency: Option<&str>,
        quantity_value: Option<i64>,
        is_active: Option<bool>,
        limits: &MoneyLimits,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let title = title.and_then(|t| errors.check(TITLE.check("title", t)));
        let description =
            description.and_then(|d| errors.check(DESCRIPTION.check("description", d)));
        let price_cents = price_cents.and_then(|p| errors.check(price(p, limits)));
        let currency = currency.and_then(|c| errors.check(Currency::parse(c)));
        let quantity = quantity_value.and_then(|q| errors.check(quantity(q, 0)));
        errors.finish(|| Self {
            title,
            description,
            price_cents,
            currency,
            quantity,
            is_active,
        })
    }
}

/// The orderings `GET /listings` offers. Every ordering ends with the id so it is total, which
/// keyset pagination needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingSort {
    /// Oldest first.
    CreatedAt,
    /// Newest first (the default).
    #[default]
    CreatedAtDesc,
    /// Cheapest first.
    Price,
    /// Most expensive first.
    PriceDesc,
}

impl FromStr for ListingSort {
    type Err = ValidationErrors;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "created_at" => Ok(Self::CreatedAt),
            "-created_at" => Ok(Self::CreatedAtDesc),
            "price" => Ok(Self::Price),
            "-price" => Ok(Self::PriceDesc),
            _ => Err(ValidationErrors::single(
                "sort",
                "must be one of created_at, -created_at, price, -price",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_listings_are_validated() {
        assert!(NewListing::parse("ok title", None, 100, None, 1, &MoneyLimits::default()).is_ok());
        let err = NewListing::parse("ab", None, 0, Some("dollars"), 0, &MoneyLimits::default())
            .unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["title", "price_cents", "currency", "quantity"]);
    }

    #[test]
    fn a_unit_price_above_the_limit_is_refused() {
        let limits = MoneyLimits::default();
        let max = limits.max_unit_price_cents;
        assert!(NewListing::parse("a lamp", None, max, None, 1, &limits).is_ok());
        let err = NewListing::parse("a lamp", None, max + 1, None, 1, &limits).unwrap_err();
        assert_eq!(err.0[0].field, "price_cents");
        assert!(err.0[0].message.contains(&max.to_string()), "{err}");
        let err = ListingPatch::parse(None, None, Some(max + 1), None, None, None, &limits);
        assert!(err.is_err());
    }

    #[test]
    fn currency_is_a_lowercase_code_and_defaults_to_usd() {
        let l = NewListing::parse("a lamp", None, 100, Some("eur"), 2, &MoneyLimits::default())
            .unwrap();
        assert_eq!(l.currency.as_str(), "eur");
        for bad in ["EUR", " eur", "eu", "euro", "e1r"] {
            assert!(Currency::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            NewListing::parse("a lamp", None, 1, None, 1, &MoneyLimits::default())
                .unwrap()
                .currency
                .as_str(),
            "usd"
        );
    }

    #[test]
    fn patch_allows_zero_quantity_but_not_negative() {
        assert_eq!(
            ListingPatch::parse(
                None,
                None,
                None,
                None,
                Some(0),
                None,
                &MoneyLimits::default()
            )
            .unwrap()
            .quantity,
            Some(0)
        );
        assert!(
            ListingPatch::parse(
                None,
                None,
                None,
                None,
                Some(-1),
                None,
                &MoneyLimits::default()
            )
            .is_err()
        );
    }

    #[test]
    fn sort_parses_the_documented_values_only() {
        assert_eq!(
            "-price".parse::<ListingSort>().unwrap(),
            ListingSort::PriceDesc
        );
        assert!("title".parse::<ListingSort>().is_err());
    }
}
