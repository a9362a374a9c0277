//! Shipping address rules: required lines, length limits, postal codes and ISO 3166-1 countries.
//!
//! These checks only make an address worth geocoding; whether it exists is the geocoder's call.

use super::validation::ValidationErrors;

/// Every officially assigned ISO 3166-1 alpha-2 code, sorted (so it can be binary-searched).
const ISO_3166_ALPHA_2: [&str; 249] = [
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

/// Longest street line, in characters.
const MAX_LINE: usize = 200;
/// Longest city or region, in characters.
const MAX_PLACE: usize = 100;
/// Longest postal code, in characters (the longest national formats are about 10).
const MAX_POSTAL_CODE: usize = 20;

/// An officially assigned ISO 3166-1 alpha-2 country code, uppercase (`US`, `DE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryCode(String);

impl CountryCode {
    /// Accepts an assigned code in either case.
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let upper = value.trim().to_ascii_uppercase();
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
        let line1 = errors.check(required("line1", line1, MAX_LINE));
        let line2 = errors.check(optional("line2", line2, MAX_LINE));
        let city = errors.check(required("city", city, MAX_PLACE));
        let region = errors.check(optional("region", region, MAX_PLACE));
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

/// A trimmed, non-blank value of at most `max` characters without control characters (they
/// would only corrupt labels, and the geocoder's cache key relies on line breaks as separators).
fn required(field: &'static str, value: &str, max: usize) -> Result<String, ValidationErrors> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationErrors::single(field, "is required"));
    }
    if trimmed.chars().count() > max {
        return Err(ValidationErrors::single(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationErrors::single(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Like [`required`], but absent or blank is `None`.
fn optional(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, ValidationErrors> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => required(field, v, max).map(Some),
    }
}

fn postal(value: &str) -> Result<String, ValidationErrors> {
    let code = required("postal_code", value, MAX_POSTAL_CODE)?;
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
    fn a_complete_address_is_trimmed_and_its_country_uppercased() {
        let a = NewAddress::parse(
            " 1600 Amphitheatre Pkwy ",
            Some("  "),
            "Mountain View",
            Some("CA"),
            "94043",
            "us",
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
        for ok in ["US", "de", "Gb", " jp "] {
            assert!(CountryCode::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "U", "USA", "UK", "XX", "ZZ", "1A"] {
            assert!(CountryCode::parse(bad).is_err(), "{bad}");
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
