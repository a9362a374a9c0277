//! Request field types that carry their rules into the OpenAPI document.
//!
//! poem-openapi's `String` takes `true` or `12` as the strings `"true"` and `"12"`, and its
//! schemas say nothing about our limits. [`Text`] takes JSON strings only and declares the rule
//! its marker names (length, pattern, enum) — the same constants the domain checks in `shared` —
//! so the document promises exactly what the server accepts. [`Int`] does the same for integers.
//! The checks themselves stay in `shared::domain` and answer 422 `validation_failed` naming the
//! field; these types only refuse the wrong JSON type (400).

use std::{borrow::Cow, marker::PhantomData};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use shared::domain::TextRule;

/// What a string field declares.
pub trait StringRule: Send + Sync + 'static {
    /// Shown in parse errors, e.g. `title`.
    const NAME: &'static str;
    /// Adds the rule to the field's schema.
    fn declare(schema: &mut MetaSchema);
}

/// What an integer field declares.
pub trait IntRule: Send + Sync + 'static {
    /// Shown in parse errors.
    const NAME: &'static str;
    /// Smallest accepted value.
    const MIN: i64;
    /// Largest accepted value.
    const MAX: i64;
}

/// Declares a [`TextRule`] (trimmed text without control characters).
pub fn declare_text(schema: &mut MetaSchema, rule: TextRule) {
    schema.max_length = Some(rule.max);
    schema.pattern = Some(rule.pattern());
}

/// A JSON string (never a coerced number or boolean) declared by `R`.
pub struct Text<R>(String, PhantomData<R>);

impl<R> Text<R> {
    /// The value as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<R: StringRule> Type for Text<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        format!("string({})", R::NAME).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("string");
        R::declare(&mut schema);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<R: StringRule> ParseFromJSON for Text<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(s)) => Ok(Self(s, PhantomData)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<R: StringRule> ParseFromParameter for Text<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.to_owned(), PhantomData))
    }
}

impl<R: StringRule> ToJSON for Text<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A JSON integer declared by `R` with its range. Out-of-range values still parse, so the domain
/// refuses them with 422 naming the field, as the document's `minimum`/`maximum` promise.
pub struct Int<R>(i64, PhantomData<R>);

impl<R> Int<R> {
    /// The value as sent.
    pub fn get(&self) -> i64 {
        self.0
    }
}

impl<R: IntRule> Type for Int<R> {
    const IS_REQUIRED: bool = true;
    type RawValueType = i64;
    type RawElementValueType = i64;

    fn name() -> Cow<'static, str> {
        format!("integer({})", R::NAME).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new_with_format("integer", "int64");
        // Every bound is well inside ±2^53, so as a JSON number it is exact.
        schema.minimum = Some(R::MIN as f64);
        schema.maximum = Some(R::MAX as f64);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&i64> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a i64> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl<R: IntRule> ParseFromJSON for Int<R> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        <i64 as ParseFromJSON>::parse_from_json(value)
            .map(|n| Self(n, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<R: IntRule> ParseFromParameter for Int<R> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        <i64 as ParseFromParameter>::parse_from_parameter(value)
            .map(|n| Self(n, PhantomData))
            .map_err(ParseError::propagate)
    }
}

impl<R: IntRule> ToJSON for Int<R> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0))
    }
}

/// A JSON array of 1–100 ids (order lines). Its length is declared, and checked by the domain
/// (422 naming the field) like every other rule.
pub struct IdList(pub Vec<uuid::Uuid>);

/// Most ids an [`IdList`] may hold (the domain's limit for shipments and refunds alike).
const MAX_IDS: usize = 100;

impl Type for IdList {
    const IS_REQUIRED: bool = true;
    type RawValueType = Vec<uuid::Uuid>;
    type RawElementValueType = uuid::Uuid;

    fn name() -> Cow<'static, str> {
        "id_list".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("array");
        schema.items = Some(Box::new(<uuid::Uuid as Type>::schema_ref()));
        schema.min_items = Some(1);
        schema.max_items = Some(MAX_IDS);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&Vec<uuid::Uuid>> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a uuid::Uuid> + 'a> {
        Box::new(self.0.iter())
    }
}

impl ParseFromJSON for IdList {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        <Vec<uuid::Uuid> as ParseFromJSON>::parse_from_json(value)
            .map(Self)
            .map_err(ParseError::propagate)
    }
}

impl ToJSON for IdList {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// Declares a [`StringRule`] marker: `text_rule!(Title = listing::TITLE)` for a [`TextRule`], or
/// `text_rule!(Name, |schema| { ... })` to set the schema by hand.
macro_rules! text_rule {
    ($(#[$doc:meta])* $name:ident = $rule:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl $crate::fields::StringRule for $name {
            const NAME: &'static str = stringify!($name);
            fn declare(schema: &mut poem_openapi::registry::MetaSchema) {
                $crate::fields::declare_text(schema, $rule);
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, |$schema:ident| $body:block) => {
        $(#[$doc])*
        pub struct $name;
        impl $crate::fields::StringRule for $name {
            const NAME: &'static str = stringify!($name);
            fn declare($schema: &mut poem_openapi::registry::MetaSchema) {
                $body
            }
        }
    };
}
pub(crate) use text_rule;

/// Declares an [`IntRule`] marker: `int_rule!(UnitPrice = 1, STRIPE_MAX_CHARGE)`.
macro_rules! int_rule {
    ($(#[$doc:meta])* $name:ident = $min:expr, $max:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl $crate::fields::IntRule for $name {
            const NAME: &'static str = stringify!($name);
            const MIN: i64 = $min;
            const MAX: i64 = $max;
        }
    };
}
pub(crate) use int_rule;

/// Rules shared by several resources.
pub mod rules {
    use shared::domain::{Email, Username, text::NO_CONTROL_PATTERN};

    text_rule!(
        /// A username.
        UsernameRule, |schema| {
            schema.pattern = Some(Username::PATTERN.to_owned());
        }
    );
    text_rule!(
        /// An email address.
        EmailRule, |schema| {
            schema.max_length = Some(Email::MAX_CHARS);
            schema.pattern = Some(Email::PATTERN.to_owned());
        }
    );
    text_rule!(
        /// A new password.
        PasswordRule, |schema| {
            schema.min_length = Some(8);
            schema.max_length = Some(128);
        }
    );
    text_rule!(
        /// Any string without control characters, looked up as sent.
        NoControl, |schema| {
            schema.pattern = Some(NO_CONTROL_PATTERN.to_owned());
        }
    );
    text_rule!(
        /// An opaque value the server issued (a token): any string.
        Opaque, |_schema| {}
    );
    text_rule!(
        /// A header value: visible ASCII and inner spaces (what HTTP carries as text), trimmed
        /// by HTTP itself.
        HeaderText, |schema| {
            schema.pattern = Some(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$".to_owned());
        }
    );
    int_rule!(
        /// A page size.
        PageLimit = 1, 100
    );
}
