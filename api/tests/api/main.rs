//! Integration tests of the HTTP API against real Postgres and Redis.

mod health;
mod openapi;
