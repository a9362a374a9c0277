//! Domain types, SQL, job payloads, business transactions and configuration shared by the
//! `api`, `worker` and `scheduler` binaries. Nothing in here knows about HTTP.

pub mod allocator;
pub mod auth;
pub mod cart;
pub mod checkout;
pub mod config;
pub mod db;
pub mod domain;
pub mod gate;
pub mod geocode;
pub mod images;
pub mod job_events;
pub mod jobs;
pub mod kv;
pub mod leader;
pub mod metrics;
pub mod orders;
pub mod payment_events;
pub mod payments;
pub mod queue;
pub mod services;
pub mod shutdown;
pub mod sweep;
pub mod telemetry;

/// The embedded schema migrations (`migrations/` at the workspace root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
