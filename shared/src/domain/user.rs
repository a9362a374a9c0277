//! Account identity rules: usernames, emails and passwords.

use unicode_normalization::UnicodeNormalization;

use super::validation::{ValidationErrors, plain_text, text_block, text_len};

/// 3–150 characters of letters, digits and `_.@+-` (the Django rule SPA clients already know).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates a username, in Unicode NFC: "é" typed as one character or as "e" and an
    /// accent is one name, so it cannot be registered twice.
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        let value: String = value.nfc().collect();
        let value = value.as_str();
        let len = value.chars().count();
        if !(3..=150).contains(&len) {
            return Err(ValidationErrors::single(
                "username",
                "must be between 3 and 150 characters",
            ));
        }
        if !value
            .chars()
            .all(|c| c.is_alphanumeric() || "_.@+-".contains(c))
        {
            return Err(ValidationErrors::single(
                "username",
                "may contain only letters, digits and _ . @ + -",
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
    /// Validates an email: one `@`, a non-empty local part, a dotted domain, no spaces, ≤ 254 chars.
    pub fn parse(value: &str) -> Result<Self, ValidationErrors> {
        plain_text("email", value, false)?;
        let value: String = value.trim().nfc().collect();
        let value = value.as_str();
        let invalid = || ValidationErrors::single("email", "must be a valid email address");
        if value.len() > 254 || value.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
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
            display_name.and_then(|d| errors.check(text_len("display_name", d, 0, 150)));
        let bio = bio.and_then(|b| errors.check(text_block("bio", b, 0, 2000)));
        errors.finish(|| Self {
            email,
            display_name,
            bio,
        })
    }
}

#[cfg(test)]
mod tests {
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
    fn registration_reports_every_bad_field() {
        let err = NewUser::parse("a", "nope", "x").unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["username", "email", "password"]);
    }
}
