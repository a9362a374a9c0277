//! argon2id hashing, always run off the async executor (it takes tens of milliseconds of CPU).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::telemetry::spawn_blocking_with_tracing;

/// Hashes a password into a PHC string with a fresh random salt.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    spawn_blocking_with_tracing(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash password: {e}"))
    })
    .await?
}

/// Checks a password against a PHC string. A malformed stored hash counts as a mismatch.
pub async fn verify_password(password: String, phc: String) -> anyhow::Result<bool> {
    spawn_blocking_with_tracing(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await
    .map_err(Into::into)
}
