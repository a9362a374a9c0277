//! The one rule for free text, and the same rule as a regular expression for the OpenAPI document.
//!
//! A text field is trimmed (Unicode White_Space, as `str::trim`), may not hold control characters
//! (a multi-line field may hold line breaks and tabs inside), has at least `min` characters once
//! trimmed and at most `max` as sent. [`TextRule::pattern`] says exactly that as an ECMA-262
//! expression (also valid for Python's and Rust's engines), so a client generated from the document
//! accepts precisely what the server does; a test below holds the two together.

use super::validation::ValidationErrors;

/// Unicode White_Space, what `str::trim` removes.
const WHITESPACE: &str = r"\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
/// Control characters (general category Cc).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";
/// Control characters other than tab, line feed and carriage return.
const CONTROL_BUT_LINE_BREAKS: &str = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f";

/// Limits of one free-text field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    /// Fewest characters once trimmed.
    pub min: usize,
    /// Most characters as sent.
    pub max: usize,
    /// Line breaks and tabs allowed inside.
    pub multiline: bool,
}

impl TextRule {
    /// A one-line field.
    pub const fn line(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            multiline: false,
        }
    }

    /// A field that may span lines (descriptions, bios).
    pub const fn block(min: usize, max: usize) -> Self {
        Self {
            min,
            max,
            multiline: true,
        }
    }

    /// The value trimmed, or what is wrong with it, reported against `field`.
    pub fn check(&self, field: &'static str, value: &str) -> Result<String, ValidationErrors> {
        let trimmed = value.trim();
        let allowed = |c: char| self.multiline && matches!(c, '\n' | '\r' | '\t');
        if trimmed.chars().any(|c| c.is_control() && !allowed(c)) {
            let message = if self.multiline {
                "must not contain control characters other than line breaks and tabs"
            } else {
                "must not contain control characters"
            };
            return Err(ValidationErrors::single(field, message));
        }
        if value.chars().count() > self.max || trimmed.chars().count() < self.min {
            let message = match self.min {
                0 => format!("must be at most {} characters", self.max),
                1 if value.chars().count() <= self.max => "is required".to_owned(),
                min => format!(
                    "must be between {min} and {} characters (surrounding spaces are not counted towards the minimum)",
                    self.max
                ),
            };
            return Err(ValidationErrors::single(field, message));
        }
        Ok(trimmed.to_owned())
    }

    /// The rule as a regular expression over the value as sent (the length limit `max` is
    /// declared separately, as `maxLength`).
    pub fn pattern(&self) -> String {
        // First and last character of the trimmed text: neither space nor control.
        let edge = format!("[^{CONTROL}{WHITESPACE}]");
        let inner = if self.multiline {
            format!("[^{CONTROL_BUT_LINE_BREAKS}]")
        } else {
            format!("[^{CONTROL}]")
        };
        let core = match self.min {
            0 => format!("(?:{edge}(?:{inner}*{edge})?)?"),
            1 => format!("{edge}(?:{inner}*{edge})?"),
            min => format!("{edge}{inner}{{{},}}{edge}", min - 2),
        };
        format!("^[{WHITESPACE}]*{core}[{WHITESPACE}]*$")
    }
}

/// No control characters at all, nothing trimmed: for values looked up as they are (a login name,
/// a search term).
pub const NO_CONTROL_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*$";

/// [`NO_CONTROL_PATTERN`] as a check.
pub fn no_control(field: &'static str, value: &str) -> Result<(), ValidationErrors> {
    if value.chars().any(char::is_control) {
        return Err(ValidationErrors::single(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Strings made of the characters where the rule and the pattern could disagree: every kind
    /// of space, control characters, line breaks, combining marks and ordinary letters.
    pub(crate) fn tricky_text(max: usize) -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'Z', '7', 'é', '東', '\u{301}', ' ', '\t', '\n', '\r', '\u{0b}', '\u{0c}',
            '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{200a}', '\u{200b}', '\u{2028}',
            '\u{202f}', '\u{3000}', '\u{feff}', '\0', '\u{1b}', '\u{7f}', '\u{9f}', '-', '@',
        ]);
        prop::collection::vec(chars, 0..max).prop_map(|v| v.into_iter().collect())
    }

    fn matches(rule: &TextRule, value: &str) -> bool {
        let re = regex::Regex::new(&rule.pattern()).expect("pattern compiles");
        re.is_match(value) && value.chars().count() <= rule.max
    }

    #[test]
    fn trims_counts_characters_and_refuses_control_characters() {
        let title = TextRule::line(3, 10);
        assert_eq!(title.check("title", "  a lamp  ").unwrap(), "a lamp");
        assert!(title.check("title", "a\nlamp").is_err());
        assert!(title.check("title", " ab ").is_err());
        assert!(title.check("title", "Café ☕ 東京").is_ok());
        let bio = TextRule::block(0, 20);
        assert_eq!(bio.check("bio", " line\nline ").unwrap(), "line\nline");
        assert!(bio.check("bio", "a\0b").is_err());
        assert!(bio.check("bio", "\u{1b}[31m").is_err());
        assert!(no_control("q", "x\u{7f}").is_err());
        assert!(no_control("q", "two words").is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_pattern_accepts_exactly_what_the_check_accepts(
            value in tricky_text(8),
            min in 0usize..4,
            multiline in any::<bool>(),
        ) {
            let rule = TextRule { min, max: 6, multiline };
            prop_assert_eq!(
                matches(&rule, &value),
                rule.check("f", &value).is_ok(),
                "{:?} with {:?}", value, rule
            );
        }

        #[test]
        fn the_no_control_pattern_agrees_with_its_check(value in tricky_text(8)) {
            let re = regex::Regex::new(NO_CONTROL_PATTERN).unwrap();
            prop_assert_eq!(re.is_match(&value), no_control("q", &value).is_ok());
        }
    }
}
