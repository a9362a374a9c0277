//! Test helpers shared by every crate's integration tests.
//!
//! - [`TestDb`]: a fresh database per test, cloned from a migrated template (fast), dropped when
//!   the test ends, pass or fail.
//! - [`TestApp`]: the real `api::app` over that database and a private Redis namespace, driven
//!   in-process with poem's `TestClient`. A test that ends with a job still `queued` fails
//!   (run its jobs, or say why with [`TestApp::allow_queued_jobs`]).
//! - [`eventually`]: a bounded wait for something that happens in the background.
//! - [`stripe`]: the one local Stripe fake (wiremock) the api and worker tests talk to.

mod app;
mod db;
mod eventually;
mod http;
pub mod private_redis;
pub mod process;
pub mod stripe;

pub use app::{TestApp, TestResponse};
pub use db::TestDb;
pub use eventually::{Observation, eventually, eventually_blocking, eventually_every, poll_until};
pub use http::http_get;

/// Postgres server used by tests (any existing database on it; `postgres` always exists).
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Redis used by tests.
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

mod payments;

pub use stripe::{TEST_WEBHOOK_SECRET, stripe_signature};
