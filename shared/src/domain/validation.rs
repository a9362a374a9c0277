//! Field-level validation errors, collected so a client sees every problem at once.

use std::fmt;

/// One rejected field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The JSON field name, e.g. `username`.
    pub field: &'static str,
    /// What is wrong, phrased for an end user.
    pub message: String,
}

/// Every field a request got wrong. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// A single-field error.
    pub fn single(field: &'static str, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field,
            message: message.into(),
        }])
    }

    /// Records the error of `result` (if any) and returns its value.
    pub fn check<T>(&mut self, result: Result<T, ValidationErrors>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.extend(e.0);
                None
            }
        }
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        write!(f, "{}", parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}

/// The one rule for text the API accepts: no NUL and no other control character (PostgreSQL
/// cannot store NUL, and control characters only corrupt labels, logs and exports). A
/// `multiline` field may also hold line breaks and tabs.
pub fn plain_text(
    field: &'static str,
    value: &str,
    multiline: bool,
) -> Result<(), ValidationErrors> {
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if value.chars().any(|c| c.is_control() && !allowed(c)) {
        let message = if multiline {
            "must not contain control characters other than line breaks and tabs"
        } else {
            "must not contain control characters"
        };
        return Err(ValidationErrors::single(field, message));
    }
    Ok(())
}

/// A one-line text: trimmed, [`plain_text`], and `min`–`max` characters (not bytes).
pub(crate) fn text_len(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, ValidationErrors> {
    checked_len(field, value, min, max, false)
}

/// A text that may span lines (descriptions, bios): like [`text_len`], line breaks and tabs
/// allowed.
pub(crate) fn text_block(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, ValidationErrors> {
    checked_len(field, value, min, max, true)
}

fn checked_len(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, ValidationErrors> {
    let trimmed = value.trim();
    plain_text(field, trimmed, multiline)?;
    let len = trimmed.chars().count();
    if len < min || len > max {
        return Err(ValidationErrors::single(
            field,
            format!("must be between {min} and {max} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_control_characters_are_refused_line_breaks_only_where_multiline() {
        for bad in [
            "a\0b",
            "\u{1b}[31mred",
            "x\u{7f}",
            "bell\u{7}",
            "\u{85}next",
        ] {
            assert!(plain_text("f", bad, false).is_err(), "{bad:?}");
            assert!(plain_text("f", bad, true).is_err(), "{bad:?}");
        }
        assert!(plain_text("f", "two\nlines\tand tab", false).is_err());
        assert!(plain_text("f", "two\r\nlines\tand tab", true).is_ok());
        assert!(plain_text("f", "Café ☕ 東京", false).is_ok());
        assert_eq!(text_len("title", "  a lamp  ", 3, 10).unwrap(), "a lamp");
        assert!(text_len("title", "a\nlamp", 3, 10).is_err());
        assert_eq!(
            text_block("bio", " line\nline ", 0, 20).unwrap(),
            "line\nline"
        );
    }
}
