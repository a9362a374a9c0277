//! Integration tests of the HTTP API against real Postgres and Redis.

mod auth;
mod cart;
mod checkout;
mod errors;
mod health;
mod helpers;
mod listings;
mod openapi;
mod users;
