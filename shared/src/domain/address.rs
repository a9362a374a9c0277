//! Shipping address rules: required lines, length limits, postal codes and ISO 3166-1 countries.
//!
//! These checks only make an address worth geocoding; whether it exists is the geocoder's call.

use super::{text::TextRule, validation::ValidationErrors};

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted (so it can be binary-searched).
pub const ISO_3166_ALPHA_2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The street and number.
pub const LINE1: TextRule = TextRule::line(1, 200);
/// Apartment, suite, ...; blank means none.
pub const LINE2: TextRule = TextRule::line(0, 200);
/// The city.
pub const CITY: TextRule = TextRule::line(1, 100);
/// State, province or county; blank means none.
pub const REGION: TextRule = TextRule::line(0, 100);
/// Longest postal code, in characters (the longest national formats are about 10).
pub const MAX_POSTAL_CODE: usize = 20;
/// A postal code as the OpenAPI document declares it (with `maxLength` [`MAX_POSTAL_CODE`]):
/// ASCII letters, digits, spaces and hyphens, trimmed like any text.
pub const POSTAL_CODE_PATTERN: &str = r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9-](?:[A-Za-z0-9 -]*[A-Za-z0-9-])?[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$";

/// An officially assigned ISO 3166-1 alpha-2 country code, uppercase (`US`, `DE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts an assigned code, uppercase as sent (the document lists them as an enum).
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let upper = value.to_owned();
        if ISO_3166_ALPHA_2.binary_search(&upper.as_str()).is_err() {
            return Err(ValidationErrors::single(
                "country",
                "must be an ISO 3166-1 alpha-2 country code, e.g. US",
            ));
        }
        Ok(Self(upper))
    }

    /// The uppercase code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated address as the buyer typed it (trimmed), before geocoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    /// Street and number; 1–200 characters.
    pub line1: String,
    /// Apartment, suite, ...; up to 200 characters, `None` when blank.
    pub line2: Option<String>,
    /// 1–100 characters.
    pub city: String,
    /// State, province or county; up to 100 characters, `None` when blank.
    pub region: Option<String>,
    /// 1–20 letters, digits, spaces and hyphens.
    pub postal_code: String,
    /// Where it is.
    pub country: CountryCode,
}

impl NewAddress {
    /// Validates every field and reports all problems at once.
    pub fn parse(
        line1: &str,
        line2: Option<&str>,
        city: &str,
        region: Option<&str>,
        postal_code: &str,
        country: &str,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let line1 = errors.check(LINE1.check("line1", line1));
        let line2 = errors.check(optional(LINE2, "line2", line2));
        let city = errors.check(CITY.check("city", city));
        let region = errors.check(optional(REGION, "region", region));
        let postal_code = errors.check(postal(postal_code));
        let country = errors.check(CountryCode::parse(country));
        match (line1, line2, city, region, postal_code, country) {
            (
                Some(line1),
                Some(line2),
                Some(city),
                Some(region),
                Some(postal_code),
                Some(country),
            ) => Ok(Self {
                line1,
                line2,
                city,
                region,
                postal_code,
                country,
            }),
            _ => Err(errors),
        }
    }
}

/// An optional line: absent or blank is `None`.
fn optional(
    rule: TextRule,
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<String>, ValidationErrors> {
    match value {
        None => Ok(None),
        Some(v) => Ok(Some(rule.check(field, v)?).filter(|v| !v.is_empty())),
    }
}

/// A postal code: [`POSTAL_CODE_PATTERN`] as a check.
fn postal(value: &str) -> Result<String, ValidationErrors> {
    let code = TextRule::line(1, MAX_POSTAL_CODE).check("postal_code", value)?;
    if !code
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        return Err(ValidationErrors::single(
            "postal_code",
            "may only contain letters, digits, spaces and hyphens",
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(err: &ValidationErrors) -> Vec<&'static str> {
        err.0.iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_complete_address_is_trimmed() {
        let a = NewAddress::parse(
            " 1600 Amphitheatre Pkwy ",
            Some("  "),
            "Mountain View",
            Some("CA"),
            "94043",
            "US",
        )
        .unwrap();
        assert_eq!(a.line1, "1600 Amphitheatre Pkwy");
        assert_eq!(a.line2, None);
        assert_eq!(a.region.as_deref(), Some("CA"));
        assert_eq!(a.country.as_str(), "US");
    }

    #[test]
    fn every_invalid_field_is_reported_at_once() {
        let err =
            NewAddress::parse(" ", Some(&"x".repeat(201)), "", None, "12#45", "XX").unwrap_err();
        assert_eq!(
            fields(&err),
            ["line1", "line2", "city", "postal_code", "country"]
        );
    }

    #[test]
    fn only_assigned_iso_codes_are_countries() {
        for ok in ["US", "DE", "GB", "JP"] {
            assert!(CountryCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "U", "USA", "UK", "XX", "ZZ", "1A", "us", " JP "] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        #[test]
        fn the_postal_code_pattern_accepts_exactly_what_the_check_accepts(
            value in crate::domain::text::tests::tricky_text(24)
        ) {
            let re = regex::Regex::new(POSTAL_CODE_PATTERN).unwrap();
            let documented = re.is_match(&value) && value.chars().count() <= MAX_POSTAL_CODE;
            proptest::prop_assert_eq!(documented, postal(&value).is_ok(), "{:?}", value);
        }
    }

    #[test]
    fn the_country_table_is_sorted_and_unique() {
        assert!(ISO_3166_ALPHA_2.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn control_characters_and_long_postal_codes_are_refused() {
        let err = NewAddress::parse("1 Main St\n2", None, "Town", None, &"1".repeat(21), "US")
            .unwrap_err();
        assert_eq!(fields(&err), ["line1", "postal_code"]);
    }
}
