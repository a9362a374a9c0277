//! Connections to PostgreSQL and Redis with the settings every process shares.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::config::Settings;

/// Opens the Postgres pool lazily-checked: the first connection is made now so a wrong URL fails
/// start-up instead of the first request.
pub async fn connect_postgres(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    pool_options(settings).connect(&settings.database_url).await
}

/// Opens a reconnecting Redis connection. The response timeout is raised from the 500 ms
/// default, which drops whole connections under load (a stall longer than it ends apalis workers;
/// `docs/ARCHITECTURE.md`, "Queues").
pub async fn connect_redis(url: &str) -> Result<ConnectionManager, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(5)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client.get_connection_manager_with_config(config).await
}

/// A pool that opens no connection until one is asked for: for a process that uses the
/// database only now and then (the scheduler), so that it holds no idle connection before.
pub fn lazy_postgres(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    pool_options(settings).connect_lazy(&settings.database_url)
}

/// The pool limits every process uses.
fn pool_options(settings: &Settings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

/// Creates the database named in `url` if it does not exist yet (developer convenience for the
/// one-command start; production databases are provisioned by operators).
pub async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
    }
    Ok(())
}
