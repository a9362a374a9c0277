//! Connections to PostgreSQL and Redis with the settings every process shares.
//!
//! TLS: PostgreSQL's is chosen by `sslmode` (and `sslrootcert`) in `DATABASE_URL`, which sqlx
//! reads from the URL; Redis's by a `rediss://` `REDIS_URL`, with `REDIS_CA_CERT` for a private
//! CA, applied by [`redis_client`], the one place a Redis client is made.

use std::{path::Path, time::Duration};

use redis::{
    ErrorKind, RedisError, TlsCertificates,
    aio::{ConnectionManager, ConnectionManagerConfig},
};
use sqlx::{PgPool, postgres::PgPoolOptions};

use crate::config::Settings;

/// Opens the Postgres pool lazily-checked: the first connection is made now so a wrong URL fails
/// start-up instead of the first request.
pub async fn connect_postgres(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    pool_options(settings).connect(&settings.database_url).await
}

/// The Redis client for `url` (`REDIS_URL`), trusting only the CA certificates in the PEM file
/// `ca_cert` (`REDIS_CA_CERT`) when given, the webpki roots otherwise. Every Redis connection of
/// every process (the shared connection, pub/sub subscriptions, test clean-up) is opened from a
/// client made here, so TLS settings apply to all of them. Opens no connection.
pub fn redis_client(url: &str, ca_cert: Option<&Path>) -> Result<redis::Client, RedisError> {
    // rustls needs a process-wide provider for the `rediss://` handshake; `main` installs it
    // first thing, and this keeps a library or test caller from depending on that.
    crate::payments::install_crypto_provider();
    let Some(path) = ca_cert else {
        return redis::Client::open(url);
    };
    let pem = std::fs::read(path).map_err(|e| {
        RedisError::from((
            ErrorKind::InvalidClientConfig,
            "cannot read the Redis CA certificate (REDIS_CA_CERT)",
            format!("{}: {e}", path.display()),
        ))
    })?;
    redis::Client::build_with_tls(
        url,
        TlsCertificates {
            client_tls: None,
            root_cert: Some(pem),
        },
    )
}

/// Opens a reconnecting Redis connection from `client` ([`redis_client`]). The response timeout
/// is raised from the 500 ms default, which drops whole connections under load (a stall longer
/// than it ends apalis workers; `docs/ARCHITECTURE.md`, "Queues").
pub async fn connect_redis(client: &redis::Client) -> Result<ConnectionManager, RedisError> {
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

/// A pool like [`lazy_postgres`]'s whose connections plan each prepared statement once
/// (`plan_cache_mode=force_generic_plan`). PostgreSQL otherwise plans a statement with many
/// parameters anew on every execution, because a plan made for the values looks cheaper than
/// the generic one; for statements that find their rows by id, the generic plan is as good and
/// planning was a tenth of the server's time. Only for such statements: a range or an optional
/// filter given as a parameter may get a worse plan without the values.
///
/// A plan made without the values cannot know that an id array holds one or two ids, or that a
/// buyer's cart has a few lines: it assumes ten, or fifty, and for a catalogue of a thousand
/// listings it then reads the whole table (a sequential scan into a hash join) in every
/// checkout and every payment, however small the order. These connections therefore leave
/// PostgreSQL only index lookups and nested loops ([`HOT_PATH_PLANNER`]), which is what every
/// statement sent on them is written for, at any table size.
pub fn generic_plan_postgres(settings: &Settings) -> Result<PgPool, sqlx::Error> {
    let options = settings
        .database_url
        .parse::<sqlx::postgres::PgConnectOptions>()?
        .options(HOT_PATH_PLANNER);
    Ok(pool_options(settings).connect_lazy_with(options))
}

/// The planner settings of [`generic_plan_postgres`]'s connections (also `bench/ceiling`'s).
pub const HOT_PATH_PLANNER: [(&str, &str); 4] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
];

/// The pool limits every process uses.
fn pool_options(settings: &Settings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

/// Whether `error` says the database to connect to does not exist (SQLSTATE 3D000).
pub fn is_missing_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code == "3D000")
}

/// Creates the database named in `url` if it does not exist yet (developer convenience for the
/// one-command start; production databases are provisioned by operators, and `api migrate` calls
/// this only with `DATABASE_CREATE` on). Connects to the server's maintenance database to look.
pub async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
    use sqlx::migrate::MigrateDatabase;
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
    }
    Ok(())
}
