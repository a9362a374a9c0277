//! Account identity rules: usernames, emails and passwords.

use unicode_normalization::UnicodeNormalization;

use super::{text::TextRule, validation::ValidationErrors};

/// A display name.
pub const DISPLAY_NAME: TextRule = TextRule::line(0, 150);
/// A profile's bio.
pub const BIO: TextRule = TextRule::block(0, 2000);

/// 3–150 ASCII letters, digits and `_.@+-`. ASCII only: a name that can be spelled with
/// look-alike letters from another script (`pаypal` with a Cyrillic `а`) could impersonate its
/// twin on every page that shows sellers; display names are free Unicode text instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// The rule as the OpenAPI document declares it.
    pub const PATTERN: &str = "^[A-Za-z0-9_.@+-]{3,150}$";

    /// Validates a username exactly as sent (nothing trimmed or folded).
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let len = value.chars().count();
        if !(3..=150).contains(&len) {
            return Err(ValidationErrors::single(
                "username",
                "must be between 3 and 150 characters",
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c))
        {
            return Err(ValidationErrors::single(
                "username",
                "may contain only ASCII letters, digits and _ . @ + -",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The username as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A syntactically valid email address, stored lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Longest address, in characters.
    pub const MAX_CHARS: usize = 254;
    /// The rule as the OpenAPI document declares it (with `maxLength` [`Self::MAX_CHARS`]): a
    /// local part of 1–64 characters without spaces, control characters or `@`, and a dotted
    /// ASCII domain (internationalised domains in their `xn--` form, as browsers send them).
    pub const PATTERN: &str = r"^[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@]{1,64}@(?:[A-Za-z0-9-]+\.)+[A-Za-z0-9-]+$";

    /// Validates an email exactly as sent (nothing trimmed); stored in NFC and lowercase.
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let invalid = || ValidationErrors::single("email", "must be a valid email address");
        if value.chars().count() > Self::MAX_CHARS {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let local_ok = (1..=64).contains(&local.chars().count())
            && !local
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '@');
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(invalid());
        }
        let value: String = value.nfc().collect();
        Ok(Self(value.to_lowercase()))
    }

    /// The normalised (lowercase) address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8–128 characters. Never logged.
pub struct Password(String);

impl Password {
    /// Validates a password's length; the field name differs between register and change.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, ValidationErrors> {
        let len = value.chars().count();
        if !(8..=128).contains(&len) {
            return Err(ValidationErrors::single(
                field,
                "must be between 8 and 128 characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The plain-text password, for hashing or verification only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A validated registration.
#[derive(Debug)]
pub struct NewUser {
    /// Login name, unique case-insensitively.
    pub username: Username,
    /// Contact email, unique.
    pub email: Email,
    /// The chosen password.
    pub password: Password,
}

impl NewUser {
    /// Validates every field and reports all problems together.
    pub fn parse(username: &str, email: &str, password: &str) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let username = errors.check(Username::parse(username));
        let email = errors.check(Email::parse(email));
        let password = errors.check(Password::parse("password", password));
        match (username, email, password) {
            (Some(username), Some(email), Some(password)) if errors.0.is_empty() => Ok(Self {
                username,
                email,
                password,
            }),
            _ => Err(errors),
        }
    }
}

/// A validated change to one's own profile. `None` leaves a field unchanged.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    /// New email.
    pub email: Option<Email>,
    /// New display name (0–150 chars).
    pub display_name: Option<String>,
    /// New bio (0–2000 chars).
    pub bio: Option<String>,
}

impl ProfilePatch {
    /// Validates each present field.
    pub fn parse(
        email: Option<&str>,
        display_name: Option<&str>,
        bio: Option<&str>,
    ) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::default();
        let email = email.and_then(|e| errors.check(Email::parse(e)));
        let display_name =
            display_name.and_then(|d| errors.check(DISPLAY_NAME.check("display_name", d)));
        let bio = bio.and_then(|b| errors.check(BIO.check("bio", b)));
        errors.finish(|| Self {
            email,
            display_name,
            bio,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn usernames_follow_the_length_and_character_rules() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse(&"a".repeat(151)).is_err());
        assert!(Username::parse("has space").is_err());
        assert!(Username::parse("semi;colon").is_err());
        assert!(Username::parse("alice_1.b@c+d-e").is_ok());
        assert!(Username::parse(&"a".repeat(150)).is_ok());
    }

    #[test]
    fn emails_are_checked_and_lowercased() {
        assert_eq!(
            Email::parse("Alice@Example.COM").unwrap().as_str(),
            "alice@example.com"
        );
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.com",
            "@b.com",
            "a b@c.com",
            "a@b..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_must_be_8_to_128_characters() {
        assert!(Password::parse("password", "short").is_err());
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "long enough").is_ok());
    }

    #[test]
    fn look_alike_letters_from_other_scripts_are_not_usernames() {
        assert!(Username::parse("p\u{430}ypal").is_err());
        assert!(Username::parse("caf\u{e9}").is_err());
    }

    fn email_like() -> impl Strategy<Value = String> {
        let chars = prop::sample::select(vec![
            'a', 'Z', '7', '-', '.', '@', 'é', '\u{301}', ' ', '\t', '\u{a0}', '\u{3000}', '\0',
            '\u{85}', '_', '+',
        ]);
        prop::collection::vec(chars, 0..12).prop_map(|v| v.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn the_documented_patterns_accept_exactly_what_the_parsers_accept(value in email_like()) {
            let email = regex::Regex::new(Email::PATTERN).unwrap();
            let username = regex::Regex::new(Username::PATTERN).unwrap();
            prop_assert_eq!(email.is_match(&value), Email::parse(&value).is_ok(), "{:?}", value);
            prop_assert_eq!(username.is_match(&value), Username::parse(&value).is_ok(), "{:?}", value);
        }
    }

    #[test]
    fn registration_reports_every_bad_field() {
        let err = NewUser::parse("a", "nope", "x").unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["username", "email", "password"]);
    }
}
