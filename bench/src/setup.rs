//! The unmeasured setup: sellers, listings, buyers with verified addresses, tokens and carts.
//!
//! Listings, logins and carts go through the HTTP API. Accounts and addresses are written straight
//! to Postgres: registration hashes with argon2 at full cost (~tens of ms of CPU each), and
//! address verification needs a geocoder. The accounts share one password hash made with minimal
//! argon2 parameters; verification reads the parameters from the stored hash, so logging in
//! thousands of throwaway buyers takes seconds instead of minutes. None of this is measured.

use std::time::Instant;

use anyhow::{Context, anyhow};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, Version};
use futures::{StreamExt, TryStreamExt, stream};
use sqlx::PgPool;
use uuid::Uuid;

use crate::client::Api;

/// The password of every account the load generator creates.
const PASSWORD: &str = "bench-password-not-secret";

/// What to create.
pub(crate) struct Plan {
    /// Makes usernames unique across runs against the same database.
    pub tag: String,
    pub sellers: usize,
    /// `(quantity, price_cents)` per listing; listing `i` belongs to seller `i % sellers`.
    pub listings: Vec<(i64, i64)>,
    pub buyers: usize,
    /// Extra buyers who check out a separate listing before the measured phase, so that the
    /// worker is polling and every pool has its connections when the measurement starts.
    pub canaries: usize,
    /// The listing index buyer `i` puts in the cart (one unit).
    pub cart: Box<dyn Fn(usize) -> usize + Send + Sync>,
}

/// A buyer ready to check out.
pub(crate) struct Buyer {
    pub id: Uuid,
    pub token: String,
    pub address_id: Uuid,
    /// The listing in the cart.
    pub listing: Uuid,
}

/// What setup created.
pub(crate) struct Seeded {
    pub listings: Vec<Uuid>,
    pub buyers: Vec<Buyer>,
    /// Buyers of the warm-up listing (not part of the figures).
    pub canaries: Vec<Buyer>,
}

/// Stock of the warm-up listing.
const CANARY_STOCK: i64 = 100_000;

fn cheap_hash() -> anyhow::Result<String> {
    let params = Params::new(Params::MIN_M_COST, 1, 1, None).map_err(|e| anyhow!("{e}"))?;
    let salt: [u8; 16] = rand::random();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(PASSWORD.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("failed to hash the bench password: {e}"))
}

/// Inserts accounts `{tag}_{kind}{i}` and returns `(id, username)` pairs.
async fn insert_users(
    pool: &PgPool,
    tag: &str,
    kind: &str,
    n: usize,
    hash: &str,
) -> anyhow::Result<Vec<(Uuid, String)>> {
    let users: Vec<(Uuid, String)> = (0..n)
        .map(|i| (Uuid::now_v7(), format!("bench_{tag}_{kind}{i}")))
        .collect();
    let ids: Vec<Uuid> = users.iter().map(|u| u.0).collect();
    let names: Vec<String> = users.iter().map(|u| u.1.clone()).collect();
    sqlx::query(
        "INSERT INTO users (id, username, email, password_hash)
         SELECT id, name, name || '@example.com', $3 FROM unnest($1::uuid[], $2::text[]) AS t(id, name)",
    )
    .bind(&ids)
    .bind(&names)
    .bind(hash)
    .execute(pool)
    .await
    .context("failed to insert bench users")?;
    Ok(users)
}

/// Inserts one verified address per user and returns their ids.
async fn insert_addresses(pool: &PgPool, users: &[Uuid]) -> anyhow::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = users.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO addresses (id, user_id, line1, city, postal_code, country, status,
                                formatted_address, latitude, longitude, place_id, location_type)
         SELECT id, user_id, '1 Bench Street', 'Springfield', '12345', 'US', 'verified',
                '1 Bench Street, Springfield 12345, USA', 40.0, -75.0, 'bench-place', 'ROOFTOP'
         FROM unnest($1::uuid[], $2::uuid[]) AS t(id, user_id)",
    )
    .bind(&ids)
    .bind(users)
    .execute(pool)
    .await
    .context("failed to insert bench addresses")?;
    Ok(ids)
}

async fn login_all(
    api: &Api,
    users: &[(Uuid, String)],
    concurrency: usize,
) -> anyhow::Result<Vec<String>> {
    stream::iter(users)
        .map(|(_, name)| api.login(name, PASSWORD))
        .buffered(concurrency)
        .try_collect()
        .await
}

/// One seller account, logged in.
pub(crate) struct Seller {
    pub id: Uuid,
    pub token: String,
}

/// Inserts seller `bench_{tag}_s0` (as [`seed`] does) and logs in.
pub(crate) async fn seller(api: &Api, pool: &PgPool, tag: &str) -> anyhow::Result<Seller> {
    let hash = cheap_hash()?;
    let (id, name) = insert_users(pool, tag, "s", 1, &hash)
        .await?
        .pop()
        .context("no seller inserted")?;
    let token = api.login(&name, PASSWORD).await?;
    Ok(Seller { id, token })
}

fn step(what: &str, started: Instant) {
    eprintln!("  setup: {what} ({:.1} s)", started.elapsed().as_secs_f64());
}

/// Creates everything in `plan`.
pub(crate) async fn seed(
    api: &Api,
    pool: &PgPool,
    plan: &Plan,
    concurrency: usize,
) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let hash = cheap_hash()?;
    let sellers = insert_users(pool, &plan.tag, "s", plan.sellers, &hash).await?;
    let buyers = insert_users(pool, &plan.tag, "b", plan.buyers + plan.canaries, &hash).await?;
    let buyer_ids: Vec<Uuid> = buyers.iter().map(|b| b.0).collect();
    let addresses = insert_addresses(pool, &buyer_ids).await?;
    step(
        &format!(
            "{} sellers, {} buyers and addresses inserted",
            sellers.len(),
            buyers.len()
        ),
        started,
    );

    let seller_tokens = login_all(api, &sellers, concurrency).await?;
    let wanted = plan.listings.iter().chain([&(CANARY_STOCK, 100)]);
    let mut listings: Vec<Uuid> = stream::iter(wanted.enumerate())
        .map(|(i, (quantity, price))| {
            let token = &seller_tokens[i % seller_tokens.len()];
            let title = format!("Bench item {i} ({})", plan.tag);
            async move { api.create_listing(token, &title, *price, *quantity).await }
        })
        .buffered(concurrency)
        .try_collect()
        .await?;
    let canary_listing = listings.pop().context("no warm-up listing")?;
    step(&format!("{} listings created", listings.len()), started);

    let tokens = login_all(api, &buyers, concurrency).await?;
    step(&format!("{} buyers logged in", tokens.len()), started);

    let mut buyers: Vec<Buyer> = buyer_ids
        .into_iter()
        .zip(tokens)
        .zip(addresses)
        .enumerate()
        .map(|(i, ((id, token), address_id))| Buyer {
            id,
            token,
            address_id,
            listing: if i < plan.buyers {
                listings[(plan.cart)(i) % listings.len()]
            } else {
                canary_listing
            },
        })
        .collect();
    stream::iter(&buyers)
        .map(|b| api.put_cart_item(&b.token, b.listing, 1))
        .buffer_unordered(concurrency)
        .try_collect::<()>()
        .await?;
    step(&format!("{} carts filled", buyers.len()), started);
    let canaries = buyers.split_off(plan.buyers);
    Ok(Seeded {
        listings,
        buyers,
        canaries,
    })
}
