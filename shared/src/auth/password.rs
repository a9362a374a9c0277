//! argon2id hashing, always run off the async executor (it takes tens of milliseconds of CPU).
//!
//! Each hash also takes 19 MiB of memory (the argon2id default), so at most one hash per CPU
//! runs at a time: a burst of logins queues here instead of growing the process by 19 MiB per
//! concurrent request and starving every other request of CPU.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::telemetry::spawn_blocking_with_tracing;

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(cpus)
});

/// Runs `f` on the blocking pool once a hashing slot is free.
async fn with_hashing_slot<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> anyhow::Result<R> {
    let _slot = HASHING.acquire().await?;
    Ok(spawn_blocking_with_tracing(f).await?)
}

/// Hashes a password into a PHC string with a fresh random salt.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    with_hashing_slot(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("failed to hash password: {e}"))
    })
    .await?
}

/// Checks a password against a PHC string. A malformed stored hash counts as a mismatch.
pub async fn verify_password(password: String, phc: String) -> anyhow::Result<bool> {
    with_hashing_slot(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await
}
