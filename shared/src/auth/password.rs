//! argon2id hashing, always run off the async executor (it takes tens of milliseconds of CPU).
//!
//! Each hash also takes 19 MiB of memory (the argon2id default), so at most one hash per CPU
//! runs at a time: a burst of logins queues here instead of growing the process by 19 MiB per
//! concurrent request and starving every other request of CPU.
//!
//! That memory is reused while hashes follow each other, and given back when hashing goes idle.
//! Left to the allocator's defaults, every hash allocated and freed its 19 MiB: glibc then
//! raised its mmap threshold, and each blocking-pool thread's arena kept such a block for good,
//! so the api grew to ~600 MB after 300 sign-ups and logins. Now a finished hash hands its block
//! to the next one while another hash is running (a burst reuses at most one block per CPU),
//! and the last one of a burst frees every block: with the mmap threshold fixed
//! (`crate::allocator`) a freed block is unmapped, so the process returns to its idle size.

use std::sync::{LazyLock, Mutex, PoisonError};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, Version,
    password_hash::phc::{Output, ParamsString, Salt},
};
use rand::RngCore;
use tokio::sync::Semaphore;

use crate::telemetry::spawn_blocking_with_tracing;

static HASHING: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(*SLOTS));

/// Hashing slots: one per CPU.
static SLOTS: LazyLock<usize> =
    LazyLock::new(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
/// Working memory of finished hashes, waiting for the next one (never more than the slots).
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// Runs `f` on the blocking pool once a hashing slot is free.
async fn with_hashing_slot<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> anyhow::Result<R> {
    let _slot = HASHING.acquire().await?;
    Ok(spawn_blocking_with_tracing(f).await?)
}

/// Computes an argon2 hash into `out` with pooled working memory.
fn hash_into(argon2: &Argon2<'_>, params: &Params, password: &[u8], salt: &[u8], out: &mut [u8]) {
    let blocks = params.block_count();
    let taken = MEMORY.lock().unwrap_or_else(PoisonError::into_inner).pop();
    // A block of another size (stored hashes with other parameters) is replaced, not kept.
    let mut memory = taken
        .filter(|m| m.len() == blocks)
        .unwrap_or_else(|| vec![Block::default(); blocks]);
    let result = argon2.hash_password_into_with_memory(password, salt, out, &mut memory);
    let mut pool = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    // This hash still holds its slot: every other slot free means no hash runs or waits.
    if HASHING.available_permits() + 1 >= *SLOTS {
        pool.clear();
        drop(pool);
        drop(memory);
    } else {
        pool.push(memory);
    }
    if result.is_err() {
        // Only reachable with parameters out of argon2's range; the caller compares outputs, so
        // an all-zero output simply never matches.
        out.fill(0);
    }
}

/// Hashes a password into a PHC string (argon2id, default parameters, a fresh 16-byte salt).
fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let params = Params::default();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut salt = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_into(&argon2, &params, password.as_bytes(), &salt, &mut out);
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params)
            .map_err(|e| anyhow::anyhow!("failed to encode argon2 parameters: {e}"))?,
        salt: Some(Salt::new(&salt).map_err(|e| anyhow::anyhow!("bad salt: {e}"))?),
        hash: Some(Output::new(&out).map_err(|e| anyhow::anyhow!("bad output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string; anything unreadable is a mismatch.
fn verify_blocking(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(hash.algorithm.as_str()),
        Params::try_from(&hash),
    ) else {
        return false;
    };
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .unwrap_or_default();
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    hash_into(
        &argon2,
        &params,
        password.as_bytes(),
        salt.as_ref(),
        &mut out,
    );
    // `Output`'s equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// Hashes a password into a PHC string with a fresh random salt.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    with_hashing_slot(move || hash_blocking(&password)).await?
}

/// Checks a password against a PHC string. A malformed stored hash counts as a mismatch.
pub async fn verify_password(password: String, phc: String) -> anyhow::Result<bool> {
    with_hashing_slot(move || verify_blocking(&password, &phc)).await
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_reads_as_standard_argon2id() {
        let phc = hash_blocking("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("correct horse", &phc));
        assert!(!verify_blocking("correct horse!", &phc));
        // The reference implementation agrees, both ways.
        let reference = Argon2::default();
        assert!(
            reference
                .verify_password(b"correct horse", &PasswordHash::new(&phc).unwrap())
                .is_ok()
        );
        let theirs = argon2::PasswordHasher::hash_password(&reference, b"battery staple")
            .unwrap()
            .to_string();
        assert!(verify_blocking("battery staple", &theirs));
        assert!(!verify_blocking("battery", &theirs));
    }

    #[test]
    fn other_parameters_and_garbage_are_handled() {
        let light = Params::new(1024, 1, 1, None).unwrap();
        let phc = argon2::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2id, Version::V0x13, light),
            b"pw",
        )
        .unwrap()
        .to_string();
        assert!(verify_blocking("pw", &phc));
        for bad in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$",
            "$md5$x$y",
        ] {
            assert!(!verify_blocking("pw", bad), "{bad}");
        }
    }
}
