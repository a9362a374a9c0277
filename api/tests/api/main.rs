//! Integration tests of the HTTP API against real Postgres and Redis.

mod abuse;
mod addresses;
mod auth;
mod cart;
mod checkout;
mod checkout_rules;
mod errors;
mod health;
mod helpers;
mod hostile_text;
mod images;
mod job_waiter;
mod listings;
mod metrics;
mod migrate;
mod openapi;
mod orders;
mod payments;
mod sessions;
mod startup;
mod unavailable;
mod users;
mod web_client;
